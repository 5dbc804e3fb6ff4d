"""The real Claude Code CLI (npm ``@anthropic-ai/claude-code``, pinned in ./node) runs
``claude -p`` against the gateway on loopback, offline: ANTHROPIC_BASE_URL points at the
gateway, the model is served by a stand-in backend. Also, without Node: the exact request
Claude Code sends (captured from it, ``data/claude_code_request.json``) through the gateway
to an Anthropic and an OpenAI-compatible backend."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import anthropic
import pytest

from service import create_app
from tests.anthropic.conftest import STANDIN_KEY
from tests.conftest import make_settings, serve

NODE_DIR = Path(__file__).parent / "node"
CAPTURED = json.loads((Path(__file__).parent / "data" / "claude_code_request.json").read_text())


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must provide it")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def claude() -> str:
    """The CLI's native binary (npm ci on first use)."""
    if not shutil.which("node") or not shutil.which("npm"):
        _unavailable("node/npm are not installed")
    if not (NODE_DIR / "node_modules").is_dir():
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            _unavailable(f"npm ci failed: {r.stderr[-500:]}")
    # The wrapper package's postinstall (which npm may not run) links this binary as bin/claude.
    for binary in sorted((NODE_DIR / "node_modules" / "@anthropic-ai").glob("claude-code-*/claude")):
        if subprocess.run([binary, "--version"], capture_output=True, timeout=60).returncode == 0:
            return str(binary)
    _unavailable("no runnable Claude Code binary for this platform")


def run_claude(binary: str, url: str, home: Path, prompt: str, *args, model: str,
               key: str | None = "gw-key", token: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": url,
           "ANTHROPIC_MODEL": model, "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    if key:
        env["ANTHROPIC_API_KEY"] = key
    if token:
        env["ANTHROPIC_AUTH_TOKEN"] = token
    return subprocess.run([binary, "-p", prompt, *args], env=env, cwd=home, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture
def home(tmp_path) -> Path:
    (tmp_path / "notes.txt").write_text("the answer is forty-two\n")
    return tmp_path


def test_claude_p_answers_through_the_anthropic_backend(gw, claude, home):
    url, standin, _ = gw
    before = len(standin.state.bodies)
    r = run_claude(claude, url, home, "Reply with the word pong", model="claude-echo")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("echo: ") and "Reply with the word pong" in r.stdout
    headers = standin.state.headers[before]
    assert "claude-code-20250219" in headers["anthropic-beta"]  # forwarded unchanged
    assert headers["anthropic-version"] and headers["x-api-key"] == STANDIN_KEY
    body = standin.state.bodies[before]
    assert body["stream"] is True and body["tools"] and body["system"]


def test_claude_p_runs_a_tool_and_sends_its_result_back(gw, claude, home):
    url, standin, _ = gw
    standin.state.read_path = str(home / "notes.txt")
    r = run_claude(claude, url, home, "What do my notes say?", "--allowedTools", "Read",
                   model="claude-read")
    assert r.returncode == 0, r.stderr
    # Claude Code read the file and sent the result back under the call's id (checked by the
    # stand-in), and printed the final answer.
    assert r.stdout.startswith("file says: ") and "forty-two" in r.stdout, r.stdout


def test_claude_p_through_an_openai_compatible_backend(gw, claude, home):
    url, _, up = gw
    before = len(up.state.bodies)
    r = run_claude(claude, url, home, "Reply with the word pong", model="gpt-echo")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("echo: ") and "Reply with the word pong" in r.stdout
    sent = up.state.bodies[before]
    assert sent["messages"][0]["role"] == "system" and len(sent["tools"]) >= 5
    assert sent["max_tokens"] == CAPTURED["max_tokens"] and sent["stream"] is True


def test_claude_p_with_the_gateway_key_as_auth_token(claude, home, up):
    """ANTHROPIC_AUTH_TOKEN is sent as ``Authorization: Bearer``; the gateway requires it."""
    app = create_app(make_settings(api_keys="sk-gw-cc", lm_studio_base_url=up.url,
                                   local_preload=False, models_cache_seconds=0))
    with serve(app) as url:
        r = run_claude(claude, url, home, "Reply with pong", model="echo-1", key=None,
                       token="sk-gw-cc")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("echo: ")
        assert up.state.headers[-1].get("Authorization") is None  # the gateway key stays here


# ---- the captured request, without Node ---------------------------------------------------
@pytest.mark.parametrize("model", ["claude-echo", "gpt-echo"])
def test_claude_codes_exact_request_through_the_gateway(gw, model):
    url, standin, up = gw
    body = dict(CAPTURED, model=model)
    c = anthropic.Anthropic(base_url=url, api_key="gw-key", max_retries=0)
    known = {k: v for k, v in body.items() if k not in ("stream", "context_management")}
    with c.messages.stream(**known, extra_body={"context_management": body["context_management"]},
                           extra_headers={"anthropic-beta": "claude-code-20250219"}) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].text.startswith("echo: ") and final.stop_reason == "end_turn"
    if model == "claude-echo":  # relayed as sent, unknown fields and all
        sent = standin.state.bodies[-1]
        assert sent["output_config"] == CAPTURED["output_config"]
        assert sent["context_management"] == CAPTURED["context_management"]
        assert sent["thinking"] == CAPTURED["thinking"]
    else:
        sent = up.state.bodies[-1]
        assert [t["function"]["name"] for t in sent["tools"]] == [t["name"] for t in CAPTURED["tools"]]
        assert "context_management" not in sent and "output_config" not in sent
