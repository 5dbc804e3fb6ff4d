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
    TextPart, Tool, ToolCall, Usage,
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
    if u is None:
        return None
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens}


def _tool_calls(calls: list[ToolCall]) -> list[dict]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]


def chat_response(gen: Generation) -> dict:
    choices = []
    for c in gen.choices:
        msg: dict[str, Any] = {"role": "assistant",
                               "content": c.text if (c.text or not c.tool_calls) else None}
        if c.reasoning:
            msg["reasoning_content"] = c.reasoning
        if c.tool_calls:
            msg["tool_calls"] = _tool_calls(c.tool_calls)
        choices.append({"index": c.index, "message": msg, "logprobs": None,
                        "finish_reason": c.finish_reason})
    return {"id": _chat_id(gen.id), "object": "chat.completion", "created": gen.created,
            "model": gen.model, "choices": choices, "usage": usage_dict(gen.usage)}


def _logprobs_legacy(lps: Optional[list[float]]) -> Optional[dict]:
    if lps is None:
        return None
    return {"token_logprobs": [round(x, 6) if math.isfinite(x) else -9999.0 for x in lps]}


def completion_response(gens: list[Generation]) -> dict:
    choices, usage = [], Usage()
    for gen in gens:
        for c in gen.choices:
            choices.append({"text": c.text, "index": len(choices),
                            "logprobs": _logprobs_legacy(c.token_logprobs),
                            "finish_reason": c.finish_reason})
        if gen.usage:
            usage.prompt_tokens += gen.usage.prompt_tokens
            usage.completion_tokens += gen.usage.completion_tokens
    first = gens[0]
    return {"id": _cmpl_id(first.id), "object": "text_completion", "created": first.created,
            "model": first.model, "choices": choices, "usage": usage_dict(usage)}


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

    def _wrap(self, choices: list, **extra) -> dict:
        out = {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
               "choices": choices}
        out.update(extra)
        return out

    def encode(self, chunk: Chunk) -> list[dict]:
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.index < 0:
            return []
        i = chunk.index
        if chunk.finish_reason:
            self._finished.add(i)
        if self.kind != "chat":
            self._started.add(i)
            if not chunk.text and not chunk.finish_reason:
                return []
            return [self._wrap([{"text": chunk.text, "index": i,
                                 "logprobs": _logprobs_legacy(chunk.token_logprobs),
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
        if not delta and not chunk.finish_reason:
            return []
        if "role" in delta and "content" not in delta and not chunk.tool_calls:
            delta["content"] = ""
        return [self._wrap([{"index": i, "delta": delta, "logprobs": None,
                             "finish_reason": chunk.finish_reason}])]

    def closing(self) -> list[dict]:
        """Usage if asked. A choice the backend ended without a finish reason (a clean
        end of stream, e.g. ``[DONE]``) is left without one: the gateway does not
        invent ``"stop"``; a stream cut short never gets here (the provider raises)."""
        if self.include_usage:
            return [self._wrap([], usage=usage_dict(self.usage or Usage()))]
        return []


def error_body(exc: errors.GatewayError) -> dict:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param,
                      "code": exc.code}}
