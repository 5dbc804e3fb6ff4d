"""Load shedding for ``/complete``: a per-client rate limit and a per-process concurrency cap.

Rate: the ``limits`` library (as ``service.limits``), moving window,
in-process memory storage (so the limit holds per worker process), checked in
the ``/complete`` view itself so no other route pays for it (an app-wide
``before_request`` hook runs on every request of the app). The seed's "R requests per second with a
burst of B" is the moving window ``max(B, R*W) per W seconds`` with
``W = ceil(B / R)``: a client may send B at once and R per second sustained.
A client is its authenticated API key (the id of the key ``service.auth``
validated), else its address (``request.remote_addr``: the peer, or the client
a trusted proxy named, see ``service.proxies``). An unchecked bearer never
names a client: with auth off a made-up token per request would be a fresh
bucket each time.

Concurrency: at most ``HELIOS_MAX_CONCURRENT`` completions run at once; a
further one waits at most ``HELIOS_QUEUE_WAIT_SECONDS`` for a slot, then gets
429. Waiting is bounded by time, so no queue builds up.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from flask import request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ... import metrics
from ...auth import current_key
from ...core import errors
from ...settings import Settings

def client_key() -> str:
    """The validated key's id when auth is on, else the client address."""
    key = current_key()
    if key is not None:
        return "key:" + key.id
    return "ip:" + (request.remote_addr or "unknown")


def rate_limit_string(per_second: float, burst: int) -> str:
    """The moving-window limit for "``per_second`` sustained, bursts of ``burst``"."""
    window = max(1, math.ceil(burst / per_second))
    return f"{max(burst, math.floor(per_second * window))} per {window} second"


class RateLimit:
    """Per-client moving-window limit: "R per second, bursts of B"."""

    def __init__(self, per_second: float, burst: int):
        self.description = rate_limit_string(per_second, burst)
        self._item = parse(self.description)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self) -> None:
        """Count this request; raise RateLimited (429 SERVER_OVERLOADED) past the limit."""
        client = client_key()
        if self._limiter.hit(self._item, "helios", client):
            return
        metrics.rate_limited("helios")
        reset = self._limiter.get_window_stats(self._item, "helios", client).reset_time
        raise errors.RateLimited(
            f"server overloaded: rate limit of {self.description} per client exceeded "
            f"(HELIOS_RATE_LIMIT_PER_SECOND, HELIOS_RATE_LIMIT_BURST)",
            retry_after=max(1.0, reset - time.time()))


def init_rate_limit(settings: Settings) -> Optional[RateLimit]:
    """The ``/complete`` rate limit; None when the rate is 0 (off)."""
    if settings.helios_rate_limit_per_second <= 0:
        return None
    return RateLimit(settings.helios_rate_limit_per_second, settings.helios_rate_limit_burst)


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
