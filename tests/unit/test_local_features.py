"""Tool-call parsing, grammar building and FIM helpers, without the model."""

from __future__ import annotations

import json

import pytest

from service.core import errors
from service.core.types import GenerationRequest, Tool
from service.providers import fim, grammars, tool_calls
from service.providers.llama_runner import Piece

OUTPUT = ('<tool_call>[{"name": "read_file", "arguments": {"path": "a \\"b\\" {c}"}}, '
          '{"name": "run", "arguments": {"cmd": ["x", "y"], "cwd": null} }]</tool_call>')


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(OUTPUT)])
def test_parser_releases_whole_calls_however_the_output_is_cut(size):
    p = tool_calls.ToolCallParser()
    text, deltas = "", []
    for i in range(0, len(OUTPUT), size):
        t, d = p.feed(OUTPUT[i:i + size])
        text += t
        deltas += d
    assert text == "" and p.finish() == "" and p.complete
    assert [(d.index, d.name) for d in deltas] == [(0, "read_file"), (1, "run")]
    assert all(d.id.startswith("call_") for d in deltas)
    assert json.loads(deltas[0].arguments) == {"path": 'a "b" {c}'}
    assert json.loads(deltas[1].arguments) == {"cmd": ["x", "y"], "cwd": None}


def test_parser_drops_a_call_cut_short_and_passes_text_through():
    text, calls = tool_calls.parse_all(OUTPUT[:-40])
    assert text == "" and [c.name for c in calls] == ["read_file"]
    assert tool_calls.parse_all("  Hello <b>there</b>") == ("  Hello <b>there</b>", [])


def test_history_calls_are_rendered_in_the_grammar_shape():
    _, calls = tool_calls.parse_all(OUTPUT)
    again = tool_calls.render_calls(calls)
    assert [(c.name, json.loads(c.arguments)) for c in tool_calls.parse_all(again)[1]] == \
        [(c.name, json.loads(c.arguments)) for c in calls]


def _req(**kw) -> GenerationRequest:
    tools = [Tool("a", None, {"type": "object"}), Tool("b", None, {"type": "object"})]
    return GenerationRequest(kind="chat", model="m", tools=tools, **kw)


def test_tool_plans():
    assert tool_calls.plan_for(_req(tool_choice="none")) is None
    auto = tool_calls.plan_for(_req(tool_choice="auto"))
    assert not auto.must_call and auto.parallel
    assert tool_calls.plan_for(_req(tool_choice="auto"), auto_required=True).must_call
    named = tool_calls.plan_for(_req(tool_choice={"type": "function", "function": {"name": "b"}},
                                     parallel_tool_calls=False))
    assert named.must_call and not named.parallel and [t.name for t in named.tools] == ["b"]


def test_tool_grammar_is_strict_about_names_and_properties():
    params = {"type": "object", "properties": {"path": {"type": "string"},
                                               "n": {"type": "integer", "minimum": 1,
                                                     "maximum": 3}},
              "required": ["path", "n"], "additionalProperties": False}
    g = grammars.tool_call_grammar_text([("read_file", params)], parallel=False)
    assert 'root ::= "<tool_call>[" call "]</tool_call>"' in g
    assert '"read_file\\", \\"arguments\\": "' in g
    assert '"1" | "2" | "3"' in g  # a closed integer range is spelled out
    assert "\\x00-\\x1F" in g      # no raw control characters inside strings


def test_unconvertible_schema_is_a_400():
    with pytest.raises(errors.InvalidRequest) as exc:
        grammars.tool_call_grammar_text([("x", {"$ref": "#/$defs/nope"})], parallel=True)
    assert exc.value.param == "tools[0]"


def test_response_format_schema_lookup():
    assert grammars.schema_of({"type": "json_schema",
                               "json_schema": {"name": "n", "schema": {"type": "object"}}}) == \
        {"type": "object"}
    assert grammars.schema_of({"type": "json_schema", "json_schema": {"type": "array"}}) == \
        {"type": "array"}
    assert grammars.schema_of({"type": "json_schema", "json_schema": {"name": "n"}}) is None


def test_suffix_guard_never_repeats_the_suffix_start():
    guard = fim.SuffixGuard("\n\nprint(x)\n")
    out = "".join(p.text for p in guard.wrap(iter([Piece("a + b"), Piece("\n"), Piece("\n")])))
    assert out == "a + b"
    out = "".join(p.text for p in guard.wrap(iter([Piece("a\n"), Piece("b")])))
    assert out == "a\nb"  # a held newline is released once the text moves on


def test_fallback_stops_at_the_first_suffix_line():
    assert fim._fallback_stops("\n\n   return x\nfoo") == ["return x"]
    assert fim._fallback_stops("\n  \n") == []


class _FakeRun:
    def __init__(self, texts, finish="stop"):
        self.texts, self.finish_reason, self.completion_tokens = texts, None, 0
        self._finish, self.closed = finish, False

    def __iter__(self):
        try:
            for t in self.texts:
                self.completion_tokens += 1
                yield Piece(t)
            self.finish_reason = self._finish
        finally:
            self.closed = True


def test_lazy_grammar_run_switches_only_when_the_output_opens_a_call():
    from service.providers.llama_runner import LazyGrammarRun

    free, constrained = _FakeRun(["\n", "<tool", "_call>junk"]), _FakeRun(["<tool_call>[…]"])
    run = LazyGrammarRun(free, constrained, trigger="<")
    assert [p.text for p in run] == ["<tool_call>[…]"]
    # Only the answer's tokens count: the free run's opening was generated again under the
    # grammar (counting it too made max_completion_tokens overshoot by 2 with tools).
    assert run.triggered and free.closed and run.completion_tokens == 1 and run.finish_reason == "stop"

    free, constrained = _FakeRun([" ", "Hello", " <b>"], "length"), _FakeRun(["never"])
    run = LazyGrammarRun(free, constrained, trigger="<")
    assert "".join(p.text for p in run) == " Hello <b>"
    assert not run.triggered and run.finish_reason == "length" and constrained.completion_tokens == 0


def test_a_nullable_object_keeps_its_required_properties_in_the_grammar():
    """Roo's read_file has ``indentation: {type: ["object", "null"], required: [...]}``; the
    grammar let the model write ``{}`` there until type lists became alternatives."""
    from service.providers import grammars
    from tests.support import roo

    text = grammars.tool_call_grammar_text([("read_file", roo.SCHEMAS["read_file"])],
                                           parallel=False)
    rule = next(ln for ln in text.splitlines() if ln.startswith("tool0-args-indentation-0 ::="))
    assert "anchor-line-kv" in rule and "max-lines-kv" in rule
