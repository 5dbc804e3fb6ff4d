"""``/metrics`` counts what was served: requests, tokens, TTFT, in-flight, upstream
retries and errors, local queue waits; upstream timing lands in the access log.

The threaded test server shares one in-process registry, so these tests compare
values before and after (the gunicorn tests in ``test_nginx.py`` see exact totals).
"""

from __future__ import annotations

import logging
import threading
import time

import openai
import pytest
import requests

from service import create_app, metrics
from service.core import errors
from service.providers.local import ModelGate
from tests.conftest import make_settings, serve
from tests.support.metrics import scrape, value

CHAT = "/v1/chat/completions"


def _eventually(check, timeout=5.0):
    """Poll ``check`` until true: the metrics hook runs when the response is closed,
    which can be just after the client has read the last byte."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _delta(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def gateway(upstream):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, log_level="info",
                                   request_timeout_seconds=2))
    with serve(app) as url:
        yield url, upstream


def test_counters_match_the_requests_made(gateway):
    url, _ = gateway
    before = scrape(url)
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    for _ in range(3):
        c.chat.completions.create(model="echo-1", messages=[{"role": "user", "content": "hi"}])
    # Read to the end with requests: werkzeug's test server skips close() (so the
    # metrics hook) when a client resets the connection, as httpx may after [DONE].
    streamed = requests.post(url + CHAT, json={"model": "echo-1", "stream": True, "messages": [
        {"role": "user", "content": "a b c"}]}, timeout=10)
    assert streamed.text.endswith("data: [DONE]\n\n")
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("no-such-model")
    assert requests.get(url + "/no/such/route").status_code == 404

    ok = dict(route=CHAT, method="POST", status="200", model="echo-1", provider="openai")
    _eventually(lambda: _delta(before, scrape(url), "gateway_requests_total", **ok) == 4)
    after = scrape(url)
    assert _delta(before, after, "gateway_requests_total",
                  route="/v1/models/<path:model_id>", status="404") == 1
    assert _delta(before, after, "gateway_requests_total", route="unmatched", status="404") == 1
    # the stand-in reports 5 prompt tokens per request and one completion token per word
    assert _delta(before, after, "gateway_prompt_tokens_total", model="echo-1") == 20
    assert _delta(before, after, "gateway_completion_tokens_total", model="echo-1") == 3 * 3 + 4
    assert _delta(before, after, "gateway_request_duration_seconds_count", route=CHAT) == 4
    assert _delta(before, after, "gateway_time_to_first_token_seconds_count",
                  model="echo-1", provider="openai") == 1
    assert _delta(before, after, "gateway_upstream_request_duration_seconds_count",
                  upstream="upstream", outcome="ok") >= 4
    assert value(after, "gateway_requests_total", route="/metrics") == 0  # scrapes not counted


def test_in_flight_covers_a_stream_until_its_last_byte(gateway):
    url, upstream = gateway
    # relative: werkzeug's test server can skip close() of earlier streams (see above)
    base = value(scrape(url), "gateway_requests_in_flight")
    with requests.post(url + CHAT, json={"model": "endless", "stream": True,
                                         "messages": [{"role": "user", "content": "go"}]},
                       stream=True, timeout=10) as resp:
        lines = resp.iter_lines()
        assert next(l for l in lines if l.startswith(b"data:"))
        assert value(scrape(url), "gateway_requests_in_flight") == base + 1
    _eventually(lambda: value(scrape(url), "gateway_requests_in_flight") == base)
    _eventually(lambda: upstream.state.disconnects)  # and the upstream was let go


def test_upstream_retries_and_errors_by_kind_and_in_the_access_log(gateway, caplog):
    url, _ = gateway
    before = scrape(url)
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    with caplog.at_level(logging.INFO, logger="service.access"):
        r = c.chat.completions.with_raw_response.create(
            model="flaky-2", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="always-500", messages=[{"role": "user", "content": "x"}])
        _eventually(lambda: len([rec for rec in caplog.records
                                 if getattr(rec, "path", None) == CHAT]) == 2)
    after = scrape(url)
    assert _delta(before, after, "gateway_upstream_retries_total",
                  upstream="upstream", kind="status_503") == 2
    assert _delta(before, after, "gateway_upstream_retries_total",
                  upstream="upstream", kind="status_500") == 2
    assert _delta(before, after, "gateway_upstream_errors_total",
                  upstream="upstream", kind="status_500") == 1
    assert _delta(before, after, "gateway_upstream_errors_total",
                  upstream="upstream", kind="status_503") == 0
    lines = {rec.request_id: rec for rec in caplog.records if getattr(rec, "path", None) == CHAT}
    flaky = lines[r.headers["x-request-id"]]
    assert flaky.upstream_retries == 2 and flaky.upstream_ms > 0 and flaky.status == 200
    failed = next(rec for rec in lines.values() if rec.status == 502)
    assert failed.upstream_retries == 2 and failed.upstream_ms > 0


def test_upstream_connection_errors_are_counted(upstream):
    dead = upstream.url
    upstream.shutdown()
    upstream.server_close()
    app = create_app(make_settings(lm_studio_base_url=dead, request_max_retries=1))
    with serve(app) as url:
        before = scrape(url)
        r = requests.post(url + CHAT, json={"model": "m", "messages": [{"role": "user",
                                                                          "content": "x"}]})
        assert r.status_code == 503
        after = scrape(url)
    assert _delta(before, after, "gateway_upstream_errors_total", kind="connection_error") >= 1
    assert _delta(before, after, "gateway_upstream_retries_total", kind="connection_error") >= 1


def test_metrics_token():
    app = create_app(make_settings(metrics_token="scrape-me", local_preload=False))
    with serve(app) as url:
        assert requests.get(url + "/metrics").status_code == 401
        bad = requests.get(url + "/metrics", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json()["error"]["message"]
        assert scrape(url, headers={"Authorization": "Bearer scrape-me"})


def test_local_queue_waits_and_rejections():
    gate = ModelGate(max_waiting=1, max_wait=10)
    count = "gateway_local_queue_wait_seconds_count"
    before = metrics.render().decode()
    waits0 = _sample(before, count)
    rejected0 = _sample(before, "gateway_local_queue_rejections_total")
    assert gate.acquire("m") == 0.0
    waited = []
    t = threading.Thread(target=lambda: (waited.append(gate.acquire("m")), gate.release()))
    t.start()
    _eventually(lambda: gate.waiting == 1)
    with pytest.raises(errors.ModelBusy):
        gate.acquire("m")  # the queue (1) is full
    gate.release()
    t.join(5)
    after = metrics.render().decode()
    assert _sample(after, count) == waits0 + 2
    assert _sample(after, "gateway_local_queue_rejections_total") == rejected0 + 1
    assert waited and waited[0] > 0
    assert _sample(after, "gateway_local_queue_wait_seconds_sum") >= waited[0]


def test_rate_limit_rejections_are_exposed():
    before = _sample(metrics.render().decode(), "gateway_rate_limit_rejections_total",
                     'limit="key_rpm"')
    metrics.rate_limited("key_rpm")
    assert _sample(metrics.render().decode(), "gateway_rate_limit_rejections_total",
                   'limit="key_rpm"') == before + 1


def _sample(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + (f"{{{labels}}}" if labels else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_stream_cut_by_the_upstream_is_an_upstream_error(gateway):
    url, _ = gateway
    before = scrape(url)
    r = requests.post(url + CHAT, json={"model": "cut", "stream": True, "messages": [
        {"role": "user", "content": "one two three"}]}, timeout=10)
    assert '"error"' in r.text and r.text.endswith("data: [DONE]\n\n")
    assert _delta(before, scrape(url), "gateway_upstream_errors_total",
                  upstream="upstream", kind="broken_body") == 1


def test_model_labels_are_bounded(monkeypatch):
    monkeypatch.setattr(metrics, "_models", set())
    monkeypatch.setattr(metrics, "_served_ids", frozenset({"a", "b", "c", "x" * 101}))
    monkeypatch.setattr(metrics, "_served_at", time.monotonic())
    monkeypatch.setattr(metrics, "MAX_MODEL_LABELS", 2)
    assert [metrics._model_label(m) for m in ("a", "b", "c", "a", None, "made-up", "x" * 101)] \
        == ["a", "b", "other", "a", "", "other", "other"]


def test_made_up_model_names_keep_metrics_small(gateway):
    """Unknown names are routed to the default backend and served, but their metrics are
    one "other" label: 500 long made-up names do not grow /metrics by megabytes."""
    url, _ = gateway
    requests.post(url + CHAT, json={"model": "echo-1", "messages": [
        {"role": "user", "content": "hi"}]}, timeout=10).raise_for_status()
    size = len(requests.get(url + "/metrics", timeout=10).content)
    before = scrape(url)
    session = requests.Session()
    for i in range(500):
        r = session.post(url + "/v1/completions", timeout=10, json={
            "model": f"made-up-{i}-" + "m" * 200, "prompt": "x", "max_tokens": 1})
        assert r.status_code == 200
    _eventually(lambda: _delta(before, scrape(url), "gateway_requests_total",
                               route="/v1/completions") == 500)
    after = requests.get(url + "/metrics", timeout=10)
    assert len(after.content) - size < 20_000, f"/metrics grew by {len(after.content) - size} B"
    assert "made-up" not in after.text
    assert _delta(before, scrape(url), "gateway_requests_total", route="/v1/completions",
                  model="other") == 500
    assert value(scrape(url), "gateway_requests_total", model="echo-1") >= 1  # served: named
