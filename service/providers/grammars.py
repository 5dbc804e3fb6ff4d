"""llama.cpp GBNF grammars for constrained local generation.

JSON Schema is converted with llama-cpp-python's own converter
(``llama_cpp.llama_grammar.SchemaConverter``, the port of llama.cpp's
``json_schema_to_grammar``), so a schema's ``required``, ``enum``, ``const``,
``additionalProperties: false``, ``$ref``, ``anyOf`` and string/array bounds
hold in the output by construction.

Tool calls are written in one fixed shape (SmolLM2's and xLAM's function-calling
format), with no free whitespace outside the arguments, so :mod:`.tool_calls`
can parse them while they stream::

    <tool_call>[{"name": "<function>", "arguments": <object matching its parameters>}, …]</tool_call>

Grammars are validated by llama.cpp's own parser when built (a schema it
cannot express is a 400, never a crash in the sampler) and cached, since
clients such as Roo send the same tools on every turn.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Optional

import llama_cpp
from jsonschema import Draft202012Validator, SchemaError
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, SchemaConverter

from ..core import errors

BLOCK_OPEN = "<tool_call>["
CALL_HEAD = '{"name": "'
ARGS_MARK = '", "arguments": '
CALL_TAIL = "}"
CALL_SEPARATOR = ", "
BLOCK_CLOSE = "]</tool_call>"

# JSON forbids raw control characters in strings; the converter's own rule allows them.
_STRICT_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'

# The function-tool object OpenAI uses when a tool has no parameters.
_EMPTY_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid GBNF literal


_GBNF_ESCAPES = {"\\": "\\\\", '"': '\\"', "\r": "\\r", "\n": "\\n", "\t": "\\t"}
_GBNF_ESCAPE_RE = re.compile(r'[\\"\x00-\x1f\x7f]')


class _Converter(SchemaConverter):
    """llama-cpp-python's converter, with literals that match their text exactly.

    Its own literals (a ``const``, an ``enum`` value, a property name: JSON texts)
    reach GBNF with their backslashes unescaped, so GBNF reads JSON's escapes
    as its own: ``\\ud83d\\ude03`` became two surrogates (invalid UTF-8, an emoji
    in an ``enum`` sent as U+FFFD) and ``\\n`` a raw newline (invalid JSON).
    """

    def _format_literal(self, literal: str) -> str:
        return '"' + _GBNF_ESCAPE_RE.sub(
            lambda m: _GBNF_ESCAPES.get(m.group(), f"\\x{ord(m.group()):02X}"), literal) + '"'

    def _generate_constant_rule(self, value) -> str:
        text = json.dumps(value, ensure_ascii=False)  # characters as themselves, not escapes
        if not text.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            text = json.dumps(value)  # a lone surrogate stays an escape
        return self._format_literal(text)


class _Rules:
    """One grammar assembled from several schemas, each under its own rule prefix."""

    def __init__(self):
        self.conv = _Converter(prop_order={}, allow_fetch=False, dotall=False,
                               raw_pattern=False)

    def schema(self, schema: dict, name: str, param: str) -> str:
        check_schema(schema, param)
        try:
            resolved = self.conv.resolve_refs(_bounded_integers(schema), name)
            return self.conv.visit(resolved, name)
        except (AssertionError, AttributeError, KeyError, ValueError, TypeError,
                RecursionError) as exc:
            raise errors.InvalidRequest(
                f"the JSON schema in '{param}' cannot be turned into a grammar: {exc}",
                param=param) from exc

    def add(self, name: str, rule: str) -> str:
        return self.conv._add_rule(name, rule)

    def text(self) -> str:
        if "char" in self.conv._rules:
            self.conv._rules["char"] = _STRICT_CHAR
        return self.conv.format_grammar()


def check_schema(schema: Any, param: str) -> None:
    """A 400 naming the spot when ``schema`` is not a JSON Schema at all (checked
    against the 2020-12 meta-schema), before the converter meets it."""
    if not isinstance(schema, dict):
        raise errors.InvalidRequest(f"the JSON schema in '{param}' must be an object",
                                    param=param)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = exc.json_path.replace("$", param, 1)
        raise errors.InvalidRequest(
            f"the JSON schema in '{param}' is not a valid JSON Schema at {where}: "
            f"{exc.message[:200]}", param=param) from None


_MAX_ENUMERATED_RANGE = 1024


def _bounded_integers(node):
    """Integers with both bounds become an ``enum`` of their values.

    The converter ignores ``minimum``/``maximum``; a small closed range spelled
    out is exact. Wider or one-sided ranges stay unbounded in the grammar.
    """
    if isinstance(node, list):
        return [_bounded_integers(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _bounded_integers(v) for k, v in node.items()}
    types = out.get("type")
    if isinstance(types, list) and any(t in ("object", "array") for t in types):
        # The converter drops properties/required/items of a type list such as
        # ["object", "null"] (Roo's optional objects): one alternative per type keeps them.
        rest = {k: v for k, v in out.items() if k != "type"}
        return {"anyOf": [dict(rest, type=t) if t in ("object", "array") else {"type": t}
                          for t in types]}
    if out.get("type") == "integer" and "enum" not in out:
        lo = out.get("minimum", out.get("exclusiveMinimum", None))
        hi = out.get("maximum", out.get("exclusiveMaximum", None))
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
            lo = int(lo) + (1 if "exclusiveMinimum" in out and "minimum" not in out else 0)
            hi = int(hi) - (1 if "exclusiveMaximum" in out and "maximum" not in out else 0)
            if 0 <= hi - lo < _MAX_ENUMERATED_RANGE:
                return {"enum": list(range(lo, hi + 1))}
    return out


def tool_call_grammar_text(tools: list[tuple[str, Optional[dict]]], *, parallel: bool) -> str:
    """GBNF for one ``<tool_call>`` block holding one (or, with ``parallel``, several) calls."""
    rules = _Rules()
    alternatives = []
    for i, (name, params) in enumerate(tools):
        args = rules.schema(params or _EMPTY_PARAMETERS, f"tool{i}-args", f"tools[{i}]")
        alternatives.append(rules.add(
            f"tool{i}-call", f"{_literal(name + ARGS_MARK)} {args}"))
    call = rules.add("call", f"{_literal(CALL_HEAD)} ( {' | '.join(alternatives)} ) "
                             f"{_literal(CALL_TAIL)}")
    calls = f"{call} ( {_literal(CALL_SEPARATOR)} {call} )*" if parallel else call
    rules.add("root", f"{_literal(BLOCK_OPEN)} {calls} {_literal(BLOCK_CLOSE)}")
    return rules.text()


def json_schema_grammar_text(schema: dict, param: str = "response_format") -> str:
    rules = _Rules()
    root = rules.schema(schema, "", param)
    if root != "root":
        rules.add("root", root)
    return rules.text()


def compile_grammar(llama, text: str, param: str) -> LlamaGrammar:
    """Check ``text`` with llama.cpp's parser and wrap it for ``Llama.generate``."""
    key = (text, id(llama._model))
    if key not in _VALID:
        sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, text.encode(),
                                                       b"root")
        if not sampler:
            raise errors.InvalidRequest(
                f"the schema in '{param}' produced a grammar llama.cpp rejects", param=param)
        llama_cpp.llama_sampler_free(sampler)
        if len(_VALID) > 256:
            _VALID.clear()
        _VALID.add(key)
    return LlamaGrammar.from_string(text, verbose=False)


_VALID: set[tuple[str, int]] = set()  # (grammar, model) pairs llama.cpp already parsed


@functools.lru_cache(maxsize=64)
def _tool_text_cached(spec: str, parallel: bool) -> str:
    tools = [(t["name"], t["parameters"]) for t in json.loads(spec)]
    return tool_call_grammar_text(tools, parallel=parallel)


def tool_grammar(llama, tools: list[tuple[str, Optional[dict]]], *,
                 parallel: bool) -> LlamaGrammar:
    # Key order kept: the grammar writes properties in the order the schema declares them.
    spec = json.dumps([{"name": n, "parameters": p} for n, p in tools])
    return compile_grammar(llama, _tool_text_cached(spec, parallel), "tools")


def response_format_grammar(llama, response_format: dict[str, Any]) -> Optional[LlamaGrammar]:
    """The grammar for ``json_object`` / ``json_schema`` output; None for text."""
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return compile_grammar(llama, JSON_GBNF, "response_format")
    if kind == "json_schema":
        schema = schema_of(response_format)
        if schema is None:
            return compile_grammar(llama, JSON_GBNF, "response_format")
        return compile_grammar(llama, _schema_text_cached(json.dumps(schema)),
                               "response_format.json_schema")
    raise errors.UnsupportedFeature(f"response_format type {kind!r} is not supported",
                                    param="response_format.type")


def schema_of(response_format: dict[str, Any]) -> Optional[dict]:
    """The JSON Schema of a ``json_schema`` response format (OpenAI nests it under ``schema``)."""
    js = response_format.get("json_schema")
    if not isinstance(js, dict):
        return None
    if isinstance(js.get("schema"), dict):
        return js["schema"]
    if any(k in js for k in ("type", "properties", "$ref", "anyOf", "oneOf", "enum")):
        return js  # a bare schema, as some clients send
    return None


@functools.lru_cache(maxsize=64)
def _schema_text_cached(schema: str) -> str:
    return json_schema_grammar_text(json.loads(schema), "response_format.json_schema")
