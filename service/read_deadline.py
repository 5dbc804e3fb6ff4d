"""A deadline for receiving a request: slow clients cannot hold worker threads.

gunicorn's gthread worker parses a request's headers, and the app reads its
body, in a pool thread with a blocking socket and no time limit, so a client
sending one byte every few seconds holds a thread for as long as it likes.
:class:`ReadDeadlines` gives each request ``CLIENT_READ_TIMEOUT_SECONDS``
from its first byte to its last: a watchdog thread cuts the connection of a
request still arriving after that (``408`` if the headers were not complete,
else the body read fails and the app answers 408 in the caller's format).

The worker (``service.gunicorn_worker``) starts the clock when a connection
becomes readable; :class:`RequestReadWatch` (WSGI middleware) stops it once
the body has been read or the response starts.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Optional

from .core import errors

log = logging.getLogger(__name__)

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s")
_TIMEOUT_BODY = (b'{"error": {"message": "the request was not received within '
                 b'CLIENT_READ_TIMEOUT_SECONDS", "type": "invalid_request_error", '
                 b'"code": "request_timeout"}}')


class _Entry:
    __slots__ = ("deadline", "in_app", "expired")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.in_app = False  # headers parsed; the app is (maybe) reading the body
        self.expired = False


class ReadDeadlines:
    """Sockets that must finish sending their request by a deadline."""

    def __init__(self, timeout: float, tick: Optional[float] = None):
        self.timeout = timeout
        self.tick = tick or min(0.25, timeout / 4)
        self._entries: dict[socket.socket, _Entry] = {}
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="read-deadlines", daemon=True)
        self._thread.start()

    def watch(self, sock: socket.socket) -> None:
        """A request starts arriving on ``sock``."""
        with self._lock:
            self._entries[sock] = _Entry(time.monotonic() + self.timeout)

    def in_app(self, sock) -> Optional[_Entry]:
        with self._lock:
            entry = self._entries.get(sock)
            if entry is not None:
                entry.in_app = True
            return entry

    def done(self, sock) -> None:
        """The request has arrived whole (or the connection is finished)."""
        with self._lock:
            self._entries.pop(sock, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                late = [(s, e) for s, e in self._entries.items() if e.deadline <= now]
                for s, _ in late:
                    del self._entries[s]
            for sock, entry in late:
                entry.expired = True
                self._cut(sock, entry)

    def _cut(self, sock: socket.socket, entry: _Entry) -> None:
        log.info("request not received within %gs (CLIENT_READ_TIMEOUT_SECONDS); "
                 "connection cut", self.timeout)
        try:
            if not entry.in_app:  # nothing has been written yet: say why
                sock.setblocking(False)
                try:
                    sock.send(_TIMEOUT_RESPONSE % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))
                except OSError:
                    pass
                sock.shutdown(socket.SHUT_RDWR)
            else:  # the app is reading the body: end its reads, keep its answer
                sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # already closed


class _Input:
    """``wsgi.input`` that reports when the whole body has been read."""

    def __init__(self, stream, length: Optional[int], entry: _Entry,
                 done: Callable[[], None]):
        self._stream = stream
        self._left = length
        self._entry = entry
        self._done = done

    def _seen(self, data: bytes, asked: Optional[int] = None) -> bytes:
        if self._entry.expired and (not data or (asked and len(data) < asked)):
            raise _timeout()
        if self._left is not None:
            self._left -= len(data)
        if not data or (self._left is not None and self._left <= 0):
            self._done()
        return data

    def read(self, size: int = -1) -> bytes:
        return self._seen(self._stream.read(size), size if size and size > 0 else None)

    def readline(self, size: int = -1) -> bytes:
        return self._seen(self._stream.readline(size))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self._stream.readlines(hint)
        self._seen(b"".join(lines))
        self._done()
        return lines

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


def _timeout() -> errors.GatewayError:
    return errors.InvalidRequest(
        "the request body was not received within CLIENT_READ_TIMEOUT_SECONDS",
        code="request_timeout", status=408)


class RequestReadWatch:
    """WSGI middleware: stop a request's read clock once its body is in (or the answer starts)."""

    def __init__(self, app, deadlines: ReadDeadlines):
        self.app = app
        self.deadlines = deadlines

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        entry = self.deadlines.in_app(sock) if sock is not None else None
        if entry is None:
            return self.app(environ, start_response)

        def done() -> None:
            self.deadlines.done(sock)

        length = environ.get("CONTENT_LENGTH")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked and (not length or length == "0"):
            done()
        else:
            environ["wsgi.input"] = _Input(environ["wsgi.input"],
                                           None if chunked else int(length), entry, done)

        def starting(status, headers, exc_info=None):
            done()
            return start_response(status, headers, exc_info)

        return self.app(environ, starting)
