"""Ollama wire format <-> internal model, without HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from service.api.ollama import convert
from service.api.ollama.protocol import ChatRequest, GenerateRequest, parse
from service.core import errors
from service.core.types import Chunk, Generation, Choice, ToolCall, ToolCallDelta, Usage

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def chat(**body):
    body.setdefault("model", "m")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return convert.chat_request(parse(ChatRequest, body), body)


def generate(**body):
    body.setdefault("model", "m")
    return convert.generate_request(parse(GenerateRequest, body), body)


def test_options_map_to_sampling_fields():
    r = chat(options={"temperature": 0, "top_p": 0.5, "top_k": 7, "num_predict": 12, "seed": 3,
                      "stop": ["\n\n", "END"], "num_ctx": 4096, "repeat_penalty": 1.1,
                      "presence_penalty": 0.2, "frequency_penalty": 0.3, "mirostat": 2})
    assert (r.temperature, r.top_p, r.top_k, r.max_tokens, r.seed) == (0, 0.5, 7, 12, 3)
    assert r.stop == ["\n\n", "END"] and r.num_ctx == 4096
    assert (r.repeat_penalty, r.presence_penalty, r.frequency_penalty) == (1.1, 0.2, 0.3)
    assert r.stream is True and r.kind == "chat" and r.extra == {}


@pytest.mark.parametrize("n", [-1, -2, 0])
def test_num_predict_without_limit(n):
    assert chat(options={"num_predict": n}).max_tokens is None


def test_streaming_is_the_default_even_when_null():
    assert chat().stream and chat(stream=None).stream and not chat(stream=False).stream


def test_stop_as_single_string():
    assert chat(options={"stop": "###"}).stop == ["###"]


@pytest.mark.parametrize("body,param", [
    ({"options": {"temperature": -1}}, "options.temperature"),
    ({"options": {"num_predict": -3}}, "options.num_predict"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]},
     "tools[0].function.name"),
    ({"model": ""}, "model"),
])
def test_validation_names_the_field(body, param):
    with pytest.raises(errors.InvalidRequest) as e:
        chat(**body)
    assert e.value.param == param and param in e.value.message


def test_format_json_and_schema():
    assert chat(format="json").response_format == {"type": "json_object"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert chat(format=schema).response_format == {
        "type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    assert chat(format="").response_format is None


def test_tools_and_object_arguments_become_internal():
    r = chat(tools=[{"type": "function", "function": {
        "name": "read_file", "description": "Read", "parameters": {"type": "object"}}}],
        messages=[
            {"role": "user", "content": "read a.py"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "read_file", "arguments": {"path": "a.py"}}},
                {"function": {"name": "list", "arguments": {}}}]},
            {"role": "tool", "content": "[]", "tool_name": "list"},
            {"role": "tool", "content": "print(1)"},
        ])
    assert r.tools[0].name == "read_file" and r.tools[0].parameters == {"type": "object"}
    calls = r.messages[1].tool_calls
    assert json.loads(calls[0].arguments) == {"path": "a.py"} and calls[1].arguments == "{}"
    assert calls[0].id != calls[1].id
    # tool results are linked to the call they answer: by tool name, else in order
    assert r.messages[2].tool_call_id == calls[1].id
    assert r.messages[3].tool_call_id == calls[0].id


def test_images_become_data_urls():
    r = chat(messages=[{"role": "user", "content": "what is it?", "images": [PNG]}])
    assert r.has_images()
    assert r.messages[0].images()[0].url == "data:image/png;base64," + PNG
    assert r.messages[0].text() == "what is it?"


@pytest.mark.parametrize("img,why", [("%%%not-base64", "base64"),
                                     (base64.b64encode(b"plain text").decode(), "PNG")])
def test_bad_images_are_400_naming_the_field(img, why):
    with pytest.raises(errors.InvalidRequest) as e:
        chat(messages=[{"role": "user", "content": "x", "images": [img]}])
    assert e.value.param == "messages[0].images[0]" and why in e.value.message


def test_generate_is_a_templated_turn_with_system():
    r = generate(prompt="Why?", system="Be brief.", images=[PNG])
    assert r.kind == "chat" and [m.role for m in r.messages] == ["system", "user"]
    assert r.messages[1].text() == "Why?" and r.has_images()


def test_generate_raw_and_suffix_are_text_completions():
    r = generate(prompt="def f(", raw=True, options={"num_predict": 4})
    assert (r.kind, r.prompt, r.suffix, r.max_tokens) == ("completion", "def f(", None, 4)
    r = generate(prompt="def f(", suffix="\n    return x")
    assert (r.kind, r.suffix) == ("completion", "\n    return x")
    with pytest.raises(errors.UnsupportedFeature) as e:
        generate(prompt="x", raw=True, images=[PNG])
    assert e.value.param == "images"


class Clock:
    def __init__(self):
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


def test_stream_encoder_lines_counters_and_durations():
    clock = Clock()
    enc = convert.StreamEncoder("chat", "m", clock=clock)
    clock.now += 500  # prompt evaluation
    lines = enc.encode(Chunk(role="assistant", text="Hel"))
    clock.now += 200
    lines += enc.encode(Chunk(text="lo"))
    lines += enc.encode(Chunk(finish_reason="length"))
    lines += enc.encode(Chunk(index=-1, usage=Usage(prompt_tokens=9, completion_tokens=2)))
    clock.now += 100
    lines += enc.closing()
    assert [ln["message"]["content"] for ln in lines] == ["Hel", "lo", ""]
    assert [ln["done"] for ln in lines] == [False, False, True]
    last = lines[-1]
    assert last["done_reason"] == "length"
    assert (last["prompt_eval_count"], last["eval_count"]) == (9, 2)
    assert (last["total_duration"], last["prompt_eval_duration"], last["eval_duration"]) == \
        (800, 500, 300)
    assert last["created_at"].endswith("Z")


def test_stream_encoder_gathers_tool_call_fragments():
    enc = convert.StreamEncoder("chat", "m", clock=Clock())
    out = enc.encode(Chunk(role="assistant", tool_calls=[
        ToolCallDelta(index=0, id="call_1", name="get_weather", arguments='{"ci')]))
    out += enc.encode(Chunk(tool_calls=[ToolCallDelta(index=0, arguments='ty": "Paris"}')]))
    assert out == []  # nothing half-made is sent
    out += enc.encode(Chunk(finish_reason="tool_calls"))
    out += enc.closing()
    call = out[0]["message"]["tool_calls"][0]
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert out[-1]["done"] is True and out[-1]["done_reason"] == "stop"


def test_generate_stream_uses_response_field():
    enc = convert.StreamEncoder("generate", "m", clock=Clock())
    lines = enc.encode(Chunk(text="x")) + enc.encode(Chunk(finish_reason="length")) \
        + enc.closing()
    assert lines[0]["response"] == "x" and "message" not in lines[0]
    assert lines[-1]["response"] == "" and lines[-1]["done_reason"] == "length"


def test_done_reason_is_only_what_the_backend_said():
    enc = convert.StreamEncoder("chat", "m", clock=Clock())
    last = (enc.encode(Chunk(text="x")) + enc.closing())[-1]
    assert last["done"] is True and "done_reason" not in last
    assert convert._done_reason("tool_calls") == "stop"
    assert convert._done_reason("content_filter") == "content_filter"
    assert convert._done_reason(None) is None


def test_arguments_that_are_not_an_object_are_an_upstream_error():
    with pytest.raises(errors.UpstreamError):
        convert.tool_calls_out([ToolCall(id="c", name="f", arguments="not json")])
    assert convert.tool_calls_out([ToolCall(id="c", name="f", arguments="")])[0][
        "function"]["arguments"] == {}


def test_whole_response():
    gen = Generation(model="m", choices=[Choice(text="", finish_reason="tool_calls", tool_calls=[
        ToolCall(id="c", name="f", arguments='{"a": 1}')])], usage=Usage(3, 4))
    out = convert.response("chat", "m:latest", gen, total_ns=1234)
    assert out["model"] == "m:latest" and out["done"] is True and out["done_reason"] == "stop"
    assert out["message"]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert (out["prompt_eval_count"], out["eval_count"], out["total_duration"]) == (3, 4, 1234)
