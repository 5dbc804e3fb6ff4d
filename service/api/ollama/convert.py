"""Ollama wire format <-> the internal model.

Requests: ``/api/chat`` becomes a chat :class:`GenerationRequest`;
``/api/generate`` becomes a chat request too (Ollama applies the model's
template: ``system`` + ``prompt`` as one user turn), except with ``raw`` or a
``suffix``, which become a text completion (a raw prompt, or fill-in-the-middle).

Responses: a :class:`Generation` becomes one object, a stream of
:class:`Chunk` becomes NDJSON lines through :class:`StreamEncoder`. Tool call
arguments are JSON *objects* on Ollama's wire and JSON strings internally.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Optional

import orjson

from ...core import errors
from ...core.types import (
    Chunk, Generation, GenerationRequest, ImagePart, Message, TextPart, Tool, ToolCall, Usage,
)
from .protocol import ChatRequest, GenerateRequest, MessageIn, Options

Endpoint = Literal["chat", "generate"]
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


# ---- requests ------------------------------------------------------------------
def image_part(data: str, where: str) -> ImagePart:
    """A base64 image (as Ollama sends it) as a ``data:`` URL; 400 naming ``where`` if bad."""
    if data.startswith("data:image/"):
        return ImagePart(url=data)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidRequest(f"'{where}' is not valid base64", param=where) from None
    mime = next((m for magic, m in _IMAGE_MAGIC if raw.startswith(magic)), None)
    if mime is None and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        mime = "image/webp"
    if mime is None:
        raise errors.InvalidRequest(f"'{where}' is not a PNG, JPEG, GIF or WebP image",
                                    param=where)
    return ImagePart(url=f"data:{mime};base64,{data}")


def _content(text: str, images: Optional[list[str]], where: str):
    if not images:
        return text
    parts: list = [TextPart(text=text)] if text else []
    parts += [image_part(img, f"{where}[{j}]") for j, img in enumerate(images)]
    return parts


def _arguments_json(args: dict | str) -> str:
    return args if isinstance(args, str) else orjson.dumps(args).decode()


def _claim(pending: list[ToolCall], name: Optional[str]) -> Optional[str]:
    """The id of the earlier call a tool result answers: same name first, else in order."""
    for k, call in enumerate(pending):
        if name and call.name == name:
            return pending.pop(k).id
    return pending.pop(0).id if pending else None


def messages(msgs: list[MessageIn]) -> list[Message]:
    """Ollama messages -> internal ones.

    Ollama's tool calls carry no id and its tool results name the tool, not the
    call; ids are made up here and tool results linked to the call they answer,
    so backends that require ids (OpenAI's format) accept the history. Some
    clients (Roo Code's Ollama provider) send tool results as ``user`` messages
    right after the assistant's id-less calls, one per call in call order:
    those become ``tool`` messages answering those calls (their images, which a
    tool message cannot hold, follow the results as one ``user`` message).
    """
    out, pending, results_as_user, held = [], [], False, []
    for i, m in enumerate(msgs):
        calls = [ToolCall(id=c.id or f"call_{i}_{j}", name=c.function.name,
                          arguments=_arguments_json(c.function.arguments))
                 for j, c in enumerate(m.tool_calls or ())]
        content = _content(m.content or "", m.images, f"messages[{i}].images")
        role, call_id = m.role, None
        if role == "user" and results_as_user and pending:
            role, call_id = "tool", pending.pop(0).id
            if isinstance(content, list):
                held += [p for p in content if isinstance(p, ImagePart)]
                content = m.content or ""
        else:
            if held:
                out.append(Message(role="user", content=held))
                held = []
            if role == "assistant":
                pending = list(calls)
                results_as_user = bool(calls) and all(c.id is None for c in m.tool_calls or ())
            elif role == "tool":
                call_id = m.tool_call_id or _claim(pending, m.tool_name)
                results_as_user = False  # the client sends real tool messages
            else:
                results_as_user = False
        out.append(Message(role=role, content=content, tool_calls=calls, tool_call_id=call_id))
    if held:
        out.append(Message(role="user", content=held))
    return out


def response_format(fmt: Any) -> Optional[dict]:
    """``format: "json"`` -> JSON mode; a JSON schema object -> structured output."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}


def _apply_options(r: GenerationRequest, o: Optional[Options]) -> None:
    if o is None:
        return
    r.temperature, r.top_p, r.top_k, r.seed = o.temperature, o.top_p, o.top_k, o.seed
    r.presence_penalty, r.frequency_penalty = o.presence_penalty, o.frequency_penalty
    r.repeat_penalty, r.num_ctx, r.stop = o.repeat_penalty, o.num_ctx, o.stop_list()
    # num_predict -1 (unlimited), -2 (fill the context) and 0 all mean "no limit of ours"
    r.max_tokens = o.num_predict if o.num_predict and o.num_predict > 0 else None


def _base(kind: str, w, body: dict) -> GenerationRequest:
    r = GenerationRequest(kind=kind, model=w.model, stream=w.stream is not False,
                          response_format=response_format(w.format), raw=body,
                          raw_family="ollama", truncate=w.truncate is not False)
    _apply_options(r, w.options)
    return r


def chat_request(w: ChatRequest, body: dict) -> GenerationRequest:
    r = _base("chat", w, body)
    r.messages = messages(w.messages)
    r.tools = [Tool(name=t.function.name, description=t.function.description,
                    parameters=t.function.parameters) for t in w.tools or ()]
    return r


def generate_request(w: GenerateRequest, body: dict) -> GenerationRequest:
    """``raw`` or ``suffix`` -> a text completion; otherwise a templated (chat) turn."""
    if w.raw or w.suffix:
        if w.images:
            raise errors.UnsupportedFeature(
                "'images' need a templated prompt; they cannot be sent with 'raw' or 'suffix'",
                param="images")
        r = _base("completion", w, body)
        r.prompt, r.suffix = w.prompt, w.suffix or None
        return r
    r = _base("chat", w, body)
    if w.system:
        r.messages.append(Message(role="system", content=w.system))
    r.messages.append(Message(role="user", content=_content(w.prompt, w.images, "images")))
    return r


def is_load_only(endpoint: Endpoint, w) -> bool:
    """Ollama answers an empty chat / empty prompt by loading the model, generating nothing."""
    if endpoint == "chat":
        return not w.messages
    return not w.prompt and not w.images and not w.suffix


# ---- responses ------------------------------------------------------------------
def created_at(ts: Optional[float] = None) -> str:
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def tool_calls_out(calls: list[ToolCall]) -> list[dict]:
    """Internal calls -> Ollama's, arguments parsed into objects."""
    out = []
    for i, c in enumerate(calls):
        args = c.arguments_object()
        if args is None:
            raise errors.UpstreamError(
                f"the model called '{c.name}' with arguments that are not a JSON object: "
                f"{c.arguments[:200]!r}")
        out.append({"id": c.id, "function": {"index": i, "name": c.name, "arguments": args}})
    return out


def _done_reason(finish: Optional[str]) -> Optional[str]:
    """Ollama's ``done_reason`` for a finish reason: Ollama says "stop" after tool calls;
    other reasons pass through; None (the backend gave none) stays None, not "stop"."""
    if finish == "tool_calls":
        return "stop"
    return finish


def final_fields(usage: Optional[Usage], finish: Optional[str], *, total_ns: int,
                 prompt_ns: int, eval_ns: int) -> dict:
    """The counters and nanosecond durations of the ``done: true`` object.

    ``load_duration`` is 0: a model load is never part of one request here.
    """
    u = usage or Usage()
    out: dict[str, Any] = {"done": True}
    reason = _done_reason(finish)
    if reason is not None:  # omitted when unknown, as Ollama's own omitempty does
        out["done_reason"] = reason
    out.update({"total_duration": total_ns, "load_duration": 0,
                "prompt_eval_count": u.prompt_tokens, "prompt_eval_duration": prompt_ns,
                "eval_count": u.completion_tokens, "eval_duration": eval_ns})
    return out


def _body(endpoint: Endpoint, text: str, thinking: Optional[str] = None,
          calls: Optional[list[dict]] = None) -> dict:
    if endpoint == "generate":
        out: dict[str, Any] = {"response": text}
        if thinking:
            out["thinking"] = thinking
        return out
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        msg["thinking"] = thinking
    if calls:
        msg["tool_calls"] = calls
    return {"message": msg}


def response(endpoint: Endpoint, model: str, gen: Generation, total_ns: int) -> dict:
    """A whole (``stream: false``) answer.

    Without a stream the split between prompt evaluation and generation is not
    observable: ``eval_duration`` is the whole call and ``prompt_eval_duration`` 0.
    """
    c = gen.choices[0] if gen.choices else None
    out = {"model": model, "created_at": created_at()}
    out.update(_body(endpoint, c.text if c else "", c.reasoning if c else None,
                     tool_calls_out(c.tool_calls) if c and c.tool_calls else None))
    out.update(final_fields(gen.usage, c.finish_reason if c else None, total_ns=total_ns,
                            prompt_ns=0, eval_ns=total_ns))
    return out


def load_response(endpoint: Endpoint, model: str) -> dict:
    out = {"model": model, "created_at": created_at()}
    out.update(_body(endpoint, ""))
    out.update({"done": True, "done_reason": "load"})
    return out


class StreamEncoder:
    """Chunks -> Ollama NDJSON objects, then the ``done: true`` line.

    Only choice 0 exists in Ollama's API. Streamed tool-call fragments are
    gathered and sent as one line with whole calls when the choice finishes,
    because Ollama clients read each call (with object arguments) from one line.
    ``clock`` returns nanoseconds (``time.perf_counter_ns``); tests pass their own.
    """

    def __init__(self, endpoint: Endpoint, model: str, *, start_ns: Optional[int] = None,
                 clock: Callable[[], int] = time.perf_counter_ns):
        self.endpoint = endpoint
        self.model = model
        self.clock = clock
        self.start_ns = clock() if start_ns is None else start_ns
        self.first_ns: Optional[int] = None
        self.usage: Optional[Usage] = None
        self.finish: Optional[str] = None
        self._calls: dict[int, ToolCall] = {}

    def _line(self, text: str = "", thinking: Optional[str] = None,
              calls: Optional[list[dict]] = None) -> dict:
        if self.first_ns is None:
            self.first_ns = self.clock()
        out = {"model": self.model, "created_at": created_at()}
        out.update(_body(self.endpoint, text, thinking, calls))
        out["done"] = False
        return out

    def encode(self, chunk: Chunk) -> list[dict]:
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.index != 0:
            return []
        for d in chunk.tool_calls:
            call = self._calls.setdefault(d.index, ToolCall(id="", name="", arguments=""))
            call.id = call.id or d.id or f"call_{d.index}"
            call.name = call.name or d.name or ""
            call.arguments += d.arguments
        out = []
        if chunk.text or chunk.reasoning:
            out.append(self._line(chunk.text, chunk.reasoning))
        if chunk.finish_reason:
            self.finish = chunk.finish_reason
            out += self._flush_calls()
        return out

    def _flush_calls(self) -> list[dict]:
        if not self._calls:
            return []
        calls = [self._calls[k] for k in sorted(self._calls)]
        self._calls = {}
        return [self._line(calls=tool_calls_out(calls))]

    def closing(self) -> list[dict]:
        """Calls the backend left unfinished, then the final ``done: true`` object."""
        out = self._flush_calls()
        end = self.clock()
        first = self.first_ns if self.first_ns is not None else end
        last = {"model": self.model, "created_at": created_at()}
        last.update(_body(self.endpoint, ""))
        last.update(final_fields(self.usage, self.finish, total_ns=end - self.start_ns,
                                 prompt_ns=first - self.start_ns, eval_ns=end - first))
        return out + [last]


def error_body(exc: errors.GatewayError) -> dict:
    return {"error": exc.message}
