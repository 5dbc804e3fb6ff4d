"""The data-access layer for keys, usage and stored responses: one SQLAlchemy Core engine.

``DATABASE_URL`` picks the store: by default a SQLite file in ``DATA_DIR``
(created on first run, WAL journal so readers never wait for the usage
writer), or ``postgresql://…`` for several instances sharing keys and usage.
The schema is created/migrated when a :class:`Database` is opened; on
PostgreSQL an advisory lock makes concurrent start-ups take turns.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import (JSON, BigInteger, Boolean, Column, DateTime, Float, Index, Integer,
                        MetaData, String, Table, create_engine, event, func, select, text)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .settings import ConfigError, Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
# Version -> the statements that bring a database from the version before up to it. A new
# database is created whole by ``create_all`` and only stamped; an older one runs these in order.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # issue 13: usage rows name the upstream model next to the public name and the backend
    2: ("ALTER TABLE usage_records ADD COLUMN upstream_model VARCHAR(256)",),
}
_MIGRATION_LOCK = 0x6A7E_0006  # pg_advisory_xact_lock id: "keys, issue 6"

metadata = MetaData()

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the key
    Column("key_hint", String(16), nullable=False),  # "sk-…wxyz", to recognise a key in lists
    Column("name", String(200), nullable=False, default=""),
    Column("owner_email", String(320)),
    Column("tier", String(64), nullable=False, default="default"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("requests_per_minute", Integer),
    Column("tokens_per_minute", Integer),
    Column("allowed_models", JSON),
    Column("request_count", BigInteger, nullable=False, default=0),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
)

usage = Table(
    "usage_records", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("day", String(10), nullable=False),  # UTC "YYYY-MM-DD": per-day totals on any database
    Column("request_id", String(128), nullable=False),
    Column("key_id", String(32)),  # no foreign key: static API_KEYS have no row
    Column("family", String(16), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(256), nullable=False),
    Column("model", String(256)),
    Column("provider", String(64)),  # the backend's name (MODELS_FILE) or the seed kind
    Column("upstream_model", String(256)),  # the model name the backend was asked for
    Column("stream", Boolean, nullable=False, default=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("duration_ms", Float),
    Column("ttft_ms", Float),
    Column("status", Integer, nullable=False),
    Column("error_code", String(64)),
)
Index("ix_usage_key_day", usage.c.key_id, usage.c.day)
Index("ix_usage_day", usage.c.day)

# Stored Responses API responses (issue 15): what a later request's previous_response_id
# continues from. A new table: ``create_all`` adds it to an existing database, no migration.
stored_responses = Table(
    "stored_responses", metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(32)),  # the key that made it (NULL: auth off); others get 404
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("model", String(256)),
    Column("input_items", JSON, nullable=False),  # every input item, earlier turns' included
    Column("response", JSON, nullable=False),  # the response object (its output items)
)
Index("ix_stored_responses_expires", stored_responses.c.expires_at)

schema_version = Table(
    "gateway_schema", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: Optional[datetime]) -> Optional[datetime]:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL: ``DATABASE_URL`` with the psycopg 3 driver, or SQLite in DATA_DIR."""
    url = settings.database_url
    if url is None:
        data_dir = settings.data_dir.expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{data_dir / 'gateway.db'}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


class Database:
    """The engine plus the schema it was migrated to."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            self.engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        self.dialect = self.engine.dialect.name

    def migrate(self) -> None:
        """Create the tables, or bring them to :data:`SCHEMA_VERSION`; safe to race."""
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                     {"k": _MIGRATION_LOCK})
                    metadata.create_all(conn)
                    current = conn.execute(select(func.max(schema_version.c.version))).scalar()
                    if current is None:
                        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION,
                                                                    applied_at=utcnow()))
                    elif current > SCHEMA_VERSION:
                        raise RuntimeError(f"the database schema (version {current}) is newer "
                                           f"than this gateway's ({SCHEMA_VERSION})")
                    else:
                        for version in range(current + 1, SCHEMA_VERSION + 1):
                            for statement in _MIGRATIONS[version]:
                                conn.execute(text(statement))
                            conn.execute(schema_version.insert().values(version=version,
                                                                        applied_at=utcnow()))
                            log.info("database schema migrated to version %d", version)
                return
            except DBAPIError:
                # Two SQLite processes creating the same table at once: the loser retries
                # and then finds the table there.
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(settings: Settings) -> Database:
    """Open and migrate the store; an unreachable database is a ConfigError naming it."""
    url = database_url(settings)
    db = Database(url)
    try:
        db.migrate()
    except SQLAlchemyError as exc:
        db.dispose()
        name = "DATABASE_URL" if settings.database_url else "DATA_DIR"
        shown = make_url(url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"{name}: cannot open the database {shown}: {reason}") from None
    return db


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


__all__ = ["Database", "open_database", "database_url", "api_keys", "usage", "stored_responses",
           "utcnow", "as_utc"]
