"""The admin endpoints the console uses: edit limits, request rows, percentiles, CSV, status."""

from __future__ import annotations

import csv
import io
import threading

import openai
import pytest
import requests

from service import create_app
from service.api.context import on_request_done
from service.usage_stats import percentiles
from tests.conftest import make_settings, serve

ADMIN = {"Authorization": "Bearer admin-secret-for-tests"}


@pytest.fixture
def gateway(upstream, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   admin_api_key="admin-secret-for-tests",
                                   auth_cache_seconds=0))
    with serve(app) as url:
        yield app, url


def test_edit_limits_with_field_errors(gateway):
    app, url = gateway
    key_id = requests.post(url + "/admin/keys", headers=ADMIN, json={"name": "a"}).json()["id"]
    r = requests.patch(url + f"/admin/keys/{key_id}", headers=ADMIN, json={
        "requests_per_minute": 7, "allowed_models": ["echo-1"], "tier": "team"})
    assert r.status_code == 200, r.text
    assert r.json() | {"requests_per_minute": 7, "allowed_models": ["echo-1"],
                       "tier": "team"} == r.json()
    r = requests.patch(url + f"/admin/keys/{key_id}", headers=ADMIN,
                       json={"requests_per_minute": None})
    assert r.json()["requests_per_minute"] is None and r.json()["tier"] == "team"
    for body, param in [({"tokens_per_minute": -1}, "tokens_per_minute"),
                        ({"allowed_models": []}, "allowed_models"),
                        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
                        ({"name": "renamed"}, "name")]:
        r = requests.patch(url + f"/admin/keys/{key_id}", headers=ADMIN, json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)
    assert requests.patch(url + "/admin/keys/key_nope", headers=ADMIN,
                          json={"tier": "x"}).status_code == 404
    assert requests.patch(url + f"/admin/keys/{key_id}",
                          json={"tier": "x"}).status_code == 401


def test_request_rows_percentiles_csv_and_status(gateway):
    app, url = gateway
    done = threading.Semaphore(0)
    on_request_done(app, lambda record: done.release())
    secret = requests.post(url + "/admin/keys", headers=ADMIN, json={"name": "b"}).json()["key"]
    assert done.acquire(timeout=10)  # each request's hooks run after its response
    client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="echo-1", messages=[{"role": "user", "content": "x"}])
        assert done.acquire(timeout=10)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="always-500",
                                       messages=[{"role": "user", "content": "x"}])
    assert done.acquire(timeout=10)
    assert app.extensions["usage"].flush()

    slowest = requests.get(url + "/admin/usage/requests", headers=ADMIN,
                           params={"order": "slowest", "limit": 2}).json()["data"]
    assert len(slowest) == 2 and slowest[0]["duration_ms"] >= slowest[1]["duration_ms"]
    failing = requests.get(url + "/admin/usage/requests", headers=ADMIN,
                           params={"order": "failing"}).json()["data"]
    assert len(failing) == 1 and failing[0]["status"] >= 500 and failing[0]["request_id"]

    latency = requests.get(url + "/admin/usage/latency", headers=ADMIN).json()
    assert latency["overall"]["requests"] == 4
    assert latency["by_model"]["echo-1"]["duration_ms"]["p50"] > 0

    r = requests.get(url + "/admin/usage", headers=ADMIN, params={"format": "csv"})
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sum(int(row["requests"]) for row in rows) == 4
    r = requests.get(url + "/admin/usage/requests", headers=ADMIN,
                     params={"format": "csv", "limit": 100})
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 4
    for params in ({"format": "xml"}, {"order": "fastest"}, {"hours": "a day"},
                   {"limit": "0"}):
        r = requests.get(url + "/admin/usage/requests", headers=ADMIN, params=params)
        assert r.status_code == 400 and r.json()["error"]["param"] == next(iter(params))

    status = requests.get(url + "/admin/status", headers=ADMIN).json()
    # in_flight is process-wide (other tests' servers share this process): only its type here
    assert status["readiness"]["checks"] and isinstance(status["in_flight"], int)
    assert status["rate_limit_refusals_last_hour"] == 0


def test_refusals_in_the_last_hour(upstream, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   admin_api_key="admin-secret-for-tests"))
    with serve(app) as url:
        secret = requests.post(url + "/admin/keys", headers=ADMIN,
                               json={"requests_per_minute": 1}).json()["key"]
        auth = {"Authorization": f"Bearer {secret}"}
        codes = [requests.get(url + "/v1/models", headers=auth).status_code for _ in range(3)]
        assert codes == [200, 429, 429]
        status = requests.get(url + "/admin/status", headers=ADMIN).json()
        assert status["rate_limit_refusals_last_hour"] == 2


def test_percentiles_nearest_rank():
    assert percentiles([]) == {"p50": None, "p90": None, "p95": None, "p99": None}
    assert percentiles(range(1, 101)) == {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
    assert percentiles([5.0])["p99"] == 5.0


def test_console_is_served_with_a_strict_policy(gateway):
    _, url = gateway
    r = requests.get(url + "/console", allow_redirects=False)
    assert r.status_code == 308 and r.headers["Location"].endswith("/console/")
    r = requests.get(url + "/console/")
    assert r.ok and "Gateway console" in r.text
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "http" not in r.text.split("<body>")[0]  # no CDN: every asset is local
    for asset in ("console.js", "chart.js", "console.css"):
        assert requests.get(url + "/console/" + asset).ok
    assert requests.get(url + "/console/../service/settings.py").status_code == 404
