"""Seed 000's deployment, unchanged but for the start command, under gunicorn.

Its environment (PaLM ``VERTEX_MODEL``, corporate ``VERTEX_BASE_URL`` with a
path prefix, ``helix`` on PATH with a profile, CA bundle, user header) and its
curl example as docs/vertex.md shows it, run as written (only the address is the
test's), against the loopback Vertex stand-in.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import certifi
import pytest

from tests.support import fake_helix
from tests.support.procs import ROOT, gunicorn
from tests.support.vertex_standin import start_vertex_standin


def _documented_curl() -> list[str]:
    """The seed's curl example, from the ``sh`` block of docs/vertex.md that names text-bison."""
    page = (ROOT / "docs" / "vertex.md").read_text()
    block = next(b for b in re.findall(r"```sh\n(.*?)```", page, re.S) if "text-bison@001" in b)
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[0] == "curl" and "http://localhost:8000/v1/completions" in argv, argv
    return argv


@pytest.fixture
def standin():
    server = start_vertex_standin()
    yield server
    server.shutdown()
    server.server_close()


def test_seed_deployment_and_curl_example(standin, tmp_path):
    helix = fake_helix.install(tmp_path / "bin").parent
    env = {
        "PATH": f"{helix}{os.pathsep}{os.environ.get('PATH', '')}",
        "VERTEX_PROJECT": "roo-proj", "VERTEX_LOCATION": "us-central1",
        "VERTEX_MODEL": "text-bison@001", "VERTEX_BASE_URL": f"{standin.url}/vertex",
        "HELIX_PROFILE": "roo", "HELIX_ACCESS_TOKEN_CMD": "helix auth access-token print -a",
        "HELIX_TOKEN_TTL": "600", "HELIX_REFRESH_MARGIN": "60",
        "SSL_CERT_FILE": certifi.where(), "CUSTOM_USER_ID": "roo-user",
        "CUSTOM_HEADER_NAME": "x-custom-userid", "REQUEST_TIMEOUT_SECONDS": "30.0",
        "REQUEST_MAX_RETRIES": "2", "HTTPX_MAX_CONNECTIONS": "100", "HTTPX_MAX_KEEPALIVE": "20",
        "LOG_LEVEL": "info",
    }
    with gunicorn(env, workers=1) as (url, log_path, _):
        argv = [a.replace("http://localhost:8000", url) for a in _documented_curl()]
        out = subprocess.run([argv[0], "-s", *argv[1:]],
                             capture_output=True, text=True, timeout=30, check=True)
        body = json.loads(out.stdout)
        assert body["choices"][0]["text"] == "echo: Say hello to Roo Code", body
        assert body["usage"]["total_tokens"] == 12
    sent = standin.state.requests[0]
    assert sent["path"] == ("/vertex/v1/projects/roo-proj/locations/us-central1/publishers/"
                            "google/models/gemini-2.5-flash:generateContent")
    assert sent["headers"]["x-custom-userid"] == "roo-user"
    assert sent["headers"]["Authorization"] == "Bearer tok-1"
    assert fake_helix.calls(helix) == ["auth access-token print -a --profile roo"]
    log = log_path.read_text()
    assert "retired PaLM model" in log and "tok-1" not in log
