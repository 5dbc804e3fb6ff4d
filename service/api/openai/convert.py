"""OpenAI wire format <-> the internal model.

Requests: validated wire models -> :class:`GenerationRequest`.
Responses: :class:`Generation` -> ``chat.completion`` / ``text_completion``
objects, and a stream of :class:`Chunk` -> SSE chunk objects.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Optional

import numpy as np
import orjson

from ...core import errors
from ...core.types import (
    Chunk, EmbeddingRequest, Embeddings, Generation, GenerationRequest, ImagePart, Message,
    ModelInfo, TextPart, TokenLogprob, Tool, ToolCall, Usage,
)
from .protocol import (
    ChatCompletionRequest, CompletionRequest, EmbeddingRequestIn, ImagePartIn, MessageIn,
)

_CHAT_FIELDS = set(ChatCompletionRequest.model_fields)
_COMPLETION_FIELDS = set(CompletionRequest.model_fields)


# ---- requests ------------------------------------------------------------------
def _message(m: MessageIn) -> Message:
    content: Any = m.content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, ImagePartIn):
                img = p.image_url
                parts.append(ImagePart(url=img if isinstance(img, str) else img.url,
                                       detail=None if isinstance(img, str) else img.detail))
            else:
                parts.append(TextPart(text=p.text))
        content = parts
    calls = []
    for c in m.tool_calls or ():
        args = c.function.arguments
        calls.append(ToolCall(id=c.id, name=c.function.name,
                              arguments=args if isinstance(args, str) else orjson.dumps(args).decode()))
    return Message(role=m.role, content=content, name=m.name, tool_calls=calls,
                   tool_call_id=m.tool_call_id)


def _common(w, kind: str, body: dict) -> GenerationRequest:
    return GenerationRequest(
        kind=kind, model=w.model, max_tokens=w.max_tokens, temperature=w.temperature,
        top_p=w.top_p, top_k=w.top_k, stop=w.stop_list(), n=w.n, seed=w.seed,
        presence_penalty=w.presence_penalty, frequency_penalty=w.frequency_penalty,
        repeat_penalty=w.repeat_penalty, user=w.user, stream=w.stream,
        include_usage=bool(w.stream and w.stream_options and w.stream_options.include_usage),
        extra=dict(w.model_extra or {}), raw=body, raw_family="openai")


def chat_request(w: ChatCompletionRequest, body: dict) -> GenerationRequest:
    r = _common(w, "chat", body)
    r.messages = [_message(m) for m in w.messages]
    if w.max_completion_tokens is not None:
        r.max_tokens = w.max_completion_tokens
    r.tools = [Tool(name=t.function.name, description=t.function.description,
                    parameters=t.function.parameters, strict=t.function.strict)
               for t in w.tools or ()]
    if isinstance(w.tool_choice, str) or w.tool_choice is None:
        r.tool_choice = w.tool_choice
    else:
        r.tool_choice = {"type": "function", "function": {"name": w.tool_choice.function.name}}
        if not any(t.name == w.tool_choice.function.name for t in r.tools):
            raise errors.InvalidRequest(
                f"tool_choice names function '{w.tool_choice.function.name}' which is not in "
                f"'tools'", param="tool_choice")
    r.parallel_tool_calls = w.parallel_tool_calls
    if w.response_format is not None:
        r.response_format = w.response_format.model_dump(exclude_none=True)
    if w.logprobs:
        r.logprobs = w.top_logprobs or 0
    return r


MAX_COMPLETION_PROMPTS = 128  # prompts in one legacy completions request


def completion_requests(w: CompletionRequest, body: dict) -> list[GenerationRequest]:
    """One internal request per prompt (OpenAI allows a batch of prompts); providers
    that take a list send the batch as one call (``Provider.generate_batch``)."""
    prompts = w.prompt
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise errors.InvalidRequest("'prompt' must not be empty", param="prompt")
    if len(prompts) > MAX_COMPLETION_PROMPTS:
        raise errors.InvalidRequest(
            f"'prompt' may hold at most {MAX_COMPLETION_PROMPTS} prompts", param="prompt")
    if not all(isinstance(p, str) for p in prompts):
        raise errors.InvalidRequest("token-id prompts are not supported; send text",
                                    param="prompt")
    if len(prompts) > 1 and w.stream:
        raise errors.InvalidRequest("streaming takes a single prompt", param="prompt")
    out = []
    for p in prompts:
        r = _common(w, "completion", body)
        r.prompt, r.suffix, r.echo, r.logprobs = p, w.suffix, w.echo, w.logprobs
        if r.max_tokens is None:
            r.max_tokens = 16  # OpenAI's documented default for /v1/completions
        out.append(r)
    return out


MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit per request


def embedding_request(w: EmbeddingRequestIn, body: dict) -> EmbeddingRequest:
    """``input`` as a string, strings, token ids or lists of token ids -> one list of inputs."""
    inp = w.input
    if isinstance(inp, str):
        inputs: list = [inp]
    elif inp and all(isinstance(x, int) for x in inp):
        inputs = [list(inp)]  # one token array
    else:
        inputs = list(inp)
    if not inputs:
        raise errors.InvalidRequest("'input' must not be empty", param="input")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise errors.InvalidRequest(f"'input' may hold at most {MAX_EMBEDDING_INPUTS} items",
                                    param="input")
    for i, x in enumerate(inputs):
        if not x:
            raise errors.InvalidRequest(f"'input[{i}]' must not be empty", param="input")
    return EmbeddingRequest(model=w.model, inputs=inputs, dimensions=w.dimensions, user=w.user,
                            raw=body, raw_family="openai")


def embeddings_response(emb: Embeddings, encoding_format: str) -> dict:
    def encode(v: list[float]):
        if encoding_format == "base64":  # little-endian float32, as OpenAI sends
            return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
        return v

    return {"object": "list", "model": emb.model,
            "data": [{"object": "embedding", "index": i, "embedding": encode(v)}
                     for i, v in enumerate(emb.vectors)],
            "usage": {"prompt_tokens": emb.prompt_tokens, "total_tokens": emb.prompt_tokens}}


# ---- responses ------------------------------------------------------------------
def usage_dict(u: Optional[Usage]) -> Optional[dict]:
    """OpenAI's usage object; ``prompt_tokens_details`` / ``completion_tokens_details``
    when known (an upstream's, relayed; ``cached_tokens`` also from the local KV cache)."""
    if u is None:
        return None
    out: dict[str, Any] = {"prompt_tokens": u.prompt_tokens,
                           "completion_tokens": u.completion_tokens,
                           "total_tokens": u.total_tokens}
    prompt_details = u.prompt_details
    if u.cached_tokens is not None:
        prompt_details = {**(prompt_details or {}), "cached_tokens": u.cached_tokens}
    if prompt_details is not None:
        out["prompt_tokens_details"] = prompt_details
    if u.completion_details is not None:
        out["completion_tokens_details"] = u.completion_details
    return out


def _tool_calls(calls: list[ToolCall]) -> list[dict]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]


def _fingerprinted(out: dict, fingerprint: Optional[str]) -> dict:
    if fingerprint is not None:
        out["system_fingerprint"] = fingerprint
    return out


def chat_response(gen: Generation) -> dict:
    choices = []
    for c in gen.choices:
        msg: dict[str, Any] = {"role": "assistant",
                               "content": c.text if (c.text or not c.tool_calls) else None,
                               "refusal": None}
        if c.reasoning:
            msg["reasoning_content"] = c.reasoning
        if c.tool_calls:
            msg["tool_calls"] = _tool_calls(c.tool_calls)
        choices.append({"index": c.index, "message": msg,
                        "logprobs": chat_logprobs(c.logprobs), "finish_reason": c.finish_reason})
    return _fingerprinted(
        {"id": _chat_id(gen.id), "object": "chat.completion", "created": gen.created,
         "model": gen.model, "choices": choices, "usage": usage_dict(gen.usage)},
        gen.system_fingerprint)


def _lp(x: float) -> float:
    return round(x, 6) if math.isfinite(x) else -9999.0  # JSON has no -inf


def _entry(e: TokenLogprob, with_top: bool) -> dict:
    out: dict[str, Any] = {"token": e.token, "logprob": _lp(e.logprob), "bytes": e.bytes}
    if with_top:
        out["top_logprobs"] = [_entry(t, False) for t in e.top]
    return out


def chat_logprobs(entries: Optional[list[TokenLogprob]]) -> Optional[dict]:
    """Chat's ``logprobs`` object: one entry per token with its alternatives."""
    if entries is None:
        return None
    return {"content": [_entry(e, True) for e in entries], "refusal": None}


def legacy_logprobs(entries: Optional[list[TokenLogprob]],
                    lps: Optional[list[float]]) -> Optional[dict]:
    """Completions' ``logprobs``: parallel lists; ``text_offset`` only when every offset is
    known, ``top_logprobs`` only when alternatives were reported."""
    if entries is None:
        return None if lps is None else {"token_logprobs": [_lp(x) for x in lps]}
    out: dict[str, Any] = {"tokens": [e.token for e in entries],
                           "token_logprobs": [_lp(e.logprob) for e in entries],
                           "top_logprobs": None}
    if any(e.top for e in entries):
        out["top_logprobs"] = [{t.token: _lp(t.logprob) for t in e.top} for e in entries]
    if all(e.text_offset is not None for e in entries):
        out["text_offset"] = [e.text_offset for e in entries]
    return out


def completion_response(gens: list[Generation]) -> dict:
    choices, usage = [], Usage()
    for gen in gens:
        for c in gen.choices:
            choices.append({"text": c.text, "index": len(choices),
                            "logprobs": legacy_logprobs(c.logprobs, c.token_logprobs),
                            "finish_reason": c.finish_reason})
        if gen.usage:
            usage.prompt_tokens += gen.usage.prompt_tokens
            usage.completion_tokens += gen.usage.completion_tokens
    first = gens[0]
    if len(gens) == 1:
        usage = first.usage or usage  # with its details
    return _fingerprinted(
        {"id": _cmpl_id(first.id), "object": "text_completion", "created": first.created,
         "model": first.model, "choices": choices, "usage": usage_dict(usage)},
        first.system_fingerprint)


def _chat_id(i: str) -> str:
    return i if i.startswith("chatcmpl") else "chatcmpl-" + i.split("-", 1)[-1]


def _cmpl_id(i: str) -> str:
    return i if i.startswith("cmpl") else "cmpl-" + i.split("-", 1)[-1]


class StreamEncoder:
    """Turns chunks into OpenAI SSE objects; tracks roles, finishes and usage."""

    def __init__(self, kind: str, stream_id: str, created: int, model: str, include_usage: bool):
        self.kind = kind
        self.id = _chat_id(stream_id) if kind == "chat" else _cmpl_id(stream_id)
        self.object = "chat.completion.chunk" if kind == "chat" else "text_completion"
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self.usage: Optional[Usage] = None
        self.fingerprint: Optional[str] = None

    def _wrap(self, choices: list, **extra) -> dict:
        out = {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
               "choices": choices}
        if self.include_usage:
            out["usage"] = None  # the spec's form for every chunk before the usage chunk
        out.update(extra)
        return _fingerprinted(out, self.fingerprint)

    def encode(self, chunk: Chunk) -> list[dict]:
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.system_fingerprint is not None:
            self.fingerprint = chunk.system_fingerprint
        if chunk.index < 0:
            return []
        i = chunk.index
        if chunk.finish_reason:
            self._finished.add(i)
        if self.kind != "chat":
            self._started.add(i)
            if not chunk.text and not chunk.finish_reason and not chunk.logprobs:
                return []
            return [self._wrap([{"text": chunk.text, "index": i,
                                 "logprobs": legacy_logprobs(chunk.logprobs,
                                                             chunk.token_logprobs),
                                 "finish_reason": chunk.finish_reason}])]
        delta: dict[str, Any] = {}
        if i not in self._started:
            self._started.add(i)
            delta["role"] = "assistant"
        if chunk.text:
            delta["content"] = chunk.text
        if chunk.reasoning:
            delta["reasoning_content"] = chunk.reasoning
        if chunk.tool_calls:
            tcs = []
            for t in chunk.tool_calls:
                d: dict[str, Any] = {"index": t.index}
                if t.id:
                    d["id"] = t.id
                    d["type"] = "function"
                fn: dict[str, Any] = {}
                if t.name:
                    fn["name"] = t.name
                fn["arguments"] = t.arguments
                d["function"] = fn
                tcs.append(d)
            delta["tool_calls"] = tcs
        if not delta and not chunk.finish_reason and not chunk.logprobs:
            return []
        if "role" in delta and "content" not in delta and not chunk.tool_calls:
            delta["content"] = ""
        return [self._wrap([{"index": i, "delta": delta,
                             "logprobs": chat_logprobs(chunk.logprobs),
                             "finish_reason": chunk.finish_reason}])]

    def closing(self) -> list[dict]:
        """Usage if asked. A choice the backend ended without a finish reason (a clean
        end of stream, e.g. ``[DONE]``) is left without one: the gateway does not
        invent ``"stop"``; a stream cut short never gets here (the provider raises)."""
        if self.include_usage:
            return [self._wrap([], usage=usage_dict(self.usage or Usage()))]
        return []


# Roo Code reserves this share of the context for output (its getModelMaxOutputTokens);
# a larger max_output_tokens would be sent as max_tokens and overflow the context.
OUTPUT_SHARE = 0.2


def litellm_model_info(m: ModelInfo) -> dict:
    """One entry of LiteLLM's ``/v1/model/info`` from what the catalog knows.

    Prices are 0 (the gateway knows none); ``max_output_tokens`` is a fifth of the
    context (Roo's own reservation), null when the context is unknown.
    """
    ctx = m.context_length
    out_tokens = math.ceil(ctx * OUTPUT_SHARE) if ctx else None
    return {"model_name": m.id,
            "litellm_params": {"model": f"{m.provider}/{m.id}"},
            "model_info": {
                "id": m.id, "key": m.id, "litellm_provider": m.provider,
                "mode": "chat", "max_tokens": out_tokens, "max_input_tokens": ctx,
                "max_output_tokens": out_tokens,
                "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                "supports_vision": m.supports_vision,
                "supports_function_calling": m.supports_tools,
                "supports_tool_choice": m.supports_tools,
                "supports_prompt_caching": False,
                "supports_embedding": m.supports_embeddings}}


def error_body(exc: errors.GatewayError) -> dict:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param,
                      "code": exc.code}}
