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
        # poll often: shutdown() waits for the next poll (0.5 s by default), at every teardown
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return server


def session_from(address: str):
    """A ``requests`` session whose connections come from ``address`` (e.g. 127.0.0.2):
    another client, as far as a server on 127.0.0.1 can tell."""
    import requests
    from requests.adapters import HTTPAdapter

    class _FromAddress(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["source_address"] = (address, 0)
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.mount("http://", _FromAddress())
    return session
