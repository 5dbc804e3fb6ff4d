"""/restart on the real local model: 503 while reloading, 200 after, no request lost."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.support.helios import SEED_PYTHON, assert_helios_error, helios_app
from tests.support.upstream import start_upstream


@pytest.fixture(scope="module")
def app_url():
    with helios_app(local_max_wait_seconds=60) as (url, app):
        yield url, app


def _wait_healthy(url: str, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(url + "/health", timeout=10)
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def test_health_is_503_during_restart_and_200_after(app_url):
    url, app = app_url
    provider = app.extensions["gateway"].router.by_name("local")
    old_model = provider._llama
    provider.gate.hold()  # a generation in flight: the reload waits for it
    try:
        r = requests.post(url + "/restart", timeout=10)
        assert r.status_code == 200 and r.json() == {"message": "Server restart initiated"}
        health = requests.get(url + "/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "reloading" and health.json()["model_loaded"] is False
        status = requests.get(url + "/status", timeout=10).json()
        assert status["server_status"] == "reloading" and status["model_loaded"] is False
        busy = requests.post(url + "/complete", json=SEED_PYTHON, timeout=10)
        err = assert_helios_error(busy, 503, "MODEL_NOT_LOADED")
        assert "reloading" in err["detail"] and busy.headers["Retry-After"] == "1"
        # A second restart while one runs is the same restart.
        assert requests.post(url + "/restart", timeout=10).status_code == 200
        assert provider._llama is old_model  # nothing swapped under the running generation
    finally:
        provider.gate.release()

    after = _wait_healthy(url)
    assert after.status_code == 200 and after.json()["model_loaded"] is True
    assert provider._llama is not old_model  # the model really was reloaded
    ok = requests.post(url + "/complete", json=dict(SEED_PYTHON, max_tokens=4), timeout=60)
    assert ok.status_code == 200 and ok.json()["suggestion"]


def test_restart_under_traffic_loses_no_request(app_url):
    url, _ = app_url
    results: list[tuple[int, dict]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    started = threading.Event()

    def client(n: int):
        try:
            for _ in range(4):  # each client its own file: no supersession between them
                r = requests.post(url + "/complete", timeout=60,
                                  json=dict(SEED_PYTHON, max_tokens=3, filename=f"c{n}.py"))
                with lock:
                    results.append((r.status_code, r.json()))
        except BaseException as exc:  # a dropped connection fails the test
            failures.append(exc)

    streamed: list[bytes] = []

    def streaming_client():  # an OpenAI stream in flight across the restart
        try:
            with requests.post(url + "/v1/completions", stream=True, timeout=60, json={
                    "model": "smollm2-135m-instruct", "prompt": "def add(a, b):",
                    "max_tokens": 12, "temperature": 0, "stream": True}) as r:
                lines = r.iter_lines()
                streamed.append(next(line for line in lines if line))
                started.set()
                streamed.extend(line for line in lines if line)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=streaming_client))
    for t in threads:
        t.start()
    assert started.wait(60)
    assert requests.post(url + "/restart", timeout=10).status_code == 200
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert streamed[-1] == b"data: [DONE]" and not any(b'"error"' in x for x in streamed)
    assert len(results) == 12
    for status, body in results:
        assert status in (200, 503), (status, body)
        if status == 200:
            assert list(body) == ["suggestion", "confidence", "processing_time"]
        else:
            assert body["error_code"] == "MODEL_NOT_LOADED" and "timestamp" in body
    assert any(status == 200 for status, _ in results)
    assert _wait_healthy(url).status_code == 200
    r = requests.post(url + "/complete", json=dict(SEED_PYTHON, max_tokens=3), timeout=60)
    assert r.status_code == 200, json.dumps(r.json())


def test_restart_reinitialises_an_upstream_backend():
    up = start_upstream()
    try:
        with helios_app(lm_studio_base_url=up.url, helios_model="echo-1",
                        models_cache_seconds=3600) as (url, app):
            def listed():
                return {m["id"] for m in requests.get(url + "/v1/models", timeout=10).json()["data"]}

            assert "late-model" not in listed()
            up.state.models.append("late-model")
            assert "late-model" not in listed()  # cached for an hour
            assert requests.post(url + "/restart", timeout=10).status_code == 200
            app.extensions["helios"].lifecycle.join(10)
            assert _wait_healthy(url).status_code == 200
            assert "late-model" in listed()
    finally:
        up.shutdown()
        up.server_close()
