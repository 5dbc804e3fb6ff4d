"""Stored responses (``store: true``) in the gateway's database, scoped to the API key.

A response is kept with every input item the model saw (earlier turns'
included) and its response object, for ``GET /v1/responses/{id}``, its
``input_items`` and a later request's ``previous_response_id``. Only the key
that made a response can read, continue or delete it (with auth off, only
requests without a key: ``key_id`` NULL); any other caller gets the same 404 as
for an id that never existed. Rows expire after ``RESPONSES_RETENTION_HOURS``;
expired rows are never returned and are deleted by the next write at most once
a minute per process. SQLite by default, PostgreSQL with ``DATABASE_URL``
(``service.db``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from ...core import errors
from ...db import Database, stored_responses, utcnow

log = logging.getLogger(__name__)
_PURGE_EVERY = 60.0  # seconds between deletions of expired rows (per process)
_T = stored_responses


@dataclass(slots=True)
class Stored:
    input_items: list[dict]
    response: dict


class ResponseStore:
    """Save, load and delete responses of one key; ``retention_hours`` 0 stores nothing."""

    def __init__(self, db: Database, retention_hours: float):
        self.db = db
        self.retention = timedelta(hours=retention_hours)
        self._purged = 0.0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.retention > timedelta(0)

    def save(self, key_id: Optional[str], input_items: list[dict], response: dict) -> None:
        if not self.enabled:
            return
        now = utcnow()
        row = dict(id=response["id"], key_id=key_id, created_at=now,
                   expires_at=now + self.retention, model=str(response.get("model"))[:256],
                   input_items=input_items, response=response)
        with _unavailable("store the response"):
            with self.db.engine.begin() as conn:
                conn.execute(_T.insert().values(**row))
        self._purge_now_and_then()

    def load(self, response_id: str, key_id: Optional[str]) -> Stored:
        """The stored response, or NotFound (also when another key made it, or it expired)."""
        with _unavailable("read the stored response"):
            with self.db.engine.connect() as conn:
                row = conn.execute(select(_T.c.input_items, _T.c.response)
                                   .where(self._mine(response_id, key_id))).first()
        if row is None:
            raise not_found(response_id)
        return Stored(input_items=row.input_items, response=row.response)

    def delete(self, response_id: str, key_id: Optional[str]) -> None:
        with _unavailable("delete the stored response"):
            with self.db.engine.begin() as conn:
                gone = conn.execute(delete(_T).where(self._mine(response_id, key_id))).rowcount
        if not gone:
            raise not_found(response_id)

    @staticmethod
    def _mine(response_id: str, key_id: Optional[str]):
        owner = _T.c.key_id.is_(None) if key_id is None else _T.c.key_id == key_id
        return (_T.c.id == response_id) & owner & (_T.c.expires_at > utcnow())

    def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._purged < _PURGE_EVERY:
                return
            self._purged = now
        try:
            with self.db.engine.begin() as conn:
                n = conn.execute(delete(_T).where(_T.c.expires_at <= utcnow())).rowcount
            if n:
                log.info("deleted %d expired stored responses", n)
        except SQLAlchemyError:  # the next write tries again; reads skip expired rows anyway
            log.warning("could not delete expired stored responses", exc_info=True)


def not_found(response_id: str) -> errors.NotFound:
    return errors.NotFound(f"Response with id '{response_id[:100]}' not found.",
                           param="response_id")


class _unavailable:
    """SQLAlchemy failures -> 503 naming what could not be done."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and isinstance(exc, SQLAlchemyError):
            log.error("response store: could not %s: %s", self.what, exc)
            raise errors.ServiceUnavailable(f"could not {self.what}: the database is "
                                            f"unavailable; retry shortly", retry_after=1) from exc
        return False
