"""Roo Code's LM Studio model listing, run with the real ``@lmstudio/sdk`` (1.2.0, the
version Roo 3.52 locks) under Node against the gateway under gunicorn gthread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from service.api.lmstudio.protocol import UNKNOWN_CONTEXT
from tests.support.node import node_folder, run_node
from tests.support.procs import gunicorn

NODE = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def sdk() -> Path:
    return node_folder(NODE)


def _listing(url: str, **env) -> dict:
    return run_node(NODE, "list_models.mjs", {"BASE_URL": url, **env})


def _expected(url: str, headers: dict | None = None) -> list[tuple[str, int]]:
    """(public name, context) of every model ``/v1/models`` lists but embedding-only ones."""
    data = requests.get(url + "/v1/models", headers=headers, timeout=10).json()["data"]
    return [(m["id"], m.get("context_length", UNKNOWN_CONTEXT)) for m in data
            if m.get("capabilities") != ["embeddings"]]


def test_roo_lists_the_gateways_models(sdk, models_file):
    with gunicorn({"MODELS_FILE": str(models_file)}, workers=1) as (url, log, _):
        got = _listing(url, MODEL="coder")
        expected = _expected(url)
        assert [name for name, _ in expected] == ["coder", "team/vision-8k", "nocontext"]
        assert got["v1Status"] == 200
        assert [(m["path"], m["maxContextLength"]) for m in got["downloaded"]] == expected
        assert [(m["modelKey"], m["contextLength"]) for m in got["loaded"]] == expected
        by_name = {m["modelKey"]: m for m in got["loaded"]}
        assert by_name["coder"]["trainedForToolUse"] and not by_name["coder"]["vision"]
        assert by_name["team/vision-8k"]["vision"]
        assert all(m["type"] == "llm" and m["displayName"] == m["path"] for m in got["loaded"])
        # Roo's forceFullModelDetailsLoad: client.llm.model(key) (the getOrLoad channel).
        assert got["model"]["modelKey"] == "coder" and got["model"]["contextLength"] == 32768

        missing = _listing(url, MODEL="no-such-model")
        assert "no-such-model" in missing["modelError"]
        assert requests.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
        text = log.read_text()
        assert "Traceback" not in text and '"status":500' not in text


def test_roo_lists_the_embedded_default_model(sdk):
    """The out-of-the-box gateway (the embedded local model, which also embeds)."""
    with gunicorn({}, workers=1) as (url, log, _):
        got = _listing(url)
        expected = _expected(url)
        assert len(expected) == 1
        assert [(m["path"], m["maxContextLength"]) for m in got["downloaded"]] == expected
        assert [(m["modelKey"], m["contextLength"]) for m in got["loaded"]] == expected
        assert got["loaded"][0]["trainedForToolUse"] is True


def _key(data_dir: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "service", "keys", *args, "--json"],
                          env={**os.environ, "DATA_DIR": str(data_dir)}, capture_output=True,
                          text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_key_protected_gateway_refuses_the_sdk_with_directions(sdk, models_file, tmp_path):
    data = tmp_path / "data"  # its own key store: stored keys turn auth on
    data.mkdir()
    full = _key(data, "create", "--name", "all")["key"]
    coder_only = _key(data, "create", "--name", "coder-only", "--models", "coder")["key"]
    revoked = _key(data, "create", "--name", "gone")
    _key(data, "revoke", revoked["id"])
    with gunicorn({"MODELS_FILE": str(models_file), "DATA_DIR": str(data)},
                  workers=1) as (url, log, _):
        got = _listing(url)  # what Roo's LM Studio provider can do: no key
        assert got["v1Status"] == 401
        for error in (got["downloadedError"], got["loadedError"]):
            assert "Failed to authenticate" in error and "OpenAI Compatible" in error
        assert "downloaded" not in got and "loaded" not in got

        assert "OpenAI Compatible" in _listing(url, PASSKEY="sk-wrong")["downloadedError"]
        assert "revoked" in _listing(url, PASSKEY=revoked["key"])["downloadedError"]

        keyed = _listing(url, PASSKEY=full)  # an SDK user can pass the key as clientPasskey
        expected = _expected(url, {"Authorization": f"Bearer {full}"})
        assert [(m["path"], m["maxContextLength"]) for m in keyed["downloaded"]] == expected
        assert [(m["modelKey"], m["contextLength"]) for m in keyed["loaded"]] == expected

        limited = _listing(url, PASSKEY=coder_only, MODEL="team/vision-8k")
        assert [m["path"] for m in limited["downloaded"]] == ["coder"]
        assert [m["modelKey"] for m in limited["loaded"]] == ["coder"]
        assert "team/vision-8k" in limited["modelError"]  # outside the key's models
        assert "Traceback" not in log.read_text()


def test_roo_lists_models_through_the_deploy_nginx(sdk, models_file, tmp_path):
    """deploy/nginx.conf passes the SDK's WebSocket upgrade on to the instances."""
    from tests.support.nginx import nginx, nginx_binary

    if nginx_binary() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("nginx is not installed; CI must provide it")
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    with gunicorn({"MODELS_FILE": str(models_file)}, workers=1) as (url, log, _), \
            nginx([url.removeprefix("http://")], tmp_path) as proxy:
        got = _listing(proxy)
        expected = _expected(url)
        assert [(m["path"], m["maxContextLength"]) for m in got["downloaded"]] == expected
        assert [(m["modelKey"], m["contextLength"]) for m in got["loaded"]] == expected
