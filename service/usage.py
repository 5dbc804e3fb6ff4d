"""Usage accounting: one row per model request, written off the hot path.

Every request that passed auth and the rate limits (``RequestRecord.metered``)
becomes a usage row when its response closes (after the last byte of a stream,
so token counts are final). Rows go into a bounded in-process queue; one writer
thread inserts them in batches and, in the same transaction, adds them to the
key's counters (``request_count``, ``prompt_tokens``, ``completion_tokens``,
``last_used_at``) with ``UPDATE … SET n = n + :delta``, so counters always equal
the rows and several instances never lose an increment.

Nothing is dropped silently: a full queue makes the closing request wait
(up to 30 s) rather than drop; a failed write is retried; :func:`close_all`
(gunicorn's ``worker_exit`` hook and ``atexit``) flushes what is queued on a
graceful shutdown (SIGTERM).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import weakref
import time
from datetime import date, timedelta
from typing import Any, Optional

from flask import Flask
from sqlalchemy import case, func, or_, select, update

from .api.context import RequestRecord, on_request_done
from .db import Database, api_keys, usage, utcnow
from .settings import Settings

log = logging.getLogger(__name__)

_BATCH = 1000
_PUT_TIMEOUT = 30.0
_recorders: "weakref.WeakSet[UsageRecorder]" = weakref.WeakSet()


def usage_row(record: RequestRecord) -> dict[str, Any]:
    duration = record.duration_ms or 0.0
    started = utcnow() - timedelta(milliseconds=duration)
    return dict(ts=started, day=started.date().isoformat(), request_id=record.request_id,
                key_id=record.key_id, family=record.family, method=record.method,
                path=record.path[:256], model=record.model, provider=record.provider,
                stream=record.stream, prompt_tokens=record.prompt_tokens or 0,
                completion_tokens=record.completion_tokens or 0, duration_ms=record.duration_ms,
                ttft_ms=record.ttft_ms, status=record.status, error_code=record.error_code)


class UsageRecorder:
    """A bounded queue of usage rows and the thread that writes them."""

    def __init__(self, db: Database, queue_size: int = 10000, flush_seconds: float = 0.5):
        self.db = db
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=queue_size)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._unwritten = 0  # queued + being written
        self.lost = 0
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()
        _recorders.add(self)

    # ---- producer side (request threads) ------------------------------------------
    def record(self, record: RequestRecord) -> None:
        """``on_request_done`` hook: queue a row for a metered request."""
        if not record.metered:
            return
        self.put(usage_row(record))

    def put(self, row: dict) -> None:
        if self._stopping.is_set() and not self._thread.is_alive():
            self._write_now([row])  # late request after shutdown: write it directly
            return
        with self._idle:
            self._unwritten += 1
        try:
            self._queue.put(row, timeout=_PUT_TIMEOUT)
        except queue.Full:
            self._done(1)
            self.lost += 1
            log.error("usage queue full for %.0f s; a usage row was dropped", _PUT_TIMEOUT,
                      extra={"request_id": row["request_id"]})

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything queued now; True when nothing is left unwritten."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._unwritten and time.monotonic() < deadline:
                self._wake.set()  # the writer may be batching: make it write now
                self._idle.wait(0.05)
            return self._unwritten == 0

    def close(self, timeout: float = 10.0) -> None:
        """Flush and stop the writer (idempotent)."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("usage writer did not finish in %.0f s; %d rows unwritten", timeout,
                      self._unwritten)

    # ---- the writer thread ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            # Batch: wait up to flush_seconds for company unless told to hurry.
            if not self._stopping.is_set():
                self._wake.wait(self.flush_seconds)
            self._wake.clear()
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write_with_retries(batch)
            self._done(len(batch))

    def _write_with_retries(self, batch: list[dict]) -> None:
        delay = 0.5
        attempts = 0
        while True:
            try:
                self._write_now(batch)
                return
            except Exception:  # noqa: BLE001 - the database may be briefly away
                attempts += 1
                if self._stopping.is_set() and attempts >= 3:
                    self.lost += len(batch)
                    log.exception("could not write %d usage rows at shutdown", len(batch))
                    return
                log.exception("usage write failed; retrying in %.1f s", delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _write_now(self, rows: list[dict]) -> None:
        totals: dict[str, list] = {}
        for r in rows:
            if r["key_id"] is None:
                continue
            t = totals.setdefault(r["key_id"], [0, 0, 0, r["ts"]])
            t[0] += 1
            t[1] += r["prompt_tokens"]
            t[2] += r["completion_tokens"]
            t[3] = max(t[3], r["ts"])
        with self.db.engine.begin() as conn:
            conn.execute(usage.insert(), rows)
            for key_id, (n, prompt, completion, last) in sorted(totals.items()):
                # Relative updates: atomic against other writers and instances.
                conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(
                    request_count=api_keys.c.request_count + n,
                    prompt_tokens=api_keys.c.prompt_tokens + prompt,
                    completion_tokens=api_keys.c.completion_tokens + completion,
                    last_used_at=case(
                        (or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < last),
                         last),
                        else_=api_keys.c.last_used_at)))

    def _done(self, n: int) -> None:
        with self._idle:
            self._unwritten -= n
            if self._unwritten == 0:
                self._idle.notify_all()


def close_all(timeout: float = 10.0) -> None:
    """Flush and stop every recorder of this process (gunicorn ``worker_exit``, atexit)."""
    for recorder in list(_recorders):
        recorder.close(timeout)


atexit.register(close_all)


def init_app(app: Flask, settings: Settings, db: Database) -> UsageRecorder:
    recorder = UsageRecorder(db, settings.usage_queue_size, settings.usage_flush_seconds)
    app.extensions["usage"] = recorder
    on_request_done(app, recorder.record)
    return recorder


def usage_report(db: Database, key_id: Optional[str] = None, since: Optional[date] = None,
                 until: Optional[date] = None) -> list[dict[str, Any]]:
    """Totals per key, model and UTC day (``since``/``until`` inclusive)."""
    u = usage.c
    query = (select(u.key_id, u.model, u.day, func.count().label("requests"),
                    func.coalesce(func.sum(u.prompt_tokens), 0).label("prompt_tokens"),
                    func.coalesce(func.sum(u.completion_tokens), 0).label("completion_tokens"),
                    func.coalesce(func.sum(case((u.status >= 400, 1), else_=0)), 0)
                    .label("errors"))
             .group_by(u.key_id, u.model, u.day)
             .order_by(u.day, u.key_id, u.model))
    if key_id is not None:
        query = query.where(u.key_id == key_id)
    if since is not None:
        query = query.where(u.day >= since.isoformat())
    if until is not None:
        query = query.where(u.day <= until.isoformat())
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{"key_id": r.key_id, "model": r.model, "day": r.day, "requests": int(r.requests),
             "prompt_tokens": int(r.prompt_tokens),
             "completion_tokens": int(r.completion_tokens),
             "total_tokens": int(r.prompt_tokens) + int(r.completion_tokens),
             "errors": int(r.errors)} for r in rows]


__all__ = ["UsageRecorder", "usage_report", "close_all", "init_app", "usage_row"]
