"""The ``anthropic`` SDK through the gateway to loopback stand-ins: an Anthropic-compatible
server that checks what it receives, and an OpenAI-compatible one; OpenAI and Ollama
clients using the ``anthropic`` backend kind."""

from __future__ import annotations

import anthropic
import ollama
import openai
import pytest
import requests

from tests.anthropic.conftest import STANDIN_KEY
from tests.support.anthropic_standin import TOOL_ID, TOOL_INPUT

WEATHER = {"name": "get_weather", "description": "Weather of a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def sdk(url: str, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="gateway-key", max_retries=0, **kw)


def answer(c, stream: bool, **kw):
    if not stream:
        return c.messages.create(**kw)
    with c.messages.stream(**kw) as s:
        list(s)
        return s.get_final_message()


# ---- Anthropic backend ------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_backend_relays_body_and_protocol_headers(gw, stream):
    url, standin, _ = gw
    c = sdk(url, default_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    m = answer(c, stream, model="claude-echo", max_tokens=20, messages=ASK,
               system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
               metadata={"user_id": "u-7"}, stop_sequences=["###"])
    assert m.content[0].text == "echo: Weather in Paris?"
    assert m.stop_reason == "end_turn" and m.model == "claude-echo"
    assert m.usage.input_tokens == 11 and m.usage.output_tokens == 7
    body, headers = standin.state.bodies[-1], standin.state.headers[-1]
    assert headers["x-api-key"] == STANDIN_KEY  # the backend's key, never the client's
    assert headers["anthropic-version"] == c.default_headers["anthropic-version"]  # unchanged
    assert headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["metadata"] == {"user_id": "u-7"} and body["stream"] is stream


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_backend_two_turn_tool_round_trip_keeps_ids(gw, stream):
    url, standin, _ = gw
    c = sdk(url)
    first = answer(c, stream, model="claude-tools", max_tokens=50, tools=[WEATHER],
                   tool_choice={"type": "auto"}, messages=ASK)
    assert first.stop_reason == "tool_use"
    call = first.content[1]
    assert (call.type, call.id, call.input) == ("tool_use", TOOL_ID, TOOL_INPUT)
    follow = ASK + [{"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                      for b in first.content]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                  "content": "18 C", "is_error": False}]}]
    second = answer(c, stream, model="claude-tools", max_tokens=50, tools=[WEATHER],
                    messages=follow)
    assert second.content[0].text == "weather: 18 C"  # the stand-in checked the ids


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_backend_thinking_and_stop_reasons(gw, stream):
    url, _, _ = gw
    c = sdk(url)
    m = answer(c, stream, model="claude-thinking", max_tokens=2048, messages=ASK,
               thinking={"type": "enabled", "budget_tokens": 1024})
    assert m.content[0].type == "thinking" and m.content[0].signature == "sig-standin"
    assert m.content[1].text == "echo: Weather in Paris?"
    m = answer(c, stream, model="claude-stop", max_tokens=20, messages=ASK,
               stop_sequences=["END"])
    assert (m.stop_reason, m.stop_sequence) == ("stop_sequence", "END")
    m = answer(c, stream, model="claude-long", max_tokens=2, messages=ASK)
    assert m.stop_reason == "max_tokens"


def test_count_tokens_asks_the_anthropic_backend(gw):
    url, standin, _ = gw
    n = sdk(url).messages.count_tokens(model="claude-echo", messages=ASK, tools=[WEATHER])
    assert n.input_tokens == 42
    assert standin.state.paths[-1] == "/v1/messages/count_tokens"


def test_overloaded_is_503_with_retry_after_and_rate_limit_429(gw):
    url, _, _ = gw
    with pytest.raises(anthropic.APIStatusError) as exc:
        sdk(url).messages.create(model="claude-overloaded", max_tokens=5, messages=ASK)
    assert exc.value.status_code == 503
    assert exc.value.body["error"]["type"] == "overloaded_error"
    assert int(exc.value.response.headers["Retry-After"]) >= 1
    with pytest.raises(anthropic.RateLimitError) as exc:
        sdk(url).messages.create(model="claude-ratelimit", max_tokens=5, messages=ASK)
    assert exc.value.body["error"]["type"] == "rate_limit_error"
    assert exc.value.response.headers["Retry-After"] == "7"


@pytest.mark.parametrize("model", ["claude-cut", "claude-stream-error"])
def test_a_broken_anthropic_stream_is_an_error_never_a_finished_answer(gw, model):
    url, _, _ = gw
    with pytest.raises(anthropic.APIStatusError) as exc:
        with sdk(url).messages.stream(model=model, max_tokens=20, messages=ASK) as s:
            for e in s:
                assert e.type != "message_stop"
    err = exc.value.body["error"]
    assert err["type"] in ("api_error", "overloaded_error")
    assert any(w in err["message"] for w in ("complete", "broke", "Overloaded")), err


def test_openai_and_ollama_clients_use_the_anthropic_backend(gw):
    url, standin, _ = gw
    oc = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    r = oc.chat.completions.create(model="claude-echo", max_tokens=30, temperature=1.5,
                                   messages=[{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "hello"}])
    assert r.choices[0].message.content == "echo: hello"
    assert r.choices[0].finish_reason == "stop" and r.usage.prompt_tokens == 11
    body = standin.state.bodies[-1]
    assert body["system"] == "Be brief." and body["temperature"] == 1.0
    assert body["max_tokens"] == 30
    chunks = list(oc.chat.completions.create(model="claude-echo", stream=True,
                                             messages=[{"role": "user", "content": "a b"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b"
    assert standin.state.bodies[-1]["max_tokens"] == 4096  # the backend's default_max_tokens
    # A tool round trip from an OpenAI client: ids kept both ways.
    tools = [{"type": "function", "function": {"name": "get_weather",
                                               "parameters": WEATHER["input_schema"]}}]
    first = oc.chat.completions.create(model="claude-tools", tools=tools,
                                       messages=[{"role": "user", "content": "Paris?"}])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.id == TOOL_ID
    second = oc.chat.completions.create(model="claude-tools", tools=tools, messages=[
        {"role": "user", "content": "Paris?"}, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C"}])
    assert second.choices[0].message.content == "weather: 18 C"
    streamed = list(oc.chat.completions.create(model="claude-tools", tools=tools, stream=True,
                                               messages=[{"role": "user", "content": "Paris?"}]))
    frags = [t for c in streamed if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert frags[0].id == TOOL_ID and "".join(f.function.arguments or "" for f in frags) \
        == '{"city": "Paris"}'
    oll = ollama.Client(host=url)
    r = oll.chat(model="claude-echo", messages=[{"role": "user", "content": "hi"}], stream=False)
    assert r.message.content == "echo: hi" and r.done
    parts = list(oll.chat(model="claude-echo", messages=[{"role": "user", "content": "x y"}],
                          stream=True))
    assert "".join(p.message.content for p in parts) == "echo: x y" and parts[-1].done


# ---- OpenAI-compatible backend -------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_openai_backend_answers_and_tool_ids_round_trip(gw, stream):
    url, _, up = gw
    c = sdk(url)
    m = answer(c, stream, model="gpt-echo", max_tokens=20, messages=ASK)
    assert m.content[0].text == "echo: Weather in Paris?" and m.stop_reason == "end_turn"
    first = answer(c, stream, model="gpt-tools", max_tokens=50, tools=[WEATHER], messages=ASK)
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.id == "call_abc" and call.input == {"city": "Paris", "unit": "celsius"}
    follow = ASK + [{"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                      for b in first.content]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_abc", "is_error": True,
                         "content": [{"type": "text", "text": "no such city"}]},
                        {"type": "text", "text": "try again"}]}]
    answer(c, stream, model="gpt-echo", max_tokens=20, messages=follow)
    sent = up.state.bodies[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_abc"
    assert sent[2] == {"role": "tool", "content": "Error: no such city", "tool_call_id": "call_abc"}
    assert sent[3] == {"role": "user", "content": "try again"}


def test_openai_backend_cut_stream_is_an_error_event(gw):
    url, _, _ = gw
    r = requests.post(url + "/v1/messages", json={"model": "gpt-truncated", "max_tokens": 5,
                                                  "stream": True, "messages": ASK}, timeout=30)
    assert r.status_code == 200
    events = [ln[7:] for ln in r.text.split("\n") if ln.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "error"
    assert "message_stop" not in events and "message_delta" not in events
    with pytest.raises(anthropic.APIStatusError, match="before the answer was complete"):
        with sdk(url).messages.stream(model="gpt-truncated", max_tokens=5, messages=ASK) as s:
            list(s)


def test_openai_backend_429_is_a_rate_limit_error(gw):
    url, _, _ = gw
    with pytest.raises(anthropic.RateLimitError) as exc:
        sdk(url).messages.create(model="gpt-429", max_tokens=5, messages=ASK)
    assert exc.value.body == {"type": "error", "error": {
        "type": "rate_limit_error", "message": exc.value.body["error"]["message"]}}
