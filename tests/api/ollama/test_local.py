"""The Ollama API on the real embedded model (SmolLM2-135M), a few tokens per call."""

from __future__ import annotations

import base64
import json

import ollama
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve
from tests.support.rawhttp import open_post, read_lines

MODEL = "smollm2-135m-instruct"
TOOLS = [{"type": "function", "function": {
    "name": "read_file", "description": "Read a file of the workspace",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                   "required": ["path"]}}}]


def client(url: str) -> ollama.Client:
    return ollama.Client(host=url)


def test_tags_show_ps_describe_the_gguf(local_url):
    c = client(local_url)
    entry = next(m for m in c.list().models if m.model == MODEL)
    assert entry.size > 50_000_000 and len(entry.digest) == 64
    assert entry.details.format == "gguf" and entry.details.family == "llama"
    assert entry.details.parameter_size == "135M" and entry.details.quantization_level == "Q4_1"
    shown = c.show(MODEL)
    assert shown.modelinfo["general.architecture"] == "llama"
    # the window served (LOCAL_N_CTX's default, SmolLM2's trained 8192)
    assert shown.modelinfo["llama.context_length"] == 8192
    assert "tokenizer.chat_template" not in shown.modelinfo and "im_start" in shown.template
    assert shown.capabilities[0] == "completion" and "vision" not in shown.capabilities
    running = c.ps().models
    assert [m.model for m in running] == [MODEL]
    assert running[0].size == entry.size and running[0].expires_at.year == 9999
    assert running[0].context_length == shown.modelinfo["llama.context_length"]


def test_a_model_loaded_on_first_use_is_described_once_loaded():
    app = create_app(make_settings(local_preload=False))
    try:
        with serve(app) as url:
            c = client(url)
            assert c.ps().models == [] and c.show(MODEL).details.family == "unknown"
            c.generate(model=MODEL, prompt="Hi", options={"num_predict": 1})
            assert [m.model for m in c.ps().models] == [MODEL]
            shown = c.show(MODEL)
            assert shown.details.family == "llama" and "llama.context_length" in shown.modelinfo
    finally:
        app.extensions["gateway"].close()


def test_chat_plain_and_streamed_agree(local_url):
    c = client(local_url)
    msgs = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a colour."}]
    opts = {"temperature": 0, "num_predict": 6}
    plain = c.chat(model=MODEL, messages=msgs, options=opts, stream=False)
    assert plain.message.content.strip() and plain.done
    assert plain.done_reason in ("stop", "length") and 1 <= plain.eval_count <= 6
    assert plain.prompt_eval_count > 10 and plain.eval_duration > 0
    parts = list(c.chat(model=MODEL, messages=msgs, options=opts, stream=True))
    assert "".join(p.message.content for p in parts) == plain.message.content
    assert parts[-1].done and parts[-1].eval_count == plain.eval_count
    assert parts[-1].prompt_eval_count == plain.prompt_eval_count


def test_generate_raw_and_load_only(local_url):
    c = client(local_url)
    r = c.generate(model=MODEL, prompt="def add(a, b):\n", raw=True,
                   options={"temperature": 0, "num_predict": 5})
    assert r.response and r.eval_count <= 5 and r.done_reason in ("stop", "length")
    load = c.generate(model=MODEL, prompt="")
    assert load.done and load.done_reason == "load" and load.response == ""


@pytest.mark.parametrize("stream", [False, True])
def test_fill_in_the_middle_at_the_start_of_a_file(local_url, stream):
    """An empty prefix with a suffix (SmolLM2 has no FIM tokens: the prefix alone is the
    prompt, and it is empty) was a mid-stream 500 (found by the fuzz test)."""
    r = client(local_url).generate(model=MODEL, prompt="", suffix="\nprint(x)\n",
                                   stream=stream, options={"num_predict": 2})
    last = list(r)[-1] if stream else r
    assert last.done and last.done_reason in ("stop", "length")


def test_images_are_refused_clearly(local_url):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
    with pytest.raises(ollama.ResponseError) as e:
        client(local_url).chat(model=MODEL, messages=[
            {"role": "user", "content": "what is this?", "images": [png]}])
    assert e.value.status_code == 400 and "images" in e.value.error


def test_ndjson_lines_arrive_incrementally(local_url):
    s = open_post(local_url, "/api/generate", {
        "model": MODEL, "prompt": "Count from one to twenty:",
        "options": {"temperature": 0, "num_predict": 16}})
    head, lines = read_lines(s)
    s.close()
    assert b"application/x-ndjson" in head
    assert [obj["done"] for _, obj in lines] == [False] * (len(lines) - 1) + [True]
    assert 1 <= len(lines) - 1 <= lines[-1][1]["eval_count"] <= 16  # a line per piece of text
    # tokens were sent as made: many separate arrivals, the first well before the last
    assert len({t for t, _ in lines}) >= 4
    assert lines[-1][0] - lines[0][0] > 0.02


def test_roo_sequence_against_the_local_model(local_url):
    """Roo's Ollama provider: tags, show (models without "tools" are hidden), chat."""
    tags = requests.get(local_url + "/api/tags").json()["models"]
    assert MODEL in [m["name"] for m in tags]
    shown = requests.post(local_url + "/api/show", json={"model": MODEL}).json()
    assert any("context_length" in k for k in shown["model_info"])
    assert "tools" in shown["capabilities"]  # else Roo hides the model
    body = {"model": MODEL, "stream": True, "tools": TOOLS,
            # num_predict only keeps the test short; Roo itself sends temperature (and num_ctx)
            "options": {"temperature": 0, "num_predict": 24},
            "messages": [
                {"role": "system", "content": "You are a coding assistant. Use the tools."},
                {"role": "user", "content": "Show me main.py"},
                {"role": "assistant", "content": "",
                 "tool_calls": [{"function": {"name": "read_file",
                                              "arguments": {"path": "main.py"}}}]},
                {"role": "user", "content": "[read_file for 'main.py'] Result: print('hi')"}]}
    r = requests.post(local_url + "/api/chat", json=body, stream=True)
    assert r.status_code == 200, r.text
    lines = [json.loads(ln) for ln in r.iter_lines() if ln]
    assert all("message" in ln for ln in lines) and lines[-1]["done"] is True
    assert lines[-1]["prompt_eval_count"] > 0
    for ln in lines:
        for call in ln["message"].get("tool_calls", []):
            assert call["function"]["name"] == "read_file"
            assert isinstance(call["function"]["arguments"], dict)


@pytest.fixture(scope="module")
def agent_url():
    """The local model as Roo Code needs it: a tool call every turn."""
    app = create_app(make_settings(local_auto_tool_choice="required", local_n_threads=1))
    with serve(app) as url:
        yield url


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_client_gets_local_tool_calls_as_dicts(agent_url, stream):
    messages = [{"role": "system", "content": "You are a coding assistant. Use the tools."},
                {"role": "user", "content": "Show me main.py"}]
    out = client(agent_url).chat(model=MODEL, messages=messages, tools=TOOLS, stream=stream,
                                 options={"temperature": 0, "num_predict": 48})
    parts = list(out) if stream else [out]
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert calls, [p.message.content for p in parts]
    for call in calls:
        assert call.function.name == "read_file"
        assert isinstance(call.function.arguments, dict)
        assert isinstance(call.function.arguments["path"], str)
    assert parts[-1].done and parts[-1].eval_count > 0
