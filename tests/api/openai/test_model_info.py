"""``GET /v1/model/info``: LiteLLM's model details, as Roo Code's LiteLLM provider reads them.

``roo_litellm_models`` is Roo's own fetcher (src/api/providers/fetchers/litellm.ts,
Roo Code 3.52) line for line, so the test shows what Roo would size prompts by.
"""

from __future__ import annotations

import math

import openai
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve

MODEL = "smollm2-135m-instruct"
KEY = "sk-model-info-test-0123456789abcdefghijklmnopqrstuvw"
MODELS_TOML = """
[backends.up]
kind = "openai"
base_url = "{url}"

[models.coder]
deployments = [{{ backend = "up", model = "echo-1" }}]
context_length = 32768
capabilities = ["tools", "vision"]

[models.plain]
deployments = [{{ backend = "up", model = "echo-1" }}]
"""


def roo_litellm_models(data: dict) -> dict:
    """Roo's getLiteLLMModels mapping of the response body."""
    models = {}
    for m in data["data"]:
        name, info = m.get("model_name"), m.get("model_info")
        if not name or not info or not (m.get("litellm_params") or {}).get("model"):
            continue
        models[name] = {
            "maxTokens": info.get("max_output_tokens") or info.get("max_tokens") or 8192,
            "contextWindow": info.get("max_input_tokens") or 200000,
            "supportsImages": bool(info.get("supports_vision")),
            "supportsPromptCache": bool(info.get("supports_prompt_caching")),
            "inputPrice": info["input_cost_per_token"] * 1e6
            if info.get("input_cost_per_token") else None,
        }
    return models


def _info(url: str, key: str = "unused") -> dict:
    """Through the openai SDK's generic GET, with the key as Roo sends it (Bearer)."""
    c = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    return c.get("/model/info", cast_to=object)


def test_local_model_sized_by_its_served_context(local_url):
    body = _info(local_url)
    entry = next(m for m in body["data"] if m["model_name"] == MODEL)
    assert entry["litellm_params"]["model"] == f"local/{MODEL}"
    info = entry["model_info"]
    listed = requests.get(local_url + "/v1/models").json()["data"]
    ctx = next(m for m in listed if m["id"] == MODEL)["context_length"]  # the served window
    assert info["max_input_tokens"] == ctx
    assert info["max_output_tokens"] == info["max_tokens"] == math.ceil(ctx * 0.2)
    assert info["supports_vision"] is False and info["supports_function_calling"] is True
    assert info["input_cost_per_token"] == 0 and info["output_cost_per_token"] == 0
    roo = roo_litellm_models(body)[MODEL]
    assert roo["contextWindow"] == ctx < 200000  # not Roo's default of 200,000
    assert roo["maxTokens"] == math.ceil(ctx * 0.2)
    assert roo["supportsImages"] is False and roo["inputPrice"] is None


def test_models_file_context_and_capabilities(up, tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(MODELS_TOML.format(url=up.url))
    app = create_app(make_settings(models_file=path, api_keys=KEY, data_dir=tmp_path))
    with serve(app) as url:
        with pytest.raises(openai.AuthenticationError):
            _info(url, "sk-wrong")
        assert requests.get(url + "/v1/model/info").status_code == 401
        roo = roo_litellm_models(_info(url, KEY))
        assert set(roo) == {"coder", "plain"}
        assert roo["coder"] == {"maxTokens": 6554, "contextWindow": 32768,
                                "supportsImages": True, "supportsPromptCache": False,
                                "inputPrice": None}
        # unknown context: null, so Roo falls back to its own defaults rather than a guess
        plain = next(m for m in _info(url, KEY)["data"] if m["model_name"] == "plain")
        assert plain["model_info"]["max_input_tokens"] is None
        assert roo["plain"]["contextWindow"] == 200000
        r = requests.post(url + "/v1/model/info", headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 405 and r.json()["error"]["type"]
