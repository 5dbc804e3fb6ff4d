"""Usage writes stay off the hot path: requests complete while the database is locked."""

from __future__ import annotations

import sqlite3
import threading

import requests

from service import create_app
from service.api.context import on_request_done
from tests.conftest import make_settings, serve

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
