"""Helpers for the Helios API tests: the seed's bodies, apps, a held upstream, error checks."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from datetime import datetime, timezone

from service import create_app
from tests.conftest import make_settings, serve
from tests.support.upstream import Handler, UpstreamServer

# The two curl examples of seed 001, verbatim.
SEED_PYTHON = {
    "code": "def factorial(n):\n    if n == 0:\n        return 1\n    else:\n        ",
    "language": "python",
    "position": {"line": 4, "character": 8},
    "filename": "math_utils.py",
}
SEED_JAVASCRIPT = {
    "code": "function calculateSum(arr) {\n    let total = 0;\n    for (let i = 0; i < arr.length; i++) {\n        ",
    "language": "javascript",
    "position": {"line": 3, "character": 8},
    "filename": "utils.js",
}


@contextmanager
def helios_app(**overrides):
    """The gateway on ``overrides`` settings; yields (url, app)."""
    app = create_app(make_settings(**overrides))
    try:
        with serve(app) as url:
            yield url, app
    finally:
        app.extensions["helios"].lifecycle.join(30)
        app.extensions["gateway"].close()  # frees the local model, if one was loaded


class _HeldHandler(Handler):
    """Model ``held``: the upstream answers only once the test releases it."""

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: HeldUpstream = self.server  # type: ignore[assignment]
        if json.loads(raw or b"{}").get("model") == "held":
            with server.cond:
                server.arrived += 1
                server.cond.notify_all()
            server.release.wait(30)
        self.rfile = _Replay(raw)  # the stand-in's own handler reads the body again
        super().do_POST()


class _Replay:
    def __init__(self, data: bytes):
        self.data = data

    def read(self, n: int = -1) -> bytes:
        out, self.data = self.data, b""
        return out


class HeldUpstream(UpstreamServer):
    """The stand-in upstream whose ``held`` model blocks until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.RequestHandlerClass = _HeldHandler
        self.release = threading.Event()
        self.cond = threading.Condition()
        self.arrived = 0

    def wait_arrived(self, n: int, timeout: float = 10) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.arrived >= n, timeout)


@contextmanager
def held_upstream():
    server = HeldUpstream()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def assert_helios_error(resp, status: int, code: str) -> dict:
    """The seed's error body: exactly detail, error_code and an ISO 8601 UTC timestamp."""
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert list(body) == ["detail", "error_code", "timestamp"], body
    assert body["error_code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    ts = datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - ts).total_seconds()) < 60
    return body
