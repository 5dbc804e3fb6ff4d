"""The OpenAI API in front of an OpenAI-compatible upstream, driven by the openai SDK."""

from __future__ import annotations

import json
import time

import openai
import pytest
import requests

from tests.support.rawhttp import open_sse


def client(url: str, **kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=url + "/v1", api_key="not-needed", **kw)


def test_chat_relay_non_streaming(upstream_gateway):
    url, up = upstream_gateway
    r = client(url).chat.completions.create(
        model="echo-1", messages=[{"role": "user", "content": "hello there"}],
        extra_body={"custom_field": {"kept": True}})
    assert r.choices[0].message.content == "echo: hello there"
    assert r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 3
    # unknown fields reach the upstream untouched
    assert up.state.bodies[-1]["custom_field"] == {"kept": True}


def test_chat_relay_streaming_with_usage(upstream_gateway):
    url, up = upstream_gateway
    stream = client(url).chat.completions.create(
        model="echo-1", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4


def test_stream_without_usage_request_has_no_usage_chunk(upstream_gateway):
    url, up = upstream_gateway
    raw = requests.post(url + "/v1/chat/completions", json={
        "model": "echo-1", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert raw.headers["Content-Type"].startswith("text/event-stream")
    assert raw.headers["X-Accel-Buffering"] == "no" and raw.headers["Cache-Control"] == "no-cache"
    events = [line[6:] for line in raw.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    objs = [json.loads(e) for e in events[:-1]]
    assert all("choices" in o and o["choices"] for o in objs)
    # the gateway still asked the upstream for usage, to account real tokens
    assert up.state.bodies[-1]["stream_options"] == {"include_usage": True}


def test_tool_call_relay(upstream_gateway):
    url, _ = upstream_gateway
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city", "unit"], "additionalProperties": False}, "strict": True}}]
    c = client(url)
    r = c.chat.completions.create(model="tools", messages=[{"role": "user", "content": "w?"}],
                                  tools=tools, tool_choice="auto")
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.id == "call_abc" and json.loads(call.function.arguments)["city"] == "Paris"

    chunks = list(c.chat.completions.create(
        model="tools", messages=[{"role": "user", "content": "w?"}], tools=tools, stream=True))
    frags = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
    assert frags[0].id == "call_abc" and frags[0].index == 0
    assert json.loads("".join(f.function.arguments or "" for f in frags))["unit"] == "celsius"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"


def test_completions_relay(upstream_gateway):
    url, up = upstream_gateway
    r = client(url).completions.create(model="echo-1", prompt="def f():", max_tokens=8)
    assert r.choices[0].text == "echo: def f():"
    assert up.state.bodies[-1]["max_tokens"] == 8


def test_models_listed_from_upstream_and_local(upstream_gateway):
    url, _ = upstream_gateway
    ids = [m.id for m in client(url).models.list()]
    assert {"echo-1", "tools", "smollm2-135m-instruct"} <= set(ids)
    assert requests.get(url + "/v1//models").status_code == 200  # Roo's double slash
    with pytest.raises(openai.NotFoundError) as exc:
        client(url).models.retrieve("no-such-model")
    assert exc.value.body["code"] == "model_not_found"


def test_unknown_model_goes_to_default_upstream(upstream_gateway):
    url, up = upstream_gateway
    r = client(url).chat.completions.create(
        model="some-name-the-upstream-knows", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == "echo: x"
    assert up.state.bodies[-1]["model"] == "some-name-the-upstream-knows"


def test_retries_then_succeeds(upstream_gateway):
    url, up = upstream_gateway
    r = client(url).chat.completions.create(
        model="flaky-2", messages=[{"role": "user", "content": "again"}])
    assert r.choices[0].message.content == "echo: again"
    assert up.state.calls["flaky-2"] == 3


def test_retries_exhausted_maps_to_503(upstream_gateway):
    url, up = upstream_gateway
    with pytest.raises(openai.InternalServerError) as exc:
        client(url).chat.completions.create(model="flaky-9",
                                            messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 503
    assert up.state.calls["flaky-9"] == 3  # first try + REQUEST_MAX_RETRIES (2)


@pytest.mark.parametrize("model,exc_class,status", [
    ("always-500", openai.InternalServerError, 502),
    ("always-429", openai.RateLimitError, 429),
    ("auth-fail", openai.InternalServerError, 502),
    ("missing", openai.NotFoundError, 404),
    ("nonjson", openai.InternalServerError, 502),
    ("slow", openai.InternalServerError, 504),
])
def test_upstream_errors_map_to_sdk_exceptions(upstream_gateway, model, exc_class, status):
    url, upstream = upstream_gateway
    with pytest.raises(exc_class) as exc:
        client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == status
    err = exc.value.body
    assert isinstance(err["message"], str) and err["type"]
    if model == "always-429":
        assert exc.value.response.headers["Retry-After"] == "7"
        assert upstream.state.calls[model] == 3  # the request and its two retries
    if model == "always-500":
        assert "upstream exploded" in err["message"]
    if model == "auth-fail":
        assert "upstream authentication failed" in err["message"]


@pytest.mark.parametrize("model,needle", [
    ("cut", "broke mid-response"),
    ("stream-error", "backend crashed"),
    ("badevent", "non-JSON"),
])
def test_mid_stream_failures_end_with_error_event_and_done(upstream_gateway, model, needle):
    url, _ = upstream_gateway
    raw = requests.post(url + "/v1/chat/completions", json={
        "model": model, "stream": True, "messages": [{"role": "user", "content": "a b c d"}]})
    assert raw.status_code == 200
    events = [line[6:] for line in raw.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])
    assert needle in err["error"]["message"]
    # and the SDK raises on it instead of returning a truncated answer
    with pytest.raises(openai.APIError):
        list(client(url).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "a b c d"}], stream=True))


def test_client_disconnect_stops_upstream_stream(upstream_gateway):
    url, up = upstream_gateway
    body = {"model": "endless", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    s = open_sse(url, "/v1/chat/completions", body, 3)
    s.close()
    closed_at = time.monotonic()
    deadline = closed_at + 5
    while not up.state.disconnects and time.monotonic() < deadline:
        time.sleep(0.05)
    assert up.state.disconnects, "the upstream kept streaming after the client left"
    assert up.state.disconnects[0] - closed_at < 3
