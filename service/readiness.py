"""Readiness: named checks that ``GET /readyz`` runs; any module can add one.

A check returns ``None`` when its dependency is usable, else a short reason.
Every configured provider gets one (``provider:<name>``, via ``Provider.probe``);
modules that bring a dependency add theirs at start-up, e.g.::

    add_readiness_check(app, "database", lambda: None if db_ok() else "database unreachable")

Checks that cost a network round-trip are wrapped in :class:`CachedCheck`, so
a load balancer polling ``/readyz`` every second does not become load on an
upstream, and concurrent polls share one probe. Flask-free.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger(__name__)

Check = Callable[[], Optional[str]]


class CachedCheck:
    """A check whose result is reused for ``ttl`` seconds; one caller probes at a time."""

    def __init__(self, check: Check, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._check = check
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._result: Optional[str] = "not probed yet"

    def __call__(self) -> Optional[str]:
        if self._clock() - self._at < self._ttl:
            return self._result
        with self._lock:
            if self._clock() - self._at >= self._ttl:
                self._result = _run(self._check)
                self._at = self._clock()
            return self._result


class Readiness:
    """The registry ``/readyz`` reads; kept in ``app.extensions["readiness"]``."""

    def __init__(self):
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    def run(self) -> dict[str, Optional[str]]:
        """Each check's reason for not being ready (None: ready)."""
        return {name: _run(check) for name, check in self._checks.items()}


def _run(check: Check) -> Optional[str]:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a broken check means "not ready", not a 500
        log.warning("readiness check %r raised", check, exc_info=True)
        return f"check failed: {type(exc).__name__}: {exc}"


def add_readiness_check(app, name: str, check: Check) -> None:
    """Register ``check`` under ``name`` on a Flask app built by ``create_app``."""
    app.extensions["readiness"].add(name, check)


def provider_checks(readiness: Readiness, providers, ttl: float, timeout: float) -> None:
    """One cached ``provider:<name>`` check per configured provider."""
    for p in providers:
        readiness.add(f"provider:{p.name}",
                      CachedCheck(lambda p=p: p.probe(timeout), ttl))
