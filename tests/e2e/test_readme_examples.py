"""The README's examples, run as written against the embedded model under gunicorn.

Each ``python`` block and the quickstart's ``curl`` block are taken from README.md;
only the address is the test's (``http://127.0.0.1:8000`` → a free loopback port).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.support.procs import ROOT, gunicorn

README = (ROOT / "README.md").read_text()
ADDRESS = "http://127.0.0.1:8000"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    env = {"DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    with gunicorn(env, workers=1) as (url, _log, _proc):
        yield url


@pytest.mark.parametrize("code", blocks("python"), ids=lambda c: c.split("\n")[0])
def test_python_example(gateway, code):
    assert ADDRESS in code
    out = subprocess.run([sys.executable, "-c", code.replace(ADDRESS, gateway)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "the example printed nothing"


def test_quickstart_curl(gateway):
    curl = next(b for b in blocks("sh") if b.startswith("curl ") and ADDRESS in b)
    out = subprocess.run(["bash", "-c", curl.replace(ADDRESS, gateway)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["model"] == "smollm2-135m-instruct" and body["choices"][0]["message"]["content"]
