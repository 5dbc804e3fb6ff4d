"""``/readyz``: 200 only when every configured backend (and registered dependency) is
usable, else 503 naming what is not; probes are cached; ``/healthz`` checks nothing."""

from __future__ import annotations

import pytest
import requests

from service import create_app
from service.readiness import CachedCheck, add_readiness_check
from tests.conftest import make_settings, serve
from tests.support.procs import free_port


def test_ready_with_a_live_upstream(upstream):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, local_preload=False))
    with serve(app) as url:
        r = requests.get(url + "/readyz")
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ready",
                            "checks": {"provider:openai": "ok", "provider:local": "ok"}}


def test_not_ready_names_the_dead_upstream_and_healthz_stays_up():
    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app(make_settings(lm_studio_base_url=dead, local_preload=False,
                                   request_max_retries=0))
    with serve(app) as url:
        r = requests.get(url + "/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not ready" and body["not_ready"] == ["provider:openai"]
        assert "could not connect to upstream" in body["checks"]["provider:openai"]
        assert body["checks"]["provider:local"] == "ok"
        assert requests.get(url + "/healthz").json() == {"status": "ok"}


def test_internal_api_probe_accepts_any_answer_but_not_a_refused_connection(upstream):
    # the stand-in answers GET / with 404: the service is up, so ready
    app = create_app(make_settings(internal_completions_url=upstream.url + "/v1/completions",
                                   local_preload=False))
    with serve(app) as url:
        assert requests.get(url + "/readyz").json()["checks"]["provider:internal"] == "ok"
    dead = create_app(make_settings(internal_completions_url=f"http://127.0.0.1:{free_port()}/c",
                                    local_preload=False, request_max_retries=0))
    with serve(dead) as url:
        assert requests.get(url + "/readyz").json()["not_ready"] == ["provider:internal"]


def test_modules_add_their_own_checks(upstream):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, local_preload=False))
    state = {"db": "database unreachable: connection refused"}
    add_readiness_check(app, "database", lambda: state["db"])
    add_readiness_check(app, "broken", lambda: 1 / 0)
    with pytest.raises(ValueError):
        add_readiness_check(app, "database", lambda: None)
    with serve(app) as url:
        r = requests.get(url + "/readyz")
        assert r.status_code == 503
        assert r.json()["not_ready"] == ["broken", "database"]
        assert r.json()["checks"]["database"] == "database unreachable: connection refused"
        assert r.json()["checks"]["broken"].startswith("check failed: ZeroDivisionError")


def test_cached_check_probes_once_per_ttl():
    now = [100.0]
    calls = []

    def probe():
        calls.append(now[0])
        return None if len(calls) == 1 else "down"

    check = CachedCheck(probe, ttl=10, clock=lambda: now[0])
    assert check() is None and check() is None and len(calls) == 1
    now[0] += 9.9
    assert check() is None and len(calls) == 1
    now[0] += 0.2
    assert check() == "down" and len(calls) == 2


def test_upstream_probe_is_cached(upstream):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, local_preload=False,
                                   readiness_cache_seconds=60, models_cache_seconds=0))
    with serve(app) as url:
        assert requests.get(url + "/readyz").status_code == 200
        upstream.shutdown()
        upstream.server_close()
        # within the cache period the last answer stands, without asking the upstream
        assert requests.get(url + "/readyz").status_code == 200
