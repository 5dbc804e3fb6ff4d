"""Fuzz: generated hostile bodies at every route of every family (issue 11 §4).

Two apps: one fronting the stand-in upstream (with API keys and the admin API
on, so auth and /admin are exercised too) and the session's local-model app.
Every answer must be no 5xx but the deliberate 502/503/504 (and Helios's
seed-defined 500 COMPLETION_FAILED for a failed backend), and every error,
whole-body or mid-stream, must be in the family's own format. Derandomized and
without an example database, so CI runs the same examples every time.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from service import create_app
from tests.conftest import make_settings, serve
from tests.support import fuzz
from tests.support.upstream import start_upstream

KEY, ADMIN_KEY = "fuzz-key", "fuzz-admin-key"
INTERNAL = "internal error (request id"  # the generic 500's message: an unhandled exception
DELIBERATE = {502, 503, 504}


def _settings(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def upstream_app(tmp_path_factory):
    """The gateway fronting the stand-in, keys and admin API on, its own database."""
    up = start_upstream()
    app = create_app(make_settings(
        lm_studio_base_url=up.url, request_timeout_seconds=1.5, models_cache_seconds=0,
        api_keys=KEY, admin_api_key=ADMIN_KEY, helios_rate_limit_per_second=0,
        rate_limit_per_key=0, tokens_per_minute_per_key=0,
        request_max_retries=0,  # always-429 says Retry-After: 7; retries are tested elsewhere
        data_dir=tmp_path_factory.mktemp("fuzz-data")))
    with serve(app) as url:
        yield url
    app.extensions["helios"].lifecycle.join(30)
    app.extensions["gateway"].close()
    up.shutdown()
    up.server_close()


# Names the stand-in scripts (failures included), the local model's id, junk.
_UPSTREAM_MODELS = st.one_of(st.sampled_from(
    ["echo-1", "tools", "upstream-model", "always-500", "always-429", "auth-fail", "missing",
     "nonjson", "cut", "stream-error", "badevent", "truncated", "jsonstream", "nofinish",
     "abortfinish", "flaky-1", ""]), fuzz.texts)
_LOCAL_MODELS = st.one_of(st.sampled_from(["smollm2-135m-instruct", "", "other"]), fuzz.texts)

_BODY_ROUTES = {
    "openai-chat": fuzz.openai_chat, "openai-completions": fuzz.openai_completions,
    "openai-embeddings": fuzz.openai_embeddings, "openai-responses": fuzz.openai_responses,
    "ollama-chat": fuzz.ollama_chat, "ollama-generate": fuzz.ollama_generate,
    "ollama-embed": fuzz.ollama_embed, "ollama-embeddings": fuzz.ollama_embeddings,
    "ollama-show": fuzz.ollama_show, "helios-complete": fuzz.helios_complete,
    "llamacpp-infill": fuzz.llamacpp_infill, "anthropic-messages": fuzz.anthropic_messages,
    "anthropic-count-tokens": fuzz.anthropic_count_tokens,
}


def _read_only_routes() -> st.SearchStrategy:
    """Every GET route, with junk query strings and path segments."""
    return st.one_of(
        *(fuzz.get(p) for p in ("/v1/models", "/", "/api/version", "/api/tags", "/api/ps",
                                "/health", "/status", "/healthz", "/readyz", "/metrics",
                                "/v1/model/info", "/console/")),
        fuzz.path_segment().flatmap(lambda m: fuzz.get(f"/v1/models/{m}")),
        fuzz.path_segment().flatmap(lambda r: st.sampled_from([
            fuzz.Call("GET", f"/v1/responses/{r}"), fuzz.Call("DELETE", f"/v1/responses/{r}"),
            fuzz.Call("GET", f"/v1/responses/{r}/input_items")])),
    )


def _admin_routes(key_id: str) -> st.SearchStrategy:
    return st.one_of(
        fuzz.admin_create_key(),
        fuzz.get("/admin/keys", st.fixed_dictionaries({}, optional={
            "include_revoked": st.one_of(st.sampled_from(["true", "false"]), fuzz.texts)})),
        fuzz.path_segment().flatmap(lambda k: st.sampled_from([
            fuzz.Call("GET", f"/admin/keys/{k}"), fuzz.Call("DELETE", f"/admin/keys/{k}"),
            fuzz.Call("POST", f"/admin/keys/{k}/revoke")])),
        fuzz.admin_update_key(key_id),
        fuzz.get("/admin/usage", fuzz.admin_usage_query()),
        fuzz.get("/admin/usage/requests", fuzz.admin_usage_query()),
        fuzz.get("/admin/usage/latency", fuzz.admin_usage_query()),
        fuzz.get("/admin/status"),
        fuzz.post("/restart", fuzz.junk),  # the body is ignored; the route must not care
    )


def _headers(call: fuzz.Call) -> dict:
    key = ADMIN_KEY if call.path.startswith("/admin") or call.path == "/restart" else KEY
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _send(base: str, call: fuzz.Call, headers: dict) -> requests.Response:
    return requests.request(call.method, base + call.url(), data=call.data(), headers=headers,
                            timeout=60)


# ---- the assertions ------------------------------------------------------------------

def _family(path: str) -> str:
    if path.startswith("/api/") or path == "/":
        return "ollama"
    if path in ("/complete", "/health", "/status", "/restart"):
        return "helios"
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path == "/infill":
        return "llamacpp"
    return "openai"  # /v1/*, /admin/*, /healthz, /readyz, /metrics


def _assert_error_shape(family: str, body, where: str) -> None:
    if family in ("openai", "anthropic", "llamacpp"):
        assert isinstance(body, dict) and isinstance(body.get("error"), dict), where
        if family == "anthropic":
            assert body.get("type") == "error", where
        if family == "llamacpp":
            assert isinstance(body["error"].get("code"), int), where
        assert isinstance(body["error"].get("message"), str) and body["error"]["message"], where
        assert isinstance(body["error"].get("type"), str), where
    elif family == "ollama":
        assert isinstance(body, dict) and isinstance(body.get("error"), str), where
        assert body["error"], where
    else:  # seed 001's error body
        assert isinstance(body, dict) and list(body) == ["detail", "error_code", "timestamp"], where
        assert isinstance(body["detail"], str) and isinstance(body["error_code"], str), where
        datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%SZ")


def _stream_errors(resp: requests.Response):
    """Error objects carried inside a 200 stream (SSE events or NDJSON lines)."""
    ctype = resp.headers.get("Content-Type", "")
    if "text/event-stream" in ctype:
        lines = [ln[5:].strip() for ln in resp.text.split("\n") if ln.startswith("data:")]
    elif "ndjson" in ctype:
        lines = [ln for ln in resp.text.split("\n") if ln.strip()]
    else:
        return
    for line in lines:
        if line == "[DONE]":
            continue
        obj = json.loads(line)
        if isinstance(obj, dict) and "error" in obj:
            yield obj


def check(resp: requests.Response, call: fuzz.Call) -> None:
    family = _family(call.path)
    where = f"{resp.status_code} {resp.text[:600]!r}"
    assert INTERNAL not in resp.text, where
    helios_failed = family == "helios" and resp.status_code == 500 and \
        resp.json().get("error_code") == "COMPLETION_FAILED"  # seed 001's own 500
    assert resp.status_code < 500 or resp.status_code in DELIBERATE or helios_failed, where
    if resp.status_code >= 400:
        assert resp.headers.get("Content-Type", "").startswith("application/json"), where
        _assert_error_shape(family, resp.json(), where)
        return
    for err in _stream_errors(resp):
        _assert_error_shape(family, err, where)
    if call.path == "/metrics":
        return
    if resp.headers.get("Content-Type", "").startswith("application/json"):
        resp.json()


# ---- the tests -----------------------------------------------------------------------

@pytest.mark.parametrize("route", sorted(_BODY_ROUTES))
def test_fuzz_upstream_bodies(upstream_app, route):
    @_settings(50)
    @given(call=_BODY_ROUTES[route](False, _UPSTREAM_MODELS))
    def run(call):
        check(_send(upstream_app, call, _headers(call)), call)

    run()


@pytest.fixture(scope="module")
def key_id(upstream_app) -> str:
    """A stored key for the PATCH examples to change (made through the admin API)."""
    r = requests.post(upstream_app + "/admin/keys", json={"name": "fuzz-target"}, timeout=10,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


@pytest.mark.parametrize("routes", [lambda _: _read_only_routes(), _admin_routes],
                         ids=["get", "admin"])
def test_fuzz_upstream_other_routes(upstream_app, key_id, routes):
    @_settings(60)
    @given(call=routes(key_id))
    def run(call):
        check(_send(upstream_app, call, _headers(call)), call)

    run()


@pytest.mark.parametrize("route", sorted(_BODY_ROUTES))
def test_fuzz_local_bodies(local_url, route):
    """The embedded model: few examples, tiny token counts (see ``fuzz._pin_local``)."""
    @_settings(12)
    @given(call=_BODY_ROUTES[route](True, _LOCAL_MODELS))
    def run(call):
        check(_send(local_url, call, {"Content-Type": "application/json"}), call)

    run()


def test_fuzz_local_read_only_routes(local_url):
    @_settings(20)
    @given(call=_read_only_routes())
    def run(call):
        check(_send(local_url, call, {}), call)

    run()
