"""Load shedding for ``/complete``: a per-client rate limit and a per-process concurrency cap.

Rate: flask-limiter, moving window, in-process ``memory://`` storage (so the
limit holds per worker process). The seed's "R requests per second with a
burst of B" is the moving window ``max(B, R*W) per W seconds`` with
``W = ceil(B / R)``: a client may send B at once and R per second sustained.
A client is its API key when it sends ``Authorization: Bearer …`` (hashed,
never stored as is), else its remote address.

Concurrency: at most ``HELIOS_MAX_CONCURRENT`` completions run at once; a
further one waits at most ``HELIOS_QUEUE_WAIT_SECONDS`` for a slot, then gets
429. Waiting is bounded by time, so no queue builds up.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from flask import Flask, request
from flask_limiter import Limiter

from ...core import errors
from ...settings import Settings

LIMITED_ENDPOINTS = frozenset({"helios.complete"})


def client_key() -> str:
    """The API key's digest when one is sent, else the remote address."""
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "key:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return "ip:" + (request.remote_addr or "unknown")


def rate_limit_string(per_second: float, burst: int) -> str:
    """The moving-window limit for "``per_second`` sustained, bursts of ``burst``"."""
    window = max(1, math.ceil(burst / per_second))
    return f"{max(burst, math.floor(per_second * window))} per {window} second"


def init_rate_limit(app: Flask, settings: Settings) -> Optional[Limiter]:
    """A Limiter for this app limiting only ``/complete``; None when the rate is 0 (off)."""
    if settings.helios_rate_limit_per_second <= 0:
        return None
    limit = rate_limit_string(settings.helios_rate_limit_per_second, settings.helios_rate_limit_burst)
    return Limiter(client_key, app=app, storage_uri="memory://", strategy="moving-window",
                   default_limits=[limit], key_prefix="helios",
                   default_limits_exempt_when=lambda: request.endpoint not in LIMITED_ENDPOINTS)


def retry_after(limiter: Optional[Limiter]) -> float:
    """Seconds until the breached window lets the client in again (at least 1)."""
    current = limiter.current_limit if limiter is not None else None
    if current is None:
        return 1.0
    return max(1.0, current.reset_at - time.time())


class ConcurrencyLimit:
    """At most ``limit`` holders; a newcomer waits at most ``wait`` seconds, then 429."""

    def __init__(self, limit: int, wait: float):
        self.limit = limit
        self.wait = wait
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.wait):
            raise errors.RateLimited(
                f"server overloaded: {self.limit} completions are already running "
                f"(HELIOS_MAX_CONCURRENT); retry shortly", retry_after=1)
        try:
            yield
        finally:
            self._slots.release()
