"""Ollama's API as its docs and Roo Code's Ollama provider use it (ollama client).

Roo's provider sends tool calls without ids and their results as ``user``
messages (tests/../roo-code.md); in front of a strict OpenAI-compatible
upstream those must become ``tool`` messages answering the calls. Also:
``role`` in any case, ``/api/embed`` truncating by default, and ``/api/show``
``model_info`` with GGUF booleans and numbers typed.
"""

from __future__ import annotations

import base64
import json

import ollama
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve

MODEL = "smollm2-135m-instruct"
CALL = {"function": {"name": "read_file", "arguments": {"path": "a.py"}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
CALL2 = {"function": {"name": "list_files", "arguments": {"path": "."}}}


@pytest.fixture(scope="module")
def gateway(up):
    app = create_app(make_settings(lm_studio_base_url=up.url, request_timeout_seconds=5,
                                   models_cache_seconds=0))
    with serve(app) as url:
        yield url, up


def roo_history() -> list[dict]:
    """Roo's Ollama provider after two tool calls in one turn: one ``user`` message per
    result, in call order, then the turn's own text as another ``user`` message."""
    return [
        {"role": "system", "content": "You are Roo."},
        {"role": "user", "content": "<task>fix a.py</task>"},
        {"role": "assistant", "content": "Reading.", "tool_calls": [CALL, CALL2]},
        {"role": "user", "content": "[read_file for 'a.py'] Result:\nprint(1)"},
        {"role": "user", "content": "[list_files for '.'] Result:\na.py"},
        {"role": "user", "content": "<environment_details>cwd</environment_details>"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "user", "content": "[read_file for 'a.py'] Result:\nprint(2)"},
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_roo_tool_results_as_user_messages_reach_a_strict_upstream(gateway, stream):
    url, up = gateway
    c = ollama.Client(host=url)
    if stream:
        parts = list(c.chat(model="strict", messages=roo_history(), stream=True))
        text = "".join(p.message.content for p in parts)
        assert parts[-1].done
    else:
        text = c.chat(model="strict", messages=roo_history(), stream=False).message.content
    assert text == "echo: <environment_details>cwd</environment_details>"
    sent = up.state.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool", "user",
                                         "assistant", "tool"]
    first, second = sent[2]["tool_calls"], sent[6]["tool_calls"]
    assert [m["tool_call_id"] for m in sent[3:5]] == [first[0]["id"], first[1]["id"]]
    assert sent[7]["tool_call_id"] == second[0]["id"] != first[0]["id"]
    assert sent[3]["content"].endswith("print(1)") and sent[4]["content"].endswith("a.py")


def test_images_of_tool_results_follow_the_results(gateway):
    """A tool message holds text only: a result's images come after the results, as Roo's
    own placeholder text says ("see following user message for image")."""
    url, up = gateway
    msgs = roo_history()[:6]
    msgs[3] = {"role": "user", "content": "(see following user message for image)",
               "images": [PNG]}
    r = ollama.Client(host=url).chat(model="strict", messages=msgs, stream=False)
    assert r.message.content.startswith("echo: ")
    sent = up.state.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool", "user",
                                         "user"]
    assert sent[3]["content"] == "(see following user message for image)"
    assert sent[5]["content"] == [{"type": "image_url",
                                   "image_url": {"url": f"data:image/png;base64,{PNG}"}}]


def test_the_strict_stand_in_rejects_what_roo_sent_before(gateway):
    """The upstream really is strict: Roo's history as sent (user messages answering
    calls) is a 400 there, relayed as such."""
    url, _ = gateway
    body = {"model": "strict", "stream": False, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "read_file", "arguments": "{}"}}]},
        {"role": "user", "content": "result"}]}
    r = requests.post(url + "/v1/chat/completions", json=body)
    assert r.status_code == 400 and "call_1" in r.json()["error"]["message"]


def test_clients_sending_tool_messages_are_unchanged(gateway):
    url, up = gateway
    msgs = [{"role": "user", "content": "x"},
            {"role": "assistant", "content": "", "tool_calls": [CALL]},
            {"role": "tool", "content": "print(1)", "tool_name": "read_file"},
            {"role": "user", "content": "thanks"}]
    r = ollama.Client(host=url).chat(model="strict", messages=msgs, stream=False)
    assert r.message.content == "echo: thanks"
    sent = up.state.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[2]["tool_call_id"] == sent[1]["tool_calls"][0]["id"]


@pytest.mark.parametrize("role", ["USER", "User", "uSeR"])
def test_role_is_case_insensitive(gateway, role):
    url, up = gateway
    r = ollama.Client(host=url).chat(
        model="echo-1", stream=False,
        messages=[{"role": "SYSTEM", "content": "be brief"}, {"role": role, "content": "hi"}])
    assert r.message.content == "echo: hi"
    assert [m["role"] for m in up.state.bodies[-1]["messages"]] == ["system", "user"]


def test_an_unknown_role_is_still_400_in_ollama_shape(gateway):
    url, _ = gateway
    for role in ("robot", 7, None):
        r = requests.post(url + "/api/chat", json={
            "model": "echo-1", "stream": False, "messages": [{"role": role, "content": "x"}]})
        assert r.status_code == 400 and "role" in r.json()["error"]


def test_embed_truncates_by_default_and_fails_only_with_truncate_false():
    app = create_app(make_settings(local_embedding_n_ctx=64))
    with serve(app) as url:
        c = ollama.Client(host=url)
        long_text = "the quick brown fox " * 60  # ~240 tokens, beyond the 64-token context
        out = c.embed(model=MODEL, input=[long_text, "short"])
        assert len(out.embeddings) == 2 and len(out.embeddings[0]) == len(out.embeddings[1])
        assert out.prompt_eval_count <= 64 + 64
        # truncated means: the same vector as the input's first 64 tokens
        cut = c.embed(model=MODEL, input=long_text, truncate=True)
        assert cut.embeddings[0] == out.embeddings[0]
        with pytest.raises(ollama.ResponseError) as exc:
            c.embed(model=MODEL, input=long_text, truncate=False)
        assert exc.value.status_code == 400 and "context" in exc.value.error
        # the OpenAI API does not truncate (OpenAI answers a too-long input with an error)
        r = requests.post(url + "/v1/embeddings", json={"model": MODEL, "input": long_text})
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_show_model_info_has_typed_gguf_values(local_url):
    info = ollama.Client(host=local_url).show(MODEL).modelinfo
    assert info["tokenizer.ggml.add_bos_token"] is False
    assert info["tokenizer.ggml.add_space_prefix"] is False
    assert isinstance(info["llama.block_count"], int) and info["llama.block_count"] > 0
    assert isinstance(info["llama.rope.freq_base"], float)
    assert info["general.size_label"] == "135M" and info["general.license"] == "apache-2.0"
    raw = requests.post(local_url + "/api/show", json={"model": MODEL}).json()["model_info"]
    assert json.dumps(raw["tokenizer.ggml.add_bos_token"]) == "false"
