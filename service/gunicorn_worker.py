"""gunicorn's gthread worker with a read deadline per request and admission fitted to threads.

``gunicorn.conf.py`` selects it (``worker_class``). Two additions:

- every request must arrive whole within ``CLIENT_READ_TIMEOUT_SECONDS`` of its
  first byte (``service.read_deadline``), so slow clients cannot hold threads;
- the app's admission caps are fitted to this worker's thread count
  (``service.admission.fit_to_threads``), so ``/healthz``, ``/readyz`` and
  ``/metrics`` always find a free thread.
"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker

from .admission import fit_to_threads
from .read_deadline import ReadDeadlines, RequestReadWatch
from .settings import load_settings


class GatewayThreadWorker(ThreadWorker):
    deadlines = None

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
