"""Supersession: a newer completion request for the same file cancels the older one.

Editors send a request at every typing pause and only want the newest answer;
llama.vim and llama.vscode drop the connection of a stale request (the
gateway already stops generation on a disconnect), but editors that keep the
connection open would leave the model busy with a dead request. Each running
completion holds a :class:`Ticket` under its key (client identity + file); a
newer request with the same key cancels the ticket, and the older request's
generation loop, which checks it at every token, ends with
:class:`Superseded` (499) and closes its stream, freeing the model.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from ... import metrics
from ...core import errors


class Superseded(errors.GatewayError):
    """A newer request for the same file replaced this one (nginx's 499 "client closed")."""

    status = 499
    type = "request_cancelled"
    code = "request_superseded"


class Ticket:
    """One running request's claim; ``cancelled`` turns true when a newer one arrives."""

    __slots__ = ("_event", "model_started", "model_seconds")

    def __init__(self):
        self._event = threading.Event()
        self.model_started: Optional[float] = None  # when the backend was first asked
        self.model_seconds = 0.0

    @property
    def event(self) -> threading.Event:
        """Set on cancel: hand it to the backend (``GenerationRequest.cancel``)."""
        return self._event

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()

    def check(self, what: str = "request") -> None:
        """Raise :class:`Superseded` if a newer request took this one's place."""
        if self._event.is_set():
            raise Superseded(f"{what} superseded by a newer request for the same file")

    def model_start(self) -> None:
        self.model_started = time.perf_counter()

    def model_stop(self) -> None:
        if self.model_started is not None:
            self.model_seconds += time.perf_counter() - self.model_started
            self.model_started = None


class Supersession:
    """Running requests by key; at most one per key (the newest). ``enabled`` False: no-op."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._lock = threading.Lock()
        self._running: dict[str, Ticket] = {}

    @contextmanager
    def claim(self, key: str, api: str, model: str) -> Iterator[Ticket]:
        """Hold ``key`` while the request runs, cancelling whoever held it before."""
        ticket = Ticket()
        if not self.enabled:
            yield ticket
            return
        with self._lock:
            older = self._running.get(key)
            self._running[key] = ticket
        if older is not None:
            older.cancel()
        try:
            yield ticket
        except Superseded:
            ticket.model_stop()
            metrics.superseded(api, model, ticket.model_seconds)
            raise
        finally:
            with self._lock:
                if self._running.get(key) is ticket:
                    del self._running[key]
