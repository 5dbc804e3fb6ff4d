"""A gateway whose model list has an Anthropic-compatible stand-in and an OpenAI-compatible
one side by side (MODELS_FILE), shared by the module's tests."""

from __future__ import annotations

import os

import pytest

from service import create_app
from tests.conftest import make_settings, serve
from tests.support.anthropic_standin import start_anthropic

STANDIN_KEY = "sk-ant-standin-secret"
KEY_ENV = "TEST_ANTHROPIC_STANDIN_KEY"
CLAUDE_MODELS = ["claude-echo", "claude-tools", "claude-thinking", "claude-stop", "claude-long",
                 "claude-overloaded", "claude-ratelimit", "claude-cut", "claude-stream-error",
                 "claude-endless", "claude-read"]
OPENAI_MODELS = {"gpt-echo": "echo-1", "gpt-tools": "tools", "gpt-truncated": "truncated",
                 "gpt-cut": "cut", "gpt-429": "always-429", "gpt-endless": "endless"}


def models_file(anthropic_url: str, openai_url: str) -> str:
    out = [f"""
[backends.claude]
kind = "anthropic"
base_url = "{anthropic_url}"
api_key_env = "{KEY_ENV}"
max_retries = 0

[backends.vllm]
kind = "openai"
base_url = "{openai_url}"
max_retries = 0
"""]
    for name in CLAUDE_MODELS:
        out.append(f'[models.{name}]\ndeployments = [{{ backend = "claude", model = "{name}" }}]\n')
    for name, upstream in OPENAI_MODELS.items():
        out.append(f'[models.{name}]\ndeployments = [{{ backend = "vllm", model = "{upstream}" }}]\n')
    return "\n".join(out)


@pytest.fixture(scope="module")
def standin():
    os.environ[KEY_ENV] = STANDIN_KEY
    server = start_anthropic(api_key=STANDIN_KEY)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gw(standin, up, tmp_path_factory):
    """(gateway URL, Anthropic stand-in, OpenAI stand-in)."""
    path = tmp_path_factory.mktemp("anthropic") / "models.toml"
    path.write_text(models_file(standin.url, up.url))
    app = create_app(make_settings(models_file=path, request_timeout_seconds=5,
                                   retry_backoff_seconds=0, models_cache_seconds=0))
    with serve(app) as url:
        yield url, standin, up
