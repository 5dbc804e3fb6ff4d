"""Keys, limits and usage under gunicorn: two instances sharing PostgreSQL and Redis;
usage flushed at SIGTERM; an exposed bind without keys refuses to start."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.support.procs import ROOT, free_port, gunicorn
from tests.support.services import postgres_url, redis_prefix  # noqa: F401 - fixtures

ADMIN = "admin-e2e-secret"
LIMIT = 12
ATTEMPTS = 40
BODY = {"model": "echo-1", "messages": [{"role": "user", "content": "a b"}]}


def _cli(env, *args) -> dict:
    r = subprocess.run([sys.executable, "-m", "service", "keys", *args, "--json"], cwd=ROOT,
                       env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_two_instances_share_limits_usage_and_revocation(upstream, postgres_url,  # noqa: F811
                                                         redis_prefix):  # noqa: F811
    redis_url, prefix = redis_prefix
    env = {"LM_STUDIO_BASE_URL": upstream.url, "DATABASE_URL": postgres_url,
           "RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": prefix,
           "ADMIN_API_KEY": ADMIN, "AUTH_CACHE_SECONDS": "1", "MODELS_CACHE_SECONDS": "0",
           "LOG_LEVEL": "info"}
    created = _cli(env, "create", "--name", "shared", "--rpm", str(LIMIT))
    secret, key_id = created["key"], created["id"]
    auth = {"Authorization": f"Bearer {secret}"}

    with gunicorn(env, workers=2) as (url_a, log_a, _), gunicorn(env, workers=2) as (url_b, log_b, _):
        def call(i: int) -> int:
            url = (url_a, url_b)[i % 2]
            return requests.post(url + "/v1/chat/completions", json=BODY, headers=auth,
                                 timeout=30).status_code

        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(call, range(ATTEMPTS)))
        assert statuses.count(200) == LIMIT, statuses
        assert statuses.count(429) == ATTEMPTS - LIMIT, statuses

        # A key revoked through one instance is refused by the other within AUTH_CACHE_SECONDS.
        admin = {"Authorization": f"Bearer {ADMIN}"}
        other = requests.post(url_a + "/admin/keys", json={"name": "other"}, headers=admin).json()
        other_auth = {"Authorization": f"Bearer {other['key']}"}
        for _ in range(4):  # warm both workers' caches on b
            assert requests.get(url_b + "/v1/models", headers=other_auth).status_code == 200
        assert requests.delete(url_a + f"/admin/keys/{other['id']}", headers=admin).ok
        revoked_at = time.monotonic()  # the revocation is committed by now
        refused_in_a_row, last_accepted = 0, None
        while refused_in_a_row < 4 and time.monotonic() - revoked_at < 10:
            sent = time.monotonic()
            status = requests.get(url_b + "/v1/models", headers=other_auth).status_code
            assert status in (200, 401)
            refused_in_a_row = refused_in_a_row + 1 if status == 401 else 0
            last_accepted = sent if status == 200 else last_accepted
            time.sleep(0.05)
        assert refused_in_a_row == 4  # every worker of b refuses it, and none accepted it
        assert last_accepted is None or last_accepted - revoked_at < 1  # after AUTH_CACHE_SECONDS
    # Both instances are stopped (SIGTERM): every usage row is in PostgreSQL.

    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT count(*), sum(prompt_tokens), sum(completion_tokens) FROM usage_records "
                "WHERE key_id = :k AND status = 200"), {"k": key_id}).one()
            all_rows = conn.execute(text("SELECT count(*) FROM usage_records WHERE key_id = :k"),
                                    {"k": key_id}).scalar()
            counters = conn.execute(text(
                "SELECT request_count, prompt_tokens, completion_tokens FROM api_keys "
                "WHERE id = :k"), {"k": key_id}).one()
            dump = " ".join(str(r) for t in ("api_keys", "usage_records")
                            for r in conn.execute(text(f"SELECT * FROM {t}")))
    finally:
        engine.dispose()
    assert all_rows == LIMIT and tuple(rows) == (LIMIT, 5 * LIMIT, 3 * LIMIT)
    assert tuple(counters) == (LIMIT, 5 * LIMIT, 3 * LIMIT)
    usage = _cli(env, "usage", "--key", key_id)
    assert [(u["requests"], u["total_tokens"]) for u in usage] == [(LIMIT, 8 * LIMIT)]
    for secret_text in (secret, other["key"]):
        assert secret_text not in dump
        assert secret_text not in log_a.read_text() and secret_text not in log_b.read_text()


def test_usage_queued_at_sigterm_is_written(upstream, tmp_path):
    env = {"LM_STUDIO_BASE_URL": upstream.url, "DATA_DIR": str(tmp_path),
           "USAGE_FLUSH_SECONDS": "3600", "API_KEYS": "sk-shutdown-test-0123456789abcdef"}
    db_file = tmp_path / "gateway.db"

    def rows() -> int:
        with sqlite3.connect(db_file) as conn:
            return conn.execute("SELECT count(*) FROM usage_records").fetchone()[0]

    with gunicorn(env, workers=1) as (url, _, proc):
        for _ in range(5):
            r = requests.post(url + "/v1/chat/completions", json=BODY,
                              headers={"Authorization": f"Bearer {env['API_KEYS']}"}, timeout=30)
            assert r.status_code == 200
        assert rows() == 0  # still queued: the writer batches for USAGE_FLUSH_SECONDS
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert rows() == 5


def test_exposed_bind_without_keys_refuses_to_start(tmp_path):
    with pytest.raises(RuntimeError) as exc:
        with gunicorn({"HELIOS_HOST": "0.0.0.0", "DATA_DIR": str(tmp_path)}, workers=1):
            pass
    assert "ALLOW_UNAUTHENTICATED=true" in str(exc.value)


# Issue 11: the addresses gunicorn really binds are checked, however they were given.
@pytest.mark.parametrize("how", ["-b", "GUNICORN_CMD_ARGS", "second -b"])
def test_exposed_bind_from_gunicorns_own_options_refuses_to_start(tmp_path, how):
    port = free_port()
    env, args = {"DATA_DIR": str(tmp_path)}, ()  # HELIOS_HOST stays 127.0.0.1
    if how == "-b":
        args = ("-b", f"0.0.0.0:{port}")
    elif how == "GUNICORN_CMD_ARGS":
        env["GUNICORN_CMD_ARGS"] = f"--bind 0.0.0.0:{port}"
    else:  # all of them: a loopback bind does not excuse an exposed one
        args = ("-b", f"127.0.0.1:{port}", "-b", f"0.0.0.0:{free_port()}")
    with pytest.raises(RuntimeError) as exc:
        with gunicorn(env, workers=1, args=args, port=port):
            pass
    message = str(exc.value)
    assert "gunicorn exited" in message  # it stopped; it did not serve and wait
    assert "0.0.0.0 serves the gateway beyond this machine" in message
    assert "ALLOW_UNAUTHENTICATED=true" in message
    assert "Booting worker" not in message  # refused before any worker forked


def test_exposed_bind_from_gunicorns_options_starts_with_a_key(tmp_path):
    port = free_port()
    env = {"DATA_DIR": str(tmp_path), "API_KEYS": "sk-exposed-bind-test-0123456789abcdef"}
    with gunicorn(env, workers=1, args=("-b", f"0.0.0.0:{port}"), port=port) as (url, _, _):
        assert requests.get(url + "/healthz", timeout=10).status_code == 200
        assert requests.get(url + "/v1/models", timeout=10).status_code == 401
