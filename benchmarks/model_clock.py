"""Model time per request, for benchmarks that serve the gateway in-process on the embedded model.

Shared by ``helios_latency.py`` and ``typing_session.py``. :class:`ModelClock`
wraps the local provider (its ``stream``, its lock and its llama.cpp
instance) and keeps one :class:`Entry` per request id (``X-Request-ID``):

- ``stream_s``: time inside the provider's ``stream()`` call, pulling its
  chunks and its ``close()``: what the request waited for, *including* time
  queued for the model lock;
- ``held_s``: time the request held the model lock. Only one request holds it
  at a time, so these add up to at most the wall clock: this is the model
  time a request cost everyone else. Split into ``prompt_s`` (llama.cpp
  evaluating prompt tokens, before the first token is sampled), ``gen_s``
  (sampling and evaluating generated tokens) and the rest (tokenizing,
  detokenizing, Python).

Calls made outside a Flask request (a benchmark's own replays) are not recorded.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Entry", "ModelClock", "pct"]


@dataclass
class Entry:
    rid: str
    request: object = None         # the GenerationRequest the provider got
    stream_s: float = 0.0
    held_s: float = 0.0
    prompt_s: float = 0.0
    gen_s: float = 0.0
    sampled: int = 0               # tokens sampled (generated), kept or not
    prompt_evaluated: int = 0      # prompt tokens llama.cpp evaluated for this request
    first_past: Optional[int] = None   # KV cache positions reused when evaluation began
    span: Optional[tuple[int, int]] = None  # KV positions this request's prompt evaluation wrote
    order: int = -1                # when it took the model (-1: never did)
    took: Optional[float] = None   # perf_counter() when it took the model
    freed: Optional[float] = None  # perf_counter() when it gave the model back
    usage: object = None           # the stream's final Usage, when it got that far
    _since: Optional[float] = field(default=None, repr=False)

    @property
    def held(self) -> bool:
        return self.order >= 0


def pct(values: list[float], p: float) -> Optional[float]:
    """The p-th percentile (nearest rank), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class ModelClock:
    """Installs itself on ``provider`` (a ``LocalProvider``); ``entries`` by request id."""

    def __init__(self, provider):
        self.provider = provider
        self.entries: dict[str, Entry] = {}
        self._holder: Optional[Entry] = None
        self._held = 0
        self._lock = threading.Lock()
        self._stream = provider.stream
        provider.stream = self._timed_stream
        gate = provider.gate
        self._acquire, self._release = gate.acquire, gate.release
        gate.acquire, gate.release = self._gate_acquire, self._gate_release
        self._wrapped = None

    def clear(self) -> None:
        self.entries.clear()

    def unwrapped_stream(self, request):
        """The provider's own ``stream`` (not timed)."""
        return self._stream(request)

    # ---- which request is this -------------------------------------------------------------
    def _current(self) -> Optional[Entry]:
        from flask import g, has_request_context

        if not has_request_context() or getattr(g, "record", None) is None:
            return None
        rid = g.record.request_id
        with self._lock:
            entry = self.entries.get(rid)
            if entry is None:
                entry = self.entries[rid] = Entry(rid)
            return entry

    # ---- the lock ----------------------------------------------------------------------------
    def _gate_acquire(self, *args, **kwargs):
        waited = self._acquire(*args, **kwargs)
        entry = self._current()
        if entry is not None:
            entry._since = entry.took = time.perf_counter()
            entry.order, self._held = self._held, self._held + 1
            self._holder = entry
            self._wrap_llama()
        return waited

    def _gate_release(self):
        entry, self._holder = self._holder, None
        if entry is not None and entry._since is not None:
            entry.freed = time.perf_counter()
            entry.held_s += entry.freed - entry._since
            entry._since = None
        self._release()

    # ---- llama.cpp -----------------------------------------------------------------------------
    def _wrap_llama(self) -> None:
        llama = self.provider._llama
        if llama is None or llama is self._wrapped:
            return
        self._wrapped = llama
        clock, evaluate, sample = self, llama.eval, llama.sample

        def timed_eval(tokens):
            entry, past, t = clock._holder, llama.n_tokens, time.perf_counter()
            try:
                return evaluate(tokens)
            finally:
                if entry is not None:
                    dt = time.perf_counter() - t
                    if entry.sampled:
                        entry.gen_s += dt
                    else:
                        entry.prompt_s += dt
                        entry.prompt_evaluated += len(tokens)
                        if entry.first_past is None:
                            entry.first_past = past
                        start = entry.span[0] if entry.span else past
                        entry.span = (start, llama.n_tokens)

        def timed_sample(*args, **kwargs):
            entry, t = clock._holder, time.perf_counter()
            try:
                return sample(*args, **kwargs)
            finally:
                if entry is not None:
                    entry.gen_s += time.perf_counter() - t
                    entry.sampled += 1

        llama.eval, llama.sample = timed_eval, timed_sample

    # ---- the provider's stream ---------------------------------------------------------------
    def _timed_stream(self, request):
        entry = self._current()
        start = time.perf_counter()
        try:
            stream = self._stream(request)
        finally:
            if entry is not None:
                entry.request = request
                entry.stream_s += time.perf_counter() - start
        if entry is not None:  # the same ChunkStream: the layers above set its attributes
            stream._it = _TimedSource(stream._it, entry)
            stream.also_on_close(lambda: setattr(entry, "usage", stream.spent()))
        return stream


class _TimedSource:
    """A stream's chunk source whose pulls and close are added to ``entry.stream_s``."""

    __slots__ = ("_source", "_entry")

    def __init__(self, source, entry: Entry):
        self._source, self._entry = source, entry

    def __iter__(self):
        return self

    def __next__(self):
        t = time.perf_counter()
        try:
            return next(self._source)
        finally:
            self._entry.stream_s += time.perf_counter() - t

    def close(self):
        t = time.perf_counter()
        try:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
        finally:
            self._entry.stream_s += time.perf_counter() - t
