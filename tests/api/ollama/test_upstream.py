"""The Ollama API in front of an OpenAI-compatible upstream, driven by the ollama client."""

from __future__ import annotations

import base64
import json
import time

import ollama
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve
from tests.support.rawhttp import open_post, read_lines
from tests.support.upstream import start_upstream

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string"}},
                   "required": ["city", "unit"]}}}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


@pytest.fixture(scope="module")
def upstream_gateway():
    """One stand-in upstream and one gateway for the module (servers stop slowly)."""
    up = start_upstream()
    app = create_app(make_settings(lm_studio_base_url=up.url, request_timeout_seconds=1.5,
                                   models_cache_seconds=0))
    with serve(app) as url:
        yield url, up
    up.shutdown()
    up.server_close()


def ndjson(resp: requests.Response) -> list[dict]:
    return [json.loads(line) for line in resp.text.splitlines() if line]


def test_probes_and_version(upstream_gateway):
    url, _ = upstream_gateway
    r = requests.get(url + "/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert requests.head(url + "/").status_code == 200
    assert requests.get(url + "/api/version").json() == {"version": "0.9.0"}


def test_list_and_show(upstream_gateway):
    url, _ = upstream_gateway
    c = ollama.Client(host=url)
    names = [m.model for m in c.list().models]
    assert {"echo-1", "tools", "upstream-model"} <= set(names)
    raw = requests.get(url + "/api/tags").json()["models"]
    entry = next(m for m in raw if m["name"] == "tools")
    # every field Roo validates is a string
    assert all(isinstance(entry[k], str) for k in ("name", "model", "modified_at", "digest"))
    assert isinstance(entry["details"]["family"], str)
    assert isinstance(entry["details"]["parameter_size"], str)
    shown = c.show("tools")
    assert shown.capabilities == ["completion", "tools"]  # upstream models take tools
    assert shown.details.family == "unknown" and shown.modelinfo["general.architecture"]


def test_show_accepts_latest_tag_and_404s_unknown(upstream_gateway):
    url, _ = upstream_gateway
    c = ollama.Client(host=url)
    assert c.show("echo-1:latest").capabilities[0] == "completion"
    with pytest.raises(ollama.ResponseError) as e:
        c.show("no-such-model")
    assert e.value.status_code == 404 and e.value.error == "model 'no-such-model' not found"


def test_chat_streaming_and_not(upstream_gateway):
    url, up = upstream_gateway
    c = ollama.Client(host=url)
    r = c.chat(model="echo-1", messages=[{"role": "user", "content": "hello there"}],
               stream=False, options={"temperature": 0.2, "num_predict": 9, "top_k": 5,
                                      "seed": 7, "stop": ["\n\n"]})
    assert r.message.role == "assistant" and r.message.content == "echo: hello there"
    assert r.done and r.done_reason == "stop" and (r.prompt_eval_count, r.eval_count) == (5, 3)
    assert r.total_duration > 0
    sent = up.state.bodies[-1]
    assert (sent["temperature"], sent["max_tokens"], sent["top_k"], sent["seed"]) == (0.2, 9, 5, 7)
    assert sent["stop"] == ["\n\n"] and sent["stream"] is False

    parts = list(c.chat(model="echo-1", messages=[{"role": "user", "content": "one two three"}],
                        stream=True))
    assert "".join(p.message.content for p in parts) == "echo: one two three"
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count == 4 and parts[-1].prompt_eval_count == 5
    assert parts[-1].prompt_eval_duration >= 0 and parts[-1].eval_duration >= 0


def test_generate_templated_and_raw(upstream_gateway):
    url, up = upstream_gateway
    c = ollama.Client(host=url)
    r = c.generate(model="echo-1", prompt="hi you", system="be kind")
    assert r.response == "echo: hi you" and r.done
    assert [m["role"] for m in up.state.bodies[-1]["messages"]] == ["system", "user"]
    parts = list(c.generate(model="echo-1", prompt="def f(", raw=True, stream=True))
    assert "".join(p.response for p in parts) == "echo: def f(" and parts[-1].done
    assert up.state.bodies[-1]["prompt"] == "def f("
    fim = c.generate(model="echo-1", prompt="def f(", suffix="    return x", stream=False)
    assert fim.response == "echo: def f(" and up.state.bodies[-1]["suffix"] == "    return x"


def test_format_and_images_reach_the_upstream(upstream_gateway):
    url, up = upstream_gateway
    c = ollama.Client(host=url)
    c.chat(model="echo-1", messages=[{"role": "user", "content": "look", "images": [PNG]}],
           format="json", stream=False)
    sent = up.state.bodies[-1]
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0]["content"][1] == {
        "type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_relayed_with_object_arguments(upstream_gateway, stream):
    url, _ = upstream_gateway
    c = ollama.Client(host=url)
    out = c.chat(model="tools", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS,
                 stream=stream)
    parts = list(out) if stream else [out]
    calls = [tc for p in parts for tc in (p.message.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Paris", "unit": "celsius"}
    assert parts[-1].done and parts[-1].eval_count == 10


def test_roo_sequence_against_upstream(upstream_gateway):
    """What Roo's Ollama provider does every turn: tags, show, then a streamed chat."""
    url, up = upstream_gateway
    tags = requests.get(url + "/api/tags").json()["models"]
    shown = {m["name"]: requests.post(url + "/api/show", json={"model": m["name"]}).json()
             for m in tags}
    usable = [n for n, s in shown.items() if "tools" in s["capabilities"]]
    assert "tools" in usable
    body = {"model": "tools", "stream": True, "options": {"temperature": 0}, "tools": TOOLS,
            "messages": [
                {"role": "system", "content": "You are Roo."},
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": "",
                 "tool_calls": [{"function": {"name": "get_weather",
                                              "arguments": {"city": "Paris", "unit": "celsius"}}}]},
                {"role": "user", "content": "[get_weather] Result: 21 degrees"}]}
    r = requests.post(url + "/api/chat", json=body, stream=True)
    assert r.headers["Content-Type"] == "application/x-ndjson"
    lines = ndjson(r)
    assert all("message" in ln for ln in lines)
    # the stand-in answers a tool result with text (tests/support/upstream.py, model "tools")
    text = "".join(ln["message"].get("content", "") for ln in lines)
    assert text == "echo: [get_weather] Result: 21 degrees"
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] > 0
    sent = up.state.bodies[-1]
    assert sent["temperature"] == 0 and sent["tools"][0]["function"]["name"] == "get_weather"
    history = sent["messages"][2]
    assert history["tool_calls"][0]["id"]  # an id made up for Ollama's id-less calls
    assert json.loads(history["tool_calls"][0]["function"]["arguments"])["city"] == "Paris"
    # Roo's tool result (sent as a user message) answers that call (tests/api/ollama/test_roo_fields.py)
    assert sent["messages"][3] == {"role": "tool", "content": "[get_weather] Result: 21 degrees",
                                   "tool_call_id": history["tool_calls"][0]["id"]}


def test_errors_in_ollama_shape(upstream_gateway):
    url, _ = upstream_gateway
    c = ollama.Client(host=url)
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model="echo-1", messages=[{"role": "user", "content": "x"}],
               options={"temperature": -1})
    assert e.value.status_code == 400 and "options.temperature" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        list(c.chat(model="always-500", messages=[{"role": "user", "content": "x"}], stream=True))
    assert e.value.status_code == 502 and "upstream exploded" in e.value.error
    bad = requests.post(url + "/api/chat", data=b"{nope", headers={"Content-Type": "x"})
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    assert requests.post(url + "/api/pull", json={}).json()["error"].startswith("unknown route")
    assert requests.get(url + "/api/chat").status_code == 405


@pytest.mark.parametrize("model,needle", [("stream-error", "backend crashed"), ("cut", "")])
def test_failure_mid_stream_is_a_final_error_line(upstream_gateway, model, needle):
    url, _ = upstream_gateway
    r = requests.post(url + "/api/chat", json={"model": model,
                                               "messages": [{"role": "user", "content": "a b c"}]})
    lines = ndjson(r)
    assert lines[0]["message"]["content"] and lines[0]["done"] is False
    assert set(lines[-1]) == {"error"} and needle in lines[-1]["error"]
    assert not any(ln.get("done") for ln in lines)
    with pytest.raises(ollama.ResponseError):
        list(ollama.Client(host=url).chat(model=model,
                                          messages=[{"role": "user", "content": "a b c"}],
                                          stream=True))


def test_ps_lists_no_model_when_none_is_held(upstream_gateway):
    url, _ = upstream_gateway
    assert ollama.Client(host=url).ps().models == []  # local model never loaded here


def test_stream_is_incremental_and_stops_with_the_client(upstream_gateway):
    """Lines of a slow upstream arrive one by one; leaving stops the upstream."""
    url, up = upstream_gateway
    s = open_post(url, "/api/chat", {"model": "endless",
                                     "messages": [{"role": "user", "content": "go"}]})
    head, lines = read_lines(s, limit=7)
    s.close()
    closed_at = time.monotonic()
    assert b"application/x-ndjson" in head and b"X-Accel-Buffering: no" in head
    assert all(obj["done"] is False and obj["message"]["content"] for _, obj in lines)
    # after its echo the stand-in waits 50 ms between chunks: lines 3..7 span four gaps
    assert lines[-1][0] - lines[2][0] >= 0.15
    assert len({t for t, _ in lines}) >= 4  # not one burst
    while not up.state.disconnects and time.monotonic() < closed_at + 5:
        time.sleep(0.05)
    assert up.state.disconnects, "the upstream kept streaming after the client left"
