"""Rate limits: requests and tokens per minute, per key or per IP, 429 in the caller's format."""

from __future__ import annotations

import threading
import time

import ollama
import openai
import pytest
import requests

from service import create_app
from service.api.context import on_request_done
from limits.storage import MemoryStorage

from service.keys import KeySpec
from tests.conftest import make_settings, serve
from tests.support.streams import read_stream as _stream

CHAT = [{"role": "user", "content": "a b"}]


@pytest.fixture
def limited(upstream, tmp_path):
    """(url, app, upstream, finished) with a default of 5 requests/minute per key."""
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   rate_limit_per_key=5, models_cache_seconds=0))
    finished = threading.Semaphore(0)
    on_request_done(app, lambda record: finished.release())
    with serve(app) as url:
        yield url, app, upstream, finished


def _key(app, **spec) -> str:
    return app.extensions["auth"].create_key(KeySpec(**spec))[1]


def _client(url, key):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def test_requests_per_minute_per_key_with_headers(limited):
    url, app, _, _ = limited
    own, default = _key(app, requests_per_minute=3), _key(app)
    c = _client(url, own)
    for remaining in (2, 1, 0):
        r = c.chat.completions.with_raw_response.create(model="echo-1", messages=CHAT)
        assert r.headers["x-ratelimit-limit"] == "3"
        assert r.headers["x-ratelimit-remaining"] == str(remaining)
        assert int(r.headers["x-ratelimit-reset"]) > time.time()
        assert "retry-after" not in r.headers
    with pytest.raises(openai.RateLimitError) as exc:
        c.chat.completions.create(model="echo-1", messages=CHAT)
    err = exc.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded"
    assert "3 requests per minute" in err.message
    assert 1 <= int(err.response.headers["retry-after"]) <= 61
    assert err.response.headers["x-ratelimit-remaining"] == "0"
    with pytest.raises(openai.RateLimitError):  # the limit is per key, across endpoints
        c.models.list()

    d = _client(url, default)
    for _ in range(5):
        d.models.list()
    with pytest.raises(openai.RateLimitError):
        d.models.list()
    assert requests.get(url + "/healthz").status_code == 200  # not a model endpoint
    assert "X-RateLimit-Limit" not in requests.get(url + "/healthz").headers


def test_ollama_callers_get_429(limited):
    url, app, _, _ = limited
    auth = {"Authorization": f"Bearer {_key(app, requests_per_minute=1)}"}
    client = ollama.Client(host=url, headers=auth)
    r = requests.get(url + "/api/tags", headers=auth)
    assert r.status_code != 429 and r.headers["X-RateLimit-Limit"] == "1"
    with pytest.raises(ollama.ResponseError) as exc:
        client.chat(model="echo-1", messages=CHAT)
    assert exc.value.status_code == 429
    assert "1 requests per minute" in exc.value.error


def test_tokens_per_minute_refused_up_front_once_spent(limited):
    url, app, upstream, finished = limited
    key = _key(app, tokens_per_minute=10)
    c = _client(url, key)  # echo-1 costs 5 + 3 tokens
    r = c.chat.completions.with_raw_response.create(model="echo-1", messages=CHAT)
    assert r.headers["x-ratelimit-limit-tokens"] == "10"
    assert finished.acquire(timeout=10)
    assert "echo" in _stream(url, key)  # streamed tokens count too
    assert finished.acquire(timeout=10)
    calls = sum(upstream.state.calls.values())
    with pytest.raises(openai.RateLimitError) as exc:
        c.chat.completions.create(model="echo-1", messages=CHAT)
    assert "10 tokens per minute" in exc.value.message
    assert sum(upstream.state.calls.values()) == calls  # refused before reaching the upstream
    assert int(exc.value.response.headers["retry-after"]) >= 1
    assert exc.value.response.headers["x-ratelimit-remaining-tokens"] == "0"


def test_per_ip_limit_when_auth_is_off(upstream, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   rate_limit_per_ip=2))
    with serve(app) as url:
        c = _client(url, "unused")
        c.models.list()
        c.models.list()
        with pytest.raises(openai.RateLimitError):
            c.models.list()
        assert requests.get(url + "/healthz").status_code == 200


def test_unreachable_limit_storage_is_a_503_not_a_crash(upstream, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   ratelimit_storage_uri="redis://127.0.0.1:1/0"))
    with serve(app) as url:
        _key(app)
        with pytest.raises(openai.InternalServerError) as exc:
            _client(url, _key(app)).models.list()
        assert exc.value.status_code == 503 and exc.value.code == "service_unavailable"
        assert "rate limit storage" in exc.value.message
        assert requests.get(url + "/healthz").status_code == 200


class _DyingStorage(MemoryStorage):
    """In-memory counters that fail every call once ``dead`` is set, as a Redis that
    goes away mid-request does."""

    STORAGE_SCHEME = ["dying"]
    dead = False

    @property
    def base_exceptions(self):
        return ConnectionError

    def _alive(self):
        if _DyingStorage.dead:
            raise ConnectionError("storage went away")

    def incr(self, *args, **kwargs):
        self._alive()
        return super().incr(*args, **kwargs)

    def get(self, *args, **kwargs):
        self._alive()
        return super().get(*args, **kwargs)

    def get_expiry(self, *args, **kwargs):
        self._alive()
        return super().get_expiry(*args, **kwargs)


@pytest.mark.parametrize("path, body, family", [
    ("/v1/chat/completions", {"model": "echo-1", "messages": CHAT}, "openai"),
    ("/api/chat", {"model": "echo-1", "messages": CHAT, "stream": False}, "ollama"),
    ("/v1/chat/completions", {"model": "echo-1", "messages": CHAT, "stream": True}, "openai"),
])
def test_storage_dying_between_the_check_and_the_response(upstream, tmp_path, path, body,
                                                         family):
    """The admitted request is answered (its limit headers were read at admission: no
    storage call after the view, so no 500); the next one is the failed check's 503."""
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   rate_limit_per_ip=50, ratelimit_storage_uri="dying://"))

    @app.before_request  # registered last: runs after the limit check, before the view
    def _storage_dies():
        _DyingStorage.dead = True

    _DyingStorage.dead = False
    with serve(app) as url:
        admitted = requests.post(url + path, json=body, timeout=10)
        app.before_request_funcs[None].remove(_storage_dies)
        refused = requests.post(url + path, json=body, timeout=10)
    _DyingStorage.dead = False
    assert admitted.status_code == 200, admitted.text
    assert admitted.headers["X-RateLimit-Limit"] == "50"
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    err = refused.json()["error"]
    assert "rate limit storage" in (err["message"] if family == "openai" else err)
