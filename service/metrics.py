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

import logging
import os
import threading
import time
import weakref
from typing import Callable, Iterable, Optional

from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest,
)
from prometheus_client import multiprocess

log = logging.getLogger(__name__)

__all__ = [
    "observe_request", "observe_upstream", "observe_queue_wait", "queue_rejected",
    "rate_limited", "on_rate_limited", "in_flight", "request_started", "request_finished",
    "render", "CONTENT_TYPE_LATEST", "usage_row_quarantined", "add_served_models",
    "admission_rejected", "observe_admission_wait", "observe_overhead",
    "completion_cache", "superseded", "prompt_reuse", "fell_back", "cooled_down",
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
USAGE_QUARANTINED = Counter(
    "gateway_usage_rows_quarantined",
    "Usage rows the database refused (logged in full, not written; the rest go on).")
ADMISSION_REJECTIONS = Counter(
    "gateway_admission_rejections",
    "Model requests refused (503 overloaded) because the worker or an upstream was at capacity.",
    ["scope"])
ADMISSION_WAIT_SECONDS = Histogram(
    "gateway_admission_wait_seconds", "Time a model request waited for an admission slot.",
    buckets=_WAIT_BUCKETS)
OVERHEAD_SECONDS = Histogram(
    "gateway_overhead_seconds",
    "Time the gateway itself added up to the response headers (X-Gateway-Overhead-Ms): "
    "total minus time inside the backend.",
    ["route"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                        2.5, 5, 10))
COMPLETION_CACHE = Counter(
    "gateway_completion_cache", "Code-completion cache lookups: exact or typed hits, misses.",
    ["api", "model", "result"])
SUPERSEDED = Counter(
    "gateway_completions_superseded",
    "Completions cancelled because a newer request for the same file arrived.", ["api", "model"])
SUPERSEDED_MODEL_SECONDS = Counter(
    "gateway_superseded_model_seconds",
    "Backend time spent on completions before they were superseded (wasted).", ["api", "model"])
PROMPT_TOKENS_REUSED = Counter(
    "gateway_local_prompt_tokens_reused",
    "Prompt tokens the local model took from its KV cache instead of evaluating them.")

# Model names come from clients: only names the gateway serves become label values
# (bounded in number and length); any other name is counted as "other".
MAX_MODEL_LABELS = 100
MAX_LABEL_CHARS = 100
SERVED_MODELS_SECONDS = 60.0  # how long a listing of the served models is trusted
_listings: list[weakref.WeakMethod] = []  # weak: a listing must not keep its app alive
_served_ids: frozenset[str] = frozenset()
_served_at = float("-inf")
_models: set[str] = set()
_models_lock = threading.Lock()


def add_served_models(listing: Callable[[], Iterable]) -> None:
    """Tell the metrics which models the gateway serves: ``listing`` is a bound method
    returning models (``.id``), e.g. ``router.list_models``, called at most once per
    ``SERVED_MODELS_SECONDS``. A name no listing returns is labelled "other"."""
    global _served_at
    with _models_lock:
        _listings.append(weakref.WeakMethod(listing))
        _served_at = float("-inf")


def _served_models() -> frozenset[str]:
    global _served_ids, _served_at
    with _models_lock:
        if time.monotonic() - _served_at < SERVED_MODELS_SECONDS:
            return _served_ids
        _served_at = time.monotonic()  # one refresh at a time; others use the old list
        _listings[:] = [ref for ref in _listings if ref() is not None]
        listings = [ref() for ref in _listings]
    ids: set[str] = set()
    for listing in listings:
        try:
            ids.update(m.id for m in listing() if m is not None)
        except Exception:  # noqa: BLE001 - a backend that cannot list now: keep the old names
            log.warning("could not list the served models for metric labels", exc_info=True)
            ids.update(_served_ids)
    _served_ids = frozenset(ids)
    return _served_ids


def _model_label(model: Optional[str]) -> str:
    if not model:
        return ""
    if model in _models:
        return model
    if len(model) > MAX_LABEL_CHARS or not model.isprintable() or \
            model not in _served_models():
        return "other"
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


_rate_limit_listeners: list[Callable[[str], None]] = []


def on_rate_limited(listener: Callable[[str], None]) -> None:
    """Also call ``listener(limit)`` on every refusal (once per listener; it must not raise)."""
    if listener not in _rate_limit_listeners:
        _rate_limit_listeners.append(listener)


def fell_back(model: str, backend: str, kind: str) -> None:
    FALLBACKS.labels(_model_label(model), backend, kind).inc()


def cooled_down(backend: str, upstream_model: str) -> None:
    COOLDOWNS.labels(backend, _model_label(upstream_model)).inc()


def rate_limited(limit: str) -> None:
    """A request was refused by the rate limit named ``limit`` (e.g. "key_rpm", "ip")."""
    RATE_LIMITED.labels(limit).inc()
    for listener in _rate_limit_listeners:
        listener(limit)


def in_flight() -> float:
    """Requests in flight now, across this instance's workers in multiprocess mode."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(render().decode()):
        if family.name == "gateway_requests_in_flight":
            return sum(s.value for s in family.samples)
    return 0.0


def usage_row_quarantined() -> None:
    """The database refused a usage row; it was logged and skipped."""
    USAGE_QUARANTINED.inc()


def admission_rejected(scope: str) -> None:
    """A model request was refused because ``scope`` ("worker", "upstream NAME") was full."""
    ADMISSION_REJECTIONS.labels(scope).inc()


def observe_admission_wait(seconds: float) -> None:
    ADMISSION_WAIT_SECONDS.observe(seconds)


def observe_overhead(route: Optional[str], seconds: float) -> None:
    OVERHEAD_SECONDS.labels(route or "unmatched").observe(seconds)


def completion_cache(api: str, model: str, result: str) -> None:
    """A completion-cache lookup: ``result`` is ``exact``, ``typed`` or ``miss``."""
    COMPLETION_CACHE.labels(api, _model_label(model), result).inc()


def superseded(api: str, model: str, model_seconds: float) -> None:
    """A completion was cancelled by a newer one after ``model_seconds`` of backend time."""
    label = _model_label(model)
    SUPERSEDED.labels(api, label).inc()
    SUPERSEDED_MODEL_SECONDS.labels(api, label).inc(model_seconds)


def prompt_reuse(tokens: int) -> None:
    """The local model reused ``tokens`` prompt tokens from its KV cache."""
    if tokens > 0:
        PROMPT_TOKENS_REUSED.inc(tokens)


def multiprocess_dir() -> Optional[str]:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render() -> bytes:
    """The exposition text: every worker's values in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
