"""Anthropic conversions without a server: internal -> Messages body (the anthropic backend),
chunks -> stream events, stop reasons, and thinking -> Gemini's thinking budget."""

from __future__ import annotations

import pytest

from service.api.anthropic import convert
from service.api.anthropic.protocol import MessagesRequest, parse
from service.core import errors
from service.core.types import (
    Chunk, GenerationRequest, ImagePart, Message, TextPart, Tool, ToolCall, ToolCallDelta, Usage,
)
from service.providers.anthropic import encode_request
from service.providers.vertex.convert import generation_config


def test_internal_chat_becomes_a_valid_messages_body():
    r = GenerationRequest(kind="chat", model="claude", max_tokens=50, temperature=1.7,
                          stop=["END"], user="u1", tool_choice="required",
                          parallel_tool_calls=False, thinking_budget=2048,
                          tools=[Tool(name="f", parameters={"type": "object"})], messages=[
        Message(role="system", content="A"), Message(role="developer", content="B"),
        Message(role="user", content=[TextPart("look"), ImagePart("data:image/png;base64,AAAA")]),
        Message(role="assistant", content=None, tool_calls=[ToolCall("c1", "f", '{"x": 1}'),
                                                            ToolCall("c2", "f", "not json")]),
        Message(role="tool", content="r1", tool_call_id="c1"),
        Message(role="tool", content="r2", tool_call_id="c2"),
        Message(role="user", content="next")])
    body = encode_request(r, stream=True)
    assert body["system"] == "A\n\nB" and body["stream"] is True
    assert body["temperature"] == 1.0 and body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u1"}
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]  # tool results and the next turn merged
    assert body["messages"][0]["content"][1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "AAAA"}}
    calls = body["messages"][1]["content"]
    assert [c["id"] for c in calls] == ["c1", "c2"] and calls[1]["input"] == {"arguments": "not json"}
    last = body["messages"][2]["content"]
    assert [b["type"] for b in last] == ["tool_result", "tool_result", "text"]
    assert [b["tool_use_id"] for b in last[:2]] == ["c1", "c2"]


def test_completion_and_n_and_named_tool_choice():
    r = GenerationRequest(kind="completion", model="m", prompt="def f(", suffix="return x")
    body = encode_request(r, stream=False, default_max_tokens=99)
    assert body["max_tokens"] == 99 and "<prefix>def f(</prefix>" in body["messages"][0]["content"][0]["text"]
    assert "system" in body
    with pytest.raises(errors.UnsupportedFeature):
        encode_request(GenerationRequest(kind="chat", model="m", n=2), stream=False)
    r = GenerationRequest(kind="chat", model="m", messages=[Message(role="user", content="x")],
                          tools=[Tool(name="g")], tool_choice={"type": "function",
                                                               "function": {"name": "g"}})
    assert encode_request(r, False)["tool_choice"] == {"type": "tool", "name": "g"}


def test_stream_encoder_blocks_and_stop_reason():
    enc = convert.StreamEncoder("gen-abc", "m", 7)
    events = []
    for ch in [Chunk(index=0, role="assistant"), Chunk(index=0, reasoning="hmm"),
               Chunk(index=0, text="Hi"), Chunk(index=0, tool_calls=[
                   ToolCallDelta(index=0, id="call_1", name="f", arguments='{"a"')]),
               Chunk(index=0, tool_calls=[ToolCallDelta(index=0, arguments=': 1}')]),
               Chunk(index=0, finish_reason="stop"),
               Chunk(index=-1, usage=Usage(prompt_tokens=9, completion_tokens=4))]:
        events += enc.encode(ch)
    events += enc.closing()
    kinds = [e["type"] for e in events]
    assert kinds == ["message_start", "ping", "content_block_start", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
    assert events[0]["message"]["id"] == "msg_abc"
    assert [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"] \
        == ["thinking", "text", "tool_use"]
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "tool_use"  # a call was made, whatever "stop" says
    assert delta["usage"]["input_tokens"] == 9 and delta["usage"]["output_tokens"] == 4


@pytest.mark.parametrize("finish,seq,called,want", [
    ("stop", None, False, "end_turn"), ("stop", "X", False, "stop_sequence"),
    ("length", None, False, "max_tokens"), ("tool_calls", None, True, "tool_use"),
    ("content_filter", None, False, "refusal"), ("abort", None, False, "abort"),
    (None, None, False, None),
])
def test_stop_reasons(finish, seq, called, want):
    assert convert.stop_reason(finish, seq, called) == want


def test_thinking_maps_to_a_budget_and_to_gemini():
    base = {"model": "m", "max_tokens": 4000, "messages": [{"role": "user", "content": "x"}]}
    for thinking, budget in [({"type": "enabled", "budget_tokens": 1024}, 1024),
                             ({"type": "disabled"}, 0), ({"type": "adaptive"}, None), (None, None)]:
        body = dict(base, **({"thinking": thinking} if thinking else {}))
        r = convert.messages_request(parse(MessagesRequest, body), body)
        assert r.thinking_budget == budget
        cfg = generation_config(r, "gemini-2.5-pro")
        assert cfg.get("thinkingConfig") == (None if budget is None else {"thinkingBudget": budget})


def test_error_types_follow_anthropics_status_codes():
    assert convert.error_body(errors.UpstreamUnavailable("x")) == {
        "type": "error", "error": {"type": "overloaded_error", "message": "x"}}
    assert convert.error_type(404) == "not_found_error"
    assert convert.error_type(413) == "request_too_large"
    assert convert.error_type(418) == "invalid_request_error"
    assert convert.error_type(599) == "api_error"
