"""Prometheus metrics: definitions, the functions that record them, the exposition.

Process-wide (a metric is one object per process, as prometheus-client wants).
Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``gunicorn.conf.py``
before any worker imports this module, so values live in per-process files
that every worker's ``/metrics`` aggregates (multiprocess mode); without it
(the threaded test server, ``flask run``) the default in-process registry is used.

Flask-free, so providers can record what only they see (queue waits); the web
glue is ``service/api/ops.py``. Other modules call :func:`rate_limited` when they
refuse a request for a limit.
"""

from __future__ import annotations

import os
import threading
from typing import Optional

from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest,
)
from prometheus_client import multiprocess

__all__ = [
    "observe_request", "observe_upstream", "observe_queue_wait", "queue_rejected",
    "rate_limited", "request_started", "request_finished", "render", "CONTENT_TYPE_LATEST",
]

# LLM requests range from milliseconds (errors, cached lists) to minutes (long streams).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "gateway_requests", "HTTP requests served, by route, method, status, model and provider.",
    ["route", "method", "status", "model", "provider"])
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds",
    "Time from request start to the last byte of the response (streams included).",
    ["route", "provider"], buckets=_LATENCY_BUCKETS)
TTFT_SECONDS = Histogram(
    "gateway_time_to_first_token_seconds", "Time to the first streamed token.",
    ["model", "provider"], buckets=_TTFT_BUCKETS)
PROMPT_TOKENS = Counter(
    "gateway_prompt_tokens", "Prompt tokens processed.", ["model", "provider"])
COMPLETION_TOKENS = Counter(
    "gateway_completion_tokens", "Completion tokens generated.", ["model", "provider"])
IN_FLIGHT = Gauge(
    "gateway_requests_in_flight", "Requests being served now (streams until their last byte).",
    multiprocess_mode="livesum")
UPSTREAM_SECONDS = Histogram(
    "gateway_upstream_request_duration_seconds",
    "Time until an upstream's response headers (retries included).",
    ["upstream", "outcome"], buckets=_LATENCY_BUCKETS)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors", "Failed upstream calls, by kind (status_503, read_timeout…).",
    ["upstream", "kind"])
UPSTREAM_RETRIES = Counter(
    "gateway_upstream_retries", "Upstream retries, by what caused them.", ["upstream", "kind"])
QUEUE_WAIT_SECONDS = Histogram(
    "gateway_local_queue_wait_seconds", "Time a request waited for the local model.",
    buckets=_WAIT_BUCKETS)
QUEUE_REJECTIONS = Counter(
    "gateway_local_queue_rejections", "Requests refused because the local model stayed busy.")
FALLBACKS = Counter(
    "gateway_fallbacks", "Deployments that failed before the first byte and were replaced, "
    "by public model, backend and error kind.", ["model", "backend", "kind"])
COOLDOWNS = Counter(
    "gateway_deployment_cooldowns", "Times a deployment was cooled down after repeated "
    "failures (MODELS_FILE).", ["backend", "upstream_model"])
RATE_LIMITED = Counter(
    "gateway_rate_limit_rejections", "Requests refused by a rate limit, by limit.", ["limit"])

# Client-chosen model names must not grow the label set without bound.
MAX_MODEL_LABELS = 100
_models: set[str] = set()
_models_lock = threading.Lock()


def _model_label(model: Optional[str]) -> str:
    if not model:
        return ""
    if model in _models:
        return model
    with _models_lock:
        if len(_models) < MAX_MODEL_LABELS:
            _models.add(model)
            return model
    return "other"


def request_started() -> None:
    IN_FLIGHT.inc()


def request_finished() -> None:
    IN_FLIGHT.dec()


def observe_request(record) -> None:
    """Record one finished request (a ``RequestRecord``; duck-typed to stay Flask-free)."""
    route = record.route or "unmatched"
    provider = record.provider or ""
    model = _model_label(record.model)
    REQUESTS.labels(route, record.method, str(record.status), model, provider).inc()
    if record.duration_ms is not None:
        REQUEST_SECONDS.labels(route, provider).observe(record.duration_ms / 1000)
    if record.stream and record.ttft_ms is not None:
        TTFT_SECONDS.labels(model, provider).observe(record.ttft_ms / 1000)
    if record.prompt_tokens:
        PROMPT_TOKENS.labels(model, provider).inc(record.prompt_tokens)
    if record.completion_tokens:
        COMPLETION_TOKENS.labels(model, provider).inc(record.completion_tokens)


def observe_upstream(call) -> None:
    """Record one upstream call (an ``http_client.UpstreamCall``)."""
    if call.phase == "headers":
        UPSTREAM_SECONDS.labels(call.upstream, "error" if call.error else "ok").observe(call.seconds)
    if call.error:
        UPSTREAM_ERRORS.labels(call.upstream, call.error).inc()
    for kind in call.retries:
        UPSTREAM_RETRIES.labels(call.upstream, kind).inc()


def observe_queue_wait(seconds: float) -> None:
    """A request got the local model after waiting ``seconds`` (0 when it was free)."""
    QUEUE_WAIT_SECONDS.observe(seconds)


def queue_rejected() -> None:
    """A request was refused because the local model stayed busy."""
    QUEUE_REJECTIONS.inc()


def fell_back(model: str, backend: str, kind: str) -> None:
    FALLBACKS.labels(_model_label(model), backend, kind).inc()


def cooled_down(backend: str, upstream_model: str) -> None:
    COOLDOWNS.labels(backend, _model_label(upstream_model)).inc()


def rate_limited(limit: str) -> None:
    """A request was refused by the rate limit named ``limit`` (e.g. "key_rpm", "ip")."""
    RATE_LIMITED.labels(limit).inc()


def multiprocess_dir() -> Optional[str]:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render() -> bytes:
    """The exposition text: every worker's values in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
