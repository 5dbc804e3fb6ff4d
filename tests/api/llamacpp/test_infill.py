"""llama.cpp's /infill, with the request shapes llama.vscode and llama.vim send."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.support.helios import helios_app
from tests.support.rawhttp import open_post

# What llama.vscode sends (llama-server.ts): FIM around the cursor, ring-buffer chunks of other
# files, the cursor's line in `prompt`, and llama.vim's response_fields.
PREFIX = "import math\n\n\ndef circle_area(r):\n"
RESPONSE_FIELDS = ["content", "timings/prompt_n", "timings/prompt_ms",
                   "timings/prompt_per_token_ms", "timings/prompt_per_second",
                   "timings/predicted_n", "timings/predicted_ms", "timings/predicted_per_token_ms",
                   "timings/predicted_per_second", "truncated", "tokens_cached"]


def vscode_body(**changes) -> dict:
    body = {
        "input_prefix": PREFIX,
        "input_suffix": "\n\n\ndef main():\n    print(circle_area(2))\n",
        "input_extra": [{"filename": "geometry/constants.py", "text": "PI = 3.14159\nTAU = 2 * PI\n"}],
        "prompt": "    return ",
        "n_predict": 16,
        "top_k": 40,
        "top_p": 0.99,
        "stream": False,
        "n_indent": 4,
        "samplers": ["top_k", "top_p", "infill"],
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 1000,
        "response_fields": RESPONSE_FIELDS,
        "temperature": 0,
        "seed": 1,
    }
    body.update(changes)
    return body


def sse_objects(resp: requests.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in resp.iter_lines(decode_unicode=True)
            if line.startswith("data: ")]


def test_vscode_request_on_the_local_model(local_url):
    r = requests.post(local_url + "/infill", json=vscode_body(), timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == RESPONSE_FIELDS  # exactly the asked fields, "a/b" lifted as is
    assert isinstance(body["content"], str) and body["content"].strip()
    assert not body["content"].startswith(PREFIX) and "def main" not in body["content"]
    assert body["truncated"] is False
    assert body["timings/predicted_n"] >= 1 and body["timings/prompt_n"] >= 1
    assert body["timings/prompt_ms"] > 0 and body["timings/predicted_ms"] >= 0

    # Asked again: the gateway's completion cache answers, the model is not run.
    again = requests.post(local_url + "/infill", json=vscode_body(), timeout=120)
    assert again.headers["X-Completion-Cache"] == "exact"
    assert again.json()["content"] == body["content"]


def test_prompt_reuse_and_cache_prompt_false(local_url):
    first = requests.post(local_url + "/infill", timeout=120, json=vscode_body(
        prompt="    # area of a circle\n    return ", response_fields=None))
    assert first.status_code == 200, first.text
    evaluated = first.json()["tokens_evaluated"]
    # One more character typed (not the suggestion: a cache miss): the KV cache holds the rest.
    typed = requests.post(local_url + "/infill", timeout=120, json=vscode_body(
        prompt="    # area of a circle\n    return (", response_fields=None))
    assert typed.headers["X-Completion-Cache"] == "miss"
    reused = typed.json()
    assert reused["tokens_cached"] >= evaluated // 2, reused
    assert reused["timings"]["prompt_n"] < evaluated
    assert reused["timings"]["cache_n"] == reused["tokens_cached"]
    cold = requests.post(local_url + "/infill", timeout=120, json=vscode_body(
        prompt="    # area of a circle\n    return ((", cache_prompt=False,
        response_fields=None)).json()
    assert cold["tokens_cached"] == 0 and cold["timings"]["prompt_n"] == cold["tokens_evaluated"]


def test_streaming_sends_partials_then_the_final_object(local_url):
    plain = requests.post(local_url + "/infill", timeout=120, json=vscode_body(
        prompt="    value = ", response_fields=None)).json()
    r = requests.post(local_url + "/infill", timeout=120, stream=True, json=vscode_body(
        prompt="    value = ", stream=True, response_fields=None, cache_prompt=False))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = sse_objects(r)
    assert events[-1]["stop"] is True and events[-1]["content"] == ""
    assert all(e["stop"] is False for e in events[:-1])
    assert "".join(e["content"] for e in events) == plain["content"]
    assert events[-1]["stop_type"] in ("eos", "limit")


@pytest.mark.parametrize("body,param", [
    ({"input_prefix": "x", "n_predict": "lots"}, "n_predict"),
    ({"input_prefix": "x", "input_extra": "not a list"}, "input_extra"),
    ({"input_prefix": "x", "input_extra": [{"filename": "a", "text": 3}]}, "input_extra"),
    ({"input_prefix": "x", "n_predict": 100000}, "n_predict"),
])
def test_bad_requests_are_400_in_llama_cpp_format(up, body, param):
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1") as (url, _):
        r = requests.post(url + "/infill", json=body, timeout=20)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == 400 and err["type"] == "invalid_request_error"
        assert param in err["message"]
        bad = requests.post(url + "/infill", data="{", timeout=20)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_upstream_gets_prefix_extra_and_suffix(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1") as (url, _):
        r = requests.post(url + "/infill", timeout=20, json={
            "input_prefix": "a = 1\n", "prompt": "b = ", "input_suffix": "print(b)\n",
            "input_extra": [{"filename": "x.py", "text": "X = 2"}], "n_predict": 20})
        assert r.status_code == 200, r.text
        sent = up.state.bodies[-1]
        assert sent["suffix"] == "print(b)\n" and sent["max_tokens"] == 20
        assert sent["prompt"] == "\n\n--- snippet ---\n\nX = 2\n\na = 1\nb = "
        body = r.json()
        assert body["content"].startswith("echo:") and body["stop"] is True
        assert body["stop_type"] == "eos" and body["generation_settings"]["n_predict"] == 20


def test_n_indent_cuts_a_dedented_line(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1") as (url, _):
        # The echo upstream repeats the prompt: its second line is not indented.
        body = requests.post(url + "/infill", timeout=20, json={
            "input_prefix": "first\nsecond\n", "n_indent": 2, "n_predict": 50}).json()
        assert body["content"] == "echo: first\n" and body["stop_type"] == "limit"


def test_time_budget_and_warm_up(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="endless") as (url, _):
        start = time.monotonic()
        body = requests.post(url + "/infill", timeout=30, json={
            "input_prefix": "x = 1\n", "n_predict": 400, "t_max_predict_ms": 300}).json()
        assert body["stop_type"] == "limit" and time.monotonic() - start < 10
        calls = up.state.calls["endless"]
        warm = requests.post(url + "/infill", timeout=30, json={
            "input_prefix": "x = 1\n", "n_predict": 0, "input_extra": [{"text": "y"}]})
        assert warm.status_code == 200 and warm.json()["content"] == ""
        assert up.state.calls["endless"] == calls  # nothing to generate: the backend is not asked


def test_a_dropped_connection_stops_generation(up):
    # llama.vim cancels a stale request by closing its connection.
    with helios_app(lm_studio_base_url=up.url, helios_model="endless") as (url, _):
        calls = up.state.calls["endless"]
        before = up.state.settled_disconnects()
        sock = open_post(url, "/infill", {"input_prefix": "x = ", "n_predict": 400})
        deadline = time.monotonic() + 10
        while up.state.calls["endless"] == calls and time.monotonic() < deadline:
            time.sleep(0.02)
        closed_at = time.monotonic()
        sock.close()
        deadline = time.monotonic() + 10
        while len(up.state.disconnects) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(up.state.disconnects) == before + 1  # long before 400 pieces (20 s)
        assert up.state.disconnects[-1] > closed_at


def test_a_dropped_connection_stops_the_local_models_prompt_evaluation():
    # The connection closes as llama.cpp starts on the prompt: the evaluation is aborted
    # inside llama.cpp, not run to its end first.
    with helios_app() as (url, app):
        local = app.extensions["gateway"].router.by_name("local")
        inner = getattr(local, "_provider", local)  # behind admission control
        llama = inner._llama
        evaluate, sent, box = llama.eval, threading.Event(), {}

        def eval_dropped(batch):
            sent.wait(10)
            sock = box.pop("sock", None)
            if sock is not None:  # this request's first evaluation
                sock.close()
                deadline = time.monotonic() + 30
                while not inner._abort.tripped and time.monotonic() < deadline:
                    time.sleep(0.002)
            return evaluate(batch)

        llama.eval = eval_dropped
        try:
            prefix = "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(40))
            box["sock"] = open_post(url, "/infill", {"input_prefix": prefix, "n_predict": 16,
                                                     "cache_prompt": False})
            sent.set()
            deadline = time.monotonic() + 60
            while (inner._abort is None or not inner._abort.aborts) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert inner._abort.aborts == 1 and "sock" not in box
        finally:
            del llama.eval
        r = requests.post(url + "/infill", json=vscode_body(), timeout=120)
        assert r.status_code == 200, r.text  # the model serves the next request as before


def test_a_typing_client_gets_each_infill_before_its_next_request(up):
    # Three short requests (about 150 ms each), a typing pause apart (0.4–0.6 s from one
    # request to the next), show the pace; the fourth and fifth would stream for 20 s but
    # end by the shortest gap, answered before the next request is due.
    with helios_app(lm_studio_base_url=up.url, helios_model="endless") as (url, _):
        for i, gap in enumerate([0.4, 0.6, 0.6]):
            sent = time.monotonic()
            r = requests.post(url + "/infill", timeout=30, json={
                "input_prefix": "x = " + "1" * i, "n_predict": 3, "t_max_predict_ms": 0})
            assert r.json()["stop_type"] == "limit" and "X-Finish-Reason" not in r.headers
            time.sleep(max(0.0, sent + gap - time.monotonic()))
        sent = time.monotonic()
        r = requests.post(url + "/infill", timeout=30, json={
            "input_prefix": "x = 111", "n_predict": 400, "t_max_predict_ms": 0})
        assert r.status_code == 200, r.text
        assert r.json()["stop_type"] == "limit" and r.headers["X-Finish-Reason"] == "pace"
        assert r.json()["content"]
        time.sleep(max(0.0, sent + 0.6 - time.monotonic()))
        start = time.monotonic()
        streamed = requests.post(url + "/infill", timeout=30, stream=True, json={
            "input_prefix": "x = 1111", "n_predict": 400, "t_max_predict_ms": 0, "stream": True})
        events = sse_objects(streamed)
        assert events[-1]["stop"] is True and events[-1]["stop_type"] == "limit"
        assert time.monotonic() - start < 10  # not the 20 s the stand-in would stream
