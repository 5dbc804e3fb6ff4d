"""MODELS_FILE validation: every mistake stops start-up naming the entry and the field."""

from __future__ import annotations

import pytest

from service import models_file
from service.settings import ConfigError

GOOD = """
default_model = "coder"
[router]
cooldown_seconds = 5
[backends.vllm]
kind = "openai"
base_url = "http://127.0.0.1:9/"
[backends.gcp]
kind = "vertex"
project = "p"
[backends.helix]
kind = "internal"
url = "http://127.0.0.1:9/complete"
[models.coder]
deployments = [{ backend = "vllm", model = "qwen", weight = 2 }]
aliases = ["gpt-4o"]
context_length = 32768
capabilities = ["tools"]
fallbacks = ["flash"]
[models.flash]
deployments = [{ backend = "gcp", model = "gemini-2.5-flash" }]
"""


def _write(tmp_path, text):
    p = tmp_path / "models.toml"
    p.write_text(text)
    return p


def test_a_good_file_loads(tmp_path):
    ml = models_file.load(_write(tmp_path, GOOD))
    assert ml.backends["vllm"].base_url == "http://127.0.0.1:9"
    assert ml.models["coder"].deployments[0].weight == 2
    assert ml.router.cooldown_seconds == 5


@pytest.mark.parametrize("change, where, what", [
    (('model = "qwen"', 'modle = "qwen"'), "models.coder.deployments[0].modle", "unknown field"),
    (('backend = "vllm"', 'backend = "vlm"'), "models.coder.deployments[0].backend",
     "no backend 'vlm'"),
    (('base_url = "http://127.0.0.1:9/"', 'base_url = "ftp://x"'), "backends.vllm.base_url",
     "http(s) URL"),
    (('kind = "openai"', 'kind = "vllm"'), "backends.vllm", "kind"),
    (('fallbacks = ["flash"]', 'fallbacks = ["nope"]'), "models.coder.fallbacks[0]",
     "no model or alias 'nope'"),
    (('aliases = ["gpt-4o"]', 'aliases = ["flash"]'), "models.flash",
     "already used by models.coder"),
    (('default_model = "coder"', 'default_model = "x"'), "default_model", "'x'"),
    (('weight = 2', 'weight = 0'), "models.coder.deployments[0].weight", "greater than 0"),
    (('capabilities = ["tools"]', 'capabilities = ["telepathy"]'),
     "models.coder.capabilities[0]", "tools"),
    (('[backends.gcp]', '[backends.gcp]\napi_key_env = "NO_SUCH_VARIABLE_X"'),
     "backends.gcp.api_key_env", "NO_SUCH_VARIABLE_X is not set"),
])
def test_mistakes_name_entry_and_field(tmp_path, change, where, what):
    bad = GOOD.replace(*change)
    assert bad != GOOD
    with pytest.raises(ConfigError) as exc:
        models_file.load(_write(tmp_path, bad))
    msg = exc.value.message
    assert msg.startswith("MODELS_FILE: ") and f"{where}: " in msg and what in msg, msg


def test_not_toml(tmp_path):
    with pytest.raises(ConfigError, match="is not valid TOML"):
        models_file.load(_write(tmp_path, "models = ["))


def test_a_failed_reload_keeps_the_list_in_force(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(models_file, "_active", None)
    path = _write(tmp_path, GOOD)
    import logging
    log = logging.getLogger("test")
    models_file.activate_or_keep(path, log)
    path.write_text(GOOD.replace('backend = "vllm"', 'backend = "vlm"'))
    models_file.activate_or_keep(path, log)
    assert "reload refused" in caplog.text
    assert "coder" in models_file.active(path).models
    with pytest.raises(ConfigError):  # the first load must succeed
        monkeypatch.setattr(models_file, "_active", None)
        models_file.activate_or_keep(path, log)


def test_the_documented_team_example_is_valid(tmp_path, monkeypatch):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "model-routing.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    gguf, ca = tmp_path / "m.gguf", tmp_path / "ca.pem"
    gguf.write_bytes(b"GGUF"), ca.write_text("x")
    example = example.replace("/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", str(gguf))
    example = example.replace("/etc/ssl/CAChain_PROD.pem", str(ca))
    monkeypatch.setenv("VLLM_API_KEY", "k")
    ml = models_file.load(_write(tmp_path, example))
    assert set(ml.models) == {"coder", "small", "gemini-flash", "embed"}
    assert {b.kind for b in ml.backends.values()} == {"openai", "vertex", "local"}
