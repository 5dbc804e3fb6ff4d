"""A client that hangs up mid-stream is accounted: its usage row says 499 and carries the
tokens generated or relayed until then, and they count against the key's token limit.

Under real gunicorn: its worker closes the response iterable whenever a client leaves
(werkzeug's test server may skip that close on a reset connection).
"""

from __future__ import annotations

import sqlite3
import time

import requests

from tests.support.procs import gunicorn
from tests.support.rawhttp import open_sse

KEY = "sk-static-abort-test-0123456789abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {KEY}"}
TPM = 1_000_000
LOCAL = "smollm2-135m-instruct"


def _remaining_tokens(url) -> int:
    r = requests.get(url + "/v1/models", headers=AUTH, timeout=10)
    assert r.status_code == 200
    return int(r.headers["X-RateLimit-Remaining-Tokens"])


def _row(db, request_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(db, timeout=30) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM usage_records WHERE request_id = ?",
                               (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        time.sleep(0.1)
    raise AssertionError(f"no usage row for {request_id}")


def _abort(url, db, body, request_id, events):
    """Read ``events`` SSE events, hang up; return the usage row and the tokens counted
    against the key's limit for it."""
    before = _remaining_tokens(url)
    s = open_sse(url, "/v1/chat/completions", body, events,
                 headers={**AUTH, "X-Request-ID": request_id})
    s.close()
    row = _row(db, request_id)
    return row, before - _remaining_tokens(url)


def test_aborted_streams_are_accounted(upstream, tmp_path):
    env = {"LM_STUDIO_BASE_URL": upstream.url, "API_KEYS": KEY, "DATA_DIR": str(tmp_path),
           "TOKENS_PER_MINUTE_PER_KEY": str(TPM), "USAGE_FLUSH_SECONDS": "0.1",
           "LOG_LEVEL": "warning"}
    with gunicorn(env, workers=1) as (url, _log, _proc):
        db = tmp_path / "gateway.db"
        # The stand-in upstream streams " more" every 50 ms until the client leaves, and
        # reports usage only at the end (which never comes).
        row, spent = _abort(url, db, {"model": "endless", "stream": True, "messages": [
            {"role": "user", "content": "tell me everything " * 20}]}, "abort-upstream", 8)
        assert row["status"] == 499 and row["error_code"] == "client_closed_request"
        assert row["prompt_tokens"] >= 90  # ~380 characters of prompt, estimated
        assert row["completion_tokens"] >= 7  # one per relayed chunk, at least those read
        assert spent == row["prompt_tokens"] + row["completion_tokens"]

        # The local model counts its own tokens exactly.
        row, spent = _abort(url, db, {"model": LOCAL, "stream": True, "max_tokens": 1500,
                                      "temperature": 1.0, "messages": [
                                          {"role": "user", "content": "Write a very long story."}]},
                            "abort-local", 6)
        assert row["status"] == 499 and row["error_code"] == "client_closed_request"
        assert row["prompt_tokens"] > 10  # the chat template plus the message
        assert 5 <= row["completion_tokens"] < 1500
        assert spent == row["prompt_tokens"] + row["completion_tokens"]
