"""The console's status view: readiness, requests in flight, recent rate-limit refusals.

Refusals are counted per minute in the rate-limit storage (``RATELIMIT_STORAGE_URI``),
beside the limits themselves: with ``redis://`` the count covers every worker
and instance, with ``memory://`` only the process that answers (like the
limits). ``/metrics``' ``gateway_rate_limit_rejections`` has the totals since start.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from flask import Flask, current_app, has_app_context

from . import metrics

log = logging.getLogger(__name__)

WINDOW_MINUTES = 60


class RefusalLog:
    """Rate-limit refusals per minute, kept for an hour in the limits' storage."""

    def __init__(self, storage, prefix: str):
        self.storage = storage
        self.prefix = prefix

    def _key(self, minute: int) -> str:
        return f"{self.prefix}/refusals/{minute}"

    def add(self) -> None:
        try:
            self.storage.incr(self._key(int(time.time() // 60)), (WINDOW_MINUTES + 1) * 60)
        except Exception:  # noqa: BLE001 - the count is advisory; the refusal stands
            log.warning("could not count a rate-limit refusal", exc_info=True)

    def last_hour(self) -> int | None:
        """Refusals in the last 60 minutes (the current one included); None if unreadable."""
        now = int(time.time() // 60)
        try:
            return sum(int(self.storage.get(self._key(m)) or 0)
                       for m in range(now - WINDOW_MINUTES + 1, now + 1))
        except Exception:  # noqa: BLE001
            log.warning("could not read the rate-limit refusal counts", exc_info=True)
            return None


def _count_refusal(_limit: str) -> None:
    if has_app_context():  # refusals happen while serving a request
        refusals = current_app.extensions.get("refusals")
        if refusals is not None:
            refusals.add()


def status(app: Flask) -> dict[str, Any]:
    """What ``GET /admin/status`` answers: /readyz's own JSON, in flight, refusals."""
    from .api.ops import readyz

    ready = readyz()
    return {"readiness": orjson.loads(ready.get_data()),
            "ready": ready.status_code == 200,
            "in_flight": max(0, int(metrics.in_flight()) - 1),  # not counting this request
            "rate_limit_refusals_last_hour": app.extensions["refusals"].last_hour(),
            "rate_limit_storage": app.extensions["limits"].settings.ratelimit_storage_uri
            .split("://", 1)[0]}


def init_app(app: Flask) -> None:
    """After ``limits.init_app``: refusals are counted in its storage."""
    limits = app.extensions["limits"]
    app.extensions["refusals"] = RefusalLog(limits.storage,
                                            limits.settings.ratelimit_key_prefix)
    metrics.on_rate_limited(_count_refusal)
