"""Every Helios error code from real failures, in the seed's body."""

from __future__ import annotations

import pytest
import requests
from flask import request

from service.core import errors
from tests.support.helios import SEED_PYTHON, assert_helios_error, helios_app
from tests.support.procs import free_port


def complete_with(up, model: str, **settings):
    with helios_app(lm_studio_base_url=up.url, helios_model=model, request_max_retries=0,
                    **settings) as (url, _):
        return requests.post(url + "/complete", json=SEED_PYTHON, timeout=20)


def test_backend_unreachable_is_model_not_loaded():
    dead = f"http://127.0.0.1:{free_port()}"
    with helios_app(lm_studio_base_url=dead, helios_model="gone", request_max_retries=0) as (url, _):
        r = requests.post(url + "/complete", json=SEED_PYTHON, timeout=20)
        err = assert_helios_error(r, 503, "MODEL_NOT_LOADED")
        assert "unreachable" in err["detail"] or "connect" in err["detail"].lower(), err


def test_unknown_model_upstream_is_model_not_loaded(up):
    err = assert_helios_error(complete_with(up, "missing"), 503, "MODEL_NOT_LOADED")
    assert "missing" in err["detail"]


@pytest.mark.parametrize("model,message", [
    ("always-500", "upstream exploded"),   # the upstream's own message is kept
    ("stream-error", "backend crashed"),   # a failure after generation started
    ("badevent", "non-JSON"),
])
def test_generation_failures_are_completion_failed(up, model, message):
    err = assert_helios_error(complete_with(up, model), 500, "COMPLETION_FAILED")
    assert message in err["detail"], err


def test_upstream_rate_limit_is_server_overloaded(up):
    r = complete_with(up, "always-429")
    assert_helios_error(r, 429, "SERVER_OVERLOADED")
    assert r.headers["Retry-After"] == "7"


def test_local_model_busy_is_server_overloaded():
    """The local model's own queue is full: 429, not a 503 'not loaded'."""
    with helios_app(local_max_queue=0, local_max_wait_seconds=0) as (url, app):
        provider = app.extensions["gateway"].router.by_name("local")
        provider.gate.hold()  # a generation in flight holds the model
        try:
            r = requests.post(url + "/complete", json=dict(SEED_PYTHON, max_tokens=2), timeout=20)
        finally:
            provider.gate.release()
        assert_helios_error(r, 429, "SERVER_OVERLOADED")
        assert r.headers["Retry-After"] == "1"


@pytest.mark.parametrize("key,status,code", [
    (None, 401, "UNAUTHORIZED"),
    ("user-key", 403, "FORBIDDEN"),
])
def test_auth_errors_render_in_helios_format(up, key, status, code):
    """How the API-keys feature will fail requests: errors raised before the view."""
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1") as (url, app):
        @app.before_request
        def _auth():
            if request.path == "/restart":
                given = request.headers.get("Authorization")
                if given is None:
                    raise errors.AuthenticationFailed("missing API key")
                if given != "Bearer admin-key":
                    raise errors.PermissionDenied("/restart needs an admin key")

        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = requests.post(url + "/restart", headers=headers, timeout=10)
        assert_helios_error(r, status, code)
        ok = requests.post(url + "/restart", headers={"Authorization": "Bearer admin-key"},
                           timeout=10)
        assert ok.status_code == 200 and ok.json() == {"message": "Server restart initiated"}
