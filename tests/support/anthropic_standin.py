"""A Messages-API server on loopback that checks what it receives, scripted by model name.

Every ``POST /v1/messages`` is validated the way Anthropic's API validates it
(``x-api-key`` when a key is set, ``anthropic-version``, ``max_tokens``, roles
alternating from ``user``, every ``tool_result`` answering a ``tool_use`` id of
the turn before, ``input`` objects, ``input_schema`` on tools); a violation is a
400 ``invalid_request_error`` naming it, so a gateway that sends a bad body fails
its test. Bodies and headers are kept in ``state``.

Behaviours (``model``):

- ``claude-echo`` (default): ``"echo: <last user text>"``, streamed word by word.
- ``claude-tools``: without a tool result in the last turn, a ``get_weather`` call
  (id ``toolu_standin_1``); with one, ``"weather: <its text>"``.
- ``claude-read``: like ``claude-tools`` with Claude Code's ``Read`` tool on
  ``state.read_path``; with the result, ``"file says: <its text>"``.
- ``claude-thinking``: a thinking block (signature ``sig-standin``), then text.
- ``claude-stop``: ends on the stop sequence ``END``; ``claude-long``: on ``max_tokens``.
- ``claude-overloaded``: 529 ``overloaded_error``; ``claude-ratelimit``: 429 with
  ``Retry-After: 7``.
- ``claude-cut``: streams two deltas, then drops the connection (no ``message_stop``).
- ``claude-stream-error``: streams a delta, then an ``error`` event (overloaded).
- ``claude-endless``: streams a delta every 50 ms until the client leaves
  (recorded in ``state.disconnects``).
- ``POST /v1/messages/count_tokens``: ``{"input_tokens": 42}``; ``GET /v1/models``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Optional

from tests.support import upstream
from tests.support.loopback import LoopbackServer

TOOL_ID = "toolu_standin_1"
TOOL_INPUT = {"city": "Paris"}


class State:
    def __init__(self):
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []
        self.disconnects: list[float] = []
        self.api_key: Optional[str] = None  # required in x-api-key when set
        self.read_path = "README.md"  # what claude-read asks Claude Code's Read tool for
        self.lock = threading.Lock()


def problem(body: dict) -> Optional[str]:
    """What Anthropic's API would refuse in ``body``, or None."""
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages: at least one message is required"
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return "system: must be a string or a list of text blocks"
    for i, t in enumerate(body.get("tools") or []):
        if "input_schema" not in t or not t.get("name"):
            return f"tools.{i}: name and input_schema are required"
    previous_calls: set[str] = set()
    for i, m in enumerate(msgs):
        want = "user" if i % 2 == 0 else "assistant"
        if m.get("role") != want:
            return f"messages.{i}.role: roles must alternate, starting with user"
        blocks = m["content"] if isinstance(m.get("content"), list) else []
        calls = set()
        for j, b in enumerate(blocks):
            kind = b.get("type")
            if kind == "tool_use":
                if not isinstance(b.get("input"), dict) or not b.get("id"):
                    return f"messages.{i}.content.{j}: tool_use needs an id and an input object"
                calls.add(b["id"])
            if kind == "tool_result" and b.get("tool_use_id") not in previous_calls:
                return (f"messages.{i}.content.{j}: unexpected tool_use_id "
                        f"{b.get('tool_use_id')!r}: no tool_use with that id in the turn before")
            if kind == "text" and not isinstance(b.get("text"), str):
                return f"messages.{i}.content.{j}.text: must be a string"
        previous_calls = calls
    return None


def _last_user(body: dict) -> tuple[str, Optional[str]]:
    """The last user turn's text, and the text of its tool result (None without one)."""
    m = body["messages"][-1]
    if isinstance(m.get("content"), str):
        return m["content"], None
    text, result = [], None
    for b in m["content"]:
        if b.get("type") == "text":
            text.append(b["text"])
        elif b.get("type") == "tool_result":
            c = b.get("content")
            result = c if isinstance(c, str) else "".join(
                x.get("text", "") for x in c or [] if x.get("type") == "text")
    return " ".join(text), result


class Handler(upstream.Handler):
    """The OpenAI stand-in's HTTP helpers, Anthropic's routes."""

    server: "AnthropicStandin"
    _json = upstream.Handler._send_json

    def _error(self, status: int, kind: str, message: str, headers=None):
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}},
                   headers)

    def _event(self, obj):
        self._chunk(f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode())

    def do_GET(self):
        if self.path.startswith("/v1/models"):
            return self._json(200, {"data": [{"type": "model", "id": "claude-echo",
                                              "display_name": "Echo", "created_at": "2025-01-01T00:00:00Z"}],
                                    "has_more": False})
        self._error(404, "not_found_error", "no such route")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        st = self.server.state
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._error(400, "invalid_request_error", "body is not JSON")
        with st.lock:
            st.bodies.append(body)
            st.headers.append({k.lower(): v for k, v in self.headers.items()})
            st.paths.append(self.path)
        if st.api_key and self.headers.get("x-api-key") != st.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not self.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version header is required")
        if self.path.startswith("/v1/messages/count_tokens"):
            if "max_tokens" in body:
                return self._error(400, "invalid_request_error", "max_tokens: Extra inputs are not permitted")
            return self._json(200, {"input_tokens": 42})
        if not self.path.startswith("/v1/messages"):
            return self._error(404, "not_found_error", "no such route")
        bad = problem(body)
        if bad:
            return self._error(400, "invalid_request_error", bad)
        model = body.get("model", "")
        if model == "claude-overloaded":
            return self._error(529, "overloaded_error", "Overloaded")
        if model == "claude-ratelimit":
            return self._error(429, "rate_limit_error", "Number of requests has exceeded your rate limit",
                               {"Retry-After": "7"})
        blocks, reason, seq = self._answer(model, body)
        msg = {"id": "msg_standin", "type": "message", "role": "assistant", "model": model,
               "content": blocks, "stop_reason": reason, "stop_sequence": seq,
               "usage": {"input_tokens": 11, "output_tokens": 7}}
        if not body.get("stream"):
            return self._json(200, msg)
        self._stream(model, msg)

    def _answer(self, model: str, body: dict):
        text, result = _last_user(body)
        if model == "claude-tools":
            if result is None:
                return [{"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": TOOL_ID, "name": "get_weather",
                         "input": TOOL_INPUT}], "tool_use", None
            return [{"type": "text", "text": f"weather: {result}"}], "end_turn", None
        if model == "claude-read":
            if result is None:
                return [{"type": "tool_use", "id": "toolu_read_1", "name": "Read",
                         "input": {"file_path": self.server.state.read_path}}], "tool_use", None
            return [{"type": "text", "text": f"file says: {result}"}], "end_turn", None
        if model == "claude-thinking":
            return [{"type": "thinking", "thinking": "The user wants an echo.",
                     "signature": "sig-standin"},
                    {"type": "text", "text": f"echo: {text}"}], "end_turn", None
        if model == "claude-stop":
            return [{"type": "text", "text": "one two"}], "stop_sequence", "END"
        if model == "claude-long":
            return [{"type": "text", "text": "one two"}], "max_tokens", None
        return [{"type": "text", "text": f"echo: {text}"}], "end_turn", None

    def _stream(self, model: str, msg: dict):
        self._start_stream()
        try:
            start = dict(msg, content=[], stop_reason=None, stop_sequence=None,
                         usage={"input_tokens": 11, "output_tokens": 1})
            self._event({"type": "message_start", "message": start})
            self._event({"type": "ping"})
            for i, b in enumerate(msg["content"]):
                self._block(i, b, model)
                if model in ("claude-cut", "claude-stream-error", "claude-endless"):
                    return self._break(model)
            self._event({"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"],
                                                            "stop_sequence": msg["stop_sequence"]},
                         "usage": {"output_tokens": 7}})
            self._event({"type": "message_stop"})
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError):
            self._left()

    def _block(self, i: int, b: dict, model: str):
        kind = b["type"]
        if kind == "text":
            self._event({"type": "content_block_start", "index": i,
                         "content_block": {"type": "text", "text": ""}})
            words = b["text"].split(" ")
            for k, w in enumerate(words):
                self._event({"type": "content_block_delta", "index": i,
                             "delta": {"type": "text_delta", "text": w if k == 0 else " " + w}})
        elif kind == "thinking":
            self._event({"type": "content_block_start", "index": i,
                         "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            self._event({"type": "content_block_delta", "index": i,
                         "delta": {"type": "thinking_delta", "thinking": b["thinking"]}})
            self._event({"type": "content_block_delta", "index": i,
                         "delta": {"type": "signature_delta", "signature": b["signature"]}})
        elif kind == "tool_use":
            self._event({"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})
            raw = json.dumps(b["input"])
            for part in (raw[:5], raw[5:]):
                self._event({"type": "content_block_delta", "index": i,
                             "delta": {"type": "input_json_delta", "partial_json": part}})
        if model not in ("claude-cut", "claude-stream-error", "claude-endless"):
            self._event({"type": "content_block_stop", "index": i})

    def _break(self, model: str):
        if model == "claude-cut":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        elif model == "claude-stream-error":
            self._event({"type": "error", "error": {"type": "overloaded_error",
                                                    "message": "Overloaded"}})
            self._end_stream()
        else:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                self._event({"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": " more"}})
                time.sleep(0.05)
        self.close_connection = True

    def _left(self):
        with self.server.state.lock:
            self.server.state.disconnects.append(time.monotonic())
        self.close_connection = True


class AnthropicStandin(LoopbackServer):
    handler = Handler
    state_class = State


def start_anthropic(api_key: Optional[str] = None) -> AnthropicStandin:
    server = AnthropicStandin.start()
    server.state.api_key = api_key
    return server
