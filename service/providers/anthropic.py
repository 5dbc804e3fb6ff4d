"""A Messages-API backend: Anthropic's own API or any server that speaks it.

Requests that arrived in Anthropic's format are relayed with the client's body
as sent (``cache_control``, thinking blocks and their signatures, unknown
fields) and its ``anthropic-version``/``anthropic-beta`` headers; others are
encoded from the internal model (system messages -> ``system``, tool messages ->
``tool_result`` blocks, tool calls -> ``tool_use`` blocks with their ids, images
-> ``image`` blocks, a text completion -> one user turn).

Errors keep the backend's message: ``overloaded_error`` (529) is a 503 with
``Retry-After``, ``rate_limit_error`` a 429; other statuses as every HTTP
backend maps them. A stream is complete only at ``message_stop``: one that ends
before it, or sends an ``error`` event, is an error, never a finished answer.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Iterator, Optional

import orjson

from ..core import errors
from ..core.metering import estimated_prompt_tokens
from ..core.types import (
    Choice, Chunk, ChunkStream, Generation, GenerationRequest, ImagePart, Message, ModelInfo,
    StreamMeter, TextPart, ToolCall, ToolCallDelta, Usage,
)
from .config import AnthropicConfig
from .base import DisconnectCheck, Provider
# One wording of the gap-filling instruction, shared with Vertex.
from .chat_fim import FIM_INSTRUCTION, fim_user_text
from .http_client import (
    UNAVAILABLE_RETRY_AFTER, HttpClient, UpstreamResponse, _retry_after, raise_for_upstream_status,
    upstream_message,
)
from .sse import SseEvents, incomplete

log = logging.getLogger(__name__)

DEFAULT_VERSION = "2023-06-01"
_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]+);base64,(?P<data>.*)$", re.DOTALL)
# Anthropic's stop reasons in the internal model's words.
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
          "tool_use": "tool_calls", "refusal": "content_filter"}


class AnthropicProvider(Provider):
    """Calls ``{base_url}/v1/messages`` through the backend's pooled session."""

    name = "anthropic"
    supports_images = True

    def __init__(self, config: AnthropicConfig, http: HttpClient):
        self.config = config
        self.http = http
        self.name = config.name
        self.base_url = config.base_url.rstrip("/")
        self.label = config.label
        self.version = config.version
        self.default_max_tokens = config.default_max_tokens
        self.verify = config.verify
        self._headers = config.auth_headers()
        self._cache_ttl = config.models_cache_seconds
        self._models: list[ModelInfo] = []
        self._models_at = float("-inf")
        self._models_lock = threading.Lock()

    # ---- models -------------------------------------------------------------------
    def list_models(self) -> list[ModelInfo]:
        """``GET /v1/models`` (cached ``MODELS_CACHE_SECONDS``); [] when it fails."""
        if time.monotonic() - self._models_at < self._cache_ttl:
            return self._models
        with self._models_lock:
            if time.monotonic() - self._models_at < self._cache_ttl:
                return self._models
            try:
                body = self._send("GET", "/v1/models?limit=1000", None).json()
                self._models = [ModelInfo(id=m["id"], provider=self.name, owned_by="anthropic",
                                          supports_tools=True, supports_vision=True, metadata=m)
                                for m in body.get("data", [])
                                if isinstance(m, dict) and isinstance(m.get("id"), str)]
            except (errors.GatewayError, AttributeError) as exc:
                log.warning("listing models of %s failed: %s", self.label, exc)
            self._models_at = time.monotonic()
            return self._models

    def reload(self) -> None:
        with self._models_lock:
            self._models_at = float("-inf")

    def probe(self, timeout: float = 5.0) -> Optional[str]:
        try:
            self._send("GET", "/v1/models?limit=1", None, timeout=(timeout, timeout)).close()
        except errors.GatewayError as exc:
            return exc.message
        return None

    # ---- calls ----------------------------------------------------------------------
    def _headers_for(self, request: Optional[GenerationRequest]) -> dict[str, str]:
        headers = {"anthropic-version": self.version, **self._headers}
        if request is not None and request.raw_family == "anthropic":
            headers.update(request.raw_headers)  # the client's version and betas, unchanged
        return headers

    def _send(self, method: str, path: str, request: Optional[GenerationRequest], *,
              body: Any = None, timeout=None) -> UpstreamResponse:
        resp = self.http.send(method, self.base_url + path, body=body,
                              headers=self._headers_for(request), timeout=timeout,
                              verify=self.verify, upstream=self.label, check_status=False)
        if resp.response.status_code >= 400:
            try:
                raise_for_anthropic_status(resp, self.label)
            finally:
                resp.close()
        return resp

    def generate(self, request: GenerationRequest,
                 disconnected: Optional[DisconnectCheck] = None) -> Generation:
        body = self._send("POST", "/v1/messages", request,
                          body=self.encode(request, stream=False)).json()
        return decode_response(body, request, self.name)

    def stream(self, request: GenerationRequest) -> ChunkStream:
        resp = self._send("POST", "/v1/messages", request, body=self.encode(request, stream=True))
        return ChunkStream(resp.watch(decode_stream(resp)), resp.close, model=request.model,
                           provider=self.name,
                           meter=StreamMeter(estimated_prompt_tokens(request)))

    def count_tokens(self, request: GenerationRequest) -> int:
        body = self.encode(request, stream=False)
        for key in ("max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k",
                    "metadata"):
            body.pop(key, None)
        answer = self._send("POST", "/v1/messages/count_tokens", request, body=body).json()
        tokens = answer.get("input_tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, int):
            raise errors.UpstreamError(f"{self.label} answered count_tokens without input_tokens")
        return tokens

    def encode(self, request: GenerationRequest, stream: bool) -> dict[str, Any]:
        return encode_request(request, stream, self.default_max_tokens)

    def close(self) -> None:
        pass  # the session belongs to the app


# ---- errors ------------------------------------------------------------------------
def raise_for_anthropic_status(resp: UpstreamResponse, upstream: str) -> None:
    """Anthropic's error types first (``overloaded_error`` comes as 529, which generic
    HTTP mapping would call a bad gateway), then the mapping every HTTP backend uses."""
    r = resp.response
    kind = _error_type(r)
    if kind == "overloaded_error" or r.status_code == 529:
        raise errors.UpstreamUnavailable(f"{upstream} is overloaded: {upstream_message(r)}",
                                         retry_after=_retry_after(r) or UNAVAILABLE_RETRY_AFTER)
    if kind == "rate_limit_error" and r.status_code != 429:
        raise errors.RateLimited(f"{upstream} is rate limiting: {upstream_message(r)}",
                                 retry_after=_retry_after(r))
    raise_for_upstream_status(r, upstream)


def _error_type(r) -> Optional[str]:
    try:
        body = orjson.loads(r.content)
    except (orjson.JSONDecodeError, Exception):  # noqa: BLE001 - an unreadable error body
        return None
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("type") if isinstance(err, dict) else None


def stream_error(event: dict, upstream: str) -> errors.GatewayError:
    """An ``error`` event of a stream as the gateway's error."""
    err = event.get("error") if isinstance(event.get("error"), dict) else {}
    kind, msg = err.get("type"), err.get("message") or "no message"
    if kind == "overloaded_error":
        return errors.UpstreamUnavailable(f"{upstream} is overloaded: {msg}",
                                          retry_after=UNAVAILABLE_RETRY_AFTER)
    if kind == "rate_limit_error":
        return errors.RateLimited(f"{upstream} is rate limiting: {msg}")
    return errors.UpstreamError(f"{upstream} failed mid-stream: {msg}")


# ---- internal -> Anthropic request ---------------------------------------------------
def _image(p: ImagePart) -> dict:
    m = _DATA_URL.match(p.url)
    if m:
        return {"type": "image", "source": {"type": "base64", "media_type": m["mime"],
                                            "data": m["data"]}}
    return {"type": "image", "source": {"type": "url", "url": p.url}}


def _blocks(content) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out = []
    for p in content:
        if isinstance(p, TextPart):
            if p.text:
                out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            out.append(_image(p))
    return out


def encode_messages(messages: list[Message]) -> tuple[str, list[dict]]:
    """``system`` text and ``messages`` (same-role turns merged, as the API wants)."""
    system: list[str] = []
    out: list[dict] = []

    def add(role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        if m.role in ("system", "developer"):
            system.append(m.text())
        elif m.role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": m.tool_call_id or "",
                          "content": _blocks(m.content) or ""}])
        elif m.role == "assistant":
            blocks = _blocks(m.content)
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name,
                        "input": c.arguments_wrapped()} for c in m.tool_calls]
            add("assistant", blocks)
        else:
            add("user", _blocks(m.content))
    return "\n\n".join(s for s in system if s), out


def _tool_choice(r: GenerationRequest) -> Optional[dict]:
    c = r.tool_choice
    if c is None and r.parallel_tool_calls is not False:
        return None
    if c == "none":
        return {"type": "none"}
    if isinstance(c, dict):
        out = {"type": "tool", "name": (c.get("function") or {}).get("name", "")}
    else:
        out = {"type": "any" if c == "required" else "auto"}
    if r.parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    return out


def encode_request(r: GenerationRequest, stream: bool,
                   default_max_tokens: int = 4096) -> dict[str, Any]:
    """The Messages body: the client's own when it spoke Anthropic's API."""
    if r.raw_family == "anthropic" and r.raw is not None:
        body = dict(r.raw)
        body["model"] = r.model
        body["stream"] = stream
        return body
    if r.n != 1:
        raise errors.UnsupportedFeature("Anthropic backends answer one choice (n=1)", param="n")
    if r.kind == "completion":
        text = fim_user_text(r.prompt, r.suffix) if r.suffix else r.prompt
        messages = [Message(role="user", content=text or " ")]
        if r.suffix:
            messages.insert(0, Message(role="system", content=FIM_INSTRUCTION))
    else:
        messages = r.messages
    system, turns = encode_messages(messages)
    body: dict[str, Any] = {"model": r.model, "messages": turns,
                            "max_tokens": r.max_tokens or default_max_tokens, "stream": stream}
    if system:
        body["system"] = system
    if r.temperature is not None:
        body["temperature"] = min(r.temperature, 1.0)  # OpenAI's 0-2 scale; Anthropic's is 0-1
    for key in ("top_p", "top_k"):
        if getattr(r, key) is not None:
            body[key] = getattr(r, key)
    if r.stop:
        body["stop_sequences"] = list(r.stop)
    if r.user:
        body["metadata"] = {"user_id": r.user}
    if r.tools and r.tool_choice != "none":
        body["tools"] = [{"name": t.name, "description": t.description or "",
                          "input_schema": t.parameters or {"type": "object", "properties": {}}}
                         for t in r.tools]
        choice = _tool_choice(r)
        if choice is not None:
            body["tool_choice"] = choice
    if r.thinking_budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": r.thinking_budget}
    return body


# ---- Anthropic response -> internal -----------------------------------------------------
def _usage(u: Any, prompt: Optional[int] = None) -> Optional[Usage]:
    if not isinstance(u, dict):
        return None
    # Cached prompt tokens are prompt tokens too (Anthropic counts them apart).
    inp = sum(int(u.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                           "cache_read_input_tokens"))
    return Usage(prompt_tokens=inp or (prompt or 0),
                 completion_tokens=int(u.get("output_tokens") or 0))


def _finish(reason: Any) -> Optional[str]:
    if not reason:
        return None
    return FINISH.get(str(reason), str(reason)[:64])


def decode_response(body: Any, request: GenerationRequest, provider: str) -> Generation:
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise errors.UpstreamError("the Anthropic backend answered without a 'content' list")
    text, thinking, signature, calls = [], [], None, []
    for b in body["content"]:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text":
            text.append(str(b.get("text") or ""))
        elif b.get("type") == "thinking":
            thinking.append(str(b.get("thinking") or ""))
            signature = b.get("signature") or signature
        elif b.get("type") == "tool_use":
            calls.append(ToolCall(id=str(b.get("id") or f"toolu_{len(calls)}"),
                                  name=str(b.get("name") or ""),
                                  arguments=orjson.dumps(b.get("input") or {}).decode()))
    reason = body.get("stop_reason")
    choice = Choice(index=0, text="".join(text), reasoning="".join(thinking) or None,
                    reasoning_signature=signature, tool_calls=calls, finish_reason=_finish(reason),
                    stop_sequence=body.get("stop_sequence") if reason == "stop_sequence" else None)
    gen = Generation(model=body.get("model") or request.model, choices=[choice],
                     usage=_usage(body.get("usage")), provider=provider)
    if isinstance(body.get("id"), str):
        gen.id = body["id"]
    return gen


def decode_stream(resp: UpstreamResponse) -> Iterator[Chunk]:
    """Anthropic stream events -> chunks; complete only at ``message_stop``."""
    events = SseEvents(resp.iter_lines(), resp.upstream)
    calls: dict[int, int] = {}  # content block index -> tool call index
    prompt: Optional[int] = None
    usage: Optional[Usage] = None
    for event in events:
        kind = event.get("type")
        if kind == "error":
            raise stream_error(event, resp.upstream)
        if kind == "message_start":
            msg = event.get("message") or {}
            usage = _usage(msg.get("usage"))
            prompt = usage.prompt_tokens if usage else None
            yield Chunk(index=0, role="assistant")
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                calls[event.get("index", 0)] = n = len(calls)
                yield Chunk(index=0, tool_calls=[ToolCallDelta(
                    index=n, id=str(block.get("id") or f"toolu_{n}"),
                    name=str(block.get("name") or ""))])
            elif block.get("type") == "text" and block.get("text"):
                yield Chunk(index=0, text=block["text"])
        elif kind == "content_block_delta":
            d = event.get("delta") or {}
            dt = d.get("type")
            if dt == "text_delta":
                yield Chunk(index=0, text=d.get("text") or "")
            elif dt == "thinking_delta":
                yield Chunk(index=0, reasoning=d.get("thinking") or "")
            elif dt == "signature_delta":
                yield Chunk(index=0, reasoning_signature=d.get("signature") or "")
            elif dt == "input_json_delta" and event.get("index", 0) in calls:
                yield Chunk(index=0, tool_calls=[ToolCallDelta(
                    index=calls[event.get("index", 0)], arguments=d.get("partial_json") or "")])
        elif kind == "message_delta":
            d = event.get("delta") or {}
            usage = _usage(event.get("usage"), prompt) or usage
            reason = d.get("stop_reason")
            yield Chunk(index=0, finish_reason=_finish(reason),
                        stop_sequence=d.get("stop_sequence") if reason == "stop_sequence"
                        else None)
        elif kind == "message_stop":
            if usage is not None:
                yield Chunk(index=-1, usage=usage)
            return
    raise incomplete(resp.upstream, "no message_stop")
