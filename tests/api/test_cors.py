"""CORS over HTTP: allowed origins get Access-Control-* headers, preflights need no key and
are not rate-limited, other origins are refused in the caller's API format."""

from __future__ import annotations

import pytest
import requests

from service import create_app
from service.cors import origin_patterns
from tests.conftest import make_settings, serve
from tests.support.config import assert_rejected

CLIENT_HEADERS = "authorization, x-api-key, anthropic-version, x-request-id, content-type"


def _preflight(url, path, origin, method="POST"):
    return requests.options(url + path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": CLIENT_HEADERS})


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """Auth on (a static key) and a per-IP limit of 1 request a minute."""
    app = create_app(make_settings(api_keys="sk-cors-test", rate_limit_per_ip=1,
                                   data_dir=tmp_path_factory.mktemp("cors"), local_preload=False))
    with serve(app) as url:
        yield url


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:3000",
                                    "https://localhost", "vscode-webview://1abc2def",
                                    "vscode-file://vscode-app"])
def test_default_origins_get_preflight_headers_without_a_key(keyed, origin):
    r = _preflight(keyed, "/v1/chat/completions", origin)
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == origin
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "x-api-key", "anthropic-version", "x-request-id"} <= allowed
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Origin" in r.headers.get("Vary", "")


def test_preflights_are_not_rate_limited(keyed):
    for _ in range(5):  # the per-IP limit is 1/minute
        r = _preflight(keyed, "/api/chat", "http://localhost:8080")
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers


def test_actual_requests_carry_cors_headers_errors_included(keyed):
    r = requests.get(keyed + "/v1/models", headers={"Origin": "http://localhost:8080"})
    assert r.status_code == 401  # a key is still needed for the request itself
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert "X-Request-ID" in r.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("path,family_field", [("/v1/chat/completions", "error"),
                                               ("/api/chat", "error")])
def test_other_origins_are_refused(keyed, path, family_field):
    r = _preflight(keyed, path, "https://evil.example")
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    assert "CORS_ALLOW_ORIGINS" in str(r.json()[family_field])
    # A "simple" request (no preflight in a browser) is refused too, not run.
    r = requests.post(keyed + path, data="{}", headers={
        "Origin": "https://evil.example", "Content-Type": "text/plain",
        "Authorization": "Bearer sk-cors-test"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers


def test_requests_without_origin_are_unaffected(keyed):
    r = requests.get(keyed + "/healthz")
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_configured_origins_and_wildcard(tmp_path):
    app = create_app(make_settings(cors_allow_origins="https://app.example.com, https://*.corp",
                                   data_dir=tmp_path, local_preload=False))
    with serve(app) as url:
        assert _preflight(url, "/api/tags", "https://app.example.com",
                          "GET").headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert _preflight(url, "/api/tags", "https://ide.corp", "GET").status_code == 200
        assert _preflight(url, "/api/tags", "http://localhost:3000", "GET").status_code == 403
        # The gateway's own origin (its console) is always allowed.
        own = url.removeprefix("http://")
        assert requests.get(url + "/healthz", headers={"Origin": f"http://{own}"}).ok
        behind_proxy = {"Origin": "https://gw.example:8443", "Host": "gw.example"}
        assert requests.get(url + "/healthz", headers=behind_proxy).ok
        other = {"Origin": "https://gw.example:8443", "Host": "other.example"}
        assert requests.get(url + "/healthz", headers=other).status_code == 403
    app = create_app(make_settings(cors_allow_origins="*", data_dir=tmp_path,
                                   local_preload=False))
    with serve(app) as url:
        r = _preflight(url, "/complete", "https://anywhere.example")
        assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"]


def test_origin_patterns():
    assert origin_patterns("*") == "*"
    [p] = origin_patterns("http://localhost:*")
    assert p.match("http://localhost:1234") and not p.match("http://localhost:1/x")
    assert not any(p.match("http://localhost.evil.com") for p in origin_patterns(None))


@pytest.mark.parametrize("value", ["", "localhost:3000", " , "])
def test_bad_origins_setting_names_the_variable(monkeypatch, value):
    assert_rejected(monkeypatch, {"CORS_ALLOW_ORIGINS": value}, "CORS_ALLOW_ORIGINS")
