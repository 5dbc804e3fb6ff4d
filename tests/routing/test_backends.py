"""MODELS_FILE backends: discovery of an upstream's models, several local GGUF models."""

from __future__ import annotations

import requests

from service import create_app
from service.providers.local import default_model_path
from tests.conftest import make_settings, serve


def test_discovery_serves_an_upstreams_models_under_a_prefix(upstream, tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(f"""
[backends.lab]
kind = "openai"
base_url = "{upstream.url}"
discovery = {{ prefix = "lab/" }}
[models.coder]
deployments = [{{ backend = "lab", model = "echo-1" }}]
""")
    with serve(create_app(make_settings(models_file=path, models_cache_seconds=0))) as url:
        ids = [m["id"] for m in requests.get(url + "/v1/models", timeout=10).json()["data"]]
        assert ids == ["coder", "lab/echo-1", "lab/tools", "lab/upstream-model"]
        r = requests.post(url + "/v1/chat/completions", timeout=10, json={
            "model": "lab/upstream-model", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.json()["model"] == "lab/upstream-model"
        assert upstream.state.bodies[-1]["model"] == "upstream-model"
        r = requests.post(url + "/v1/chat/completions", timeout=10, json={
            "model": "lab/not-there", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 404


def test_two_local_models_each_with_its_own_lock(tmp_path):
    gguf = default_model_path()
    path = tmp_path / "models.toml"
    path.write_text(f"""
[backends.left]
kind = "local"
path = "{gguf}"
[backends.right]
kind = "local"
path = "{gguf}"
[models.tiny-left]
deployments = [{{ backend = "left", model = "smollm2" }}]
[models.tiny-right]
deployments = [{{ backend = "right", model = "smollm2" }}]
""")
    app = create_app(make_settings(models_file=path))
    with serve(app) as url:
        for name in ("tiny-left", "tiny-right"):
            r = requests.post(url + "/v1/completions", timeout=120, json={
                "model": name, "prompt": "def add(a, b):", "max_tokens": 4})
            assert r.status_code == 200 and r.json()["model"] == name, r.text
        checks = requests.get(url + "/readyz", timeout=10).json()["checks"]
        assert {"provider:left", "provider:right"} <= set(checks)
    gw = app.extensions["gateway"]
    left, right = gw.router.by_name("left"), gw.router.by_name("right")
    assert left.gate is not right.gate and left.is_ready() and right.is_ready()
