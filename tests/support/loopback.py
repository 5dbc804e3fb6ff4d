"""A threaded HTTP server on 127.0.0.1 for the test stand-ins (upstream, Vertex)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class LoopbackServer(ThreadingHTTPServer):
    """Serves ``handler`` on 127.0.0.1 (a free port by default) with a fresh ``state``."""

    daemon_threads = True
    allow_reuse_address = True
    handler: type
    state_class: type

    def __init__(self, port: int = 0):
        super().__init__(("127.0.0.1", port), self.handler)
        self.state = self.state_class()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @classmethod
    def start(cls, port: int = 0):
        """Serve in a daemon thread; the caller shuts it down."""
        server = cls(port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
