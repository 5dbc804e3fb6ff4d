"""Providers take a small frozen config of their own, from a models-file entry or the seed
variables; no provider module reads the global settings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from service import models_file
from service.providers import build_backends, build_providers
from service.providers.config import (
    HttpConfig, InternalConfig, LocalConfig, OpenAIConfig, VertexConfig,
)
from service.providers.http_client import HttpClient
from tests.conftest import make_settings

PROVIDERS = Path(__file__).resolve().parents[2] / "service" / "providers"


def test_no_provider_reads_the_global_settings():
    builders = {PROVIDERS / "__init__.py", PROVIDERS / "config.py"}
    for path in PROVIDERS.rglob("*.py"):
        if path not in builders:
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"^from \.+settings import", text, re.M), path


def test_configs_are_frozen():
    c = OpenAIConfig(base_url="http://x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.base_url = "http://y"  # type: ignore[misc]


def _file(tmp_path, text: str):
    path = tmp_path / "models.toml"
    path.write_text(text)
    return models_file.load(path)


def test_entries_give_each_backend_its_own_values(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_KEY", "sk-vllm")
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read here")
    ml = _file(tmp_path, f"""
[backends.vllm]
kind = "openai"
base_url = "http://10.0.0.5:8000/"
api_key_env = "VLLM_KEY"
headers = {{ "X-Team" = "infra" }}
ca_bundle = "{bundle}"
request_timeout_seconds = 120
max_retries = 0
max_concurrency = 8
[backends.lmstudio]
kind = "openai"
base_url = "http://10.0.0.6:1234"
[backends.api]
kind = "internal"
url = "http://10.0.0.7/complete"
[backends.gcp]
kind = "vertex"
project = "team"
location = "europe-west4"
[models.coder]
deployments = [{{ backend = "vllm", model = "q" }}, {{ backend = "lmstudio", model = "q" }},
               {{ backend = "api", model = "q" }}, {{ backend = "gcp", model = "gemini" }}]
""")
    s = make_settings(request_timeout_seconds=30, connect_timeout_seconds=4,
                      upstream_api_key="sk-seed", custom_user_id="alice")
    vllm = OpenAIConfig.from_entry("vllm", ml.backends["vllm"], s)
    assert (vllm.name, vllm.label, vllm.base_url) == ("vllm", "vllm", "http://10.0.0.5:8000")
    assert vllm.auth_headers() == {"Authorization": "Bearer sk-vllm", "X-Team": "infra"}
    assert vllm.verify == str(bundle) and vllm.max_concurrency == 8
    assert vllm.http == HttpConfig(connect_timeout_seconds=4, request_timeout_seconds=120,
                                   max_retries=0, retry_backoff_seconds=s.retry_backoff_seconds,
                                   max_connections=8, max_keepalive=8)
    lm = OpenAIConfig.from_entry("lmstudio", ml.backends["lmstudio"], s)
    # What the entry leaves out comes from the settings; the seed key is not handed over.
    assert lm.http.request_timeout_seconds == 30 and lm.api_key is None and lm.verify is True
    gcp = VertexConfig.from_entry("gcp", ml.backends["gcp"], s)
    assert (gcp.project, gcp.location, gcp.label) == ("team", "europe-west4", "gcp")
    assert gcp.headers == {"x-custom-userid": "alice"}

    backends = build_backends(ml, s, observers=[])
    assert {n: p.name for n, p in backends.items()} == {
        "vllm": "vllm", "lmstudio": "lmstudio", "api": "api", "gcp": "gcp"}
    assert backends["vllm"].http is not backends["lmstudio"].http  # a client each
    assert backends["vllm"].http.timeout == (4, 120)
    assert backends["api"].base_url == "http://10.0.0.7/complete"
    assert backends["gcp"].base.startswith("https://europe-west4-aiplatform.googleapis.com/v1/")


def test_seed_variables_build_the_same_providers_as_before():
    s = make_settings(lm_studio_base_url="http://up:1234", internal_completions_url="http://in/c",
                      upstream_api_key="sk", vertex_project="p", vertex_auth="adc",
                      local_preload=False, local_n_ctx=1024)
    http = HttpClient(s)
    providers = build_providers(s, http)
    assert [(p.name, getattr(p, "label", None)) for p in providers] == [
        ("internal", "internal API"), ("openai", "upstream"), ("vertex", "vertex"),
        ("local", None)]
    assert all(getattr(p, "http", http) is http for p in providers)  # one shared pool
    assert providers[0].config == InternalConfig.from_settings(s)
    assert providers[1]._headers == {"Authorization": "Bearer sk"}
    assert providers[3].config == LocalConfig.from_settings(s) and providers[3].config.n_ctx == 1024
