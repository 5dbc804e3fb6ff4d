"""MODELS_FILE under gunicorn: validated in the master, reloaded by SIGHUP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import requests

from tests.support.procs import ROOT, gunicorn

MODELS = """
[backends.up]
kind = "openai"
base_url = "{url}"
[models.{name}]
deployments = [{{ backend = "up", model = "echo-1" }}]
[models.patient]
deployments = [{{ backend = "up", model = "slow" }}]
"""


def _names(url):
    return [m["id"] for m in requests.get(url + "/v1/models", timeout=10).json()["data"]]


def _wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def test_hup_reloads_a_valid_file_and_refuses_an_invalid_one(upstream, tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(MODELS.format(url=upstream.url, name="first"))
    with gunicorn({"MODELS_FILE": str(path)}, workers=1) as (url, log, proc):
        assert _names(url) == ["first", "patient"]
        # A request in flight (the upstream takes 3 s) survives the reload.
        slow = {}
        t = threading.Thread(target=lambda: slow.setdefault("r", requests.post(
            url + "/v1/chat/completions", timeout=30, json={
                "model": "patient", "messages": [{"role": "user", "content": "wait"}]})))
        t.start()
        time.sleep(0.5)
        path.write_text(MODELS.format(url=upstream.url, name="second"))
        os.kill(proc.pid, signal.SIGHUP)
        assert _wait_for(lambda: _names(url) == ["second", "patient"])
        t.join(30)
        assert slow["r"].status_code == 200 and slow["r"].json()["model"] == "patient"

        path.write_text(MODELS.format(url=upstream.url, name="third").replace('"up"', '"gone"', 1))
        os.kill(proc.pid, signal.SIGHUP)
        assert _wait_for(lambda: "reload refused" in log.read_text())
        assert "models.third.deployments[0].backend" in log.read_text()
        time.sleep(1.0)  # the new worker has booted with the list in force
        assert _wait_for(lambda: _names(url) == ["second", "patient"])
        assert proc.poll() is None


def test_an_invalid_file_stops_start_up_naming_the_field(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text('[backends.up]\nkind = "openai"\nbase_url = "nope"\n'
                    '[models.m]\ndeployments = [{ backend = "up", model = "x" }]\n')
    env = {**os.environ, "MODELS_FILE": str(path)}
    out = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "MODELS_FILE" in out.stderr and "backends.up.base_url" in out.stderr, out.stderr


def test_a_proxy_only_list_never_imports_llama_cpp(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text('[backends.up]\nkind = "openai"\nbase_url = "http://127.0.0.1:9"\n'
                    '[models.m]\ndeployments = [{ backend = "up", model = "x" }]\n')
    code = ("import sys; from service import create_app; "
            "from service.settings import load_settings; "
            f"create_app(load_settings(models_file={str(path)!r}, log_level='warning')); "
            "print('llama_cpp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False", out.stderr
