"""Keys: generation, hashing at rest, the store on SQLite, start-up safety checks."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from service.auth import check_exposure
from service.db import open_database
from service.keys import KeySpec, KeyStore, generate_key, hash_key
from service.settings import ConfigError, load_settings
from tests.support.procs import ROOT
from tests.support.services import postgres_url  # noqa: F401 - fixture
from tests.support.config import assert_rejected


@pytest.fixture
def store(tmp_path):
    db = open_database(load_settings(data_dir=tmp_path))
    yield KeyStore(db)
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    """The store on each supported database (PostgreSQL: a fresh database)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    db = open_database(load_settings(data_dir=tmp_path, database_url=url))
    db.migrate()  # a second start on an existing schema is a no-op
    yield KeyStore(db)
    db.dispose()


def test_key_format_and_hash():
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for k in keys:
        assert re.fullmatch(r"sk-[A-Za-z0-9_-]{43}", k)  # 32 random bytes, URL-safe base64
    k = next(iter(keys))
    assert hash_key(k) == hash_key(k) and len(hash_key(k)) == 64 and k not in hash_key(k)


def test_store_create_find_list_revoke(any_store):
    store = any_store
    expires = datetime.now(timezone.utc) + timedelta(days=1)
    rec, secret = store.create(KeySpec(name="ci", owner_email="dev@example.com", tier="pro",
                                       expires_at=expires, requests_per_minute=7,
                                       tokens_per_minute=900, allowed_models=["echo-1"]))
    assert rec.id.startswith("key_") and rec.key_hint == f"sk-…{secret[-4:]}"
    found = store.find(secret)
    assert found == rec
    assert (found.name, found.owner_email, found.tier) == ("ci", "dev@example.com", "pro")
    assert (found.requests_per_minute, found.tokens_per_minute) == (7, 900)
    assert found.allowed_models == ("echo-1",) and found.allows("echo-1") and not found.allows("x")
    assert abs((found.expires_at - expires).total_seconds()) < 1e-3
    assert found.refusal(datetime.now(timezone.utc)) is None
    assert "expired" in found.refusal(expires + timedelta(seconds=1))
    assert store.find(secret + "x") is None and store.find(generate_key()) is None

    other, _ = store.create(KeySpec(name="other"))
    assert [k.id for k in store.list()] == [rec.id, other.id]
    revoked = store.revoke(rec.id)
    assert revoked.revoked and revoked.revoked_at is not None
    assert "revoked" in store.find(secret).refusal(datetime.now(timezone.utc))
    assert [k.id for k in store.list(include_revoked=False)] == [other.id]
    assert store.revoke("key_missing") is None and store.any_exists()


def test_only_the_hash_is_at_rest(tmp_path, store):
    secrets = [store.create(KeySpec(name=f"k{i}"))[1] for i in range(3)]
    store.db.dispose()  # checkpoint the WAL into the file
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for s in secrets:
        assert s.encode() not in raw and s[3:].encode() not in raw
        assert hash_key(s).encode() in raw
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_spec_validation():
    with pytest.raises(ValueError, match="time zone"):
        KeySpec(expires_at=datetime(2030, 1, 1))
    with pytest.raises(ValueError):
        KeySpec(requests_per_minute=-1)
    with pytest.raises(ValueError):
        KeySpec(owner_email="not-an-email")
    with pytest.raises(ValueError):
        KeySpec(unknown=1)


@pytest.mark.parametrize("env,name", [
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
    ({"RATELIMIT_STORAGE_URI": "nosuch://x"}, "RATELIMIT_STORAGE_URI"),
    ({"AUTH_CACHE_SECONDS": "30"}, "AUTH_CACHE_SECONDS"),
    ({"RATE_LIMIT_PER_KEY": "-1"}, "RATE_LIMIT_PER_KEY"),
])
def test_bad_settings_name_the_variable(monkeypatch, env, name):
    assert_rejected(monkeypatch, env, name)


def test_defaults():
    s = load_settings()
    assert s.rate_limit_per_key == 100 and s.ratelimit_storage_uri == "memory://"
    assert s.auth_cache_seconds == 5 and not s.require_auth and not s.allow_unauthenticated


def test_exposed_bind_without_keys_refuses_to_start():
    check_exposure(load_settings(helios_host="127.0.0.1"), keys_exist=False)
    check_exposure(load_settings(helios_host="localhost"), keys_exist=False)
    with pytest.raises(ConfigError) as exc:
        check_exposure(load_settings(helios_host="0.0.0.0"), keys_exist=False)
    assert "ALLOW_UNAUTHENTICATED=true" in exc.value.message
    assert "keys create" in exc.value.message and "API_KEYS" in exc.value.message
    check_exposure(load_settings(helios_host="0.0.0.0", allow_unauthenticated=True), False)
    check_exposure(load_settings(helios_host="0.0.0.0", api_keys="sk-a,sk-b"), False)
    check_exposure(load_settings(helios_host="0.0.0.0", require_auth=True), False)
    check_exposure(load_settings(helios_host="0.0.0.0"), keys_exist=True)


def test_cli_create_list_show_revoke_usage(tmp_path):
    def cli(*args, ok=True):
        r = subprocess.run([sys.executable, "-m", "service", "keys", *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=60,
                           env={"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
        assert (r.returncode == 0) == ok, r.stderr
        return r

    created = cli("create", "--name", "laptop", "--owner", "me@example.com", "--rpm", "5",
                  "--models", "echo-1, tools", "--json")
    rec = json.loads(created.stdout)
    assert rec["key"].startswith("sk-") and rec["requests_per_minute"] == 5
    assert rec["allowed_models"] == ["echo-1", "tools"] and rec["owner_email"] == "me@example.com"
    plain = cli("create", "--name", "second")
    secret = plain.stdout.splitlines()[0]
    assert secret.startswith("sk-") and "shown only once" in plain.stderr
    listing = cli("list").stdout
    assert rec["id"] in listing and "laptop" in listing and "second" in listing
    assert rec["key"] not in listing and secret not in listing
    assert json.loads(cli("show", rec["id"], "--json").stdout)["revoked"] is False
    assert json.loads(cli("revoke", rec["id"], "--json").stdout)["revoked"] is True
    assert rec["id"] not in cli("list", "--active").stdout
    assert "no API key" in cli("show", "key_nope", ok=False).stderr
    assert "owner_email" in cli("create", "--owner", "nope", ok=False).stderr
    assert json.loads(cli("usage", "--since", "2020-01-01", "--json").stdout) == []

    # A name with terminal escapes, a bell and a right-to-left override is shown escaped.
    hostile = "evil\x1b[2J\x07\u202egnp.exe"
    made = json.loads(cli("create", "--name", hostile, "--json").stdout)
    assert made["name"] == hostile  # stored as given; JSON output escapes it itself
    for out in (cli("list").stdout, cli("show", made["id"]).stdout):
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "evil\\x1b[2J\\x07\\u202egnp.exe" in out


def test_unreachable_database_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as exc:
        open_database(load_settings(database_url="postgresql://u:pw@127.0.0.1:1/x"))
    assert exc.value.message.startswith("DATABASE_URL: cannot open the database")
    assert "pw" not in exc.value.message
