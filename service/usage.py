"""Usage accounting: one row per model request, written off the hot path.

Every request that passed auth and the rate limits (``RequestRecord.metered``)
becomes a usage row when its response closes (after the last byte of a stream,
so token counts are final). Rows go into a bounded in-process queue; one writer
thread inserts them in batches and, in the same transaction, adds them to the
key's counters (``request_count``, ``prompt_tokens``, ``completion_tokens``,
``last_used_at``) with ``UPDATE … SET n = n + :delta``, so counters always equal
the rows and several instances never lose an increment.

Nothing is dropped silently: a full queue makes the closing request wait
(up to 30 s) rather than drop; a write that fails for the database's sake
(down, locked) is retried with back-off; :func:`close_all` (gunicorn's
``worker_exit`` hook and ``atexit``) flushes what is queued on a graceful
shutdown (SIGTERM). A hard kill (SIGKILL, OOM) loses the rows not yet written:
those of requests that ended in the last ``flush_seconds`` (plus the write in
progress), because no row waits longer than that from being queued.

One bad row never blocks the others: every value is bounded and cleaned to fit
its column before it is queued (:func:`usage_row`), and a batch the database
still refuses for its data is written row by row, the refused rows logged and
counted (``gateway_usage_rows_quarantined_total``) instead of retried forever.
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
from sqlalchemy import String, case, func, or_, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from . import metrics
from .api.context import RequestRecord, on_request_done
from .db import Database, api_keys, usage, utcnow
from .settings import Settings

log = logging.getLogger(__name__)

_BATCH = 1000
_PUT_TIMEOUT = 30.0
_INT_MAX = 2**31 - 1  # INTEGER columns (PostgreSQL int4)
_recorders: "weakref.WeakSet[UsageRecorder]" = weakref.WeakSet()
# Column -> longest value it takes, from the schema itself (PostgreSQL enforces it).
_STRING_LENGTHS = {c.name: c.type.length for c in usage.columns
                   if isinstance(c.type, String) and c.type.length}
# NUL (refused by PostgreSQL) and the other control characters (noise in every report).
_CONTROL = dict.fromkeys([*range(0x20), 0x7F])


def clean_text(value: Any, length: int) -> str:
    """``value`` as text any database stores: no control characters, no lone
    surrogates (not encodable as UTF-8), at most ``length`` characters."""
    text = str(value).translate(_CONTROL)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:length]


def _count(value: Optional[int]) -> int:
    return min(max(int(value or 0), 0), _INT_MAX)


def usage_row(record: RequestRecord) -> dict[str, Any]:
    """The row for ``record``, every value cleaned and bounded to fit its column."""
    duration = record.duration_ms or 0.0
    started = utcnow() - timedelta(milliseconds=duration)
    row = dict(ts=started, day=started.date().isoformat(), request_id=record.request_id,
               key_id=record.key_id, family=record.family, method=record.method,
               path=record.path, model=record.model, provider=record.provider,
               upstream_model=record.upstream_model, stream=bool(record.stream), prompt_tokens=_count(record.prompt_tokens),
               completion_tokens=_count(record.completion_tokens),
               duration_ms=record.duration_ms, ttft_ms=record.ttft_ms,
               status=min(max(int(record.status or 0), 0), 999), error_code=record.error_code)
    for name, length in _STRING_LENGTHS.items():
        if row.get(name) is not None:
            row[name] = clean_text(row[name], length)
    return row


def _is_row_error(exc: Exception) -> bool:
    """True when the database refused the data itself (a bad value, a constraint),
    not when it was unreachable or busy: rows, not the database, are to blame."""
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    # A value the driver could not even send (not encodable, out of range).
    return (isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)
            and isinstance(exc.orig, (ValueError, TypeError, ArithmeticError)))


class UsageRecorder:
    """A bounded queue of usage rows and the thread that writes them."""

    def __init__(self, db: Database, queue_size: int = 10000, flush_seconds: float = 0.5):
        self.db = db
        self.flush_seconds = flush_seconds
        # (time queued, row): a row is written at most flush_seconds after it was queued.
        self._queue: queue.Queue[tuple[float, dict]] = queue.Queue(maxsize=queue_size)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._unwritten = 0  # queued + being written
        self.lost = 0
        self.quarantined = 0
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
            self._queue.put((time.monotonic(), row), timeout=_PUT_TIMEOUT)
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
                queued_at, first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            # Batch: wait for company until the first row is flush_seconds old (not
            # flush_seconds more: under a backlog rows are already old), unless told to hurry.
            wait = queued_at + self.flush_seconds - time.monotonic()
            if wait > 0 and not self._stopping.is_set():
                self._wake.wait(wait)
            self._wake.clear()
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait()[1])
                except queue.Empty:
                    break
            self._write_with_retries(batch)
            self._done(len(batch))

    def _write_with_retries(self, batch: list[dict]) -> None:
        """Write ``batch``; retry while the database is away, never for a bad row."""
        delay = 0.5
        attempts = 0
        while batch:
            try:
                self._write_now(batch)
                return
            except Exception as exc:  # noqa: BLE001 - the database may be briefly away
                if _is_row_error(exc):
                    batch = self._write_one_by_one(batch)
                    if not batch:
                        return
                attempts += 1
                if self._stopping.is_set() and attempts >= 3:
                    self.lost += len(batch)
                    log.exception("could not write %d usage rows at shutdown", len(batch))
                    return
                log.exception("usage write failed; retrying in %.1f s", delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _write_one_by_one(self, rows: list[dict]) -> list[dict]:
        """Write rows singly, quarantining those the database refuses; return the rest
        when the database itself fails (to be retried)."""
        for i, row in enumerate(rows):
            try:
                self._write_now([row])
            except Exception as exc:  # noqa: BLE001 - classified below
                if not _is_row_error(exc):
                    return rows[i:]
                self._quarantine(row, exc)
        return []

    def _quarantine(self, row: dict, exc: Exception) -> None:
        """Give up on one row the database refuses: log it whole (an operator can replay
        it) and count it; the rows after it go on."""
        self.quarantined += 1
        metrics.usage_row_quarantined()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        log.error("usage row refused by the database and quarantined: %s; row: %r",
                  reason, {k: (v[:300] if isinstance(v, str) else v) for k, v in row.items()},
                  extra={"request_id": row.get("request_id")})

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
