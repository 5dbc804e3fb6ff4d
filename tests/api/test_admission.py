"""Admission control through the API: saturation -> 503 with Retry-After in the caller's
format after the bounded wait; a queued client that left makes no upstream call; every
response says how much time the gateway itself added."""

from __future__ import annotations

import time

import pytest
import requests

from service import create_app, metrics
from tests.conftest import make_settings, serve
from tests.support.metrics import scrape, value
from tests.support.rawhttp import open_post, open_sse

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]
WAIT = 0.5


@pytest.fixture
def capped(upstream):
    """The gateway with two model requests in flight at most, waits of 0.5 s."""
    app = create_app(make_settings(lm_studio_base_url=upstream.url, models_cache_seconds=0,
                                   gateway_max_in_flight=2, gateway_max_waiting=4,
                                   gateway_queue_wait_seconds=WAIT))
    with serve(app) as url:
        yield url, upstream


def _hold(url, n):
    """``n`` endless streams that have started (their slots are taken)."""
    return [open_sse(url, CHAT, {"model": "endless", "messages": MSG, "stream": True}, 1)
            for _ in range(n)]


def test_saturation_is_refused_after_the_bounded_wait_in_each_format(capped):
    url, _ = capped
    before = scrape(url)
    held = _hold(url, 2)
    try:
        start = time.monotonic()
        r = requests.post(url + CHAT, json={"model": "echo-1", "messages": MSG}, timeout=10)
        took = time.monotonic() - start
        assert r.status_code == 503, r.text
        assert WAIT * 0.8 < took < WAIT + 5
        assert int(r.headers["Retry-After"]) >= 1
        err = r.json()["error"]
        assert err["code"] == "overloaded" and "capacity" in err["message"]

        r = requests.post(url + "/api/chat", json={"model": "echo-1", "messages": MSG},
                          timeout=10)  # Ollama's format: {"error": "..."}
        assert r.status_code == 503 and isinstance(r.json()["error"], str)
        assert "Retry-After" in r.headers

        assert requests.get(url + "/healthz", timeout=2).status_code == 200  # not a model route
    finally:
        for s in held:
            s.close()
    after = scrape(url)
    assert value(after, "gateway_admission_rejections_total") - \
        value(before, "gateway_admission_rejections_total") == 2
    # The slots come back when the streams end.
    deadline = time.monotonic() + 5
    while True:
        r = requests.post(url + CHAT, json={"model": "echo-1", "messages": MSG}, timeout=10)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 200


def test_a_queued_client_that_left_causes_no_upstream_call(upstream):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, models_cache_seconds=0,
                                   gateway_max_in_flight=1, gateway_queue_wait_seconds=10))
    with serve(app) as url:
        held = _hold(url, 1)
        queued = [open_post(url, CHAT, {"model": "echo-left", "messages": MSG, "stream": s})
                  for s in (True, False)]
        time.sleep(0.5)  # both are waiting for the slot now
        for s in queued:
            s.close()
        time.sleep(0.6)  # their waits notice the closed sockets
        held[0].close()  # the slot comes free
        r = requests.post(url + CHAT, json={"model": "echo-1", "messages": MSG}, timeout=10)
        assert r.status_code == 200
        assert upstream.state.calls["echo-left"] == 0


def test_every_response_carries_the_gateway_overhead(upstream_gateway):
    url, _ = upstream_gateway
    responses = [
        requests.get(url + "/healthz"),
        requests.post(url + CHAT, json={"model": "echo-1", "messages": MSG}),
        requests.post(url + CHAT, json={"model": "echo-1", "messages": MSG, "stream": True}),
        requests.post(url + CHAT, json={"messages": "not a list"}),
        requests.post(url + "/api/chat", json={"model": "slow", "messages": MSG, "stream": False}),
    ]
    for r in responses:
        overhead = float(r.headers["X-Gateway-Overhead-Ms"])
        assert 0 <= overhead < 1000, (r.request.url, overhead)
    # The 3 s the "slow" upstream took are the backend's, not the gateway's.
    assert float(responses[-1].headers["X-Gateway-Overhead-Ms"]) < 1000
    text = scrape(url)
    assert value(text, "gateway_overhead_seconds_count", route="/v1/chat/completions") >= 3


def test_a_full_backend_leaves_the_others_their_slots(upstream, tmp_path):
    """Per-backend caps through the API: a backend at its cap refuses (bounded wait, 503
    with Retry-After, counted under its name) while another backend on the same worker
    is still served."""
    models = tmp_path / "models.toml"
    models.write_text(f"""
[backends.slow]
kind = "openai"
base_url = "{upstream.url}"
max_concurrency = 2
[backends.fast]
kind = "openai"
base_url = "{upstream.url}"
[models.agent]
deployments = [{{ backend = "slow", model = "endless" }}]
[models.agent-echo]
deployments = [{{ backend = "slow", model = "echo-1" }}]
[models.helper]
deployments = [{{ backend = "fast", model = "echo-1" }}]
""")
    app = create_app(make_settings(models_file=models, models_cache_seconds=0,
                                   gateway_max_in_flight=8, gateway_queue_wait_seconds=WAIT))
    with serve(app) as url:
        before = scrape(url)
        held = [open_sse(url, CHAT, {"model": "agent", "messages": MSG, "stream": True}, 1)
                for _ in range(2)]
        try:
            start = time.monotonic()
            r = requests.post(url + CHAT, json={"model": "agent-echo", "messages": MSG},
                              timeout=10)
            assert r.status_code == 503 and time.monotonic() - start >= WAIT * 0.8, r.text
            assert r.json()["error"]["code"] == "overloaded" and "upstream slow" in r.text
            assert int(r.headers["Retry-After"]) >= 1
            r = requests.post(url + CHAT, json={"model": "helper", "messages": MSG},
                              timeout=10)
            assert r.status_code == 200, r.text
        finally:
            for s in held:
                s.close()
        after = scrape(url)
    assert value(after, "gateway_admission_rejections_total", scope="upstream slow") - \
        value(before, "gateway_admission_rejections_total", scope="upstream slow") == 1
