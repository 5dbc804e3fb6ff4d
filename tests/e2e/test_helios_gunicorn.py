"""Helios under gunicorn: rate limit per worker, JSON errors, disconnects via gunicorn's socket."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from tests.support.helios import SEED_PYTHON
from tests.support.procs import gunicorn


def test_helios_under_gunicorn(upstream):
    # "endless" streams the echo, then " more" every 50 ms until the client goes away.
    env = {"LM_STUDIO_BASE_URL": upstream.url, "HELIOS_MODEL": "endless",
           "HELIOS_RATE_LIMIT_PER_SECOND": "0.1", "HELIOS_RATE_LIMIT_BURST": "3",
           "HELIOS_MAX_PREDICT_MS": "0"}  # only the disconnect may end the endless stream
    with gunicorn(env, workers=1) as (url, _, _):
        assert requests.get(url + "/health", timeout=10).json()["status"] == "healthy"
        with ThreadPoolExecutor(5) as pool:
            results = list(pool.map(  # five files: one file's newer request cancels the older
                lambda i: requests.post(url + "/complete", timeout=30, json=dict(
                    SEED_PYTHON, max_tokens=2, filename=f"f{i}.py")), range(5)))
        assert sorted(r.status_code for r in results) == [200, 200, 200, 429, 429]
        refused = next(r for r in results if r.status_code == 429)
        assert refused.json()["error_code"] == "SERVER_OVERLOADED" and refused.headers["Retry-After"]
        assert next(r for r in results if r.status_code == 200).json()["suggestion"] == "echo: #"  # two pieces

        # A client that goes away stops the upstream stream (another client: another
        # address; a bearer is no identity with auth off). One line of code, so the
        # suggestion never completes on its own.
        assert disconnects(upstream, 3)  # the three 2-token completions closed theirs
        u = urlsplit(url)
        body = json.dumps({"code": "total = ", "language": "python", "filename": "a.py",
                           "position": {"line": 0, "character": 8}, "max_tokens": 500}).encode()
        sock = socket.create_connection((u.hostname, u.port), source_address=("127.0.0.2", 0))
        sock.sendall(b"POST /complete HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        deadline = time.monotonic() + 20
        while upstream.state.calls["endless"] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.state.calls["endless"] == 4
        closed_at = time.monotonic()
        sock.close()
        assert disconnects(upstream, 4)  # long before the upstream's 30 s
        assert upstream.state.disconnects[-1] > closed_at


def disconnects(upstream, n: int) -> bool:
    """Wait for the upstream to have seen ``n`` clients go (it notices at its next write)."""
    deadline = time.monotonic() + 20
    while len(upstream.state.disconnects) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(upstream.state.disconnects) == n
