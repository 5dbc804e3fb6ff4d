"""The OpenAI API on the real embedded model (SmolLM2-135M), a few tokens per call."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve
from tests.support.rawhttp import open_sse

MODEL = "smollm2-135m-instruct"


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


def test_chat_completion(local_url):
    r = client(local_url).chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "You are terse."},
                               {"role": "user", "content": "Name a colour."}],
        max_tokens=6, temperature=0)
    assert r.model == MODEL and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 6 and r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_completion_streamed_with_usage(local_url):
    chunks = list(client(local_url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count: one, two,"}], max_tokens=5,
        temperature=0, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"] or finishes == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and 1 <= usage.completion_tokens <= 5


def test_streamed_and_plain_agree_at_temperature_zero(local_url):
    msgs = [{"role": "user", "content": "Say the word hello."}]
    plain = client(local_url).chat.completions.create(model=MODEL, messages=msgs, max_tokens=6,
                                                      temperature=0)
    streamed = client(local_url).chat.completions.create(model=MODEL, messages=msgs, max_tokens=6,
                                                         temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == plain.choices[0].message.content


def test_text_completion_with_stop_and_echo(local_url):
    r = client(local_url).completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=8,
                                             temperature=0, stop=[","], echo=True)
    text = r.choices[0].text
    assert text.startswith("1, 2, 3, 4,")
    assert "," not in text[len("1, 2, 3, 4,"):]
    assert r.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_empty_prompt_starts_a_document(local_url, stream):
    """An empty prompt tokenizes to nothing on a model without BOS (SmolLM2): llama.cpp
    cannot sample from an empty context (a 500 found by the fuzz test)."""
    r = client(local_url).completions.create(model=MODEL, prompt="", max_tokens=2,
                                             stream=stream)
    if stream:
        r = list(r)
        assert r[-1].choices[0].finish_reason in ("stop", "length")
    else:
        assert r.choices[0].finish_reason in ("stop", "length")
        assert r.usage.prompt_tokens == 1  # the document-start token the model was given


def test_default_model_when_name_unknown(local_url):
    r = client(local_url).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert r.choices[0].message.content is not None


def test_concurrent_requests_all_answered(local_url):
    def one(i):
        return client(local_url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Say {i}"}], max_tokens=4)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in results)


@pytest.fixture
def small_queue_app():
    app = create_app(make_settings(local_max_queue=1, local_max_wait_seconds=0.3))
    with serve(app) as url:
        yield url, app.extensions["gateway"].router.by_name("local")


def test_bounded_wait_for_busy_model(small_queue_app):
    url, local = small_queue_app
    local.gate.hold()  # as if a long generation were running
    try:
        results = {}

        def call(name):
            results[name] = requests.post(url + "/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})

        t = threading.Thread(target=call, args=("waiter",))
        start = time.monotonic()
        t.start()
        time.sleep(0.1)
        call("overflow")  # the one allowed waiter is taken: refused at once
        t.join()
        waited = time.monotonic() - start
    finally:
        local.gate.release()
    for r in results.values():
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_busy" and r.headers["Retry-After"] == "1"
    assert "waiting" in results["overflow"].json()["error"]["message"]
    assert "LOCAL_MAX_WAIT_SECONDS" in results["waiter"].json()["error"]["message"]
    assert waited < 2
    with pytest.raises(openai.InternalServerError):  # SDK sees a 503
        local.gate.hold()
        try:
            client(url).chat.completions.create(model=MODEL, max_tokens=2,
                                                messages=[{"role": "user", "content": "x"}])
        finally:
            local.gate.release()
    ok = requests.post(url + "/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert ok.status_code == 200


def test_disconnect_stops_local_generation(small_queue_app):
    url, local = small_queue_app
    # Pace of this machine right now: time for 16 tokens (the runner may be loaded).
    t0 = time.monotonic()
    r = requests.post(url + "/v1/completions", json={"model": MODEL, "prompt": "Once upon a time",
                                                     "max_tokens": 16, "temperature": 1.0,
                                                     "stop": []})
    per_token = (time.monotonic() - t0) / max(1, r.json()["usage"]["completion_tokens"])
    body = {"model": MODEL, "stream": True, "max_tokens": 1500, "temperature": 1.0,
            "messages": [{"role": "user", "content": "Write a very long story."}]}
    s = open_sse(url, "/v1/chat/completions", body, 4)
    assert local.gate._lock.locked()
    s.close()
    closed = time.monotonic()
    # Generation notices at its next writes: allow 100 tokens' time, far below 1500.
    deadline = closed + max(3.0, 100 * per_token)
    while local.gate._lock.locked() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not local.gate._lock.locked(), (
        f"generation kept the model {time.monotonic() - closed:.1f}s after the client left "
        f"({per_token * 1000:.0f} ms/token)")
