"""Real JavaScript clients under Node: a ``tests/<area>/node/`` folder's pinned packages.

The folder holds ``package.json`` + ``package-lock.json``; :func:`node_folder`
runs ``npm ci`` there once (when ``node_modules`` is missing or older than the
lock file) and returns it. Without ``node``/``npm`` the test is skipped saying
why, except under CI (``CI=true``), where it fails: CI must run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

_lock = threading.Lock()


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must provide it")
    pytest.skip(reason)


def node_folder(folder: Path) -> Path:
    """``folder`` with its locked packages installed (``npm ci``), or skip/fail."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            _unavailable(f"'{tool}' is not installed (Debian: apt-get install nodejs npm)")
    modules, lock = folder / "node_modules", folder / "package-lock.json"
    with _lock:
        marker = modules / ".package-lock.json"  # written by npm ci
        if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                                  cwd=folder, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                _unavailable(f"npm ci in {folder} failed: {done.stderr.strip()[-500:]}")
    return folder


def run_node(folder: Path, script: str, env: dict, timeout: float = 60) -> dict:
    """Run ``node script`` in ``folder`` with ``env`` added; its last stdout line as JSON."""
    done = subprocess.run(["node", script], cwd=folder, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, (done.returncode, done.stdout, done.stderr)
    return json.loads(lines[-1])
