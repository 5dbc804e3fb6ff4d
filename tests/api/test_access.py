"""Issue 11 §3, access control without holes: model allow-lists on the routed model, /restart
behind the admin key, limit identities that cannot be made up, forwarded addresses from
trusted proxies only, and the Helios contract never refused by a general limit."""

from __future__ import annotations

import time

import pytest
import requests

from service import create_app
from service.keys import KeySpec
from tests.conftest import make_settings, serve
from tests.support.config import assert_rejected
from tests.support.helios import SEED_PYTHON, assert_helios_error, helios_app
from tests.support.loopback import session_from

ADMIN = "admin-secret-for-access-tests"
STATIC = "sk-static-access-test-0123456789abcdefghijklmnop"
CHAT = [{"role": "user", "content": "a b"}]


def _key(app, **spec) -> str:
    return app.extensions["auth"].create_key(KeySpec(**spec))[1]


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


# ---- 1. the allow-list applies to the model a request is served by ---------------------
# The stand-in's first model, echo-1, is the default: a body that names no usable
# ``model`` is served by it, whatever else it says.
BYPASSES = [
    ("/v1/chat/completions", {"name": "tools", "messages": CHAT}, "openai"),
    ("/v1/chat/completions", {"model": "", "name": "tools", "messages": CHAT}, "openai"),
    ("/v1/chat/completions", {"name": "tools", "messages": CHAT, "stream": True}, "openai"),
    ("/v1/completions", {"name": "tools", "prompt": "x"}, "openai"),
    ("/v1/embeddings", {"model": "", "name": "tools", "input": "x"}, "openai"),
    ("/v1/responses", {"name": "tools", "input": "x"}, "openai"),
    ("/v1/responses", {"model": "", "input": "x", "stream": True}, "openai"),
    # Ollama's routes demand ``model`` (400 without): the same check, by the routed name
    ("/api/chat", {"model": "echo-1:latest", "name": "tools", "messages": CHAT}, "ollama"),
    ("/api/generate", {"model": "echo-1", "name": "tools", "prompt": "x"}, "ollama"),
    ("/api/generate", {"model": "echo-1", "prompt": ""}, "ollama"),  # load only
    ("/api/embed", {"model": "echo-1", "name": "tools", "input": "x"}, "ollama"),
    ("/api/embeddings", {"model": "echo-1", "name": "tools", "prompt": "x"}, "ollama"),
    ("/api/show", {"model": "echo-1", "name": "tools"}, "ollama"),
    ("/complete", dict(SEED_PYTHON, model="tools"), "helios"),
    ("/complete", dict(SEED_PYTHON, name="tools"), "helios"),
    ("/infill", {"name": "tools", "input_prefix": "x"}, "llamacpp"),
    ("/infill", {"model": "", "input_prefix": "x", "stream": True}, "llamacpp"),
    # Anthropic's routes demand a non-empty ``model``: the check is on the routed name
    ("/v1/messages", {"model": "echo-1", "name": "tools", "max_tokens": 5, "messages": CHAT},
     "anthropic"),
    ("/v1/messages/count_tokens", {"model": "echo-1", "name": "tools", "messages": CHAT},
     "anthropic"),
]


@pytest.fixture
def keyed(upstream, tmp_path):
    """(url, app, upstream): auth on (a static key), stored keys via _key."""
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   api_keys=STATIC, admin_api_key=ADMIN,
                                   models_cache_seconds=0))
    with serve(app) as url:
        yield url, app, upstream


@pytest.mark.parametrize("path,body,family", BYPASSES,
                         ids=[f"{p}-{n}" for n, (p, _, _) in enumerate(BYPASSES)])
def test_allow_list_is_checked_against_the_routed_model(keyed, path, body, family):
    url, app, upstream = keyed
    secret = _key(app, allowed_models=["tools"])
    calls = sum(upstream.state.calls.values())
    r = requests.post(url + path, json=body, headers=_bearer(secret), timeout=30)
    assert r.status_code == 403, r.text
    if family == "openai":
        assert r.json()["error"]["code"] == "permission_denied"
        assert "'echo-1'" in r.json()["error"]["message"]
    elif family == "ollama":
        assert r.json() == {"error": "this API key may not use the model 'echo-1'"}
    elif family == "llamacpp":
        assert r.json()["error"] == {"code": 403, "type": "permission_error",
                                     "message": "this API key may not use the model 'echo-1'"}
    elif family == "anthropic":
        assert r.json() == {"type": "error", "error": {
            "type": "permission_error", "message": "this API key may not use the model 'echo-1'"}}
    else:
        assert "'echo-1'" in assert_helios_error(r, 403, "FORBIDDEN")["detail"]
    assert sum(upstream.state.calls.values()) == calls  # refused before any upstream call


def test_allow_list_admits_the_models_it_names_on_every_route(keyed):
    url, app, _ = keyed
    h = _bearer(_key(app, allowed_models=["echo-1"]))
    for path, body in [("/v1/chat/completions", {"messages": CHAT}),
                       ("/v1/completions", {"model": "echo-1", "prompt": "x"}),
                       ("/v1/embeddings", {"model": "echo-1", "input": "x"}),
                       ("/api/chat", {"model": "echo-1:latest", "messages": CHAT,
                                      "stream": False}),
                       ("/api/generate", {"model": "echo-1", "prompt": "x", "stream": False}),
                       ("/api/embed", {"model": "echo-1", "input": "x"}),
                       ("/api/embeddings", {"model": "echo-1", "prompt": "x"}),
                       ("/api/show", {"model": "echo-1"}),
                       ("/complete", SEED_PYTHON),
                       ("/infill", {"input_prefix": "x"}),
                       ("/v1/messages", {"model": "echo-1", "max_tokens": 5, "messages": CHAT}),
                       ("/v1/messages/count_tokens", {"model": "echo-1", "messages": CHAT})]:
        r = requests.post(url + path, json=body, headers=h, timeout=30)
        assert r.status_code == 200, (path, r.text)
    for path, body in [("/api/show", {"model": "tools"}), ("/api/show", {"name": "tools"})]:
        r = requests.post(url + path, json=body, headers=h, timeout=30)
        assert r.status_code == 403 and "'tools'" in r.json()["error"]


def test_a_model_route_that_skips_the_check_fails_closed(upstream, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   api_keys=STATIC))
    # A route added to a model family without Gateway.route (as a future one might be).
    app.add_url_rule("/v1/unchecked", endpoint="openai.unchecked", methods=["POST"],
                     view_func=lambda: {"ok": True})
    with serve(app) as url:
        restricted = _bearer(_key(app, allowed_models=["echo-1"]))
        r = requests.post(url + "/v1/unchecked", json={}, headers=restricted)
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
        assert requests.post(url + "/v1/unchecked", json={},
                             headers=_bearer(STATIC)).status_code == 200


# ---- 3. /restart needs the admin key once auth is on ------------------------------------
def test_restart_needs_the_admin_key_when_auth_is_on(upstream, tmp_path):
    with helios_app(lm_studio_base_url=upstream.url, data_dir=tmp_path, api_keys=STATIC,
                    admin_api_key=ADMIN) as (url, _):
        assert_helios_error(requests.post(url + "/restart"), 401, "UNAUTHORIZED")
        model_key = requests.post(url + "/restart", headers=_bearer(STATIC))
        assert "ADMIN_API_KEY" in assert_helios_error(model_key, 401, "UNAUTHORIZED")["detail"]
        r = requests.post(url + "/restart", headers=_bearer(ADMIN))
        assert r.status_code == 200 and r.json() == {"message": "Server restart initiated"}
        for path in ("/health", "/status", "/healthz", "/readyz", "/metrics"):
            assert requests.get(url + path).status_code not in (401, 403), path
    with helios_app(lm_studio_base_url=upstream.url, data_dir=tmp_path / "b",
                    api_keys=STATIC) as (url, _):  # auth on, no admin key: nobody
        r = requests.post(url + "/restart", headers=_bearer(STATIC))
        assert "ADMIN_API_KEY" in assert_helios_error(r, 403, "FORBIDDEN")["detail"]


def test_restart_stays_open_on_loopback_without_keys(upstream, tmp_path):
    with helios_app(lm_studio_base_url=upstream.url, data_dir=tmp_path) as (url, _):
        assert requests.post(url + "/restart").status_code == 200


# ---- 4. Helios limit identities: a validated key or the address ------------------------
HELIOS_SLOW = {"helios_rate_limit_per_second": 0.1, "helios_rate_limit_burst": 5,
               "helios_max_concurrent": 50}  # 5 per 50 s: exact counts on a slow machine


def test_made_up_bearers_do_not_make_new_helios_clients(upstream, tmp_path):
    with helios_app(lm_studio_base_url=upstream.url, data_dir=tmp_path, helios_model="echo-1",
                    **HELIOS_SLOW) as (url, _):
        codes = [requests.post(url + "/complete", json=SEED_PYTHON, timeout=30,
                               headers=_bearer(f"junk-{n}")).status_code for n in range(12)]
        assert codes == [200] * 5 + [429] * 7
        # another address is another client
        assert session_from("127.0.0.2").post(url + "/complete", json=SEED_PYTHON,
                                              timeout=30).status_code == 200


def test_each_validated_key_is_its_own_helios_client(upstream, tmp_path):
    with helios_app(lm_studio_base_url=upstream.url, data_dir=tmp_path, helios_model="echo-1",
                    api_keys=STATIC, **HELIOS_SLOW) as (url, app):
        other = _key(app)
        a = [requests.post(url + "/complete", json=SEED_PYTHON, headers=_bearer(STATIC),
                           timeout=30).status_code for _ in range(6)]
        assert a == [200] * 5 + [429]
        assert requests.post(url + "/complete", json=SEED_PYTHON, headers=_bearer(other),
                             timeout=30).status_code == 200


# ---- 5. X-Forwarded-For only from configured proxies ------------------------------------
def test_forwarded_for_is_believed_from_trusted_proxies_only(upstream, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   rate_limit_per_ip=2, forwarded_allow_ips="127.0.0.1"))
    with serve(app) as url:
        models = url + "/v1/models"
        # 127.0.0.1 is the trusted proxy: the clients it names are counted apart
        for client in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"):
            assert requests.get(models, headers={"X-Forwarded-For": client}).status_code == 200
        r = requests.get(models, headers={"X-Forwarded-For": "10.0.0.1"})
        assert r.status_code == 429
        # ... after a forged entry, the proxy's own (rightmost) entry counts
        forged = {"X-Forwarded-For": "10.9.9.9, 10.0.0.1"}
        assert requests.get(models, headers=forged).status_code == 429
        # 127.0.0.2 is not a proxy: whatever it forwards, it is one client
        direct = session_from("127.0.0.2")
        codes = [direct.get(models, headers={"X-Forwarded-For": f"10.1.0.{n}"}).status_code
                 for n in range(3)]
        assert codes == [200, 200, 429]


def test_forwarded_allow_ips_is_validated(monkeypatch):
    assert_rejected(monkeypatch, {"FORWARDED_ALLOW_IPS": "127.0.0.1,nginx"},
                    "FORWARDED_ALLOW_IPS")


# ---- 6. a client within the Helios contract is never refused by another limit ----------
def test_an_editor_within_the_helios_contract_is_not_refused_by_the_per_ip_limit(
        upstream, tmp_path):
    # Helios defaults (10/s, bursts of 20); the general per-IP limit is 30/minute here
    # (100 by default) and must not count /complete. 8 requests/s, paced after each answer.
    with helios_app(lm_studio_base_url=upstream.url, data_dir=tmp_path, helios_model="echo-1",
                    rate_limit_per_ip=30) as (url, _):
        session = requests.Session()
        codes = []
        for _ in range(40):
            codes.append(session.post(url + "/complete", json=SEED_PYTHON,
                                      timeout=30).status_code)
            time.sleep(1 / 8)
        assert codes == [200] * 40
        for _ in range(30):  # the per-IP limit still holds for the other model routes
            session.get(url + "/v1/models")
        assert session.get(url + "/v1/models").status_code == 429


def test_a_keyed_editor_within_the_helios_contract_is_not_refused_by_the_key_default(
        upstream, tmp_path):
    with helios_app(lm_studio_base_url=upstream.url, data_dir=tmp_path, helios_model="echo-1",
                    api_keys=STATIC, rate_limit_per_key=10, helios_rate_limit_per_second=1000,
                    helios_rate_limit_burst=1000) as (url, app):
        h = _bearer(STATIC)
        codes = [requests.post(url + "/complete", json=SEED_PYTHON, headers=h,
                               timeout=30).status_code for _ in range(25)]
        assert codes == [200] * 25
        own = _bearer(_key(app, requests_per_minute=3))  # a key's own limit still applies
        codes = [requests.post(url + "/complete", json=SEED_PYTHON, headers=own,
                               timeout=30).status_code for _ in range(4)]
        assert codes == [200] * 3 + [429]
