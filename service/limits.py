"""Rate limits on the model endpoints: requests and tokens per minute, per key.

flask-limiter counts requests in ``RATELIMIT_STORAGE_URI``: ``memory://`` (the
default) counts per *process*, so with N gunicorn workers a key can make up to
N × its limit; ``redis://host:port`` counts exactly across workers and
instances. The limit is the key's ``requests_per_minute``, else
``RATE_LIMIT_PER_KEY`` (100); with auth off it is ``RATE_LIMIT_PER_IP`` per
client address (``service.proxies``: the client, behind a trusted proxy).
``/complete`` is held to its own Helios limit instead of these defaults (a
key's own ``requests_per_minute`` still counts it). Tokens per minute (the
key's ``tokens_per_minute``, else ``TOKENS_PER_MINUTE_PER_KEY``) are counted in the same storage from the real
token counts of finished requests; once a window's tokens are spent, further
requests are refused up front until it resets. Refusals are 429 in the
caller's API format (503 while the storage is unreachable: limits fail closed); limited routes carry ``Retry-After`` and
``X-RateLimit-Limit/Remaining/Reset`` (plus ``…-Tokens`` variants when a token
limit applies).
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from flask import Flask, Response, g, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import RateLimitItemPerMinute
from limits.errors import StorageError

from . import metrics
from .api.context import current_record
from .api.errors import render_error
from .auth import current_key, needs_key
from .core import errors
from .settings import Settings

log = logging.getLogger(__name__)
HELIOS_COMPLETE = "/complete"


class Limits:
    """The flask-limiter extension plus the token-per-minute counter beside it."""

    def __init__(self, app: Flask, settings: Settings):
        self.settings = settings
        self.limiter = Limiter(
            key_func=self._identity,
            application_limits=[ApplicationLimit(self._request_limit, scope="requests",
                                                 exempt_when=self._exempt)],
            storage_uri=settings.ratelimit_storage_uri,
            strategy=settings.ratelimit_strategy,
            key_prefix=settings.ratelimit_key_prefix,
            storage_options={"wrap_exceptions": True},  # StorageError -> 503 below
            # The X-RateLimit-* headers are read from the storage in ``_admit`` (before the
            # view), never after it: flask-limiter's own after-request injection turns a
            # storage that fails mid-request into a 500 and rewrites Retry-After.
            headers_enabled=False,
            # Count unrouted model paths too (flask-limiter skips requests without an endpoint).
            request_identifier=lambda: request.endpoint or request.path,
        )
        self.limiter.init_app(app)

    # ---- requests per minute (flask-limiter) ------------------------------------
    @staticmethod
    def _exempt() -> bool:
        if not needs_key(request.path):
            return True
        # /complete has its own per-client contract (HELIOS_RATE_LIMIT_*: 10/s, bursts of 20,
        # for an editor calling on every keystroke); the general defaults (100/minute) must
        # not refuse a client within it. A key's own requests_per_minute still applies.
        if request.path == HELIOS_COMPLETE:
            key = current_key()
            return key is None or key.requests_per_minute is None
        return False

    @staticmethod
    def _identity() -> str:
        key = current_key()
        return f"key:{key.id}" if key is not None else f"ip:{request.remote_addr}"

    def _request_limit(self) -> str:
        key = current_key()
        if key is None:
            per_minute = self.settings.rate_limit_per_ip
        elif key.requests_per_minute is not None:
            per_minute = key.requests_per_minute
        else:
            per_minute = self.settings.rate_limit_per_key
        return f"{per_minute}/minute" if per_minute else ""

    def request_headers(self) -> dict[str, str]:
        """X-RateLimit-* for this request's limit (reads the storage; may raise StorageError)."""
        current = self.limiter.current_limit
        if current is None:
            return {}
        return {"X-RateLimit-Limit": str(current.limit.amount),
                "X-RateLimit-Remaining": str(current.remaining),
                "X-RateLimit-Reset": str(int(current.reset_at))}

    def refusal(self, exc: RateLimitExceeded) -> Response:
        metrics.rate_limited("requests")
        try:
            headers = self.request_headers()
        except StorageError as down:
            return _storage_down(down)
        reset = int(headers.get("X-RateLimit-Reset", time.time() + 60))
        retry = max(1, reset - int(time.time()))
        response = render_error(errors.RateLimited(
            f"rate limit of {exc.limit.limit.amount} requests per minute reached; "
            f"retry in {retry} s", retry_after=retry))
        response.headers.update(headers)
        return response

    # ---- tokens per minute --------------------------------------------------------
    def token_limit(self) -> Optional[RateLimitItemPerMinute]:
        key = current_key()
        if key is None:
            return None
        per_minute = key.tokens_per_minute
        if per_minute is None:
            per_minute = self.settings.tokens_per_minute_per_key
        return RateLimitItemPerMinute(per_minute) if per_minute else None

    def _ids(self, key_id: str) -> tuple[str, ...]:
        return (self.settings.ratelimit_key_prefix, f"key:{key_id}", "tokens")

    def check_tokens(self, item: RateLimitItemPerMinute, key_id: str) -> None:
        """Refuse up front when this window's tokens are spent."""
        strategy = self.limiter.limiter
        if not strategy.test(item, *self._ids(key_id)):
            reset, _ = strategy.get_window_stats(item, *self._ids(key_id))
            metrics.rate_limited("tokens")
            raise errors.RateLimited(
                f"token limit of {item.amount} tokens per minute reached for this key",
                retry_after=max(1.0, reset - time.time()))

    def spend_tokens(self, item: RateLimitItemPerMinute, key_id: str, tokens: int) -> None:
        if tokens > 0:
            self.limiter.limiter.hit(item, *self._ids(key_id), cost=tokens)

    def token_headers(self, response: Response, item: RateLimitItemPerMinute,
                      key_id: str) -> None:
        reset, remaining = self.limiter.limiter.get_window_stats(item, *self._ids(key_id))
        response.headers["X-RateLimit-Limit-Tokens"] = str(item.amount)
        response.headers["X-RateLimit-Remaining-Tokens"] = str(remaining)
        response.headers["X-RateLimit-Reset-Tokens"] = str(int(reset))


def _storage_down(exc: StorageError) -> Response:
    log.error("rate limit storage unavailable: %s", exc.storage_error)
    return render_error(errors.ServiceUnavailable(
        "the rate limit storage is unavailable; retry shortly", retry_after=1))


def init_app(app: Flask, settings: Settings) -> Limits:
    """Register after ``auth.init_app``: limits need the authenticated key."""
    limits = Limits(app, settings)
    app.extensions["limits"] = limits
    app.register_error_handler(RateLimitExceeded, limits.refusal)
    app.register_error_handler(StorageError, _storage_down)

    @app.before_request
    def _admit():
        if not needs_key(request.path):
            return
        g.rate_headers = limits.request_headers()  # a storage failure here is the same 503
        key = current_key()
        item = limits.token_limit()
        if item is not None:
            g.token_limit = item
            limits.check_tokens(item, key.id)
        current_record().metered = True  # past auth and limits: this request is accounted

    @app.after_request
    def _tokens(response: Response) -> Response:
        response.headers.update(g.get("rate_headers") or {})
        item: Optional[RateLimitItemPerMinute] = g.get("token_limit")
        if item is None:
            return response
        key_id = current_key().id
        record = current_record()
        try:
            limits.token_headers(response, item, key_id)
        except Exception:  # noqa: BLE001 - headers are advisory; the storage may be down
            log.warning("token limit headers unavailable", exc_info=True)
        if record.metered:
            # After the last byte of a stream the final counts are known.
            response.call_on_close(lambda: _spend(item, key_id, record))
        return response

    def _spend(item, key_id, record) -> None:
        try:
            limits.spend_tokens(item, key_id,
                                (record.prompt_tokens or 0) + (record.completion_tokens or 0))
        except Exception:  # noqa: BLE001 - never fail a finished response
            log.exception("could not count tokens against the key's limit")

    return limits
