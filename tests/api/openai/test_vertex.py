"""The gateway fronting a loopback Vertex stand-in, driven by the `openai` SDK and requests."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve
from tests.support import fake_helix
from tests.support.vertex_standin import SIGNATURE, start_vertex_standin

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def vertex(tmp_path):
    """(gateway URL, stand-in, helix dir, app) with Vertex as the default provider."""
    standin = start_vertex_standin()
    helix = fake_helix.install(tmp_path / "bin").parent
    app = create_app(make_settings(
        vertex_project="proj-1", vertex_base_url=f"{standin.url}/vertex",
        helix_access_token_cmd=f"{helix / 'helix'} auth access-token print -a",
        vertex_auth="helix", custom_user_id="alice", request_timeout_seconds=5))
    with serve(app) as url:
        yield url, standin, helix, app
    app.extensions["gateway"].close()
    standin.shutdown()
    standin.server_close()


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_streamed_tool_call_round_trip_with_thought_signature(vertex):
    url, standin, _, _ = vertex
    c = client(url)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    chunks = list(c.chat.completions.create(model="gemini-2.5-flash", messages=messages,
                                            tools=[WEATHER], stream=True,
                                            stream_options={"include_usage": True}))
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    calls = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or ()]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].type == "function"
    assert calls[0].id.startswith("call_") and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
    assert chunks[-1].usage.prompt_tokens == 7 and chunks[-1].usage.completion_tokens == 5
    sent = standin.state.requests[0]
    assert sent["path"] == ("/vertex/v1/projects/proj-1/locations/us-central1/publishers/google/"
                            "models/gemini-2.5-flash:streamGenerateContent")
    assert sent["query"] == "alt=sse"
    assert sent["body"]["tools"][0]["functionDeclarations"][0]["parameters"] == {
        "type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}

    # Second turn: the call goes back as the client received it; the stand-in (like
    # Gemini 3) answers 400 unless the thought signature came back with it.
    messages += [{"role": "assistant", "content": None, "tool_calls": [
                     {"id": calls[0].id, "type": "function",
                      "function": {"name": "get_weather", "arguments": calls[0].function.arguments}}]},
                 {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 21}'}]
    text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="gemini-2.5-flash", messages=messages, tools=[WEATHER], stream=True) if ch.choices)
    assert text == 'The weather: {"temp_c": 21}'
    history = standin.state.requests[1]["body"]["contents"]
    assert history[1]["parts"][0]["thoughtSignature"] == SIGNATURE
    assert history[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_chat_non_streaming_headers_and_usage(vertex):
    url, standin, helix, _ = vertex
    resp = client(url).chat.completions.create(
        model="gemini-2.5-flash", max_tokens=50,
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi there"}])
    assert resp.choices[0].message.content == "echo: Hi there"
    assert resp.choices[0].finish_reason == "stop" and resp.usage.total_tokens == 12
    headers = standin.state.requests[0]["headers"]
    assert headers["Authorization"] == "Bearer tok-1" and headers["x-custom-userid"] == "alice"
    assert standin.state.requests[0]["body"]["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert fake_helix.calls(helix) == ["auth access-token print -a"]


def test_seed_curl_example_with_a_retired_palm_model(vertex):
    url, standin, _, _ = vertex
    r = requests.post(f"{url}/v1/completions", headers={"Content-Type": "application/json"},
                      data='{"model":"text-bison@001","prompt":"Say hello to Roo Code",'
                           '"max_tokens":64,"temperature":0.3}')
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "echo: Say hello to Roo Code"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert standin.state.requests[0]["path"].endswith("/models/gemini-2.5-flash:generateContent")
    assert standin.state.requests[0]["body"]["generationConfig"] == {
        "temperature": 0.3, "maxOutputTokens": 64, "thinkingConfig": {"thinkingBudget": 0}}


def test_vertex_is_default_and_listed_and_local_model_not_loaded(vertex):
    url, _, _, app = vertex
    ids = [m.id for m in client(url).models.list().data]
    assert ids[:2] == ["gemini-2.5-flash", "text-embedding-005"]
    assert "smollm2-135m-instruct" in ids
    gateway = app.extensions["gateway"]
    assert gateway.router.default("chat").name == "vertex"
    assert gateway.router.by_name("local")._llama is None


def test_retries_before_the_first_byte(vertex):
    url, standin, _, _ = vertex
    resp = client(url).chat.completions.create(model="gemini-flaky-2",
                                               messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "echo: hi" and standin.state.calls["gemini-flaky-2"] == 3
    with pytest.raises(openai.RateLimitError) as exc:
        client(url).chat.completions.create(model="gemini-always-429",
                                            messages=[{"role": "user", "content": "hi"}])
    assert "Quota exceeded" in exc.value.message and standin.state.calls["gemini-always-429"] == 3


def test_401_refreshes_the_helix_token_once(vertex):
    url, standin, helix, _ = vertex
    c = client(url)
    c.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "a"}])
    standin.state.revoked.add("tok-1")
    resp = c.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "b"}])
    assert resp.choices[0].message.content == "echo: b"
    assert [r["headers"]["Authorization"] for r in standin.state.requests] == [
        "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert len(fake_helix.calls(helix)) == 2


def test_unknown_gemini_model_is_404_model_not_found(vertex):
    url, _, _, _ = vertex
    with pytest.raises(openai.NotFoundError) as exc:
        client(url).chat.completions.create(model="gemini-missing",
                                            messages=[{"role": "user", "content": "x"}])
    assert exc.value.code == "model_not_found" and "Publisher Model" in exc.value.message


def test_failing_helix_is_a_clear_503_and_the_next_request_retries(vertex, caplog):
    url, standin, helix, _ = vertex
    (helix / "fail").write_text("error: refresh token expired, run `helix auth login`\n")
    with pytest.raises(openai.APIStatusError) as exc:
        client(url).chat.completions.create(model="gemini-2.5-flash",
                                            messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 503 and exc.value.code == "token_unavailable"
    assert exc.value.body["message"] == ("could not obtain an access token: error: refresh "
                                         "token expired, run `helix auth login`")
    assert standin.state.requests == []
    (helix / "fail").unlink()
    resp = client(url).chat.completions.create(model="gemini-2.5-flash",
                                               messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content == "echo: x"
    assert len(fake_helix.calls(helix)) == 2 and "tok-2" not in caplog.text


def test_mid_stream_error_event_then_done(vertex):
    url, _, _, _ = vertex
    r = requests.post(f"{url}/v1/chat/completions", stream=True, json={
        "model": "gemini-stream-error", "stream": True,
        "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200
    events = [ln for ln in r.iter_lines() if ln.startswith(b"data: ")]
    assert json.loads(events[0][6:])["choices"][0]["delta"]["content"] == "partial "
    err = json.loads(events[-2][6:])["error"]
    assert "Internal error encountered." in err["message"] and err["type"] == "upstream_error"
    assert events[-1] == b"data: [DONE]"


def test_stream_ending_without_finish_reason_is_an_error_not_an_answer(vertex):
    """Three events, no finishReason, then the connection closes (no framing): the openai
    client raises instead of returning a truncated answer as if it were complete."""
    url, _, _, _ = vertex
    got = []
    with pytest.raises(openai.APIError, match="before the answer was complete"):
        for chunk in client(url).chat.completions.create(
                model="gemini-truncated", messages=[{"role": "user", "content": "x"}],
                stream=True):
            got.append(chunk.choices[0].delta.content or "")
            assert chunk.choices[0].finish_reason is None
    assert "".join(got) == "one two three"


def test_streamed_completion_with_suffix(vertex):
    url, standin, _, _ = vertex
    chunks = list(client(url).completions.create(
        model="code-bison", prompt="def add(a, b):\n", suffix="\n", max_tokens=20, stream=True))
    assert all(ch.object == "text_completion" for ch in chunks)
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == "echo: <prefix>def add(a, b):\n</prefix><suffix>\n</suffix>"
    assert chunks[-1].choices[0].finish_reason == "stop"
    sent = standin.state.requests[0]
    assert sent["path"].endswith("/gemini-2.5-flash:streamGenerateContent")
    assert "fill a gap" in sent["body"]["systemInstruction"]["parts"][0]["text"]
