"""OpenAI Responses wire format <-> the internal model.

Requests: validated input items (plus the stored items of a previous response)
-> one :class:`GenerationRequest` of chat messages. ``instructions`` become the
first system message; an assistant ``message`` and the ``function_call`` items
after it become one assistant message with tool calls (their ``call_id`` is the
tool call id, unchanged); ``function_call_output`` becomes a tool message;
``reasoning`` items are dropped (no backend takes another model's reasoning
back). Function tools inside a ``namespace`` tool reach the backend as
``<namespace>__<name>`` and come back split again.

Responses: :class:`Generation` -> a ``response`` object, and a stream of
:class:`Chunk` -> the typed events the ``openai`` SDK and Codex CLI parse, each
with its ``sequence_number``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Optional

import orjson

from ...core import errors
from ...core.types import (
    Chunk, Generation, GenerationRequest, ImagePart, Message, TextPart, Tool, ToolCall, Usage,
)
from .protocol import ResponsesRequest

NAMESPACE_SEP = "__"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# ---- input items ------------------------------------------------------------------------
def input_items(w: ResponsesRequest) -> list[dict]:
    """The request's ``input`` as plain item dicts, each with an id (as OpenAI stores them)."""
    if isinstance(w.input, str):
        return [{"id": new_id("msg"), "type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": w.input}]}]
    out = []
    for item in w.input:
        d = item.model_dump(by_alias=True, exclude_none=True)
        if item.type == "item_reference":
            raise errors.UnsupportedFeature(
                "item references are not supported; send the item itself, or chain with "
                "'previous_response_id'", param="input")
        if item.type == "message" and isinstance(d["content"], str):
            part = "output_text" if item.role == "assistant" else "input_text"
            d["content"] = [{"type": part, "text": d["content"]}]
        d.setdefault("id", new_id({"message": "msg", "function_call": "fc",
                                   "function_call_output": "fco", "reasoning": "rs"}[item.type]))
        out.append(d)
    return out


def _parts(content: list[dict], param: str) -> list:
    parts: list = []
    for p in content:
        kind = p.get("type")
        if kind in ("input_text", "output_text"):
            parts.append(TextPart(text=p.get("text") or ""))
        elif kind == "refusal":
            parts.append(TextPart(text=p.get("refusal") or p.get("text") or ""))
        elif kind == "input_image":
            if not p.get("image_url"):
                raise errors.UnsupportedFeature(
                    "images by file_id are not supported; send 'image_url' (a data: or "
                    "http(s) URL)", param=param)
            detail = p.get("detail")
            parts.append(ImagePart(url=p["image_url"], detail=None if detail == "auto" else detail))
        else:
            raise errors.UnsupportedFeature(f"content of type '{kind}' is not supported",
                                            param=param)
    return parts


def _content(parts: list) -> str | list:
    """Text-only content as a plain string (what every backend takes), else the parts."""
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts)
    return parts


def _internal_name(name: str, namespace: Optional[str]) -> str:
    return f"{namespace}{NAMESPACE_SEP}{name}" if namespace else name


def messages(items: list[dict], instructions: Optional[str]) -> list[Message]:
    """Items (stored ones first) -> chat messages; a tool output must answer a call before it."""
    out: list[Message] = []
    if instructions:
        out.append(Message(role="system", content=instructions))
    calls: set[str] = set()
    for i, item in enumerate(items):
        kind = item.get("type")
        param = f"input[{i}]"
        if kind == "message":
            content = item.get("content")
            parts = _parts(content, param + ".content") if isinstance(content, list) else \
                [TextPart(text=str(content or ""))]
            out.append(Message(role=item["role"], content=_content(parts)))
        elif kind == "function_call":
            call = ToolCall(id=item["call_id"],
                            name=_internal_name(item["name"], item.get("namespace")),
                            arguments=item.get("arguments") or "")
            last = out[-1] if out else None
            # Parallel calls, and calls after the assistant's own words, are one assistant turn.
            if last is not None and last.role == "assistant":
                last.tool_calls.append(call)
            else:
                out.append(Message(role="assistant", content=None, tool_calls=[call]))
            calls.add(call.id)
        elif kind == "function_call_output":
            if item["call_id"] not in calls:
                raise errors.InvalidRequest(
                    f"no function call found for the function_call_output with call_id "
                    f"'{item['call_id'][:100]}'", param=param)
            output = item.get("output")
            text = output if isinstance(output, str) else "".join(
                p.text for p in _parts(output or [], param + ".output") if isinstance(p, TextPart))
            out.append(Message(role="tool", content=text, tool_call_id=item["call_id"]))
        # reasoning items: dropped (see the module docstring)
    if not any(m.role != "system" for m in out):
        raise errors.InvalidRequest("'input' must hold at least one item", param="input")
    return out


def _tools(w: ResponsesRequest) -> tuple[list[Tool], set[str]]:
    tools, namespaces = [], set()
    for t in w.tools or ():
        if t.type == "namespace":
            namespaces.add(t.name)
            inner = [(t.name, f) for f in t.tools]
        else:
            inner = [(None, t)]
        for ns, f in inner:
            tools.append(Tool(name=_internal_name(f.name, ns), description=f.description,
                              parameters=f.parameters, strict=f.strict))
    return tools, namespaces


def generation_request(w: ResponsesRequest, items: list[dict]) -> GenerationRequest:
    """The internal request for ``items`` (earlier turns' items first, then this input)."""
    tools, _ = _tools(w)
    r = GenerationRequest(kind="chat", model=w.model, messages=messages(items, w.instructions),
                          max_tokens=w.max_output_tokens, temperature=w.temperature,
                          top_p=w.top_p, user=w.user, stream=w.stream, include_usage=True,
                          tools=tools, parallel_tool_calls=w.parallel_tool_calls)
    if isinstance(w.tool_choice, str) or w.tool_choice is None:
        r.tool_choice = w.tool_choice
    else:
        if not any(t.name == w.tool_choice.name for t in tools):
            raise errors.InvalidRequest(
                f"tool_choice names function '{w.tool_choice.name}' which is not in 'tools'",
                param="tool_choice")
        r.tool_choice = {"type": "function", "function": {"name": w.tool_choice.name}}
    fmt = w.text.format if w.text is not None else None
    if fmt is not None and fmt.type == "json_object":
        r.response_format = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.schema_ is None:
            raise errors.InvalidRequest("'text.format.schema' is required for json_schema",
                                        param="text.format.schema")
        spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema_}
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        if fmt.description:
            spec["description"] = fmt.description
        r.response_format = {"type": "json_schema", "json_schema": spec}
    return r


# ---- output -------------------------------------------------------------------------------
def usage_dict(u: Optional[Usage]) -> dict:
    u = u or Usage()
    return {"input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_tokens or 0},
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.total_tokens}


def _status(finish: Optional[str]) -> tuple[str, Optional[dict]]:
    """(status, incomplete_details) for a finish reason: only a normal end is 'completed'."""
    if finish in (None, "stop", "tool_calls"):
        return "completed", None
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    return "incomplete", {"reason": finish}


class Envelope:
    """The ``response`` object around an output: the request's settings echoed back."""

    def __init__(self, w: ResponsesRequest, model: str):
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.model = model
        self.w = w
        _, self.namespaces = _tools(w)

    def __call__(self, status: str, output: list[dict], usage: Optional[Usage] = None,
                 error: Optional[dict] = None, incomplete: Optional[dict] = None) -> dict:
        w = self.w
        fmt = w.text.format.model_dump(by_alias=True, exclude_none=True) \
            if w.text is not None and w.text.format is not None else {"type": "text"}
        return {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": status, "error": error, "incomplete_details": incomplete,
            "instructions": w.instructions, "max_output_tokens": w.max_output_tokens,
            "model": self.model, "output": output,
            "parallel_tool_calls": True if w.parallel_tool_calls is None else w.parallel_tool_calls,
            "previous_response_id": w.previous_response_id,
            "reasoning": {"effort": w.reasoning.effort if w.reasoning else None,
                          "summary": w.reasoning.summary if w.reasoning else None},
            "store": w.store, "temperature": 1.0 if w.temperature is None else w.temperature,
            "text": {"format": fmt}, "tool_choice": _choice_out(w.tool_choice),
            "tools": [t.model_dump(exclude_none=True) for t in w.tools or ()],
            "top_p": 1.0 if w.top_p is None else w.top_p, "truncation": "disabled",
            "usage": usage_dict(usage) if status != "in_progress" else None,
            "user": w.user, "metadata": w.metadata or {},
        }

    def function_call(self, call_id: str, name: str, arguments: str, status: str,
                      item_id: Optional[str] = None) -> dict:
        """A function_call item; a namespaced tool's name split back into its two parts."""
        item = {"id": item_id or new_id("fc"), "type": "function_call", "status": status,
                "call_id": call_id, "name": name, "arguments": arguments}
        ns, sep, short = name.partition(NAMESPACE_SEP)
        if sep and ns in self.namespaces:
            item["name"], item["namespace"] = short, ns
        return item


def _choice_out(choice) -> Any:
    if choice is None:
        return "auto"
    return choice if isinstance(choice, str) else {"type": "function", "name": choice.name}


def message_item(text: str, status: str, item_id: Optional[str] = None) -> dict:
    return {"id": item_id or new_id("msg"), "type": "message", "role": "assistant",
            "status": status, "content": [_text_part(text)]}


def reasoning_item(text: str, status: str, item_id: Optional[str] = None) -> dict:
    return {"id": item_id or new_id("rs"), "type": "reasoning", "status": status,
            "summary": [], "content": [{"type": "reasoning_text", "text": text}]}


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(env: Envelope, gen: Generation) -> dict:
    c = gen.choices[0] if gen.choices else None
    output: list[dict] = []
    if c is not None and c.reasoning:
        output.append(reasoning_item(c.reasoning, "completed"))
    if c is not None and (c.text or not c.tool_calls):
        output.append(message_item(c.text, "completed"))
    for call in c.tool_calls if c is not None else ():
        output.append(env.function_call(call.id, call.name, call.arguments, "completed"))
    status, incomplete = _status(c.finish_reason if c is not None else None)
    return env(status, output, gen.usage, incomplete=incomplete)


class _Open:
    """An output item being streamed."""

    __slots__ = ("index", "kind", "item_id", "text", "call_id", "name")

    def __init__(self, index: int, kind: str, item_id: str, call_id: str = "", name: str = ""):
        self.index, self.kind, self.item_id = index, kind, item_id
        self.text, self.call_id, self.name = "", call_id, name


class StreamEncoder:
    """Chunks -> Responses stream events (``service.api.streaming.StreamEncoder``).

    ``response.created``/``in_progress`` open the stream; each output item is
    announced (``output_item.added``), filled by deltas and closed (``…done``)
    when the backend finished; then ``response.completed``, or
    ``response.incomplete`` when it stopped at the token limit. ``on_final``
    gets the final response first (storage); a failure there, or anywhere
    mid-stream, becomes ``error`` + ``response.failed`` (:meth:`failed`).
    """

    def __init__(self, env: Envelope, spent: Callable[[], Usage],
                 on_final: Callable[[dict], None]):
        self.env = env
        self.spent = spent
        self.on_final = on_final
        self.usage: Optional[Usage] = None
        self.finish: Optional[str] = None
        self._seq = 0
        self._started = False
        self._items: list[_Open] = []
        self._text: Optional[_Open] = None
        self._reasoning: Optional[_Open] = None
        self._calls: dict[int, _Open] = {}

    def _ev(self, kind: str, **fields) -> dict:
        ev = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return ev

    def _prelude(self) -> list[dict]:
        if self._started:
            return []
        self._started = True
        snapshot = self.env("in_progress", [])
        return [self._ev("response.created", response=snapshot),
                self._ev("response.in_progress", response=snapshot)]

    def _open(self, kind: str, item: dict, **extra) -> tuple[_Open, dict]:
        state = _Open(len(self._items), kind, item["id"], **extra)
        self._items.append(state)
        return state, self._ev("response.output_item.added", output_index=state.index, item=item)

    def encode(self, chunk: Chunk) -> list[dict]:
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.index != 0:  # one choice; -1 is the usage chunk
            return []
        out = self._prelude()
        if chunk.reasoning:
            if self._reasoning is None:
                self._reasoning, ev = self._open("reasoning", reasoning_item("", "in_progress"))
                out.append(ev)
            r = self._reasoning
            r.text += chunk.reasoning
            out.append(self._ev("response.reasoning_text.delta", item_id=r.item_id,
                                output_index=r.index, content_index=0, delta=chunk.reasoning))
        if chunk.text:
            if self._text is None:
                self._text, ev = self._open("message", {**message_item("", "in_progress"),
                                                        "content": []})
                out.append(ev)
                out.append(self._ev("response.content_part.added", item_id=self._text.item_id,
                                    output_index=self._text.index, content_index=0,
                                    part=_text_part("")))
            t = self._text
            t.text += chunk.text
            out.append(self._ev("response.output_text.delta", item_id=t.item_id,
                                output_index=t.index, content_index=0, delta=chunk.text,
                                logprobs=[]))
        for d in chunk.tool_calls:
            call = self._calls.get(d.index)
            if call is None:
                item = self.env.function_call(d.id or new_id("call"), d.name or "", "",
                                              "in_progress")
                call, ev = self._open("function_call", item, call_id=item["call_id"],
                                      name=d.name or "")
                self._calls[d.index] = call
                out.append(ev)
            elif d.name and not call.name:
                call.name = d.name
            if d.arguments:
                call.text += d.arguments
                out.append(self._ev("response.function_call_arguments.delta",
                                    item_id=call.item_id, output_index=call.index,
                                    delta=d.arguments))
        if chunk.finish_reason:
            self.finish = chunk.finish_reason
        return out

    def _done_item(self, s: _Open) -> tuple[dict, list[dict]]:
        if s.kind == "message":
            item = message_item(s.text, "completed", s.item_id)
            events = [self._ev("response.output_text.done", item_id=s.item_id,
                               output_index=s.index, content_index=0, text=s.text, logprobs=[]),
                      self._ev("response.content_part.done", item_id=s.item_id,
                               output_index=s.index, content_index=0, part=_text_part(s.text))]
        elif s.kind == "reasoning":
            item = reasoning_item(s.text, "completed", s.item_id)
            events = [self._ev("response.reasoning_text.done", item_id=s.item_id,
                               output_index=s.index, content_index=0, text=s.text)]
        else:
            item = self.env.function_call(s.call_id, s.name, s.text, "completed", s.item_id)
            events = [self._ev("response.function_call_arguments.done", item_id=s.item_id,
                               output_index=s.index, name=item["name"], arguments=s.text)]
        events.append(self._ev("response.output_item.done", output_index=s.index, item=item))
        return item, events

    def closing(self) -> list[dict]:
        out = self._prelude()
        if not self._items:  # an empty answer is still one (empty) message
            self._text, ev = self._open("message", {**message_item("", "in_progress"),
                                                    "content": []})
            out += [ev, self._ev("response.content_part.added", item_id=self._text.item_id,
                                 output_index=0, content_index=0, part=_text_part(""))]
        output = []
        for s in self._items:
            item, events = self._done_item(s)
            output.append(item)
            out += events
        self.usage = self.usage or self.spent()
        status, incomplete = _status(self.finish)
        final = self.env(status, output, self.usage, incomplete=incomplete)
        self.on_final(final)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + [self._ev(kind, response=final)]

    def failed(self, exc: errors.GatewayError) -> list[dict]:
        """The stream broke: an ``error`` event, then ``response.failed`` (never completed)."""
        out = self._prelude()
        code = exc.code or exc.type
        out.append(self._ev("error", code=code, message=exc.message, param=exc.param))
        partial = [_partial(s, self.env) for s in self._items]
        out.append(self._ev("response.failed", response=self.env(
            "failed", partial, self.usage or self.spent(),
            error={"code": code, "message": exc.message})))
        return out


def _partial(s: _Open, env: Envelope) -> dict:
    if s.kind == "message":
        return message_item(s.text, "incomplete", s.item_id)
    if s.kind == "reasoning":
        return reasoning_item(s.text, "incomplete", s.item_id)
    return env.function_call(s.call_id, s.name, s.text, "incomplete", s.item_id)


def sse_events(obj: dict | list[dict]) -> bytes:
    """One event (or several, for a failure) as SSE with its ``event:`` name."""
    objs = obj if isinstance(obj, list) else [obj]
    return b"".join(b"event: " + o["type"].encode() + b"\ndata: " + orjson.dumps(o) + b"\n\n"
                    for o in objs)
