"""Tool calling on the local model: which tools, how they are prompted, how calls are parsed.

How tools reach the model: a GGUF chat template that references ``tools``
renders them itself; for any other template the generic prompt below
(:func:`generic_tool_prompt`, after SmolLM2's and xLAM's function-calling
format) is appended to the system message. Either way the output is
grammar-constrained (:mod:`.grammars`) to a ``<tool_call>[…]</tool_call>``
block, so a call is always well-formed JSON whose arguments match the tool's
parameter schema; the :class:`ToolCallParser` turns those blocks, as they
stream, into :class:`~service.core.types.ToolCallDelta` objects, one per call,
released when the call's arguments are complete (a call cut short by
``max_tokens`` is dropped, never sent half-written).

``tool_choice``: ``"none"`` (or no tools) → plain generation, tools not shown;
``"required"`` or a named function → the grammar admits only calls (of that
function); ``"auto"``/unset → the model starts freely and the grammar takes over
once it opens a call with ``<`` (a lazy grammar, as llama.cpp's server does), so
text answers cost nothing extra; ``LOCAL_AUTO_TOOL_CHOICE=required`` turns
"auto" into "required" for agents that need a call every turn.
``parallel_tool_calls: false`` → exactly one call.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Optional

from ..core.types import GenerationRequest, Tool, ToolCall, ToolCallDelta
from .grammars import ARGS_MARK, BLOCK_CLOSE, BLOCK_OPEN, CALL_HEAD, CALL_SEPARATOR, CALL_TAIL


@dataclass(slots=True)
class ToolPlan:
    """What a request asks of the tool machinery."""

    tools: list[Tool]
    must_call: bool
    parallel: bool

    @property
    def schemas(self) -> list[tuple[str, Optional[dict]]]:
        return [(t.name, t.parameters) for t in self.tools]


def plan_for(request: GenerationRequest, *, auto_required: bool = False) -> Optional[ToolPlan]:
    """The tool plan of a chat request, or None when tools play no part."""
    if request.kind != "chat" or not request.tools or request.tool_choice == "none":
        return None
    choice = request.tool_choice
    tools = request.tools
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t.name == name] or tools
    must = (choice == "required" or isinstance(choice, dict)
            or (auto_required and choice in (None, "auto")))
    return ToolPlan(tools=tools, must_call=must, parallel=request.parallel_tool_calls is not False)


def openai_tools(tools: list[Tool]) -> list[dict]:
    """Tools as OpenAI function-tool objects (what tool-aware templates iterate over)."""
    out = []
    for t in tools:
        fn: dict = {"name": t.name}
        if t.description:
            fn["description"] = t.description
        fn["parameters"] = t.parameters or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": fn})
    return out


def generic_tool_prompt(plan: ToolPlan, *, compact: bool = False) -> str:
    """The tool instructions for templates that do not render tools themselves.

    Worded after SmolLM2's function-calling prompt; the grammar enforces the
    format whatever the model makes of the words. ``compact`` lists each tool
    as one signature line (:func:`compact_signature`) instead of its JSON
    definition: a tenth of the tokens for agents' tool sets (Roo Code's 21
    tools: about 9,400 tokens as JSON, 1,300 as signatures).
    """
    if compact:
        listing = "\n".join(compact_signature(t) for t in plan.tools)
    else:
        listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in openai_tools(plan.tools))
    rule = ("You must call at least one of these functions." if plan.must_call else
            "Call a function when one helps; otherwise answer in plain text.")
    many = "one or more function calls" if plan.parallel else "exactly one function call"
    return (
        "You have access to the following tools:\n"
        f"<tools>{listing}</tools>\n\n"
        f"{rule} To call functions, answer with {many} in this format and no other text:\n"
        '<tool_call>[{"name": "func_name1", "arguments": {"argument1": "value1"}}]</tool_call>')


def compact_signature(tool: Tool) -> str:
    """``name(arg: type, opt?: type|null) - first sentence of the description``."""
    params = tool.parameters or {}
    head = f"{tool.name}({_compact_fields(params)})"
    summary = _first_sentence(tool.description or "")
    return f"{head} - {summary}" if summary else head


def _compact_fields(schema: dict) -> str:
    required = set(schema.get("required") or ())
    return ", ".join(f"{name}{'' if name in required else '?'}: {_compact_type(sub)}"
                     for name, sub in (schema.get("properties") or {}).items())


def _compact_type(schema) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return "|".join(json.dumps(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return "|".join(_compact_type(s) for s in schema[key])
    types = schema.get("type")
    types = types if isinstance(types, list) else [types or "any"]
    out = []
    for t in types:
        if t == "object" and schema.get("properties"):
            out.append("{" + _compact_fields(schema) + "}")
        elif t == "array":
            out.append(f"[{_compact_type(schema.get('items'))}]")
        else:
            out.append(str(t))
    return "|".join(out)


def _first_sentence(text: str, limit: int = 160) -> str:
    line = text.strip().split("\n", 1)[0]
    end = line.find(". ")
    line = line[:end + 1] if end >= 0 else line
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def render_calls(calls: list[ToolCall]) -> str:
    """Earlier calls in the history, written the way the model is asked to write calls."""
    inner = CALL_SEPARATOR.join(f"{CALL_HEAD}{c.name}{ARGS_MARK}{c.arguments or '{}'}{CALL_TAIL}"
                                for c in calls)
    return f"{BLOCK_OPEN}{inner}{BLOCK_CLOSE}"


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


class ToolCallParser:
    """Incremental parser of grammar-shaped output into text and whole tool calls.

    ``feed`` returns the text (when the output is an answer, not calls) and a
    ``ToolCallDelta`` (``id``, ``name`` and all ``arguments``) for each call
    whose arguments are complete. A call is released only once complete, so a
    call cut short by ``max_tokens`` never reaches the client half-written.
    """

    def __init__(self):
        self._buf = ""           # received, not yet consumed
        self._mode = "start"     # start | text | open | name | args | after | done
        self._current: Optional[ToolCall] = None
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self.calls: list[ToolCall] = []

    @property
    def complete(self) -> bool:
        """True when the output was text, or a block of calls that was closed."""
        return self._mode in ("text", "done")

    @property
    def in_call(self) -> bool:
        return self._mode not in ("start", "text", "done")

    def feed(self, text: str) -> tuple[str, list[ToolCallDelta]]:
        self._buf += text
        out_text, deltas = "", []
        while self._buf:
            mode = self._mode
            if mode == "start":
                head = self._buf.lstrip()
                if not head:
                    break
                if head.startswith("<"):
                    self._buf, self._mode = head, "open"
                else:
                    self._mode = "text"
            elif mode in ("text", "done"):
                out_text, self._buf = out_text + self._buf, ""
            elif mode == "open":
                want = BLOCK_OPEN + CALL_HEAD
                if not self._take(want):
                    if want.startswith(self._buf):
                        break
                    self._mode = "text"  # not our shape: only possible without a grammar
                    continue
                self._mode = "name"
            elif mode == "name":
                end = self._buf.find(ARGS_MARK)
                if end < 0:
                    break
                self._current = ToolCall(id=new_call_id(), name=self._buf[:end], arguments="")
                self._buf = self._buf[end + len(ARGS_MARK):]
                self._mode, self._depth, self._in_string, self._escaped = "args", 0, False, False
            elif mode == "args":
                n = self._scan_arguments()
                self._current.arguments += self._buf[:n]
                self._buf = self._buf[n:]
                if self._depth == 0 and self._current.arguments.strip():
                    call, self._current = self._current, None
                    self.calls.append(call)
                    deltas.append(ToolCallDelta(index=len(self.calls) - 1, id=call.id,
                                                name=call.name, arguments=call.arguments))
                    self._mode = "after"
            elif mode == "after":
                self._buf = self._buf.lstrip(" ")
                if self._take(CALL_TAIL + CALL_SEPARATOR + CALL_HEAD):
                    self._mode = "name"
                elif self._take(CALL_TAIL + BLOCK_CLOSE):
                    self._mode = "done"
                else:
                    break  # wait for more
        return out_text, deltas

    def _take(self, literal: str) -> bool:
        if self._buf.startswith(literal):
            self._buf = self._buf[len(literal):]
            return True
        return False

    def _scan_arguments(self) -> int:
        """Consume argument characters up to the end of the JSON value; returns the count."""
        for i, ch in enumerate(self._buf):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth == 0:
                    return i + 1
        return len(self._buf)

    def finish(self) -> str:
        """Text held back at the end (nothing once a block of calls has begun)."""
        rest, self._buf = self._buf, ""
        return rest if self._mode in ("start", "text") else ""


def parse_all(text: str) -> tuple[str, list[ToolCall]]:
    """Parse a whole output: (answer text, complete calls)."""
    p = ToolCallParser()
    out, _ = p.feed(text)
    return out + p.finish(), p.calls
