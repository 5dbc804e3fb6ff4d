"""Per-request plumbing: request id, the access-log record, body parsing, disconnects.

One JSON access line per request is written when the response is closed,
i.e. after the last byte of a stream, so it carries the final token counts.
Upstream calls made while serving a request add their time to response
headers (``upstream_ms``) and their retries (``upstream_retries``) to it.
"""

from __future__ import annotations

import logging
import re
import select
import socket
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import orjson
from flask import Flask, Response, g, has_request_context, request

from ..core import errors

access_log = logging.getLogger("service.access")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the response ended


@dataclass(slots=True)
class RequestRecord:
    """What the access log (and later usage accounting) knows of a request."""

    request_id: str
    method: str
    path: str
    family: str
    route: Optional[str] = None  # the URL rule (bounded, for metrics); None when unrouted
    start: float = field(default_factory=time.perf_counter)
    status: int = 0
    model: Optional[str] = None
    provider: Optional[str] = None  # the backend's name (MODELS_FILE) or the seed kind
    upstream_model: Optional[str] = None  # the name the backend was asked for (issue 13)
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    stream: bool = False
    ttft_ms: Optional[float] = None
    error_code: Optional[str] = None
    duration_ms: Optional[float] = None
    upstream_ms: Optional[float] = None  # summed time to upstream response headers
    upstream_retries: Optional[int] = None
    key_id: Optional[str] = None  # the authenticated API key's id (issue 6)
    metered: Optional[bool] = None  # past auth and rate limits: gets a usage row (issue 6)

    def routed(self, model: str, provider: str, stream: bool = False) -> None:
        self.model, self.provider, self.stream = model, provider, stream

    def add_usage(self, usage) -> None:
        """Add a result's token counts (several results add up, e.g. a prompt batch)."""
        if usage is not None:
            self.prompt_tokens = (self.prompt_tokens or 0) + usage.prompt_tokens
            self.completion_tokens = (self.completion_tokens or 0) + usage.completion_tokens

    def client_closed(self) -> None:
        """The client hung up before the response ended: 499, as nginx logs it (the
        status line said 200, but the answer was not delivered)."""
        self.status = CLIENT_CLOSED_REQUEST
        self.error_code = self.error_code or "client_closed_request"

    def first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = round((time.perf_counter() - self.start) * 1000, 2)


_LOGGED_FIELDS = tuple(f.name for f in fields(RequestRecord) if f.name != "start")


def family_for_path(path: str) -> str:
    if path == "/v1/responses" or path.startswith("/v1/responses/"):
        return "responses"
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    if path.startswith("/v1/") or path == "/v1":
        return "openai"
    if path.startswith("/api/") or path == "/":
        return "ollama"
    if path in ("/complete", "/health", "/status", "/restart"):
        return "helios"
    if path == "/infill":
        return "llamacpp"
    return "openai"


def current_record() -> RequestRecord:
    return g.record


#: Deepest JSON nesting a body may have. orjson (and so every relay and response) stops at
#: 255 levels; conversions add a few, so bodies are bounded well below that at the door.
MAX_JSON_DEPTH = 128


def _within_depth(node: dict | list, budget: int) -> bool:
    """Whether ``node`` nests containers at most ``budget`` levels deep.

    Recursion stops at ``budget`` (≤ MAX_JSON_DEPTH), far below Python's limit; only
    containers are visited (strings and numbers are not walked).
    """
    if budget <= 0:
        return False
    for value in (node.values() if type(node) is dict else node):
        kind = type(value)
        if (kind is dict or kind is list) and not _within_depth(value, budget - 1):
            return False
    return True


def read_json() -> dict[str, Any]:
    """The body as a JSON object, or InvalidRequest naming what is wrong."""
    data = request.get_data(cache=False)
    if not data:
        raise errors.InvalidRequest("the request body is empty; expected a JSON object")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    if not _within_depth(body, MAX_JSON_DEPTH):
        raise errors.InvalidRequest(
            f"the request body nests JSON more than {MAX_JSON_DEPTH} levels deep")
    return body


def json_response(obj: Any, status: int = 200) -> Response:
    """``obj`` as a JSON response (orjson: fast, and no key sorting)."""
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def disconnect_check(interval: float = 0.2) -> Callable[[], bool]:
    """A cheap test of whether the client closed its connection, at most every ``interval`` s."""
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    if sock is None:
        return lambda: False
    state = {"next": 0.0, "gone": False}

    def gone() -> bool:
        now = time.monotonic()
        if state["gone"] or now < state["next"]:
            return state["gone"]
        state["next"] = now + interval
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and sock.recv(1, socket.MSG_PEEK) == b"":
                state["gone"] = True
        except (OSError, ValueError):
            state["gone"] = True
        return state["gone"]

    return gone


RequestHook = Callable[[RequestRecord], None]


def on_request_done(app: Flask, hook: RequestHook) -> None:
    """Call ``hook(record)`` once per request after its response closed.

    Runs after the last byte of a stream (final token counts known); usage
    accounting and metrics subscribe here. A failing hook is logged, never raised.
    """
    app.extensions.setdefault("request_done_hooks", []).append(hook)


def init_app(app: Flask) -> None:
    hooks: list[RequestHook] = app.extensions.setdefault("request_done_hooks", [])

    @app.before_request
    def _start():
        rid = request.headers.get("X-Request-ID", "")
        if not _SANE_ID.match(rid):
            rid = uuid.uuid4().hex
        rule = request.url_rule
        g.record = RequestRecord(request_id=rid, method=request.method, path=request.path,
                                 family=family_for_path(request.path),
                                 route=rule.rule if rule is not None else None)

    @app.after_request
    def _finish(response):
        record: Optional[RequestRecord] = g.get("record")
        if record is None:  # failed before _start (e.g. routing of a bad method)
            return response
        response.headers["X-Request-ID"] = record.request_id
        record.status = response.status_code
        response.call_on_close(lambda: _done(record, hooks))
        return response


def note_upstream(call) -> None:
    """HttpClient observer (wired by ``api.ops``): add an upstream call's timing and
    retries to the current request's record."""
    if call.phase != "headers" or not has_request_context():
        return
    record: Optional[RequestRecord] = g.get("record")
    if record is None:
        return
    record.upstream_ms = round((record.upstream_ms or 0.0) + call.seconds * 1000, 2)
    record.upstream_retries = (record.upstream_retries or 0) + len(call.retries)


def _done(record: RequestRecord, hooks: list[RequestHook]) -> None:
    record.duration_ms = round((time.perf_counter() - record.start) * 1000, 2)
    if access_log.isEnabledFor(logging.INFO):
        line = {k: getattr(record, k) for k in _LOGGED_FIELDS}
        access_log.info("request", extra={k: v for k, v in line.items() if v is not None})
    for hook in hooks:
        try:
            hook(record)
        except Exception:  # noqa: BLE001 - accounting must not break responses
            access_log.exception("request hook %r failed", hook)
