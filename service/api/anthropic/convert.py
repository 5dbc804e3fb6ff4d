"""Anthropic Messages wire format <-> the internal model.

Requests: validated wire models -> :class:`GenerationRequest` (``system`` -> a system
message, ``tool_result`` blocks -> tool messages placed before the rest of their
user turn, ``tool_use`` -> tool calls with their ids, images -> image parts,
``thinking`` -> ``thinking_budget``). Thinking blocks in the history are dropped
for backends other than Anthropic (which gets the client's body as sent).

Responses: :class:`Generation` -> a ``message`` object, and a stream of
:class:`Chunk` -> the typed SSE events Anthropic's SDKs parse (``message_start``,
``content_block_start``/``_delta``/``_stop``, ``message_delta``, ``message_stop``).
Errors: ``{"type": "error", "error": {"type": …, "message": …}}``.
"""

from __future__ import annotations

from typing import Any, Optional

import orjson

from ...core import errors
from ...core.types import (
    Chunk, Generation, GenerationRequest, ImagePart, Message, TextPart, Tool, ToolCall, Usage,
)
from .protocol import (
    AnyChoiceIn, CountTokensRequest, DocumentBlockIn, ImageBlockIn, MessageIn, MessagesRequest,
    NoneChoiceIn, RedactedThinkingBlockIn, TextBlockIn, ThinkingBlockIn, ToolChoiceToolIn,
    ToolResultBlockIn, ToolUseBlockIn,
)

#: Headers of the protocol an Anthropic backend receives unchanged.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


# ---- requests ------------------------------------------------------------------
def _image(b: ImageBlockIn) -> ImagePart:
    src = b.source
    if src.type == "base64":
        return ImagePart(url=f"data:{src.media_type};base64,{src.data}")
    return ImagePart(url=src.url)


def _tool_result_text(b: ToolResultBlockIn) -> tuple[str, list[ImagePart]]:
    if isinstance(b.content, str) or b.content is None:
        text, images = b.content or "", []
    else:
        text = "\n".join(p.text for p in b.content if isinstance(p, TextBlockIn))
        images = [_image(p) for p in b.content if isinstance(p, ImageBlockIn)]
    # The internal model (like OpenAI's) has no error flag on a tool result: say it in words.
    return ("Error: " + text if b.is_error else text), images


def _parts(parts: list) -> str | list:
    """A plain string when every part is text (what text-only backends expect)."""
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts)
    return parts


def _user(m: MessageIn, i: int) -> list[Message]:
    if isinstance(m.content, str):
        return [Message(role="user", content=m.content)]
    out: list[Message] = []
    parts: list = []
    for j, b in enumerate(m.content):
        if isinstance(b, TextBlockIn):
            parts.append(TextPart(b.text))
        elif isinstance(b, ImageBlockIn):
            parts.append(_image(b))
        elif isinstance(b, ToolResultBlockIn):
            text, images = _tool_result_text(b)
            out.append(Message(role="tool", content=text, tool_call_id=b.tool_use_id))
            parts.extend(images)  # tool messages carry text only; images follow as the user's
        elif isinstance(b, DocumentBlockIn):
            raise errors.UnsupportedFeature(
                f"messages[{i}].content[{j}]: document blocks are not supported by the gateway",
                param=f"messages[{i}].content[{j}]")
        elif isinstance(b, (ThinkingBlockIn, RedactedThinkingBlockIn, ToolUseBlockIn)):
            raise errors.InvalidRequest(
                f"messages[{i}].content[{j}]: a user message cannot hold a '{b.type}' block",
                param=f"messages[{i}].content[{j}]")
    if parts:
        out.append(Message(role="user", content=_parts(parts)))
    return out


def _assistant(m: MessageIn, i: int) -> Message:
    if isinstance(m.content, str):
        return Message(role="assistant", content=m.content)
    text, calls = [], []
    for j, b in enumerate(m.content):
        if isinstance(b, TextBlockIn):
            text.append(b.text)
        elif isinstance(b, ToolUseBlockIn):
            calls.append(ToolCall(id=b.id, name=b.name, arguments=orjson.dumps(b.input).decode()))
        elif isinstance(b, (ThinkingBlockIn, RedactedThinkingBlockIn)):
            continue  # only an Anthropic backend reads them, from the body as sent
        else:
            raise errors.InvalidRequest(
                f"messages[{i}].content[{j}]: an assistant message cannot hold a '{b.type}' "
                f"block", param=f"messages[{i}].content[{j}]")
    return Message(role="assistant", content="".join(text) or (None if calls else ""),
                   tool_calls=calls)


def _system(w: CountTokensRequest) -> list[Message]:
    if w.system is None:
        return []
    text = w.system if isinstance(w.system, str) else "\n\n".join(b.text for b in w.system)
    return [Message(role="system", content=text)] if text else []


def _tools(w: CountTokensRequest) -> list[Tool]:
    tools = []
    for i, t in enumerate(w.tools or ()):
        if t.type not in (None, "custom"):
            raise errors.UnsupportedFeature(
                f"tool type '{t.type}' (an Anthropic server tool) is not supported by the "
                f"gateway; define client tools with 'input_schema'", param=f"tools[{i}].type")
        if t.input_schema is None:
            raise errors.InvalidRequest("'input_schema' is required", param=f"tools[{i}].input_schema")
        tools.append(Tool(name=t.name, description=t.description, parameters=t.input_schema))
    return tools


def _tool_choice(w: CountTokensRequest, r: GenerationRequest) -> None:
    c = w.tool_choice
    if c is None:
        return
    if isinstance(c, NoneChoiceIn):
        r.tool_choice = "none"
        return
    if isinstance(c, ToolChoiceToolIn):
        if not any(t.name == c.name for t in r.tools):
            raise errors.InvalidRequest(f"tool_choice names tool '{c.name}' which is not in "
                                        f"'tools'", param="tool_choice.name")
        r.tool_choice = {"type": "function", "function": {"name": c.name}}
    else:
        r.tool_choice = "required" if isinstance(c, AnyChoiceIn) else "auto"
    if c.disable_parallel_tool_use:
        r.parallel_tool_calls = False


def _thinking(w: CountTokensRequest, max_tokens: Optional[int]) -> Optional[int]:
    t = w.thinking
    if t is None or t.type in ("adaptive", "between_tools"):
        return None  # the backend decides
    if t.type == "disabled":
        return 0
    if t.budget_tokens is None:
        raise errors.InvalidRequest("'thinking.budget_tokens' is required when thinking is "
                                    "enabled", param="thinking.budget_tokens")
    if max_tokens is not None and t.budget_tokens >= max_tokens:
        raise errors.InvalidRequest("'max_tokens' must be greater than "
                                    "'thinking.budget_tokens'", param="max_tokens")
    return t.budget_tokens


def messages_request(w: CountTokensRequest, body: dict,
                     headers: Optional[dict[str, str]] = None) -> GenerationRequest:
    """The internal chat request for a Messages (or count_tokens) body."""
    msgs = _system(w)
    for i, m in enumerate(w.messages):
        if m.role == "user":
            msgs.extend(_user(m, i))
        else:
            msgs.append(_assistant(m, i))
    r = GenerationRequest(kind="chat", model=w.model, messages=msgs, raw=body,
                          raw_family="anthropic", raw_headers=dict(headers or {}))
    r.tools = _tools(w)
    _tool_choice(w, r)
    if isinstance(w, MessagesRequest):
        r.max_tokens = w.max_tokens
        r.stop = list(w.stop_sequences or ())
        r.temperature, r.top_p, r.top_k, r.stream = w.temperature, w.top_p, w.top_k, w.stream
        r.include_usage = w.stream
        if w.metadata is not None:
            r.user = w.metadata.user_id
    r.thinking_budget = _thinking(w, r.max_tokens)
    return r


# ---- responses ------------------------------------------------------------------
def message_id(gen_id: str) -> str:
    return gen_id if gen_id.startswith("msg_") else "msg_" + gen_id.split("-", 1)[-1]


def stop_reason(finish: Optional[str], stop_sequence: Optional[str], called: bool) -> Optional[str]:
    """The internal finish reason in Anthropic's words; an unknown one passes through, none
    stays None (the gateway does not invent ``end_turn``)."""
    if called and finish in ("tool_calls", "stop"):
        return "tool_use"
    if finish == "stop":
        return "stop_sequence" if stop_sequence else "end_turn"
    return {"length": "max_tokens", "tool_calls": "tool_use",
            "content_filter": "refusal"}.get(finish or "", finish)


def usage_dict(u: Optional[Usage]) -> dict:
    u = u or Usage()
    return {"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def tool_input(call: ToolCall) -> dict:
    """A call's arguments as the JSON object Anthropic's ``input`` must be."""
    value = call.arguments_object()
    if value is None:
        raise errors.UpstreamError(
            f"the backend's call of '{call.name}' has arguments that are not a JSON object: "
            f"{call.arguments[:120]!r}")
    return value


def message_response(gen: Generation) -> dict:
    c = gen.choices[0] if gen.choices else None
    content: list[dict] = []
    if c is not None:
        if c.reasoning:
            content.append({"type": "thinking", "thinking": c.reasoning,
                            "signature": c.reasoning_signature or ""})
        if c.text:
            content.append({"type": "text", "text": c.text})
        for call in c.tool_calls:
            content.append({"type": "tool_use", "id": call.id, "name": call.name,
                            "input": tool_input(call)})
    reason = stop_reason(c.finish_reason, c.stop_sequence, bool(c.tool_calls)) if c else None
    return {"id": message_id(gen.id), "type": "message", "role": "assistant",
            "model": gen.model, "content": content, "stop_reason": reason,
            "stop_sequence": c.stop_sequence if reason == "stop_sequence" else None,
            "usage": usage_dict(gen.usage)}


class StreamEncoder:
    """Chunks -> Anthropic stream events: one content block at a time (thinking, text,
    tool_use), each opened when its first piece arrives and closed before the next."""

    def __init__(self, stream_id: str, model: str, input_estimate: int):
        self.id = message_id(stream_id)
        self.model = model
        self.input_estimate = input_estimate
        self.usage: Optional[Usage] = None
        self._started = False
        self._block: Optional[str] = None  # the open block's type
        self._index = -1
        self._calls: dict[int, int] = {}  # tool call index -> block index
        self._called = False
        self._finish: Optional[str] = None
        self._stop_sequence: Optional[str] = None

    def _start(self) -> list[dict]:
        if self._started:
            return []
        self._started = True
        return [{"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_estimate, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}},
            {"type": "ping"}]

    def _close(self) -> list[dict]:
        if self._block is None:
            return []
        self._block = None
        return [{"type": "content_block_stop", "index": self._index}]

    def _open(self, kind: str, block: dict) -> list[dict]:
        out = self._close()
        self._index += 1
        self._block = kind
        out.append({"type": "content_block_start", "index": self._index, "content_block": block})
        return out

    def _delta(self, delta: dict, index: Optional[int] = None) -> dict:
        return {"type": "content_block_delta",
                "index": self._index if index is None else index, "delta": delta}

    def encode(self, chunk: Chunk) -> list[dict]:
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.index != 0:  # one choice; -1 is the usage chunk
            return []
        out = self._start()
        if chunk.reasoning:
            if self._block != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": ""})
            out.append(self._delta({"type": "thinking_delta", "thinking": chunk.reasoning}))
        if chunk.reasoning_signature:
            if self._block != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": ""})
            out.append(self._delta({"type": "signature_delta",
                                    "signature": chunk.reasoning_signature}))
        if chunk.text:
            if self._block != "text":
                out += self._open("text", {"type": "text", "text": ""})
            out.append(self._delta({"type": "text_delta", "text": chunk.text}))
        for t in chunk.tool_calls:
            if t.index not in self._calls:
                self._called = True
                out += self._open("tool_use", {"type": "tool_use", "id": t.id or f"toolu_{t.index}",
                                               "name": t.name or "", "input": {}})
                self._calls[t.index] = self._index
            if t.arguments:
                out.append(self._delta({"type": "input_json_delta", "partial_json": t.arguments},
                                       self._calls[t.index]))
        if chunk.finish_reason:
            self._finish = chunk.finish_reason
            self._stop_sequence = chunk.stop_sequence
        return out

    def closing(self) -> list[dict]:
        out = self._start() + self._close()
        u = self.usage or Usage(prompt_tokens=self.input_estimate)
        reason = stop_reason(self._finish, self._stop_sequence, self._called)
        out.append({"type": "message_delta",
                    "delta": {"stop_reason": reason,
                              "stop_sequence": self._stop_sequence
                              if reason == "stop_sequence" else None},
                    "usage": usage_dict(u)})
        out.append({"type": "message_stop"})
        return out


# ---- errors -------------------------------------------------------------------------
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
               413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               501: "invalid_request_error", 502: "api_error", 503: "overloaded_error",
               504: "timeout_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(exc: errors.GatewayError) -> dict:
    return {"type": "error", "error": {"type": error_type(exc.status), "message": exc.message}}


def sse_frame(obj: dict) -> bytes:
    """One event as Anthropic frames it: its ``type`` is also the SSE event name."""
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def count_tokens_response(tokens: int) -> dict:
    return {"input_tokens": tokens}
