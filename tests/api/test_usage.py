"""Usage writes stay off the hot path: requests complete while the database is locked."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import requests
from sqlalchemy import select, text

from service import create_app
from service.api.context import on_request_done
from service.db import api_keys, usage
from service.keys import KeySpec
from tests.conftest import make_settings, serve
from tests.support.metrics import scrape, value
from tests.support.services import db_settings, postgres_url  # noqa: F401 - fixtures

KEY = "sk-static-usage-test-0123456789abcdefghijklmnop"


def test_requests_do_not_wait_for_the_usage_database(upstream, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   api_keys=KEY, usage_flush_seconds=0.01))
    finished = threading.Semaphore(0)
    on_request_done(app, lambda record: finished.release())
    lock = sqlite3.connect(tmp_path / "gateway.db", timeout=0)
    with serve(app) as url:
        lock.execute("BEGIN EXCLUSIVE")  # no reader or writer gets in until the commit
        try:
            for _ in range(3):
                r = requests.post(url + "/v1/completions", timeout=10,
                                  headers={"Authorization": f"Bearer {KEY}"},
                                  json={"model": "echo-1", "prompt": "x"})
                assert r.status_code == 200 and r.json()["choices"][0]["text"] == "echo: x"
                assert finished.acquire(timeout=10)  # its usage hook ran, without the database
            assert not app.extensions["usage"].flush(timeout=0.2)  # rows wait for the lock
        finally:
            lock.commit()
        assert app.extensions["usage"].flush(timeout=30)
    rows = lock.execute("SELECT count(*), sum(completion_tokens) FROM usage_records").fetchone()
    lock.close()
    assert rows == (3, 9)


# ---- one bad row never blocks the others (issue 11 §2) ---------------------------------------
def _usage_app(upstream, db_settings):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, usage_flush_seconds=0.2,
                                   models_cache_seconds=0, **db_settings))
    record, secret = app.extensions["auth"].create_key(KeySpec(name="usage"))
    done = threading.Semaphore(0)  # released per completion (a /metrics scrape runs hooks too)
    on_request_done(app, lambda record: record.path == "/v1/completions" and done.release())
    return app, record.id, (secret, done)


def _complete(url, key, model):
    """One completion; returns once its usage row is queued (the hook runs as the response
    closes, which can be after the client has read the body), so a flush() covers it."""
    secret, done = key
    r = requests.post(url + "/v1/completions", timeout=10, json={"model": model, "prompt": "x"},
                      headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200, r.text
    assert done.acquire(timeout=10), "the request's usage hook never ran"
    return r.headers["X-Request-ID"]


def _rows(app):
    with app.extensions["usage"].db.engine.connect() as conn:
        rows = conn.execute(select(usage).order_by(usage.c.id)).mappings().all()
        key = conn.execute(select(api_keys)).mappings().one()
    return rows, key


def test_overlong_and_nul_values_are_stored_cleaned(upstream, db_settings):
    """A 300-character model name and one with a NUL byte (PostgreSQL refuses both as
    they are) are stored bounded and cleaned; the rows after them are written too."""
    app, key_id, key = _usage_app(upstream, db_settings)
    long_name, nul_name = "m" * 300, "bad\x00name\x07"
    with serve(app) as url:
        ids = [_complete(url, key, m) for m in ("echo-1", long_name, nul_name, "echo-1")]
        assert app.extensions["usage"].flush(timeout=20), "usage rows are stuck behind a bad row"
    rows, key = _rows(app)
    assert [r["request_id"] for r in rows] == ids
    assert [r["model"] for r in rows] == ["echo-1", "m" * 256, "badname", "echo-1"]
    assert all(r["status"] == 200 and r["completion_tokens"] == 3 for r in rows)
    assert key["request_count"] == 4 and key["completion_tokens"] == 12
    app.extensions["usage"].close()


def _refuse_poison(app, dialect):
    """Make the database itself refuse rows for model 'poison' (as a constraint would)."""
    with app.extensions["usage"].db.engine.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text("ALTER TABLE usage_records ADD CONSTRAINT no_poison "
                              "CHECK (model <> 'poison')"))
        else:
            conn.execute(text("CREATE TRIGGER no_poison BEFORE INSERT ON usage_records "
                              "WHEN NEW.model = 'poison' BEGIN "
                              "SELECT RAISE(ABORT, 'poisoned row'); END"))


def test_a_refused_row_is_quarantined_and_the_rest_written(upstream, db_settings, caplog):
    app, key_id, key = _usage_app(upstream, db_settings)
    recorder = app.extensions["usage"]
    _refuse_poison(app, recorder.db.dialect)
    with serve(app) as url:
        before = value(scrape(url), "gateway_usage_rows_quarantined_total")
        ids = [_complete(url, key, m) for m in ("echo-1", "poison", "echo-1", "echo-1")]
        assert recorder.flush(timeout=20), "usage rows are stuck behind a refused row"
        # ... and the writer goes on with later batches
        ids.append(_complete(url, key, "echo-1"))
        assert recorder.flush(timeout=20)
        assert value(scrape(url), "gateway_usage_rows_quarantined_total") - before == 1
    rows, key = _rows(app)
    assert [r["request_id"] for r in rows] == ids[:1] + ids[2:]
    assert key["request_count"] == 4  # counters equal the rows written
    assert recorder.quarantined == 1 and recorder.lost == 0
    quarantined = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(quarantined) == 1 and ids[1] in quarantined[0].getMessage()
    recorder.close()
