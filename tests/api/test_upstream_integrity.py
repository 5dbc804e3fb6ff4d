"""A broken upstream answer is never delivered as a good one (issue 11, section 1).

An upstream stream cut short on a body without framing, or a 200 that is not
SSE at all, ends with each family's mid-stream error (OpenAI error event and
``[DONE]``, Ollama ``{"error": …}`` line, Helios error status), is counted as an
upstream error, and carries no invented finish reason. Also: a non-streamed body
that stalls is a 504, and every 503 for an unavailable upstream says Retry-After.
"""

from __future__ import annotations

import json

import ollama
import openai
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve
from tests.support.helios import SEED_PYTHON, assert_helios_error, helios_app
from tests.support.metrics import scrape, value
from tests.support.procs import free_port
from tests.support.rawhttp import open_post, read_lines

MSGS = [{"role": "user", "content": "a b c"}]
ERRORS = "gateway_upstream_errors_total"


@pytest.fixture(scope="module")
def gw(up):
    app = create_app(make_settings(lm_studio_base_url=up.url, request_timeout_seconds=1.5,
                                   request_max_retries=0, models_cache_seconds=0))
    with serve(app) as url:
        yield url


def sse_events(resp: requests.Response) -> list:
    return [ln[6:] for ln in resp.text.split("\n") if ln.startswith("data: ")]


# ---- OpenAI family ----------------------------------------------------------------
@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", {"messages": MSGS}),
    ("/v1/completions", {"prompt": "a b c"}),
])
@pytest.mark.parametrize("model,code,kind", [
    ("truncated", "upstream_incomplete", "truncated_stream"),
    ("nonjson", "upstream_not_sse", "not_sse"),      # a 200 HTML proxy page
    ("jsonstream", "upstream_not_sse", "not_sse"),   # a 200 JSON body, no data: lines
])
def test_openai_stream_broken_upstream_ends_with_error_event(gw, path, body, model, code, kind,
                                                            caplog):
    before = scrape(gw)
    caplog.set_level("WARNING")
    r = requests.post(gw + path, json={"model": model, "stream": True, **body}, timeout=20)
    assert r.status_code == 200
    rid = r.headers["X-Request-ID"]
    assert any(getattr(rec, "request_id", None) == rid and "stream failed" in rec.getMessage()
               for rec in caplog.records), "the broken stream was not logged"
    events = sse_events(r)
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])["error"]
    assert err["code"] == code and err["type"] == "upstream_error", err
    finishes = [c.get("finish_reason") for e in events[:-2] for c in json.loads(e)["choices"]]
    assert not any(finishes), f"an invented finish_reason: {finishes}"
    assert value(scrape(gw), ERRORS, kind=kind) - value(before, ERRORS, kind=kind) == 1


def test_openai_client_raises_on_a_truncated_stream(gw):
    c = openai.OpenAI(base_url=gw + "/v1", api_key="x", max_retries=0)
    got = []
    with pytest.raises(openai.APIError, match="before the answer was complete"):
        for chunk in c.chat.completions.create(model="truncated", messages=MSGS, stream=True):
            got.append(chunk.choices[0].delta.content)
            assert chunk.choices[0].finish_reason is None
    assert "".join(got) == "one two three"
    with pytest.raises(openai.APIError, match="not server-sent events|other than server-sent"):
        list(c.completions.create(model="nonjson", prompt="x", stream=True))


def test_non_streamed_answer_without_finish_reason_keeps_it_null(gw):
    c = openai.OpenAI(base_url=gw + "/v1", api_key="x", max_retries=0)
    r = c.chat.completions.create(model="nofinish", messages=MSGS)
    assert r.choices[0].message.content == "echo: a b c"
    assert r.choices[0].finish_reason is None
    r = c.completions.create(model="nofinish", prompt="p")
    assert r.choices[0].finish_reason is None
    odd = c.chat.completions.create(model="abortfinish", messages=MSGS)
    assert odd.choices[0].finish_reason == "abort"  # an unknown reason is passed through


# ---- Ollama family ------------------------------------------------------------------
@pytest.mark.parametrize("path,body", [
    ("/api/chat", {"messages": MSGS}),
    ("/api/generate", {"prompt": "a b c"}),
])
@pytest.mark.parametrize("model,kind", [("truncated", "truncated_stream"),
                                        ("nonjson", "not_sse")])
def test_ollama_stream_broken_upstream_ends_with_error_line(gw, path, body, model, kind):
    before = scrape(gw)
    s = open_post(gw, path, {"model": model, **body})
    try:
        head, lines = read_lines(s)
    finally:
        s.close()
    assert b" 200 " in head.split(b"\r\n")[0]
    objs = [obj for _, obj in lines]
    assert "error" in objs[-1] and ("complete" in objs[-1]["error"]
                                    or "server-sent" in objs[-1]["error"]), objs[-1]
    assert not any(o.get("done") for o in objs), "a done line for a broken answer"
    assert not any("done_reason" in o for o in objs)
    assert value(scrape(gw), ERRORS, kind=kind) - value(before, ERRORS, kind=kind) == 1


def test_ollama_client_raises_on_a_truncated_stream(gw):
    c = ollama.Client(host=gw)
    got = []
    with pytest.raises(ollama.ResponseError, match="before the answer was complete"):
        for part in c.chat(model="truncated", messages=MSGS, stream=True):
            got.append(part.message.content)
            assert not part.done
    assert "".join(got) == "one two three"
    with pytest.raises(ollama.ResponseError, match="server-sent"):
        list(c.generate(model="jsonstream", prompt="x", stream=True))


def test_ollama_non_streamed_answer_without_finish_reason_has_no_done_reason(gw):
    r = ollama.Client(host=gw).chat(model="nofinish", messages=MSGS, stream=False)
    assert r.done and r.done_reason is None


# ---- Responses API and llama.cpp /infill ----------------------------------------------------
@pytest.mark.parametrize("model,kind", [("truncated", "truncated_stream"), ("nonjson", "not_sse"),
                                        ("jsonstream", "not_sse")])
def test_responses_and_infill_streams_of_a_broken_upstream_fail(gw, model, kind):
    before = scrape(gw)
    r = requests.post(gw + "/v1/responses", json={"model": model, "input": "a b",
                                                  "stream": True}, timeout=20)
    types = [json.loads(e)["type"] for e in sse_events(r)]
    assert types[-2:] == ["error", "response.failed"], types
    assert "response.completed" not in types and "response.incomplete" not in types

    r = requests.post(gw + "/infill", json={"model": model, "input_prefix": "a",
                                            "stream": True}, timeout=20)
    chunks = [json.loads(e) for e in sse_events(r)]
    assert chunks[-1]["error"]["code"] == 502, chunks[-1]
    assert not any(c.get("stop") for c in chunks[:-1]), "a finished answer for a broken one"
    assert value(scrape(gw), ERRORS, kind=kind) - value(before, ERRORS, kind=kind) == 2


# ---- Helios -----------------------------------------------------------------------------
@pytest.mark.parametrize("model,kind", [("truncated", "truncated_stream"), ("nonjson", "not_sse"),
                                        ("jsonstream", "not_sse")])
def test_helios_broken_upstream_stream_is_completion_failed(up, model, kind):
    with helios_app(lm_studio_base_url=up.url, helios_model=model,
                    request_max_retries=0) as (url, _):
        before = scrape(url)
        r = requests.post(url + "/complete", json=SEED_PYTHON, timeout=20)
        counted = value(scrape(url), ERRORS, kind=kind) - value(before, ERRORS, kind=kind)
    assert counted == 1, "not counted as an upstream error"
    err = assert_helios_error(r, 500, "COMPLETION_FAILED")
    assert "complete" in err["detail"] or "server-sent" in err["detail"], err


# ---- non-streamed stalls and unavailable upstreams --------------------------------------
def test_non_streamed_body_stalling_is_a_504_not_a_503(gw):
    before = scrape(gw)
    c = openai.OpenAI(base_url=gw + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as exc:
        c.chat.completions.create(model="stall", messages=MSGS)
    assert exc.value.status_code == 504 and exc.value.body["code"] == "upstream_timeout"
    assert "could not connect" not in exc.value.body["message"]
    r = requests.post(gw + "/api/chat", json={"model": "stall", "messages": MSGS,
                                              "stream": False}, timeout=20)
    assert r.status_code == 504 and "error" in r.json()
    assert value(scrape(gw), ERRORS, kind="read_timeout") \
        - value(before, ERRORS, kind="read_timeout") == 2


def _assert_unavailable(url: str, model: str) -> None:
    """A 503 with Retry-After in each family's own error format."""
    r = requests.post(url + "/v1/chat/completions", json={"model": model, "messages": MSGS},
                      timeout=20)
    assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable", r.text
    assert int(r.headers["Retry-After"]) >= 1
    r = requests.post(url + "/api/chat", json={"model": model, "messages": MSGS,
                                               "stream": False}, timeout=20)
    assert r.status_code == 503 and isinstance(r.json()["error"], str), r.text
    assert int(r.headers["Retry-After"]) >= 1


def test_unreachable_upstream_503s_carry_retry_after():
    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app(make_settings(lm_studio_base_url=dead, request_max_retries=0))
    with serve(app) as url:
        _assert_unavailable(url, "any-model")
    with helios_app(lm_studio_base_url=dead, helios_model="gone",
                    request_max_retries=0) as (url, _):
        r = requests.post(url + "/complete", json=SEED_PYTHON, timeout=20)
    assert_helios_error(r, 503, "MODEL_NOT_LOADED")
    assert int(r.headers["Retry-After"]) >= 1


def test_upstream_503_without_retry_after_still_says_retry_after(gw, up):
    _assert_unavailable(gw, "always-503")
    with helios_app(lm_studio_base_url=up.url, helios_model="always-503",
                    request_max_retries=0) as (url, _):
        r = requests.post(url + "/complete", json=SEED_PYTHON, timeout=20)
    assert_helios_error(r, 503, "MODEL_NOT_LOADED")
    assert int(r.headers["Retry-After"]) >= 1


def test_pool_exhausted_503_carries_retry_after(up):
    app = create_app(make_settings(lm_studio_base_url=up.url, httpx_max_connections=1,
                                   connect_timeout_seconds=0.3, request_max_retries=0))
    with serve(app) as url:
        held = open_post(url, "/v1/chat/completions",
                         {"model": "endless", "stream": True, "messages": MSGS})
        try:
            assert held.recv(4096).startswith(b"HTTP/1.1 200")  # the one slot is taken
            _assert_unavailable(url, "echo-1")
        finally:
            held.close()
