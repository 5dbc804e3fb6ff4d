"""PostgreSQL and Redis on loopback for tests, each run in its own namespace.

A test that needs one gets a fresh database (``gw_test_<random>``, dropped
afterwards) or a fresh key prefix, so parallel runs never collide. When the
service is absent the test fails under CI (``CI=true``: it must be there) and
is skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import secrets

import pytest

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, exc: Exception):
    reason = f"{what} is not reachable ({exc.__class__.__name__}: {exc})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must provide it")
    print(f"SKIP: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres_url():
    """``postgresql://…`` of a new, empty database; dropped after the test."""
    import psycopg

    name = "gw_test_" + secrets.token_hex(6)
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL at " + PG_ADMIN_URL, exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request, tmp_path):
    """Settings of the gateway's database under test: SQLite in tmp_path, or a fresh
    PostgreSQL database (``postgres_url``)."""
    if request.param == "sqlite":
        return {"data_dir": tmp_path}
    return {"database_url": request.getfixturevalue("postgres_url"), "data_dir": tmp_path}


@pytest.fixture
def redis_prefix():
    """(redis URL, a key prefix unique to this test); the prefix's keys are deleted after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis at " + REDIS_URL, exc)
    prefix = "gwtest" + secrets.token_hex(6)
    try:
        yield REDIS_URL, prefix
    finally:
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)
        client.close()
