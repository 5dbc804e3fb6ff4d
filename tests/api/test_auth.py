"""API keys on the model endpoints, through the real clients of each API family."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import ollama
import openai
import pytest
import requests

from service import create_app
from service.api.context import on_request_done
from service.keys import KeySpec
from tests.conftest import make_settings, serve
from tests.support.streams import read_stream as _stream

ADMIN = "admin-secret-for-tests"
STATIC = "sk-static-test-key-0123456789abcdefghijklmnopqrstuv"
CHAT = [{"role": "user", "content": "a b"}]


def _app(upstream, data_dir, **overrides):
    return create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=data_dir,
                                    admin_api_key=ADMIN, models_cache_seconds=0,
                                    request_timeout_seconds=1.5, **overrides))


@pytest.fixture
def gateway(upstream, tmp_path):
    """(url, app) with one static key; stored keys via app.extensions['auth']."""
    app = _app(upstream, tmp_path, api_keys=STATIC)
    with serve(app) as url:
        yield url, app


def _client(url, key, **kw):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, **kw)


def _new_key(app, **spec):
    return app.extensions["auth"].create_key(KeySpec(**spec))


def test_openai_401_for_missing_invalid_revoked_expired_keys(gateway):
    url, app = gateway
    r = requests.post(url + "/v1/chat/completions", json={"model": "echo-1", "messages": CHAT})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key" and "Bearer" in r.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError) as exc:
        _client(url, "sk-wrong").chat.completions.create(model="echo-1", messages=CHAT)
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        _client(url, "sk-wrong").models.list()

    assert _client(url, STATIC).chat.completions.create(
        model="echo-1", messages=CHAT).choices[0].message.content == "echo: a b"
    rec, secret = _new_key(app, name="t")
    assert _client(url, secret).models.list().data[0].id == "echo-1"

    app.extensions["auth"].store.revoke(rec.id)
    later = time.monotonic() + 5.1  # past the lookup cache; the delay is tested below
    app.extensions["auth"].clock = lambda: later
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        _client(url, secret).chat.completions.create(model="echo-1", messages=CHAT)
    _, expired = _new_key(app, expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    with pytest.raises(openai.AuthenticationError, match="expired"):
        _client(url, expired).chat.completions.create(model="echo-1", messages=CHAT)


def test_openai_403_for_a_model_the_key_may_not_use(gateway):
    url, app = gateway
    _, secret = _new_key(app, allowed_models=["echo-1"])
    c = _client(url, secret)
    assert c.completions.create(model="echo-1", prompt="x").choices[0].text == "echo: x"
    with pytest.raises(openai.PermissionDeniedError) as exc:
        c.chat.completions.create(model="tools", messages=CHAT)
    assert exc.value.status_code == 403 and "'tools'" in exc.value.message
    # no model: checked against the default the request is served by (echo-1 here)
    assert c.chat.completions.create(model="", messages=CHAT).model == "echo-1"
    _, other = _new_key(app, allowed_models=["tools"])
    with pytest.raises(openai.PermissionDeniedError, match="'echo-1'"):
        _client(url, other).chat.completions.create(model="", messages=CHAT)


def test_revocation_reaches_another_instance_within_the_cache_ttl(upstream, tmp_path):
    a = _app(upstream, tmp_path)
    rec, secret = _new_key(a, name="shared")
    b = _app(upstream, tmp_path)  # a second instance on the same database
    now = [1000.0]
    b.extensions["auth"].clock = lambda: now[0]
    with serve(b) as url_b:
        c = _client(url_b, secret)
        c.models.list()  # b caches the key
        a.extensions["auth"].store.revoke(rec.id)
        now[0] += 4.9
        c.models.list()  # still cached on b: within AUTH_CACHE_SECONDS (5 s)
        now[0] += 0.2
        with pytest.raises(openai.AuthenticationError, match="revoked"):
            c.models.list()


def test_ollama_clients_get_401_and_403(gateway):
    url, app = gateway
    _, secret = _new_key(app, allowed_models=["echo-1"])
    with pytest.raises(ollama.ResponseError) as exc:
        ollama.Client(host=url).chat(model="echo-1", messages=CHAT)
    assert exc.value.status_code == 401
    with pytest.raises(ollama.ResponseError) as denied:
        ollama.Client(host=url, headers={"Authorization": f"Bearer {secret}"}).chat(
            model="tools", messages=CHAT)
    assert denied.value.status_code == 403
    assert exc.value.error == "missing API key: send 'Authorization: Bearer <key>'"
    assert denied.value.error == "this API key may not use the model 'tools'"


def test_helios_complete_gets_401(gateway):
    url, _ = gateway
    r = requests.post(url + "/complete", json={"prompt": "def f(", "max_tokens": 4})
    assert r.status_code == 401
    body = r.json()
    assert body["error_code"] == "UNAUTHORIZED" and body["detail"] and body["timestamp"]


def test_health_and_discovery_stay_open(gateway):
    url, _ = gateway
    assert requests.get(url + "/healthz").status_code == 200
    assert requests.get(url + "/").status_code != 401
    assert requests.get(url + "/api/version").status_code != 401
    assert requests.get(url + "/api/tags").status_code == 401


def test_auth_turns_on_with_the_first_stored_key(upstream, tmp_path):
    app = _app(upstream, tmp_path)
    with serve(app) as url:
        assert _client(url, "anything").models.list().data  # no key anywhere: open (loopback)
        rec, secret = _new_key(app)
        with pytest.raises(openai.AuthenticationError):
            _client(url, "anything").models.list()
        app.extensions["auth"].store.revoke(rec.id)  # revoking the last key keeps auth on
        with pytest.raises(openai.AuthenticationError):
            _client(url, "anything").models.list()
    forced = _app(upstream, tmp_path / "empty", require_auth=True)
    with serve(forced) as url:
        with pytest.raises(openai.AuthenticationError):
            _client(url, "anything").models.list()


def test_usage_rows_and_counters(gateway, caplog):
    url, app = gateway
    finished = threading.Semaphore(0)
    on_request_done(app, lambda record: finished.release())  # runs after the usage hook
    rec, secret = _new_key(app, name="metered")
    c = _client(url, secret, default_headers={"X-Request-ID": "usage-1"})
    with caplog.at_level(logging.INFO):
        c.chat.completions.create(model="echo-1", messages=CHAT)
        assert finished.acquire(timeout=10)
        streamed = _stream(url, secret, stream_options={"include_usage": True})
        assert '"completion_tokens":3' in streamed and streamed.endswith("data: [DONE]\n\n")
        assert finished.acquire(timeout=10)
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="always-500", messages=CHAT)
        _client(url, STATIC).completions.create(model="echo-1", prompt="q")
        with pytest.raises(openai.AuthenticationError):  # refused: no usage row
            _client(url, "sk-nope").completions.create(model="echo-1", prompt="q")
        for _ in range(3):
            assert finished.acquire(timeout=10)
        assert app.extensions["usage"].flush()
    from sqlalchemy import select

    from service.db import usage

    with app.extensions["db"].engine.connect() as conn:
        rows = [r._mapping for r in conn.execute(select(usage).order_by(usage.c.id))]
    assert [(r["key_id"], r["model"], r["status"], r["stream"]) for r in rows] == [
        (rec.id, "echo-1", 200, False), (rec.id, "echo-1", 200, True),
        (rec.id, "always-500", 502, False), (rows[3]["key_id"], "echo-1", 200, False)]
    assert rows[3]["key_id"].startswith("static-")
    assert rows[0]["request_id"] == "usage-1" and rows[0]["family"] == "openai"
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (5, 3)
    assert rows[1]["ttft_ms"] is not None and rows[0]["ttft_ms"] is None
    assert rows[2]["error_code"] == "upstream_error" and rows[2]["provider"] == "openai"
    assert all(r["duration_ms"] > 0 and r["day"] == r["ts"].date().isoformat() for r in rows)
    key = app.extensions["auth"].store.get(rec.id)
    assert (key.request_count, key.prompt_tokens, key.completion_tokens) == (3, 10, 6)
    assert key.last_used_at is not None
    assert secret not in caplog.text and STATIC not in caplog.text
    assert any(getattr(r, "key_id", None) == rec.id for r in caplog.records)
