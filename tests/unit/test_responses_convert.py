"""Responses API conversion: items -> messages, and chunks -> the typed stream events."""

from __future__ import annotations

import pytest

from service.api.responses import convert
from service.api.responses.protocol import parse_request
from service.core import errors
from service.core.types import Chunk, ToolCallDelta, Usage


def _env(**body):
    return convert.Envelope(parse_request({"model": "m", "input": "x", **body}), "m")


def _encoder(env, finals=None):
    return convert.StreamEncoder(env, lambda: Usage(1, 1),
                                 (finals if finals is not None else []).append)


def test_assistant_words_and_parallel_calls_are_one_turn():
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
             {"type": "message", "role": "assistant",
              "content": [{"type": "output_text", "text": "Let me look."}]},
             {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
             {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}",
              "namespace": "ns"},
             {"type": "function_call_output", "call_id": "c1", "output": "one"},
             {"type": "function_call_output", "call_id": "c2",
              "output": [{"type": "input_text", "text": "two"}]}]
    msgs = convert.messages(items, "sys")
    assert [m.role for m in msgs] == ["system", "user", "assistant", "tool", "tool"]
    assert msgs[2].content == "Let me look."
    assert [(c.id, c.name) for c in msgs[2].tool_calls] == [("c1", "a"), ("c2", "ns__b")]
    assert (msgs[4].content, msgs[4].tool_call_id) == ("two", "c2")


def test_a_call_to_a_namespaced_tool_is_split_back():
    env = _env(tools=[{"type": "namespace", "name": "ns", "tools": [
        {"type": "function", "name": "b"}]}])
    item = env.function_call("c1", "ns__b", "{}", "completed")
    assert (item["name"], item["namespace"]) == ("b", "ns")
    assert "namespace" not in env.function_call("c2", "other__b", "{}", "completed")


def test_stream_events_for_reasoning_text_and_two_calls():
    finals: list = []
    enc = _encoder(_env(), finals)
    events = []
    for chunk in [Chunk(role="assistant"), Chunk(reasoning="hmm"), Chunk(text="Hi"),
                  Chunk(tool_calls=[ToolCallDelta(0, "c1", "f", '{"a"')]),
                  Chunk(tool_calls=[ToolCallDelta(1, "c2", "g", "{}")]),
                  Chunk(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
                  Chunk(finish_reason="tool_calls"), Chunk(index=-1, usage=Usage(7, 5))]:
        events += enc.encode(chunk)
    events += enc.closing()
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = [e["item"]["type"] for e in events if e["type"] == "response.output_item.added"]
    assert added == ["reasoning", "message", "function_call", "function_call"]
    final = events[-1]
    assert final["type"] == "response.completed" and final["response"] is finals[0]
    out = final["response"]["output"]
    assert out[0]["content"][0]["text"] == "hmm" and out[1]["content"][0]["text"] == "Hi"
    assert [(o["call_id"], o["arguments"]) for o in out[2:]] == [("c1", '{"a": 1}'), ("c2", "{}")]
    assert final["response"]["usage"]["total_tokens"] == 12


def test_an_empty_answer_is_one_empty_message():
    enc = _encoder(_env())
    events = enc.encode(Chunk(finish_reason="stop")) + enc.closing()
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""
    assert events[-1]["response"]["usage"] == convert.usage_dict(Usage(1, 1))


def test_failure_before_any_chunk_still_opens_then_fails():
    enc = _encoder(_env())
    events = enc.failed(errors.UpstreamError("boom"))
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "error",
                                           "response.failed"]
    assert events[-1]["response"]["error"] == {"code": "upstream_error", "message": "boom"}


@pytest.mark.parametrize("finish,status,reason", [
    ("stop", "completed", None), (None, "completed", None), ("tool_calls", "completed", None),
    ("length", "incomplete", "max_output_tokens"),
    ("content_filter", "incomplete", "content_filter"), ("abort", "incomplete", "abort")])
def test_finish_reasons(finish, status, reason):
    enc = _encoder(_env())
    events = enc.encode(Chunk(text="x", finish_reason=finish)) + enc.closing()
    final = events[-1]
    assert final["response"]["status"] == status
    assert final["type"] == ("response.completed" if status == "completed"
                             else "response.incomplete")
    assert (final["response"]["incomplete_details"] or {}).get("reason") == reason
