"""The web side of admission control (``service.admission``) and the overhead figure.

``gone_check`` and ``note_backend`` are what ``Admission`` (the dispatcher's
slots) needs from a request; ``init_app`` puts ``X-Gateway-Overhead-Ms`` on every response and
feeds ``gateway_overhead_seconds``.

Overhead is measured up to the response headers (a stream's headers are sent
before its body, so nothing later can be reported in them): the time since the
request started minus the time spent inside the backend's call (an upstream's
time to its response headers, retries included; the local model's queue,
prompt and, for whole answers, the generation). Waiting for an admission slot
is the gateway's own time, so it counts.
"""

from __future__ import annotations

import time
from typing import Optional

from flask import Flask, g, has_request_context

from .. import metrics
from ..admission import GoneCheck
from .context import disconnect_check

OVERHEAD_HEADER = "X-Gateway-Overhead-Ms"


def gone_check() -> Optional[GoneCheck]:
    """The current request's departed-client check (None outside a request)."""
    return disconnect_check() if has_request_context() else None


def note_backend(seconds: float) -> None:
    if has_request_context():
        g.backend_seconds = g.get("backend_seconds", 0.0) + seconds


def init_app(app: Flask) -> None:
    @app.after_request
    def _overhead(response):
        record = g.get("record")
        if record is None:
            return response
        total = time.perf_counter() - record.start
        overhead = max(0.0, total - g.get("backend_seconds", 0.0))
        response.headers[OVERHEAD_HEADER] = f"{overhead * 1000:.2f}"
        metrics.observe_overhead(record.route, overhead)
        return response
