"""Rate limits on the model endpoints: requests and tokens per minute, per key.

Both are counted with the ``limits`` library (strategy ``RATELIMIT_STRATEGY``)
in ``RATELIMIT_STORAGE_URI``: ``memory://`` (the default) counts per *process*,
so with N gunicorn workers a key can make up to N × its limit;
``redis://host:port`` counts exactly across workers and instances. The request
limit is the key's ``requests_per_minute``, else ``RATE_LIMIT_PER_KEY`` (100);
with auth off it is ``RATE_LIMIT_PER_IP`` per client address
(``service.proxies``: the client, behind a trusted proxy). ``/complete`` is
held to its own Helios limit instead of these defaults (a key's own
``requests_per_minute`` still counts it). Tokens per minute (the key's
``tokens_per_minute``, else ``TOKENS_PER_MINUTE_PER_KEY``) are counted from the
real token counts of finished requests; once a window's tokens are spent,
further requests are refused up front until it resets. Refusals are 429 in the
caller's API format (503 while the storage is unreachable: limits fail
closed); limited routes carry ``Retry-After`` and
``X-RateLimit-Limit/Remaining/Reset`` (plus ``…-Tokens`` variants when a token
limit applies).
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from flask import Flask, Response, g, request
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import STRATEGIES

from . import metrics
from .api.context import current_record
from .api.errors import render_error
from .auth import current_key, needs_key
from .core import errors
from .settings import Settings

log = logging.getLogger(__name__)
HELIOS_COMPLETE = "/complete"


class Limits:
    """The request and token counters, one ``limits`` strategy over one storage."""

    def __init__(self, settings: Settings):
        self.settings = settings
        # wrap_exceptions: a backend's own errors arrive as StorageError, answered 503.
        self.storage = storage_from_string(settings.ratelimit_storage_uri, wrap_exceptions=True)
        self.strategy = STRATEGIES[settings.ratelimit_strategy](self.storage)
        # Counter keys as flask-limiter named them (an empty prefix left out), so a
        # shared Redis keeps counting across a rolling upgrade.
        prefix = settings.ratelimit_key_prefix
        self._request_prefix = (prefix,) if prefix else ()

    # ---- requests per minute ------------------------------------------------------
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

    def _request_limit(self) -> int:
        """Requests per minute allowed to this request's client; 0 = none."""
        key = current_key()
        if key is None:
            return self.settings.rate_limit_per_ip
        if key.requests_per_minute is not None:
            return key.requests_per_minute
        return self.settings.rate_limit_per_key

    def check_requests(self) -> tuple[dict[str, str], Optional[Response]]:
        """Count this request: its X-RateLimit-* headers, and the 429 if it is over.

        Raises StorageError when the storage is unreachable (answered 503).
        """
        if self._exempt():
            return {}, None
        per_minute = self._request_limit()
        if not per_minute:
            return {}, None
        item = RateLimitItemPerMinute(per_minute)
        identity = self._identity()
        ids = (*self._request_prefix, identity, "requests")
        admitted = self.strategy.hit(item, *ids)
        if not admitted:
            log.info("rate limit of %s requests per minute exceeded by %s", per_minute, identity)
            metrics.rate_limited("requests")
        reset, remaining = self.strategy.get_window_stats(item, *ids)
        headers = {"X-RateLimit-Limit": str(per_minute),
                   "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": str(int(reset + 1))}
        if admitted:
            return headers, None
        retry = max(1, int(reset + 1) - int(time.time()))
        response = render_error(errors.RateLimited(
            f"rate limit of {per_minute} requests per minute reached; "
            f"retry in {retry} s", retry_after=retry))
        response.headers.update(headers)
        return headers, response

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
        strategy = self.strategy
        if not strategy.test(item, *self._ids(key_id)):
            reset, _ = strategy.get_window_stats(item, *self._ids(key_id))
            metrics.rate_limited("tokens")
            raise errors.RateLimited(
                f"token limit of {item.amount} tokens per minute reached for this key",
                retry_after=max(1.0, reset - time.time()))

    def spend_tokens(self, item: RateLimitItemPerMinute, key_id: str, tokens: int) -> None:
        if tokens > 0:
            self.strategy.hit(item, *self._ids(key_id), cost=tokens)

    def token_headers(self, response: Response, item: RateLimitItemPerMinute,
                      key_id: str) -> None:
        reset, remaining = self.strategy.get_window_stats(item, *self._ids(key_id))
        response.headers["X-RateLimit-Limit-Tokens"] = str(item.amount)
        response.headers["X-RateLimit-Remaining-Tokens"] = str(remaining)
        response.headers["X-RateLimit-Reset-Tokens"] = str(int(reset))


def _storage_down(exc: StorageError) -> Response:
    log.error("rate limit storage unavailable: %s", exc.storage_error)
    return render_error(errors.ServiceUnavailable(
        "the rate limit storage is unavailable; retry shortly", retry_after=1))


def init_app(app: Flask, settings: Settings) -> Limits:
    """Register after ``auth.init_app``: limits need the authenticated key."""
    limits = Limits(settings)
    app.extensions["limits"] = limits
    app.register_error_handler(StorageError, _storage_down)

    @app.before_request
    def _admit():
        if not needs_key(request.path):
            return None
        headers, refusal = limits.check_requests()  # StorageError: the handler's 503
        if refusal is not None:
            return refusal
        g.rate_headers = headers
        key = current_key()
        item = limits.token_limit()
        if item is not None:
            g.token_limit = item
            limits.check_tokens(item, key.id)
        current_record().metered = True  # past auth and limits: this request is accounted
        return None

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
