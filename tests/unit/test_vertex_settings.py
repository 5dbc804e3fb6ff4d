"""Vertex settings: seed defaults, auth choice, CA bundle rules, user header."""

from __future__ import annotations

import pytest

from service.settings import ConfigError, load_settings
from tests.support import fake_helix
from tests.support.config import assert_rejected


@pytest.fixture
def no_helix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


@pytest.fixture
def helix_on_path(tmp_path, monkeypatch):
    fake_helix.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))


def test_seed_defaults(monkeypatch, tmp_path, no_helix):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USER", "alice")
    s = load_settings(vertex_project="proj")
    assert (s.vertex_location, s.vertex_model, s.vertex_base_url) == (
        "us-central1", "gemini-2.5-flash", None)
    assert s.helix_access_token_cmd == "helix auth access-token print -a"
    assert (s.helix_token_ttl, s.helix_refresh_margin, s.helix_profile) == (600, 60, None)
    assert (s.custom_header_name, s.custom_user_id) == ("x-custom-userid", "alice")
    assert s.ssl_cert_file is None and s.vertex_auth == "adc"


def test_auth_defaults_to_helix_when_the_command_is_on_path(helix_on_path):
    assert load_settings(vertex_project="proj").vertex_auth == "helix"
    assert load_settings(vertex_project="proj", vertex_auth="ADC").vertex_auth == "adc"
    assert load_settings().vertex_auth is None  # Vertex not configured: nothing resolved


def test_explicit_helix_without_the_command_is_a_start_up_error(no_helix):
    with pytest.raises(ConfigError) as exc:
        load_settings(vertex_project="proj", vertex_auth="helix")
    assert "VERTEX_AUTH" in str(exc.value) and "HELIX_ACCESS_TOKEN_CMD" in str(exc.value)


def test_default_ca_bundle_used_only_when_present(tmp_path, monkeypatch, no_helix):
    monkeypatch.chdir(tmp_path)
    assert load_settings(vertex_project="proj").ssl_cert_file is None
    (tmp_path / "CAChain_PROD.pem").write_text("pem")
    assert load_settings(vertex_project="proj").ssl_cert_file == tmp_path / "CAChain_PROD.pem"


def test_missing_ca_bundle_is_an_error_only_for_vertex(tmp_path, monkeypatch, no_helix):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError) as exc:
        load_settings(vertex_project="proj")
    assert "SSL_CERT_FILE" in str(exc.value) and "nope.pem" in str(exc.value)
    assert load_settings().ssl_cert_file is None  # a stray variable does not stop other setups


@pytest.mark.parametrize("env,name", [
    ({"HELIX_ACCESS_TOKEN_CMD": "helix 'unterminated"}, "HELIX_ACCESS_TOKEN_CMD"),
    ({"HELIX_TOKEN_TTL": "0"}, "HELIX_TOKEN_TTL"),
    ({"HELIX_TOKEN_TTL": "60", "HELIX_REFRESH_MARGIN": "60"}, "HELIX_REFRESH_MARGIN"),
    ({"VERTEX_AUTH": "apikey"}, "VERTEX_AUTH"),
    ({"VERTEX_BASE_URL": "url.net/vertex"}, "VERTEX_BASE_URL"),
    ({"VERTEX_LOCATION": "us central"}, "VERTEX_LOCATION"),
    ({"CUSTOM_HEADER_NAME": "bad header"}, "CUSTOM_HEADER_NAME"),
    ({"CUSTOM_USER_ID": "jos\u00e9\r\nX-Evil: 1"}, "CUSTOM_USER_ID"),
])
def test_bad_values_name_the_variable(monkeypatch, no_helix, env, name):
    monkeypatch.setenv("VERTEX_PROJECT", "proj")
    assert_rejected(monkeypatch, env, name)
