"""Settings grouped by concern, and docs/configuration.md generated from them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service import config_docs
from service.settings import GROUPS, Settings, VertexSettings, load_settings

from tests.support.config import assert_rejected


def test_the_reference_matches_the_settings():
    current = config_docs.OUTPUT.read_text(encoding="utf-8")
    assert current == config_docs.render(), (
        "docs/configuration.md is out of date: run `python -m service config-docs`")


def test_every_setting_is_in_one_group_and_described():
    grouped = [name for group in GROUPS for name in group.model_fields]
    assert len(grouped) == len(set(grouped))  # no variable in two groups
    assert grouped == list(Settings.model_fields)  # and every one in some group, in order
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []
    for group in GROUPS:
        assert group.title and group.__doc__


def test_attributes_stay_flat_and_groups_load_on_their_own(monkeypatch):
    monkeypatch.setenv("VERTEX_LOCATION", "europe-west4")
    s = load_settings(local_n_ctx=4096)
    assert s.local_n_ctx == 4096 and s.vertex_location == "europe-west4"
    assert isinstance(s, VertexSettings)
    assert VertexSettings().vertex_location == "europe-west4"


def test_the_page_shows_types_defaults_and_constraints():
    text = config_docs.render()
    row = next(line for line in text.splitlines() if line.startswith("| `HELIOS_PORT`"))
    assert row == "| `HELIOS_PORT` | integer | `8000` | ≥ 1, ≤ 65535 | Bind port. |"
    # Machine-dependent defaults are described, not the generating machine's values.
    assert "| `LOCAL_N_THREADS` | integer | CPU count minus one, at least 1 |" in text
    assert "| `GUNICORN_WORKERS` | integer | CPU count, at most 4 |" in text
    assert "secret: never logged" in next(line for line in text.splitlines()
                                          if line.startswith("| `ADMIN_API_KEY`"))
    assert "`PROMETHEUS_MULTIPROC_DIR`" in text  # the hand-written part


def test_check_names_the_command_and_the_cli_writes(tmp_path):
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    cmd = [sys.executable, "-m", "service", "config-docs", "--output", str(stale)]
    r = subprocess.run(cmd + ["--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "python -m service config-docs" in r.stdout
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert stale.read_text() == config_docs.render()
    r = subprocess.run(cmd + ["--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0


@pytest.mark.parametrize("env,name", [
    ({"GUNICORN_WORKERS": "many"}, "GUNICORN_WORKERS"),
    ({"GUNICORN_THREADS": "0"}, "GUNICORN_THREADS"),
    ({"GUNICORN_MAX_REQUESTS_JITTER": "-1"}, "GUNICORN_MAX_REQUESTS_JITTER"),
])
def test_gunicorn_variables_are_typed_settings(monkeypatch, env, name):
    assert_rejected(monkeypatch, env, name)


def test_gunicorn_jitter_defaults_to_a_tenth():
    assert load_settings().max_requests_jitter == 10_000
    assert load_settings(gunicorn_max_requests=50).max_requests_jitter == 5
    assert load_settings(gunicorn_max_requests_jitter=0).max_requests_jitter == 0
