"""One LM Studio SDK connection after authentication: client packets in, server packets out.

Served (what ``client.system.listDownloadedModels()``, ``client.llm.listLoaded()``,
``LLM.getModelInfo()`` and ``client.llm.model(key)`` call):

- ``/system``: rpc ``listDownloadedModels``;
- ``/llm``: rpc ``listLoaded`` and ``getModelInfo``, channel ``getOrLoad``
  (answered ``alreadyLoaded``: every public model is served on demand).

Every other rpc, channel or signal is answered with the protocol's error
packet for it (``rpcError``, ``channelError``, ``signalError``,
``writableSignalError``) naming what is not served; a malformed packet gets a
``communicationWarning``. Nothing is left unanswered, so an SDK call never hangs.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from ...core import errors
from ...core.types import ModelInfo
from . import protocol

log = logging.getLogger(__name__)

NAMESPACES = ("llm", "system")
ListModels = Callable[[], list[ModelInfo]]

_NOT_SERVED = ("This gateway serves only LM Studio's model listing (listDownloadedModels, "
               "listLoaded, getModelInfo, getOrLoad); generate through its OpenAI-compatible "
               "API (/v1) instead.")


class Session:
    """Answers the packets of one authenticated connection to ``namespace``."""

    def __init__(self, namespace: str, list_models: ListModels):
        self.namespace = namespace
        self._list_models = list_models
        self._rpcs = {"system": {"listDownloadedModels": self._downloaded},
                      "llm": {"listLoaded": self._loaded,
                              "getModelInfo": self._model_info}}.get(namespace, {})
        self._channels = {"llm": {"getOrLoad": self._get_or_load}}.get(namespace, {})

    def handle(self, packet: Any) -> list[dict]:
        """The server packets answering one client packet (maybe none)."""
        problem = protocol.packet_error(packet)
        if problem is not None:
            return [_warning(problem)]
        kind = packet["type"]
        if kind == "keepAlive":
            return [{"type": "keepAliveAck"}]
        if kind == "rpcCall":
            return [self._rpc(packet)]
        if kind == "channelCreate":
            return self._channel(packet)
        if kind in ("signalSubscribe", "writableSignalSubscribe"):
            error_type = "signalError" if kind == "signalSubscribe" else "writableSignalError"
            return [{"type": error_type, "subscribeId": packet["subscribeId"],
                     "error": _unknown("signal", packet["endpoint"], self.namespace)}]
        if kind in ("channelSend", "channelAck"):
            # Every channel served here is closed as soon as it is answered.
            return [_warning(f"{kind} for unknown channel, channelId = {packet['channelId']}")]
        if kind == "communicationWarning":
            log.info("LM Studio client warning on /%s: %.500s", self.namespace, packet["warning"])
        return []  # unsubscribes and signal updates of subscriptions that never existed

    # ---- rpc ----------------------------------------------------------------------------
    def _rpc(self, packet: dict) -> dict:
        call_id, endpoint = packet["callId"], packet["endpoint"]
        fn = self._rpcs.get(endpoint)
        if fn is None:
            return {"type": "rpcError", "callId": call_id,
                    "error": _unknown("rpc", endpoint, self.namespace)}
        try:
            result = fn(packet.get("parameter"))
        except errors.GatewayError as exc:
            return {"type": "rpcError", "callId": call_id, "error": protocol.error(exc.message)}
        out = {"type": "rpcResult", "callId": call_id}
        if result is not None:  # absent = JSON's undefined (getModelInfo's "no such model")
            out["result"] = result
        return out

    def _downloaded(self, _param) -> list[dict]:
        return [protocol.model_info(m) for m in self._list_models()]

    def _loaded(self, _param) -> list[dict]:
        return [protocol.instance_info(m) for m in self._llms()]

    def _model_info(self, param) -> Optional[dict]:
        if not isinstance(param, dict):
            raise errors.InvalidRequest("getModelInfo: the parameter must be an object")
        found = self._find(param.get("specifier"))
        if found is None and param.get("throwIfNotFound"):
            raise errors.ModelNotFound(f"no loaded model matches {param.get('specifier')}")
        return None if found is None else protocol.instance_info(found)

    def _llms(self) -> list[ModelInfo]:
        return [m for m in self._list_models() if protocol.domain(m) == "llm"]

    def _find(self, specifier: Any) -> Optional[ModelInfo]:
        """The model a ``modelSpecifier`` names: an instance reference or a query."""
        if not isinstance(specifier, dict):
            raise errors.InvalidRequest("the model specifier must be an object")
        if specifier.get("type") == "instanceReference":
            ref = specifier.get("instanceReference")
            return next((m for m in self._llms() if m.id == ref), None)
        if specifier.get("type") != "query" or not isinstance(specifier.get("query"), dict):
            raise errors.InvalidRequest("the model specifier must be of type "
                                        "'instanceReference' or 'query'")
        query = specifier["query"]
        if query.get("domain") not in (None, "llm"):
            return None  # this namespace holds LLMs only
        for m in self._llms():
            if query.get("identifier") not in (None, m.id) or query.get("path") not in (None, m.id):
                continue
            if query.get("vision") is not None and bool(query["vision"]) != m.supports_vision:
                continue
            return m
        return None

    # ---- channels -----------------------------------------------------------------------
    def _channel(self, packet: dict) -> list[dict]:
        channel_id, endpoint = packet["channelId"], packet["endpoint"]
        fn = self._channels.get(endpoint)
        if fn is None:
            return [{"type": "channelError", "channelId": channel_id,
                     "error": _unknown("channel", endpoint, self.namespace)}]
        try:
            message = fn(packet.get("creationParameter"))
        except errors.GatewayError as exc:
            return [{"type": "channelError", "channelId": channel_id,
                     "error": protocol.error(exc.message)}]
        return [{"type": "channelSend", "channelId": channel_id, "message": message},
                {"type": "channelClose", "channelId": channel_id}]

    def _get_or_load(self, param) -> dict:
        key = param.get("identifier") if isinstance(param, dict) else None
        if not isinstance(key, str):
            raise errors.InvalidRequest("getOrLoad: 'identifier' must be a string")
        found = next((m for m in self._llms() if m.id == key), None)
        if found is None:
            raise errors.ModelNotFound(f"model '{key}' not found")
        return {"type": "alreadyLoaded", "info": protocol.instance_info(found)}


def _warning(text: str) -> dict:
    return {"type": "communicationWarning", "warning": text}


def _unknown(kind: str, endpoint: str, namespace: str) -> dict:
    return protocol.error(f"No {kind} endpoint '{endpoint:.200}' on /{namespace}",
                          suggestion=_NOT_SERVED)
