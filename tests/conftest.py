"""Shared fixtures: the app served on a free loopback port, the upstream stand-in."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server

from service import create_app
from service.settings import Settings, load_settings
from tests.support.upstream import start_upstream

# Tests must not pick up the machine's own configuration.
for _name in Settings.model_fields:
    os.environ.pop(_name.upper(), None)
# Keys and usage go to a throw-away SQLite database (apps and gunicorn children alike),
# never to ./data of the checkout.
_DATA_DIR = tempfile.mkdtemp(prefix="gateway-test-data-")
os.environ["DATA_DIR"] = _DATA_DIR
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)
# No per-IP rate limit: every test client is 127.0.0.1 and session-wide apps serve many
# tests; the limit tests set their own.
os.environ["RATE_LIMIT_PER_IP"] = "0"
# How often a test server's loop checks for shutdown().
POLL_SECONDS = 0.05


@contextmanager
def serve(app):
    """Run a Flask app on a threaded server at 127.0.0.1:<free port>; yield its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # serve_forever notices shutdown() only between polls: 0.5 s by default, paid at every
    # teardown of a function-scoped server.
    thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def make_settings(**overrides) -> Settings:
    base = {"log_level": "warning", "local_n_threads": 2, "retry_backoff_seconds": 0.01}
    base.update(overrides)
    return load_settings(**base)


@pytest.fixture
def upstream():
    server = start_upstream()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def up():
    """One OpenAI-compatible stand-in per test module, for modules whose apps share it."""
    server = start_upstream()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def local_url():
    """The gateway on the embedded model (loaded once for the session)."""
    app = create_app(make_settings(local_max_queue=8, local_max_wait_seconds=30))
    with serve(app) as url:
        yield url


@pytest.fixture
def upstream_gateway(upstream):
    """The gateway fronting the stand-in upstream; yields (url, upstream server)."""
    # The stand-in's always-429 says Retry-After: 7: the retries honour it up to this cap
    # (what the client is told stays 7), not 14 s of waiting per test.
    app = create_app(make_settings(lm_studio_base_url=upstream.url, request_timeout_seconds=1.5,
                                   models_cache_seconds=0, retry_after_max_seconds=0.05))
    with serve(app) as url:
        yield url, upstream
