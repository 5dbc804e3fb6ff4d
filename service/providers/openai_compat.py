"""Any OpenAI-compatible upstream (LM Studio, vLLM, llama-server, OpenAI itself).

Requests that arrived in OpenAI's format are relayed with their body as sent
(unknown fields included); others are encoded from the internal model. The
upstream is always asked for usage on streams so token counts are real; the
client only sees a usage chunk when it asked for one.
"""

from __future__ import annotations

import base64
import logging
import struct
import threading
import time
from typing import Any, Iterator, Optional

import orjson

from ..core import errors
from ..core.metering import estimated_prompt_tokens
from ..core.types import (
    Choice, Chunk, ChunkStream, EmbeddingRequest, Embeddings, Generation, GenerationRequest,
    ImagePart, Message, ModelInfo, StreamMeter, TextPart, TokenLogprob, ToolCall, ToolCallDelta,
    Usage,
)
from .base import DisconnectCheck, Provider
from .config import OpenAIConfig
from .http_client import HttpClient, UpstreamResponse
from .sse import SseEvents, incomplete

log = logging.getLogger(__name__)

FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter"}


class OpenAICompatProvider(Provider):
    """Relays to ``{base_url}/v1/...`` through the shared session."""

    name = "openai"
    supports_images = True
    supports_embeddings = True

    def __init__(self, config: OpenAIConfig, http: HttpClient):
        self.config = config
        self.http = http
        self.name = config.name
        self.base_url = self._endpoint(config).rstrip("/")
        self.label = config.label
        self.verify = config.verify
        self._headers = config.auth_headers()
        self._cache_ttl = getattr(config, "models_cache_seconds", 0.0)
        self._models: list[ModelInfo] = []
        self._models_at = float("-inf")
        self._models_lock = threading.Lock()

    @staticmethod
    def _endpoint(config) -> str:
        return config.base_url

    def _send(self, method: str, url: str, **kw) -> UpstreamResponse:
        """A call to this backend: its headers, CA bundle and metrics label."""
        return self.http.send(method, url, headers=self._headers, verify=self.verify,
                              upstream=self.label, **kw)

    # ---- models -----------------------------------------------------------
    def list_models(self) -> list[ModelInfo]:
        now = time.monotonic()
        if now - self._models_at < self._cache_ttl:
            return self._models
        # One refresher at a time; others keep using the previous list.
        if not self._models_lock.acquire(blocking=not self._models):
            return self._models
        try:
            if time.monotonic() - self._models_at < self._cache_ttl:
                return self._models
            try:
                body = self._send("GET", f"{self.base_url}/v1/models").json()
                self._models = [_model_info(m, self.name) for m in body.get("data", [])
                                if isinstance(m, dict) and isinstance(m.get("id"), str)]
            except (errors.GatewayError, AttributeError) as exc:
                log.warning("listing models of %s failed: %s", self.label, exc)
            self._models_at = time.monotonic()
            return self._models
        finally:
            self._models_lock.release()

    def reload(self) -> None:
        """Forget the cached model list; the next request lists the upstream's models again."""
        with self._models_lock:
            self._models_at = float("-inf")

    # ---- generation ---------------------------------------------------------
    def _url(self, request: GenerationRequest) -> str:
        path = "chat/completions" if request.kind == "chat" else "completions"
        return f"{self.base_url}/v1/{path}"

    def _open(self, request: GenerationRequest, stream: bool) -> UpstreamResponse:
        body = encode_request(request, stream)
        return self._send("POST", self._url(request), body=body, stream=stream)

    def generate(self, request: GenerationRequest,
                 disconnected: Optional[DisconnectCheck] = None) -> Generation:
        body = self._open(request, stream=False).json()
        return decode_response(body, request, self.name)

    def generate_batch(self, requests: list[GenerationRequest],
                       disconnected: Optional[DisconnectCheck] = None) -> list[Generation]:
        """A completions batch as one upstream call: OpenAI's ``prompt`` takes a list."""
        if len(requests) == 1:
            return [self.generate(requests[0], disconnected)]
        body = encode_request(requests[0], stream=False)
        body["prompt"] = [r.prompt for r in requests]
        answer = self._send("POST", self._url(requests[0]), body=body).json()
        gen = decode_response(answer, requests[0], self.name)
        gen.choices.sort(key=lambda c: c.index)
        return [gen]

    def stream(self, request: GenerationRequest) -> ChunkStream:
        resp = self._open(request, stream=True)
        return ChunkStream(resp.watch(decode_stream(resp, request.kind)), resp.close,
                           model=request.model, provider=self.name,
                           meter=StreamMeter(estimated_prompt_tokens(request)))

    def probe(self, timeout: float = 5.0) -> Optional[str]:
        """Ready when ``GET /v1/models`` answers 200."""
        try:
            self._send("GET", f"{self.base_url}/v1/models", timeout=(timeout, timeout)).close()
        except errors.GatewayError as exc:
            return exc.message
        return None

    # ---- embeddings -----------------------------------------------------------
    def embed(self, request: EmbeddingRequest) -> Embeddings:
        body = encode_embedding_request(request)
        answer = self._send("POST", f"{self.base_url}/v1/embeddings", body=body).json()
        return decode_embeddings(answer, request, self.name)

    def close(self) -> None:
        pass  # the session belongs to the app


def _model_info(m: dict, provider: str) -> ModelInfo:
    ctx = m.get("context_length") or m.get("max_context_length") or m.get("max_model_len")
    return ModelInfo(id=m["id"], provider=provider, owned_by=str(m.get("owned_by") or provider),
                     created=int(m.get("created") or 0),
                     context_length=ctx if isinstance(ctx, int) else None,
                     supports_tools=True, metadata=m)


# ---- internal -> OpenAI request ---------------------------------------------------
def encode_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, list):
        parts = []
        for p in m.content:
            if isinstance(p, TextPart):
                parts.append({"type": "text", "text": p.text})
            elif isinstance(p, ImagePart):
                img = {"url": p.url}
                if p.detail:
                    img["detail"] = p.detail
                parts.append({"type": "image_url", "image_url": img})
        out["content"] = parts
    else:
        out["content"] = m.content if m.content is not None else ("" if not m.tool_calls else None)
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments}}
                             for c in m.tool_calls]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


# Copied when set. top_k is not OpenAI's, but llama-server, vLLM and LM Studio take it.
_OPTIONAL = ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty",
             "user", "max_tokens", "tool_choice", "parallel_tool_calls", "response_format")


def encode_request(r: GenerationRequest, stream: bool) -> dict[str, Any]:
    """The upstream body: the client's own OpenAI body when it sent one."""
    if r.raw_family == "openai" and r.raw is not None:
        # null is the default of every nullable field (OpenAI's spec); strict upstreams
        # reject some nulls (e.g. "n": null), so they are left out.
        body = {k: v for k, v in r.raw.items() if v is not None}
        body["model"] = r.model
        if r.kind == "completion":
            body["prompt"] = r.prompt  # one prompt of a batch (generate_batch sends the list)
    else:
        body = {"model": r.model}
        if r.kind == "chat":
            body["messages"] = [encode_message(m) for m in r.messages]
        else:
            body["prompt"] = r.prompt
            if r.suffix is not None:
                body["suffix"] = r.suffix
            if r.echo:
                body["echo"] = True
            if r.logprobs is not None:
                body["logprobs"] = r.logprobs
        for key in _OPTIONAL:
            value = getattr(r, key)
            if value is not None:
                body[key] = value
        if r.stop:
            body["stop"] = r.stop
        if r.n != 1:
            body["n"] = r.n
        if r.tools:
            body["tools"] = [{"type": "function", "function": _tool(t)} for t in r.tools]
        body.update(r.extra)
    body["stream"] = stream
    if stream:
        opts = dict(body.get("stream_options") or {})
        opts["include_usage"] = True
        body["stream_options"] = opts
    else:
        body.pop("stream_options", None)
    return body


def _tool(t) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    if t.parameters is not None:
        fn["parameters"] = t.parameters
    if t.strict is not None:
        fn["strict"] = t.strict
    return fn


# ---- OpenAI response -> internal ----------------------------------------------------
def _usage(u: Any) -> Optional[Usage]:
    if not isinstance(u, dict):
        return None
    prompt = u.get("prompt_tokens_details")
    done = u.get("completion_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else None
    cached = prompt.get("cached_tokens") if prompt else None
    return Usage(prompt_tokens=int(u.get("prompt_tokens") or 0),
                 completion_tokens=int(u.get("completion_tokens") or 0),
                 cached_tokens=cached if isinstance(cached, int) else None,
                 prompt_details=prompt, completion_details=done if isinstance(done, dict) else None)


def _fingerprint(body: dict) -> Optional[str]:
    fp = body.get("system_fingerprint")
    return fp if isinstance(fp, str) else None


# Names other OpenAI-style servers use for the standard reasons.
_FINISH_ALIASES = {"eos": "stop", "eos_token": "stop", "stop_sequence": "stop",
                   "end_turn": "stop", "max_tokens": "length", "model_length": "length",
                   "function_call": "tool_calls"}


def _finish(value: Any) -> Optional[str]:
    """The upstream's finish reason: standard ones and known aliases mapped, any other
    passed through as given (e.g. vLLM's ``abort``); missing stays None, never "stop"."""
    if value is None or value == "":
        return None
    if value in FINISH_REASONS:
        return value
    text = str(value)[:64]
    return _FINISH_ALIASES.get(text.lower(), text)


def _stop_string(choice: dict) -> Optional[str]:
    """The stop string that ended the choice: vLLM names it in ``stop_reason`` (a token
    id there is an end-of-sequence token, not one of the request's strings)."""
    value = choice.get("stop_reason")
    return value if isinstance(value, str) and value else None


def _tool_calls(raw: Any) -> list[ToolCall]:
    calls = []
    for i, c in enumerate(raw or []):
        fn = c.get("function") or {}
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = orjson.dumps(args if args is not None else {}).decode()
        calls.append(ToolCall(id=c.get("id") or f"call_{i}", name=fn.get("name") or "",
                              arguments=args))
    return calls


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _entry(t: Any) -> Optional[TokenLogprob]:
    """A chat logprob entry ``{token, logprob, bytes, top_logprobs}``."""
    if not isinstance(t, dict) or not _num(t.get("logprob")):
        return None
    raw_bytes = t.get("bytes")
    return TokenLogprob(token=str(t.get("token") or ""), logprob=float(t["logprob"]),
                        bytes=raw_bytes if isinstance(raw_bytes, list) else None,
                        top=[e for e in map(_entry, t.get("top_logprobs") or ()) if e])


def _legacy_entries(lp: dict) -> Optional[list[TokenLogprob]]:
    """Completions' parallel lists -> entries (``None`` without a ``tokens`` list)."""
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list):
        return None
    tops, offsets = lp.get("top_logprobs"), lp.get("text_offset")
    out = []
    for k, (tok, value) in enumerate(zip(tokens, values)):
        top = tops[k] if isinstance(tops, list) and k < len(tops) else None
        offset = offsets[k] if isinstance(offsets, list) and k < len(offsets) else None
        out.append(TokenLogprob(
            token=str(tok), logprob=float(value) if _num(value) else float("-inf"),
            top=[TokenLogprob(token=str(a), logprob=float(b))
                 for a, b in (top.items() if isinstance(top, dict) else ()) if _num(b)],
            text_offset=offset if isinstance(offset, int) else None))
    return out


def _logprobs(choice: dict) -> tuple[Optional[list[float]], Optional[list[TokenLogprob]]]:
    """The chosen tokens' log-probabilities, and the entries in full when the upstream
    sent them (chat's ``content`` list, or completions' ``tokens`` list)."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None, None
    if isinstance(lp.get("content"), list):  # chat
        entries = [e for e in map(_entry, lp["content"]) if e]
        return [e.logprob for e in entries], entries
    if isinstance(lp.get("token_logprobs"), list):  # legacy completions
        return [x for x in lp["token_logprobs"] if _num(x)], _legacy_entries(lp)
    return None, None


def decode_response(body: Any, request: GenerationRequest, provider: str) -> Generation:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise errors.UpstreamError("upstream answered without a 'choices' list")
    choices = []
    for i, c in enumerate(body["choices"]):
        if not isinstance(c, dict):
            continue
        msg = c.get("message") or {}
        text = msg.get("content") if request.kind == "chat" else c.get("text")
        token_logprobs, entries = _logprobs(c)
        choices.append(Choice(
            index=c.get("index", i), text=text or "",
            reasoning=msg.get("reasoning_content") or msg.get("reasoning"),
            tool_calls=_tool_calls(msg.get("tool_calls")),
            finish_reason=_finish(c.get("finish_reason")), stop_sequence=_stop_string(c),
            token_logprobs=token_logprobs, logprobs=entries))
    gen = Generation(model=body.get("model") or request.model, choices=choices,
                     usage=_usage(body.get("usage")), provider=provider,
                     system_fingerprint=_fingerprint(body))
    if isinstance(body.get("id"), str):
        gen.id = body["id"]
    return gen


def decode_stream(resp: UpstreamResponse, kind: str) -> Iterator[Chunk]:
    """Upstream SSE -> chunks; error events raise.

    The answer is complete at ``data: [DONE]``, or at EOF once every choice it
    started has a finish reason; any other end (a connection closed early on a
    body without length or chunked framing) is an ``upstream_incomplete`` error.
    """
    events = SseEvents(resp.iter_lines(), resp.upstream)
    started: set[int] = set()
    finished: set[int] = set()
    for event in events:
        if "error" in event and not event.get("choices"):
            err = event["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise errors.UpstreamError(f"upstream failed mid-stream: {msg}")
        for chunk in _event_chunks(event, kind):
            if chunk.index >= 0:
                started.add(chunk.index)
                if chunk.finish_reason:
                    finished.add(chunk.index)
            yield chunk
    if not events.done and (not started or started - finished):
        raise incomplete(resp.upstream, "no finish_reason and no [DONE]")


def _event_chunks(event: dict, kind: str) -> Iterator[Chunk]:
    fingerprint = _fingerprint(event)
    for c in event.get("choices") or ():
        if not isinstance(c, dict):
            continue
        idx = c.get("index", 0)
        token_logprobs, entries = _logprobs(c)
        if kind == "chat":
            delta = c.get("delta") or {}
            tcs = [ToolCallDelta(index=t.get("index", j), id=t.get("id"),
                                 name=(t.get("function") or {}).get("name"),
                                 arguments=(t.get("function") or {}).get("arguments") or "")
                   for j, t in enumerate(delta.get("tool_calls") or ())]
            yield Chunk(index=idx, role=delta.get("role"), text=delta.get("content") or "",
                        reasoning=delta.get("reasoning_content") or delta.get("reasoning"),
                        tool_calls=tcs, finish_reason=_finish(c.get("finish_reason")),
                        stop_sequence=_stop_string(c),
                        token_logprobs=token_logprobs, logprobs=entries,
                        system_fingerprint=fingerprint)
        else:
            yield Chunk(index=idx, text=c.get("text") or "",
                        finish_reason=_finish(c.get("finish_reason")),
                        token_logprobs=token_logprobs, logprobs=entries,
                        system_fingerprint=fingerprint)
    usage = _usage(event.get("usage"))
    if usage is not None:
        yield Chunk(index=-1, usage=usage, system_fingerprint=fingerprint)


# ---- embeddings ------------------------------------------------------------------------
def encode_embedding_request(r: EmbeddingRequest) -> dict[str, Any]:
    """The client's body (unknown fields kept) or one built from the internal request.

    Vectors are always asked for as floats: the gateway re-encodes for its client.
    """
    if r.raw_family == "openai" and r.raw is not None:
        body = dict(r.raw)
    else:
        body = {"input": r.inputs}
        if r.dimensions is not None:
            body["dimensions"] = r.dimensions
        if r.user is not None:
            body["user"] = r.user
    body["model"] = r.model
    body["encoding_format"] = "float"
    return body


def decode_embeddings(body: Any, request: EmbeddingRequest, provider: str) -> Embeddings:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise errors.UpstreamError("upstream answered embeddings without a 'data' list")
    rows = sorted((d for d in body["data"] if isinstance(d, dict)),
                  key=lambda d: d.get("index", 0))
    vectors = [_vector(d.get("embedding")) for d in rows]
    if len(vectors) != len(request.inputs):
        raise errors.UpstreamError(
            f"upstream returned {len(vectors)} embeddings for {len(request.inputs)} inputs")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Embeddings(model=body.get("model") or request.model, vectors=vectors,
                      prompt_tokens=int(usage.get("prompt_tokens") or 0), provider=provider)


def _vector(value: Any) -> list[float]:
    if isinstance(value, str):  # an upstream that ignored encoding_format=float
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if isinstance(value, list) and all(isinstance(x, (int, float)) for x in value):
        return [float(x) for x in value]
    raise errors.UpstreamError("upstream sent an embedding that is not a list of numbers")
