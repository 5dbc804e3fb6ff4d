"""CORS in a real browser: a page served on another loopback port calls the gateway with the
headers clients send (a preflight first); a page from an origin not allowed cannot."""

from __future__ import annotations

from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest

from service import create_app
from tests.conftest import make_settings, serve
from tests.support.browser import browser, require_chromium  # noqa: F401
from tests.support.loopback import LoopbackServer
from tests.support.procs import free_port

require_chromium()

CALL = """async (url) => {
  try {
    const r = await fetch(url + "/v1/chat/completions", {method: "POST", headers: {
      "Authorization": "Bearer sk-browser", "x-api-key": "sk-browser",
      "anthropic-version": "2023-06-01", "X-Request-ID": "from-the-browser",
      "Content-Type": "application/json"},
      body: JSON.stringify({model: "echo-1", messages: [{role: "user", content: "hi"}]})});
    const body = await r.json();
    return {status: r.status, requestId: r.headers.get("X-Request-ID"),
            content: body.choices ? body.choices[0].message.content : null};
  } catch (e) { return {error: String(e)}; }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>another app</title><p>another app</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class PageServer(LoopbackServer):
    handler = _Page
    state_class = dict


@contextmanager
def page_server(port: int = 0):
    server = PageServer.start(port)
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def pages():
    """Two pages on other loopback ports; the second one's origin is not allowed."""
    allowed, refused = free_port(), free_port()
    with page_server(allowed) as a, page_server(refused) as b:
        yield a, b


def _gateway(upstream, tmp_path, **settings):
    return serve(create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                          api_keys="sk-browser", **settings)))


def test_default_origins_let_a_local_page_call_the_gateway(browser, pages, upstream, tmp_path):  # noqa: F811
    with _gateway(upstream, tmp_path, rate_limit_per_ip=1) as url:
        page = browser.new_page()
        page.goto(pages[0])
        for _ in range(2):  # preflights are not counted: the key's limit is what applies
            result = page.evaluate(CALL, url)
            assert result == {"status": 200, "requestId": "from-the-browser",
                              "content": "echo: hi"}, result
        page.close()


def test_an_origin_not_allowed_is_blocked(browser, pages, upstream, tmp_path):  # noqa: F811
    with _gateway(upstream, tmp_path, cors_allow_origins=pages[0]) as url:
        page = browser.new_page()
        page.goto(pages[0])
        assert page.evaluate(CALL, url)["status"] == 200
        page.goto(pages[1])
        result = page.evaluate(CALL, url)
        assert "error" in result and "Failed to fetch" in result["error"], result
        page.close()
    assert sum(upstream.state.calls.values()) == 1  # the refused page's call never ran
