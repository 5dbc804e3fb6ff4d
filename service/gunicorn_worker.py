"""gunicorn's gthread worker, fitted for many long streams and slow or idle clients.

``gunicorn.conf.py`` selects it (``worker_class``). Three additions:

- every request must arrive whole within ``CLIENT_READ_TIMEOUT_SECONDS`` of its
  first byte (``service.read_deadline``), so slow clients cannot hold threads;
- the app's admission caps are fitted to this worker's thread count
  (``service.admission.fit_to_threads``), so ``/healthz``, ``/readyz`` and
  ``/metrics`` always find a free thread;
- closing a connection never blocks the main loop: gthread's graceful close
  (half-close, then read until the peer closes, up to 2 s) runs on the main
  thread, so each refused client that keeps its socket open stalled accepting
  and dispatching for everyone; here the lingering is done by the poller.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections import deque
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

from .admission import fit_to_threads
from .read_deadline import ReadDeadlines, RequestReadWatch
from .settings import load_settings

LINGER_SECONDS = 2.0  # as gunicorn's close_graceful


class _Conn(TConn):
    """A connection whose graceful close is handed to the worker's poller."""

    def __init__(self, worker: "GatewayThreadWorker", *args):
        super().__init__(*args)
        self._worker = worker

    def close(self, graceful=False):
        if graceful:
            self._worker.linger(self.sock)
        else:
            super().close()


class GatewayThreadWorker(ThreadWorker):
    deadlines = None

    def init_process(self):
        self._lingering: deque = deque()
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        gateway = getattr(self.wsgi, "extensions", {}).get("gateway")
        if gateway is not None:
            fit_to_threads(gateway.admission, self.cfg.threads)
            timeout = gateway.settings.client_read_timeout_seconds
        else:
            timeout = load_settings().client_read_timeout_seconds
        if timeout > 0:
            self.deadlines = ReadDeadlines(timeout)
            self.deadlines.start()
            self.wsgi = RequestReadWatch(self.wsgi, self.deadlines)

    def handle(self, conn):
        if self.deadlines is None:
            return super().handle(conn)
        self.deadlines.watch(conn.sock)
        try:
            return super().handle(conn)
        finally:
            self.deadlines.done(conn.sock)

    # ---- connections: accept with our TConn, linger without blocking ------------------
    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            self.enqueue_req(_Conn(self, self.cfg, client_sock, client_addr,
                                   listener.getsockname()))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    def linger(self, sock: socket.socket) -> None:
        """Half-close ``sock``, then drain it from the poller until EOF or the linger ends."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._drain, sock))
        except (OSError, ValueError, KeyError):
            _close(sock)
            return
        self._lingering.append((time.monotonic() + LINGER_SECONDS, sock))

    def _drain(self, sock: socket.socket, _fileobj=None) -> None:
        try:
            while sock.recv(65536):
                pass
        except BlockingIOError:
            return  # more later
        except OSError:
            pass
        self._forget(sock)  # EOF or error: done

    def _forget(self, sock: socket.socket) -> None:
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        _close(sock)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        while self._lingering and (self._lingering[0][0] <= now or
                                   self._lingering[0][1].fileno() < 0):
            self._forget(self._lingering.popleft()[1])


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
