"""Usage rows name the public model, the backend and the upstream model (issue 13)."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import func, inspect, select, text

from service import create_app
from service.db import SCHEMA_VERSION, Database, database_url, schema_version, usage
from service.keys import KeySpec
from tests.conftest import make_settings, serve
from tests.support.services import db_settings, postgres_url  # noqa: F401 - fixtures

FILE = """
[backends.vllm-a]
kind = "openai"
base_url = "{a}"
[backends.studio]
kind = "openai"
base_url = "{b}"

[models.coder]
deployments = [{{ backend = "vllm-a", model = "echo-a" }}]
aliases = ["gpt-4o"]

[models.chat]
deployments = [{{ backend = "studio", model = "echo-studio" }}]
"""


@pytest.fixture
def two_upstreams():
    from tests.support.upstream import start_upstream

    servers = [start_upstream() for _ in range(2)]
    yield servers
    for s in servers:
        s.shutdown()
        s.server_close()


def _app(tmp_path, servers, db_settings):
    path = tmp_path / "models.toml"
    path.write_text(FILE.format(a=servers[0].url, b=servers[1].url))
    return create_app(make_settings(models_file=path, usage_flush_seconds=0.05, **db_settings))


def _serve_three(app):
    _, secret = app.extensions["auth"].create_key(KeySpec(name="routing"))
    with serve(app) as url:
        for model, path in (("gpt-4o", "/v1/chat/completions"), ("coder", "/api/chat"),
                            ("chat", "/v1/chat/completions")):
            r = requests.post(url + path, timeout=10, headers={"Authorization": f"Bearer {secret}"},
                              json={"model": model, "stream": False,
                                    "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200, r.text
        assert app.extensions["usage"].flush(timeout=20)
    with app.extensions["usage"].db.engine.connect() as conn:
        rows = conn.execute(select(usage.c.family, usage.c.model, usage.c.provider,
                                   usage.c.upstream_model).order_by(usage.c.id)).all()
    app.extensions["usage"].close()
    return [tuple(r) for r in rows]


# The alias is recorded under its entry's public name (one name per model in reports).
EXPECTED = [("openai", "coder", "vllm-a", "echo-a"), ("ollama", "coder", "vllm-a", "echo-a"),
            ("openai", "chat", "studio", "echo-studio")]


def test_usage_rows_record_public_name_backend_and_upstream_model(
        tmp_path, two_upstreams, db_settings):
    assert _serve_three(_app(tmp_path, two_upstreams, db_settings)) == EXPECTED


def _downgrade_to_v1(settings_kw):
    """Make the database look like one written by a gateway of schema version 1."""
    db = Database(database_url(make_settings(**settings_kw)))
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE usage_records DROP COLUMN upstream_model"))
        conn.execute(schema_version.update().values(version=1))
    db.dispose()


def test_an_existing_database_is_migrated(tmp_path, two_upstreams, db_settings):
    """A database created before the column existed gets it at start-up; older rows keep
    theirs (NULL) and new rows fill it."""
    first = _app(tmp_path, two_upstreams, db_settings)
    first.extensions["usage"].close()
    first.extensions["usage"].db.dispose()
    _downgrade_to_v1(db_settings)
    app = _app(tmp_path, two_upstreams, db_settings)
    db = app.extensions["usage"].db
    assert "upstream_model" in {c["name"] for c in inspect(db.engine).get_columns("usage_records")}
    with db.engine.connect() as conn:
        assert conn.execute(select(func.max(schema_version.c.version))).scalar() == SCHEMA_VERSION
    assert _serve_three(app) == EXPECTED
    # Opening it again is a no-op (already at the current version).
    again = Database(db.url)
    again.migrate()
    again.dispose()
