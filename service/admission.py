"""Admission control: how many model requests a worker serves at once, and who waits.

This is the gateway's one concurrency cap per backend. Every model request
(generate, stream, embed) takes one slot of its backend and one of the worker
(``GATEWAY_MAX_IN_FLIGHT``) before the provider is called; the dispatcher
(``core.dispatch``) takes them for each deployment it tries. A backend's cap is
its ``max_concurrency`` in ``MODELS_FILE``, else
``GATEWAY_MAX_IN_FLIGHT_PER_UPSTREAM`` (so one slow backend cannot take every
thread). When a model has other candidates left, a full backend is skipped at
once (``wait=False``); the last candidate waits at most
``GATEWAY_QUEUE_WAIT_SECONDS``, and only ``GATEWAY_MAX_WAITING`` may wait at
once; beyond either bound it gets 503 ``overloaded`` with a ``Retry-After``
estimated from the measured drain rate, counted in
``gateway_admission_rejections_total{scope}``. While waiting, and once more
before the provider is called, the client's socket is checked: a client that
left causes no upstream request and no model time.

Slots are held until the response ends (a stream's ``close``), so the cap is
on concurrent streams, not on request starts. Under gunicorn the caps are
fitted to the worker's thread count (:func:`fit_to_threads`) so that some
threads always stay free for ``/healthz``, ``/readyz`` and ``/metrics``.

Flask-free: the web layer passes in how to see a departed client and where
to note the time spent in the backend (``Gateway`` wires both; see
:meth:`Admission.calling`).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from . import metrics
from .core import errors

log = logging.getLogger(__name__)

__all__ = ["Admission", "DrainRate", "Slots", "client_gone", "fit_to_threads"]

GoneCheck = Callable[[], bool]
#: The current request's "has the client left?" check, for code below the provider
#: boundary (the local model's queue polls it while waiting).
client_gone: contextvars.ContextVar[Optional[GoneCheck]] = contextvars.ContextVar(
    "client_gone", default=None)

_POLL_SECONDS = 0.2  # how often a waiter looks at its client's socket


class DrainRate:
    """Completions per second over the last ``window`` releases: a queue's measured drain."""

    def __init__(self, window: int = 64):
        self._times: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def note(self) -> None:
        self._times.append(time.monotonic())  # deque.append is atomic: no lock on this path

    def retry_after(self, ahead: int, floor: float = 1.0, ceiling: float = 120.0) -> float:
        """Seconds until ``ahead`` more completions at the measured rate (``floor`` if unknown)."""
        with self._lock:
            n = len(self._times)
            span = time.monotonic() - self._times[0] if n else 0.0
        if n < 2 or span <= 0:
            return floor
        return min(ceiling, max(floor, ahead * span / (n - 1)))  # n-1 completions after the oldest


def wait_for(lock, deadline: float, gone: Optional[GoneCheck],
             poll: float = _POLL_SECONDS) -> bool:
    """Acquire ``lock`` by ``deadline``; raise ClientGone-style 499 if ``gone()`` turns true
    (looked at every ``poll`` seconds)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return lock.acquire(blocking=False)
        if lock.acquire(timeout=min(remaining, poll) if gone else remaining):
            return True
        if gone is not None and gone():
            raise errors.GatewayError("client disconnected while queued", status=499,
                                      code="client_gone")


class Slots:
    """A counting semaphore with a bounded number of waiters."""

    def __init__(self, name: str, limit: int, max_waiting: int):
        self.name = name
        self.limit = limit
        self.max_waiting = max_waiting
        self.waiting = 0
        self.in_use = 0
        self._sem = threading.Semaphore(limit)
        self._count = threading.Lock()
        self.drain = DrainRate()

    def try_acquire(self) -> bool:
        """Take a slot if one is free now."""
        if not self._sem.acquire(blocking=False):
            return False
        with self._count:
            self.in_use += 1
        return True

    def acquire(self, deadline: float, gone: Optional[GoneCheck]) -> None:
        """Take a slot by ``deadline`` or raise 503 ``overloaded``."""
        if not self._sem.acquire(blocking=False):
            with self._count:
                if self.waiting >= self.max_waiting:
                    raise self._refusal(f"{self.waiting} requests are already waiting")
                self.waiting += 1
            try:
                if not wait_for(self._sem, deadline, gone):
                    raise self._refusal("no slot came free in time")
            finally:
                with self._count:
                    self.waiting -= 1
        with self._count:
            self.in_use += 1

    def release(self) -> None:
        with self._count:
            self.in_use -= 1
        self.drain.note()
        self._sem.release()

    def _refusal(self, why: str) -> errors.ServiceUnavailable:
        metrics.admission_rejected(self.name)
        retry = self.drain.retry_after(self.waiting + 1)
        return errors.ServiceUnavailable(
            f"the gateway is at capacity ({self.name}: {self.limit} requests in flight; {why}); "
            f"retry in {retry:.0f}s", code="overloaded", retry_after=retry)


class Admission:
    """The worker's slots and one set per backend (provider name).

    ``limits`` maps a backend to its own cap (``max_concurrency``); others get
    ``per_upstream``. ``gone_factory()`` returns the current request's
    departed-client check (or None); ``note_backend(seconds)`` records time spent
    inside the provider (the backend's time, for the gateway-overhead figure).
    """

    def __init__(self, max_in_flight: int, per_upstream: int, max_waiting: int,
                 wait_seconds: float, *, limits: Optional[dict[str, Optional[int]]] = None,
                 gone_factory: Callable[[], Optional[GoneCheck]] = lambda: None,
                 note_backend: Callable[[float], None] = lambda seconds: None,
                 max_sockets: int = 0):
        self.wait_seconds = wait_seconds
        self.per_upstream = per_upstream
        self.max_waiting = max_waiting
        self.limits = {name: n for name, n in (limits or {}).items() if n is not None}
        self.gone_factory = gone_factory
        self.note_backend = note_backend
        self.worker = Slots("worker", max_in_flight, max_waiting)
        #: Long-lived WebSockets (LM Studio's SDK): each holds a thread until it closes, so
        #: they are capped apart from model requests and never wait for a slot.
        self.sockets = Slots("websockets", max_sockets, 0)
        self._upstreams: dict[str, Slots] = {}
        self._lock = threading.Lock()

    def upstream(self, name: str) -> Slots:
        with self._lock:
            slots = self._upstreams.get(name)
            if slots is None:
                limit = self.limits.get(name, self.per_upstream)
                slots = self._upstreams[name] = Slots(
                    f"upstream {name}", min(limit, self.worker.limit), self.max_waiting)
            return slots

    def admit(self, upstream: str, gone: Optional[GoneCheck] = None, *,
              wait: bool = True) -> Optional[Callable[[], None]]:
        """Take both slots (or raise); returns the idempotent release. With ``wait=False``
        a full backend returns None at once (the caller tries another one); the worker's
        slot is waited for either way."""
        start = time.monotonic()
        deadline = start + self.wait_seconds
        up = self.upstream(upstream)
        if not wait:
            if not up.try_acquire():
                return None
        else:  # upstream first: a slow backend's queue holds no worker slot
            up.acquire(deadline, gone)
        try:
            self.worker.acquire(deadline, gone)
        except BaseException:
            up.release()
            raise
        waited = time.monotonic() - start
        metrics.observe_admission_wait(waited)
        once = threading.Lock()  # a C lock as the once-guard: cheaper than an Event

        def release() -> None:
            if once.acquire(blocking=False):
                self.worker.release()
                up.release()

        # Checked even after no wait: the client may have left while gunicorn queued it.
        if gone is not None and gone():
            release()
            raise errors.GatewayError("client disconnected before dispatch", status=499,
                                      code="client_gone")
        return release

    @contextmanager
    def calling(self, gone: Optional[GoneCheck]) -> Iterator[None]:
        """Around a provider call: code below the provider boundary sees ``gone`` (the
        local model's queue polls it), and the time inside counts as the backend's."""
        token = client_gone.set(gone)
        start = time.perf_counter()
        try:
            yield
        finally:
            client_gone.reset(token)
            self.note_backend(time.perf_counter() - start)


def fit_to_threads(admission: Admission, threads: int) -> None:
    """Shrink the caps so in-flight + waiting requests (and WebSockets) leave threads free
    for liveness.

    A gthread worker serves every request, ``/healthz`` included, from one pool
    of ``threads``; a pool full of model requests would queue the probes.
    """
    reserve = max(1, threads // 8) if threads > 1 else 0
    budget = threads - reserve
    # A WebSocket holds a thread for its life: they may take half the reserve, never the
    # model requests' budget, so probes keep at least the other half.
    sockets = min(admission.sockets.limit, reserve // 2)
    if sockets != admission.sockets.limit:
        log.warning("LMSTUDIO_WS_MAX_CONNECTIONS fitted to %d threads: %d (half the threads "
                    "kept for health probes)", threads, sockets)
        admission.sockets = Slots("websockets", sockets, 0)
    w = admission.worker
    in_flight = max(1, min(w.limit, budget - min(w.max_waiting, budget // 4)))
    waiting = max(0, min(w.max_waiting, budget - in_flight))
    if (in_flight, waiting) != (w.limit, w.max_waiting):
        log.warning("GATEWAY_MAX_IN_FLIGHT/GATEWAY_MAX_WAITING fitted to %d threads: "
                    "%d in flight, %d waiting (%d threads kept for health probes)",
                    threads, in_flight, waiting, reserve)
    admission.worker = Slots("worker", in_flight, waiting)
    admission.max_waiting = waiting
    admission.per_upstream = min(admission.per_upstream, in_flight)
    admission._upstreams.clear()
