"""Operations endpoints: ``GET /metrics`` (Prometheus) and ``GET /readyz``.

``init_app`` (called once the gateway exists) feeds the metrics: in-flight
requests from a before/close pair, everything else from the access record when
a response closes (``on_request_done``), upstream calls from the shared HTTP
client's observers (which also put upstream timing on the access record).
Scrapes of ``/metrics`` are not counted as requests.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson
from flask import Blueprint, Flask, Response, current_app, g, request

from .. import metrics
from ..core import errors
from ..readiness import Readiness, provider_checks
from ..settings import Settings
from .context import note_upstream, on_request_done

bp = Blueprint("ops", __name__)
METRICS_PATH = "/metrics"


@bp.get(METRICS_PATH)
def prometheus_metrics():
    token = current_app.config.get("METRICS_TOKEN_SHA256")
    if token is not None:
        auth = request.headers.get("Authorization", "")
        given = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), token):
            raise errors.AuthenticationFailed(
                "GET /metrics needs 'Authorization: Bearer <METRICS_TOKEN>'")
    return Response(metrics.render(), mimetype=None,
                    headers={"Content-Type": metrics.CONTENT_TYPE_LATEST})


@bp.get("/readyz")
def readyz():
    results = current_app.extensions["readiness"].run()
    not_ready = {name: reason for name, reason in results.items() if reason is not None}
    body = {"status": "not ready" if not_ready else "ready",
            "checks": {name: ("ok" if reason is None else reason)
                       for name, reason in results.items()}}
    if not_ready:
        body["not_ready"] = sorted(not_ready)
    # Deployments skipped after repeated failures (MODELS_FILE); informative, not a failure:
    # the model's other deployments and fallbacks still serve.
    cooldowns = current_app.extensions["gateway"].dispatch.cooldowns()
    if cooldowns:
        body["cooldowns"] = cooldowns
    return Response(orjson.dumps(body), status=503 if not_ready else 200,
                    mimetype="application/json", headers={"Cache-Control": "no-store"})


def init_app(app: Flask, settings: Settings) -> None:
    """Readiness registry (with one check per provider) and the metrics feeds."""
    if settings.metrics_token:
        app.config["METRICS_TOKEN_SHA256"] = hashlib.sha256(settings.metrics_token.encode()).digest()
    readiness = app.extensions.setdefault("readiness", Readiness())
    gateway = app.extensions["gateway"]
    provider_checks(readiness, gateway.providers, settings.readiness_cache_seconds,
                    settings.readiness_probe_timeout_seconds)
    gateway.http.observers.append(note_upstream)  # upstream_ms / upstream_retries in the log
    gateway.http.observers.append(metrics.observe_upstream)
    metrics.add_served_models(gateway.router.list_models)  # model labels: served names only

    @app.before_request
    def _in_flight():
        if request.path != METRICS_PATH:
            metrics.request_started()
            g.metrics_in_flight = True

    @app.after_request
    def _in_flight_done(response):
        if g.pop("metrics_in_flight", False):
            response.call_on_close(metrics.request_finished)
        return response

    def _observe(record):
        if record.path != METRICS_PATH:
            metrics.observe_request(record)

    on_request_done(app, _observe)
