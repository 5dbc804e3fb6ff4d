"""Ollama model descriptions from ModelInfo, and the Ollama settings."""

from __future__ import annotations

import pytest

from service.api.ollama import models
from service.core.routing import Router
from service.core.types import ModelInfo
from service.settings import ConfigError
from tests.conftest import make_settings


def test_unknown_fields_get_the_documented_placeholders():
    m = ModelInfo(id="gpt-x", provider="openai", supports_tools=True)
    tag = models.tag(m, started=0.0)
    assert tag["name"] == tag["model"] == "gpt-x" and tag["size"] == 0
    assert tag["modified_at"] == "1970-01-01T00:00:00.000000Z"
    assert len(tag["digest"]) == 64 and tag["digest"] == models.tag(m, 5.0)["digest"]
    assert tag["details"] == {"parent_model": "", "format": "unknown", "family": "unknown",
                              "families": [], "parameter_size": "unknown",
                              "quantization_level": "unknown"}
    shown = models.show(m, 0.0)
    assert shown["capabilities"] == ["completion", "tools"]
    assert shown["model_info"] == {"general.architecture": "unknown"}  # no context length known


def test_gguf_metadata_becomes_typed_model_info():
    m = ModelInfo(id="tiny", provider="local", family="llama", context_length=8192,
                  supports_vision=True, chat_template="{{ x }}", created=86400,
                  metadata={"general.architecture": "llama", "llama.block_count": "30",
                            "llama.rope.freq_base": "100000.0", "general.name": "Tiny 2",
                            "tokenizer.chat_template": "{{ x }}", "id": "listing-field"})
    info = models.model_info(m)
    assert info == {"general.architecture": "llama", "llama.block_count": 30,
                    "llama.rope.freq_base": 100000.0, "general.name": "Tiny 2",
                    "llama.context_length": 8192}
    shown = models.show(m, 0.0)
    assert shown["capabilities"] == ["completion", "vision"] and shown["template"] == "{{ x }}"
    assert shown["modified_at"].startswith("1970-01-02")
    assert models.running(m)["context_length"] == 8192


class _Listed:
    name = "p"
    supports_chat = supports_completion = True
    supports_embeddings = False

    def __init__(self, *ids):
        self.ids = ids

    def list_models(self):
        return [ModelInfo(id=i, provider="p") for i in self.ids]

    def owns(self, model):
        return model in self.ids

    def model_info(self, model):
        return next((m for m in self.list_models() if m.id == model), None)


def test_latest_tag_resolves_to_the_bare_name_only_when_needed():
    r = Router([_Listed("a", "b:latest")])
    assert models.canonical_name(r, "a:latest") == "a"
    assert models.canonical_name(r, "b:latest") == "b:latest"
    assert models.canonical_name(r, "zzz:latest") == "zzz:latest"


def test_bad_api_version_names_the_variable():
    assert make_settings(ollama_api_version="0.12.3-rc1").ollama_api_version == "0.12.3-rc1"
    with pytest.raises(ConfigError) as e:
        make_settings(ollama_api_version="latest")
    assert "OLLAMA_API_VERSION" in e.value.message
