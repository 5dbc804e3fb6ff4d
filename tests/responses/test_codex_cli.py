"""The real Codex CLI (``@openai/codex`` from npm, pinned in ``node/package.json``) runs
``codex exec`` non-interactively with the gateway as its model provider
(``wire_api = "responses"``), over the loopback stand-in that records what it gets.

The npm package ships Codex's native binary; it is installed with ``npm ci`` on
first use. Without ``node``/``npm`` the tests are skipped (and fail under CI=true).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from service import create_app
from tests.conftest import make_settings, serve

NODE_DIR = Path(__file__).parent / "node"
CODEX = NODE_DIR / "node_modules" / ".bin" / "codex"
KEY = "sk-codex-0123456789abcdefghijklmnopqrstuv"


@pytest.fixture(scope="module")
def codex() -> Path:
    if not (shutil.which("node") and shutil.which("npm")):
        reason = "node and npm are needed to install Codex CLI (@openai/codex)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; CI must provide them")
        pytest.skip(reason)
    if not CODEX.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       timeout=600, stdout=subprocess.DEVNULL)
    return CODEX


@pytest.fixture(scope="module")
def gateway(up):
    app = create_app(make_settings(lm_studio_base_url=up.url, models_cache_seconds=0,
                                   api_keys=KEY))
    with serve(app) as url:
        yield url, up


def config(url: str, model: str, web_search: bool = False) -> str:
    """The config.toml of docs/responses.md, pointed at ``url``."""
    return "\n".join([
        f'model = "{model}"',
        'model_provider = "gateway"',
        *([] if web_search else ['web_search = "disabled"']),
        "",
        "[model_providers.gateway]",
        'name = "LLM gateway"',
        f'base_url = "{url}/v1"',
        'env_key = "GATEWAY_API_KEY"',
        'wire_api = "responses"',
        ""])


def codex_exec(codex: Path, tmp_path: Path, cfg: str, prompt: str):
    home = tmp_path / "codex-home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / "config.toml").write_text(cfg)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": str(home),
           "GATEWAY_API_KEY": KEY}
    return subprocess.run([str(codex), "exec", "--skip-git-repo-check", "-C", str(work), prompt],
                          env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


@pytest.mark.timeout(300)
def test_codex_exec_answers_through_the_gateway(codex, gateway, tmp_path):
    url, up = gateway
    before = len(up.state.bodies)
    done = codex_exec(codex, tmp_path, config(url, "echo-1"), "Say hello")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "echo: Say hello"
    [body] = up.state.bodies[before:]
    assert body["stream"] is True and body["model"] == "echo-1"
    assert body["messages"][0]["role"] == "developer"  # Codex's instructions, as an item
    assert body["messages"][-1] == {"role": "user", "content": "Say hello"}
    names = [t["function"]["name"] for t in body["tools"]]
    assert "exec_command" in names
    assert any("__" in n for n in names)  # its namespace tool's functions, flattened
    assert up.state.headers[-1].get("Authorization") != f"Bearer {KEY}"  # the key stays here


@pytest.mark.timeout(300)
def test_codex_exec_tool_round_trip(codex, gateway, tmp_path):
    """The stand-in calls a tool Codex lacks; Codex answers the call by its call_id (sent
    back with the items, store=false) and the final text comes from the second turn."""
    url, up = gateway
    before = len(up.state.bodies)
    done = codex_exec(codex, tmp_path, config(url, "tools"), "What is the weather?")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "echo: unsupported call: get_weather"
    first, second = up.state.bodies[before:]
    assert second["messages"][:len(first["messages"])] == first["messages"]
    call, result = second["messages"][-2:]
    assert call["role"] == "assistant" and call["tool_calls"][0]["id"] == "call_abc"
    assert result == {"role": "tool", "content": "unsupported call: get_weather",
                      "tool_call_id": "call_abc"}


@pytest.mark.timeout(300)
def test_codex_web_search_tool_is_refused_clearly(codex, gateway, tmp_path):
    """Left on, Codex's hosted web_search tool is refused with the gateway's 400, which
    Codex shows; docs/responses.md says to set web_search = "disabled"."""
    url, up = gateway
    before = len(up.state.bodies)
    done = codex_exec(codex, tmp_path, config(url, "echo-1", web_search=True), "Say hello")
    assert done.returncode != 0
    assert "tool type 'web_search' is not supported" in done.stdout + done.stderr
    assert len(up.state.bodies) == before
