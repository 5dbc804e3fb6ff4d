"""Start the gateway under gunicorn on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(env: dict | None = None, workers: int = 2, ready_path: str = "/healthz",
             args: tuple[str, ...] = (), port: int | None = None):
    """Yield (base_url, log_path, proc); stops the server with SIGTERM afterwards.

    ``args`` are added to gunicorn's command line (e.g. ``-b``); the URL is
    ``127.0.0.1:port`` (``port``: a free one unless given).
    """
    port = port or free_port()
    log = tempfile.NamedTemporaryFile(prefix="gateway-", suffix=".log", delete=False)
    full_env = {k: v for k, v in os.environ.items()}
    full_env.update({"HELIOS_PORT": str(port), "GUNICORN_WORKERS": str(workers),
                     "LOCAL_N_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             *args, "wsgi:app"],
                            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # os.killpg(proc.pid, …) stops it all
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {Path(log.name).read_text()[-2000:]}")
            try:
                if requests.get(url + ready_path, timeout=1).status_code < 500:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start in time")
            time.sleep(0.1)
        yield url, Path(log.name), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

