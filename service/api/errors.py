"""Error responses: one GatewayError, rendered in the caller's API format.

Each API family registers how it renders an error (body) and, for streams,
an error event. Unhandled exceptions are logged with their traceback and
answered with a generic 500 that names the request id, never the traceback.
"""

from __future__ import annotations

import logging
from typing import Callable

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from ..core import errors
from .context import family_for_path

log = logging.getLogger(__name__)

Renderer = Callable[[errors.GatewayError], dict]
_renderers: dict[str, Renderer] = {}


def register_renderer(family: str, fn: Renderer) -> None:
    _renderers[family] = fn


def render_error(exc: errors.GatewayError, family: str | None = None) -> Response:
    family = family or family_for_path(request.path)
    body = _renderers.get(family, _renderers["openai"])(exc)
    resp = Response(orjson.dumps(body), status=exc.status, mimetype="application/json")
    if exc.retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, int(round(exc.retry_after))))
    record = g.get("record")
    if record is not None:
        record.error_code = exc.code or exc.type
    return resp


def from_http_exception(exc: HTTPException) -> errors.GatewayError:
    code = exc.code or 500
    if code == 404:
        return errors.NotFound(f"unknown route: {request.method} {request.path}")
    if code == 405:
        return errors.MethodNotAllowed(f"method {request.method} is not allowed on {request.path}")
    if code == 413:
        from flask import current_app

        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return errors.PayloadTooLarge(f"the request body exceeds {limit} bytes (MAX_BODY_BYTES)")
    if code == 400:
        return errors.InvalidRequest(exc.description or "bad request")
    return errors.GatewayError(exc.description or exc.name, status=code)


def to_gateway_error(exc: BaseException, request_id: str = "?") -> errors.GatewayError:
    """Any exception as a GatewayError; unexpected ones are logged here.

    Usable inside stream generators (no request context needed).
    """
    if isinstance(exc, errors.GatewayError):
        return exc
    if isinstance(exc, HTTPException):
        return from_http_exception(exc)
    rid = request_id
    log.error("unhandled error", exc_info=exc, extra={"request_id": rid})
    return errors.InternalError(f"internal error (request id {rid}); see the gateway log")


def init_app(app: Flask) -> None:
    @app.errorhandler(errors.GatewayError)
    def _gateway(exc):
        return render_error(exc)

    @app.errorhandler(HTTPException)
    def _http(exc):
        resp = render_error(from_http_exception(exc))
        allow = dict(exc.get_headers()).get("Allow")
        if allow:  # a 405 says which methods the route takes (RFC 9110)
            resp.headers["Allow"] = allow
        return resp

    @app.errorhandler(Exception)
    def _other(exc):
        record = g.get("record")
        return render_error(to_gateway_error(exc, record.request_id if record else "?"))
