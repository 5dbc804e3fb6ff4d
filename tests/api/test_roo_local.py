"""Roo Code on the embedded default model (SmolLM2-135M, settings as shipped).

A Roo-shaped turn (``tests/support/roo.py``: Roo's 21 strict tools, a Roo-sized
system prompt, a tool result) goes through the ``openai`` client as Roo's
OpenAI Compatible provider sends it and through the ``ollama`` client as Roo's
Ollama provider sends it; few tokens are generated. Then: the context every
listing reports is the one served, a prompt that does not fit is OpenAI's
``context_length_exceeded`` error for the OpenAI family and is truncated the
way Ollama truncates for the Ollama family, and ``max_completion_tokens`` holds
with tools.
"""

from __future__ import annotations

import json
import re

import jsonschema
import ollama
import ollama._types as ollama_types
import openai
import pytest
import requests

from service import create_app
from service.core import errors
from service.core.dispatch import is_context_overflow
from service.core.types import GenerationRequest, Message
from service.providers.config import LocalConfig
from service.providers.local.provider import LocalProvider
from service.settings import Settings
from tests.conftest import make_settings, serve
from tests.support import roo

MODEL = "smollm2-135m-instruct"
SERVED = Settings.model_fields["local_n_ctx"].default  # the shipped default
# Room for the answer: a whole tool call (the model's read_file call is 76 tokens; at 64 it is
# cut by the limit and, half-written, dropped).
ROOM = 160
OPENAI_OVERFLOW = re.compile(
    r"This model's maximum context length is (\d+) tokens\. However, your messages resulted "
    r"in (\d+) tokens\. Please reduce the length of the messages\.")


def oa(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="not-provided", max_retries=0,
                         timeout=3600)  # a Roo prefill takes minutes on a loaded 2-core box


def roo_body(**kw) -> dict:
    """Roo's OpenAI Compatible streaming body, keys in Roo's order."""
    body = {"model": MODEL, "temperature": 0, "messages": roo.openai_messages(), "stream": True,
            "stream_options": {"include_usage": True}, "tools": roo.TOOLS,
            "tool_choice": "auto", "parallel_tool_calls": True, "max_completion_tokens": ROOM}
    body.update(kw)
    return body


def assert_calls_valid(calls) -> None:
    for call in calls:
        jsonschema.validate(json.loads(call["arguments"]), roo.SCHEMAS[call["name"]])


@pytest.fixture(scope="module")
def default_url():
    """The gateway as shipped: no LOCAL_* setting but the test suite's thread count."""
    with serve(create_app(make_settings())) as url:
        yield url


# ---- a Roo turn on the default context --------------------------------------------------

@pytest.mark.timeout(3600)
def test_roo_turn_through_the_openai_client(default_url):
    text, calls, usage, finish = "", {}, None, None
    stream = oa(default_url).chat.completions.create(**roo_body())
    for chunk in stream:
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        c = chunk.choices[0]
        text += c.delta.content or ""
        for t in c.delta.tool_calls or ():
            slot = calls.setdefault(t.index, {"name": t.function.name, "arguments": ""})
            assert t.index in calls and (slot["name"] or t.id)
            slot["arguments"] += t.function.arguments or ""
        finish = c.finish_reason or finish
    assert finish in ("stop", "length", "tool_calls")
    assert text.strip() or calls, "Roo got a turn with no text and no tool"
    assert_calls_valid(calls.values())
    # The whole turn was read: the 21 tools, the system prompt and the tool result.
    assert 4000 < usage.prompt_tokens < SERVED
    assert usage.completion_tokens <= ROOM


@pytest.mark.timeout(3600)
def test_roo_turn_through_the_ollama_client(default_url):
    client = ollama.Client(host=default_url, timeout=3600)
    reply = client.chat(model=MODEL, messages=roo.ollama_messages(), tools=roo.ollama_tools(),
                        stream=False, options={"temperature": 0, "num_predict": ROOM})
    msg = reply.message
    assert (msg.content or "").strip() or msg.tool_calls
    # The ollama Python client sends each tool through its own pydantic model, which drops a
    # nested object's properties (Roo's TypeScript client sends them whole): the calls are held
    # to the schemas the gateway received.
    sent = {t["function"]["name"]: ollama_types.Tool.model_validate(t).model_dump(
        exclude_none=True)["function"]["parameters"] for t in roo.ollama_tools()}
    for call in msg.tool_calls or ():
        jsonschema.validate(dict(call.function.arguments), sent[call.function.name])
    assert 4000 < reply.prompt_eval_count < SERVED
    assert reply.done and reply.eval_count <= ROOM


# ---- the context reported is the context served -----------------------------------------

def served_everywhere(url: str) -> dict[str, int]:
    models = requests.get(url + "/v1/models", timeout=30).json()["data"]
    show = requests.post(url + "/api/show", json={"model": MODEL}, timeout=30).json()
    info = show["model_info"]
    ps = requests.get(url + "/api/ps", timeout=30).json()["models"]
    return {"/v1/models": next(m for m in models if m["id"] == MODEL)["context_length"],
            "/api/ps": next(m for m in ps if m["model"] == MODEL)["context_length"],
            "/api/show model_info": info[f"{info['general.architecture']}.context_length"],
            "/v1/model/info": next(
                m for m in requests.get(url + "/v1/model/info", timeout=30).json()["data"]
                if m["model_name"] == MODEL)["model_info"]["max_input_tokens"]}


def test_default_context_is_reported_everywhere(default_url):
    assert set(served_everywhere(default_url).values()) == {SERVED}


def test_a_context_past_the_trained_one_is_served_and_reported():
    """16384 > SmolLM2's trained 8192: served with YaRN scaling, and said so everywhere."""
    settings = make_settings(local_n_ctx=16384)
    with serve(create_app(settings)) as url:
        oa(url).chat.completions.create(model=MODEL, max_tokens=1, messages=[
            {"role": "user", "content": "hi"}])  # loaded
        assert set(served_everywhere(url).values()) == {16384}
    # A 9,000-token prompt is taken (prepared, not evaluated: that takes minutes here).
    provider = LocalProvider(LocalConfig.from_settings(settings))
    try:
        llama = provider._ensure_loaded()
        assert llama.n_ctx() == 16384
        req = GenerationRequest(kind="completion", model=MODEL, prompt="word " * 9000,
                                max_tokens=1)
        assert 9000 <= len(provider._prepare(llama, req).tokens) < 16384
    finally:
        provider.close()


# ---- prompts that do not fit -------------------------------------------------------------

@pytest.fixture(scope="module")
def small_url():
    with serve(create_app(make_settings(local_n_ctx=512))) as url:
        yield url


def history(turns: int) -> list[dict]:
    out = [{"role": "system", "content": "You are a terse assistant. SYSTEM-MARK"}]
    for i in range(turns):
        out += [{"role": "user", "content": f"Question {i}: " + "tell me more " * 12},
                {"role": "assistant", "content": f"Answer {i}: " + "here is more " * 12}]
    return out + [{"role": "user", "content": "LAST-MARK say ok"}]


@pytest.mark.parametrize("stream", [False, True])
def test_openai_family_overflow_reads_like_openai(small_url, stream):
    with pytest.raises(openai.BadRequestError) as caught:
        r = oa(small_url).chat.completions.create(model=MODEL, messages=history(20),
                                                  max_tokens=4, stream=stream)
        list(r) if stream else None
    err = caught.value
    assert err.status_code == 400 and err.code == "context_length_exceeded"
    assert err.type == "invalid_request_error" and err.param == "messages"
    m = OPENAI_OVERFLOW.fullmatch(err.body["message"])
    assert m and int(m.group(1)) == 512 and int(m.group(2)) > 512
    # Roo's OpenAI-compatible overflow patterns (context-error-handling.ts) match it …
    assert re.search(r"\bcontext\s*(?:length|window)\b|\bmaximum\s*context\b",
                     err.body["message"], re.I)
    # … and so does the dispatcher's context-window fallback.
    assert is_context_overflow(errors.ContextLengthExceeded(512, int(m.group(2))))


def test_overflow_error_text_for_completions(small_url):
    with pytest.raises(openai.BadRequestError) as caught:
        oa(small_url).completions.create(model=MODEL, prompt="word " * 800, max_tokens=4)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.body["message"].startswith(
        "This model's maximum context length is 512 tokens. However, your prompt resulted in ")


def test_ollama_family_drops_the_oldest_messages_like_ollama(small_url):
    client = ollama.Client(host=small_url, timeout=600)
    reply = client.chat(model=MODEL, messages=history(20), stream=False,
                        options={"temperature": 0, "num_predict": 4})
    assert reply.done and 0 < reply.prompt_eval_count <= 512
    streamed = list(client.chat(model=MODEL, messages=history(20), stream=True,
                                options={"temperature": 0, "num_predict": 4}))
    assert streamed[-1].done and 0 < streamed[-1].prompt_eval_count <= 512


def test_ollama_truncate_false_is_an_error(small_url):
    r = requests.post(small_url + "/api/chat", timeout=600, json={
        "model": MODEL, "messages": history(20), "stream": False, "truncate": False})
    assert r.status_code == 400
    assert OPENAI_OVERFLOW.fullmatch(r.json()["error"])


def test_ollama_num_ctx_bounds_the_prompt(default_url):
    client = ollama.Client(host=default_url, timeout=600)
    reply = client.chat(model=MODEL, messages=history(20), stream=False,
                        options={"temperature": 0, "num_predict": 2, "num_ctx": 256})
    assert 0 < reply.prompt_eval_count <= 256


def test_truncation_keeps_system_and_latest_messages():
    """Which messages survive: every system message and the newest ones (Ollama's chatPrompt)."""
    provider = LocalProvider(LocalConfig.from_settings(make_settings(local_n_ctx=512)))
    try:
        llama = provider._ensure_loaded()
        msgs = [Message(role=m["role"], content=m["content"]) for m in history(20)]
        req = GenerationRequest(kind="chat", model=MODEL, messages=msgs, truncate=True,
                                max_tokens=4)
        text = llama.detokenize(provider._prepare(llama, req).tokens).decode()
    finally:
        provider.close()
    assert "SYSTEM-MARK" in text and "LAST-MARK" in text
    assert "Question 0:" not in text and "Answer 19:" in text


def test_one_long_message_is_cut_like_ollamas_runner(small_url):
    client = ollama.Client(host=small_url, timeout=600)
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "word " * 2000}],
                        stream=False, options={"num_predict": 2})
    assert reply.done and reply.prompt_eval_count <= 512


# ---- max_completion_tokens with tools -----------------------------------------------------

@pytest.mark.parametrize("limit", [10, 20, 48])
def test_max_completion_tokens_holds_with_tools(local_url, limit):
    tools = [roo.TOOLS[i] for i in (4, 8, 11)]  # attempt_completion, list_files, read_file
    r = oa(local_url).chat.completions.create(
        model=MODEL, temperature=0, tools=tools, tool_choice="auto", max_completion_tokens=limit,
        messages=[{"role": "system", "content": "Always answer with a tool call."},
                  {"role": "user", "content": "Read the file src/orders.py"}])
    assert r.usage.completion_tokens <= limit
