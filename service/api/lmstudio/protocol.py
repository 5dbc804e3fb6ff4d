"""LM Studio's SDK wire format (``@lmstudio/sdk`` 1.2): packets and model descriptions.

The SDK speaks JSON text frames over one WebSocket per namespace
(``ws://host:port/<namespace>``). The first client frame is the
authentication packet ``{"authVersion": 1, "clientIdentifier", "clientPasskey"}``,
answered with ``{"success": true}`` or ``{"success": false, "error": "…"}``.
After that every frame is a packet with a ``type``: the client sends
``rpcCall``, ``channelCreate``/``channelSend``/``channelAck``,
``signalSubscribe``/``writableSignalSubscribe`` (and their unsubscribes),
``keepAlive`` and ``communicationWarning``; the server answers with
``rpcResult``/``rpcError``, ``channelSend``/``channelClose``/``channelError``,
``signalError``/``writableSignalError``, ``keepAliveAck`` and
``communicationWarning``. Errors carry ``{"title", "rootTitle", "cause"?,
"suggestion"?}``.

The SDK validates every result against its own schema and drops (with a
warning, never rejecting the caller's promise) one that does not fit, so the
model descriptions here fill every required field with the type it wants.
Only :class:`~service.core.types.ModelInfo` goes in; nothing here knows Flask.
"""

from __future__ import annotations

from typing import Any, Optional

from ...core.types import ModelInfo

__all__ = ["AUTH_VERSION", "UNKNOWN_CONTEXT", "auth_packet_error", "domain", "error",
           "instance_info", "model_info", "packet_error"]

AUTH_VERSION = 1
#: ``maxContextLength`` is a required integer; a model whose context the gateway does not
#: know is reported with this conservative size (set ``context_length`` in MODELS_FILE).
UNKNOWN_CONTEXT = 4096
#: ``format`` must be one of these; a model of unknown format is reported as ``gguf``.
_FORMATS = frozenset({"gguf", "safetensors", "onnx", "ggml", "mlx_placeholder",
                      "torch_safetensors"})

#: The fields of each client packet type that must be integers / strings.
_INT_FIELDS = {"rpcCall": ("callId",), "channelCreate": ("channelId",),
               "channelSend": ("channelId",), "channelAck": ("channelId", "ackId"),
               "signalSubscribe": ("subscribeId",), "signalUnsubscribe": ("subscribeId",),
               "writableSignalSubscribe": ("subscribeId",),
               "writableSignalUnsubscribe": ("subscribeId",),
               "writableSignalUpdate": ("subscribeId",),
               "keepAlive": (), "communicationWarning": ()}
_STR_FIELDS = {"rpcCall": ("endpoint",), "channelCreate": ("endpoint",),
               "signalSubscribe": ("endpoint",), "writableSignalSubscribe": ("endpoint",),
               "communicationWarning": ("warning",)}


def error(title: str, cause: Optional[str] = None, suggestion: Optional[str] = None) -> dict:
    """A serialized LM Studio error (what ``rpcError``/``channelError``/… carry)."""
    out: dict[str, Any] = {"title": title, "rootTitle": title}
    if cause:
        out["cause"] = cause
    if suggestion:
        out["suggestion"] = suggestion
    return out


def auth_packet_error(packet: Any) -> Optional[str]:
    """Why ``packet`` is not an authentication packet, or None if it is one."""
    if not isinstance(packet, dict):
        return "the first message must be the authentication packet (a JSON object)"
    if packet.get("authVersion") != AUTH_VERSION:
        return f"unsupported authVersion {packet.get('authVersion')!r} (expected {AUTH_VERSION})"
    for name in ("clientIdentifier", "clientPasskey"):
        if not isinstance(packet.get(name), str):
            return f"the authentication packet needs '{name}' (a string)"
    return None


def packet_error(packet: Any) -> Optional[str]:
    """Why ``packet`` is not a client packet the protocol defines, or None if it is one."""
    if not isinstance(packet, dict):
        return "a packet must be a JSON object"
    kind = packet.get("type")
    if kind not in _INT_FIELDS:
        return f"unknown packet type {kind!r}"
    for name in _INT_FIELDS[kind]:
        value = packet.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{kind}: '{name}' must be an integer"
    for name in _STR_FIELDS.get(kind, ()):
        if not isinstance(packet.get(name), str):
            return f"{kind}: '{name}' must be a string"
    return None


def domain(m: ModelInfo) -> str:
    """LM Studio's model type: ``embedding`` for embedding-only models, else ``llm``.

    A model that also embeds (the embedded local model does both) is an LLM here:
    tools or vision mark a model that chats; embeddings alone one that does not.
    """
    embedding_only = m.supports_embeddings and not (m.supports_tools or m.supports_vision)
    return "embedding" if embedding_only else "llm"


def model_info(m: ModelInfo) -> dict:
    """A downloaded model (``listDownloadedModels``): ``LLMInfo`` or ``EmbeddingModelInfo``.

    ``modelKey``, ``path`` and ``displayName`` are all the public name: Roo keys
    its picker by ``path`` and sends that name in its chat requests.
    """
    out: dict[str, Any] = {
        "type": domain(m), "modelKey": m.id, "path": m.id, "displayName": m.id,
        "format": m.format if m.format in _FORMATS else "gguf",
        "sizeBytes": int(m.size_bytes or 0),
        "maxContextLength": int(m.context_length or UNKNOWN_CONTEXT),
    }
    if m.parameter_size:
        out["paramsString"] = m.parameter_size
    if m.family:
        out["architecture"] = m.family
    if out["type"] == "llm":
        out["vision"] = bool(m.supports_vision)
        out["trainedForToolUse"] = bool(m.supports_tools)
    return out


def instance_info(m: ModelInfo) -> dict:
    """A loaded model (``listLoaded``, ``getModelInfo``, ``getOrLoad``): the gateway serves
    every public model on demand, so each is its own single instance, with the full context."""
    out = model_info(m)
    out["identifier"] = m.id
    out["instanceReference"] = m.id
    out["contextLength"] = out["maxContextLength"]
    return out
