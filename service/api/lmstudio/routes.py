"""``GET /llm``, ``GET /system``: LM Studio's SDK WebSockets, for Roo Code's model picker.

``new LMStudioClient({baseUrl: "ws://host:port"})`` opens ``ws://host:port/<namespace>``
per namespace it uses; Roo turns its ``http://`` base URL into ``ws://`` and lists
models over ``/system`` and ``/llm`` on the gateway's own port.

The WebSocket protocol is `simple-websocket` (over wsproto), on the socket
gunicorn's gthread worker hands the request: one worker thread serves the
connection for its whole life, plus the library's reader thread. So both are
bounded: at most ``LMSTUDIO_WS_MAX_CONNECTIONS`` per worker (fitted to the
thread count with the model-request caps, ``service.admission.fit_to_threads``;
beyond it the upgrade gets 503 ``overloaded``), and a connection whose client
sends nothing for ``LMSTUDIO_WS_IDLE_SECONDS`` is closed (Roo never closes
its own). Whatever way a connection ends, the reader thread is stopped and the
slot released before the worker thread returns.

Authentication: the SDK's first frame carries a client identifier and passkey
(random unless the caller sets them). With gateway keys off any is accepted;
with keys on the passkey must be a usable gateway key (its model allow-list
then filters the listing), else the SDK gets the protocol's authentication
failure naming what to do instead. Roo's LM Studio provider cannot send a key.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any, Optional

import orjson
from flask import Blueprint, Response, current_app, request
from simple_websocket import ConnectionClosed, Server
from simple_websocket.errors import ConnectionError as WsConnectionError
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import ProtocolError

from ...core import errors
from ...core.types import ModelInfo
from ...gateway import get_gateway
from ...db import utcnow
from ...keys import ApiKey
from . import protocol
from .session import NAMESPACES, Session

log = logging.getLogger(__name__)

bp = Blueprint("lmstudio", __name__)

MAX_MESSAGE_BYTES = 1 << 20  # the SDK's listing packets are a few hundred bytes
_READER_JOIN_SECONDS = 2.0  # for the client to answer our close frame

KEY_REFUSAL = ("this gateway requires an API key, and LM Studio's SDK sends none (Roo Code's "
               "LM Studio provider cannot send one): in Roo use the 'OpenAI Compatible' "
               "provider with base URL <gateway>/v1 and your key, or pass the key as the "
               "SDK's clientPasskey")


def websocket():
    namespace = request.path.strip("/")
    assert namespace in NAMESPACES
    if "websocket" not in request.headers.get("Upgrade", "").lower():
        raise errors.InvalidRequest(
            f"/{namespace} is LM Studio's SDK WebSocket endpoint: connect with "
            "'Upgrade: websocket' (new LMStudioClient({baseUrl: 'ws://host:port'}))",
            status=426, code="upgrade_required")
    gw = get_gateway()
    settings = gw.settings
    slots = gw.admission.sockets
    if slots.limit == 0:
        raise errors.NotFound(f"/{namespace}: the LM Studio SDK endpoints are off "
                              "(LMSTUDIO_WS_MAX_CONNECTIONS=0)")
    try:
        slots.acquire(time.monotonic(), None)
    except errors.ServiceUnavailable:
        raise errors.ServiceUnavailable(
            f"{slots.limit} LM Studio SDK WebSockets are open in this worker "
            "(LMSTUDIO_WS_MAX_CONNECTIONS); retry shortly", code="overloaded",
            retry_after=settings.lmstudio_ws_idle_seconds) from None
    try:
        try:
            ws = Server(request.environ, max_message_size=MAX_MESSAGE_BYTES)
        except ProtocolError as exc:  # nothing was sent yet: a plain HTTP answer still fits
            raise errors.InvalidRequest(f"bad WebSocket handshake: {exc}") from None
        except (OSError, WsConnectionError):
            log.info("client left during the WebSocket handshake on /%s", namespace)
            return _finished(499)
        try:
            _serve(ws, namespace, settings.lmstudio_ws_idle_seconds)
        finally:
            _end(ws)
    finally:
        slots.release()
    return _finished(101)


for _ns in NAMESPACES:  # werkzeug routes WebSocket and plain requests by separate rules
    bp.add_url_rule(f"/{_ns}", f"{_ns}_websocket", websocket, websocket=True)
    bp.add_url_rule(f"/{_ns}", _ns, websocket)


def _serve(ws: Server, namespace: str, idle: float) -> None:
    """Authenticate, then answer packets until the client leaves or is idle too long."""
    try:
        first = ws.receive(timeout=idle)
        if first is None:
            ws.close(CloseReason.POLICY_VIOLATION, "no authentication packet")
            return
        key, refusal = _authenticate(_json(first))
        if refusal is not None:
            _send(ws, {"success": False, "error": refusal})
            ws.close(CloseReason.POLICY_VIOLATION, "authentication failed")
            return
        _send(ws, {"success": True})
        session = Session(namespace, lambda: _models(key))
        while True:
            raw = ws.receive(timeout=idle)
            if raw is None:
                ws.close(CloseReason.NORMAL_CLOSURE, f"idle for {idle:g}s")
                return
            packet = _json(raw)
            replies = session.handle(packet) if packet is not _BAD else [
                {"type": "communicationWarning", "warning": "a packet must be JSON text"}]
            for reply in replies:
                _send(ws, reply)
    except (ConnectionClosed, OSError):
        pass  # the client left; _end() tidies up
    except Exception:  # noqa: BLE001 - one broken connection must not take the thread's error page
        log.exception("LM Studio SDK WebSocket on /%s failed", namespace)
        try:
            ws.close(CloseReason.INTERNAL_ERROR, "internal error")
        except (ConnectionClosed, OSError):
            pass


def _authenticate(packet: Any) -> tuple[Optional[ApiKey], Optional[str]]:
    """(the key the passkey names or None, why the connection is refused or None)."""
    problem = protocol.auth_packet_error(packet)
    if problem is not None:
        return None, problem
    auth = current_app.extensions["auth"]
    try:
        if not auth.enabled():
            return None, None
        record = auth.lookup(packet["clientPasskey"])
    except errors.ServiceUnavailable as exc:
        return None, exc.message
    if record is None:
        return None, KEY_REFUSAL
    refusal = record.refusal(utcnow())
    return (None, refusal) if refusal else (record, None)


def _models(key: Optional[ApiKey]) -> list[ModelInfo]:
    """The gateway's public models, as far as ``key`` may use them."""
    models = get_gateway().router.list_models()
    return models if key is None else [m for m in models if key.allows(m.id)]


_BAD = object()


def _json(raw) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _BAD


def _send(ws: Server, packet: dict) -> None:
    ws.send(orjson.dumps(packet).decode())


def _end(ws: Server) -> None:
    """Close ``ws`` and stop its reader thread, even if the client never answers."""
    try:
        ws.close()
    except (ConnectionClosed, OSError):
        pass
    ws.thread.join(_READER_JOIN_SECONDS)
    if ws.thread.is_alive():  # the client holds the socket open without answering
        try:
            ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        ws.thread.join(_READER_JOIN_SECONDS)


class _Finished(Response):
    """The WSGI answer once the socket was taken over: under gunicorn, nothing more is
    written and the connection is closed (gunicorn closes on ``StopIteration``)."""

    def __call__(self, environ, start_response):
        if "gunicorn.socket" in environ and "werkzeug.socket" not in environ:
            self.close()  # what happens on close (access log, metrics) happens now
            raise StopIteration()
        return super().__call__(environ, start_response)  # werkzeug's dev server


def _finished(status: int) -> Response:
    return _Finished(status=status)
