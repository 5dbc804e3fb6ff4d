"""A small OpenAI-compatible upstream on loopback, scripted by model name.

Behaviours (the request's ``model`` picks one; counters per model):

- ``echo-*`` (default): answers ``"echo: <last user text>"``, streams it word by word.
- ``flaky-N``: answers 503 (``Retry-After: 0``) N times, then like echo.
- ``always-500`` / ``always-429`` / ``auth-fail``: that status every time.
- ``slow``: sleeps 3 s before answering (timeouts).
- ``ctx-N``: a model with a context of N characters: a longer prompt gets vLLM's 400
  ("maximum context length"), a shorter one an echo.
- ``nonjson``: a 200 HTML page.
- ``cut``: streams two chunks then drops the connection.
- ``stream-error``: streams a chunk then ``data: {"error": …}``.
- ``badevent``: streams a non-JSON ``data:`` line.
- ``tools``: answers with a ``get_weather`` tool call (streamed in fragments); once the
  last message is a tool result, answers ``"echo: <that result>"`` (a finished round trip).
- ``/v1/embeddings`` (any model): an 8-float (or ``dimensions``) vector per input,
  derived from a hash of the input; base64 when asked.
- ``endless``: streams a chunk every 50 ms until the client goes away; records
  that in ``state.disconnects``.
- ``truncated``: streams three chunks (no ``finish_reason``) on a response with
  neither ``Content-Length`` nor chunked framing, written on the raw socket, then
  closes it: EOF is a legal end of such a body, so only the missing finish tells.
- ``jsonstream``: answers a stream request with a 200 plain JSON completion (no
  ``data:`` lines). (``nonjson`` answers a 200 HTML page to streams too.)
- ``stall``: non-streamed, sends the headers and half the body, then stalls 3 s.
- ``nofinish`` / ``abortfinish``: non-streamed answers whose ``finish_reason`` is
  null / ``"abort"`` (vLLM's reason for an aborted request).
- ``always-503``: a 503 without ``Retry-After``.
- ``full``: answers "Hi there" (two tokens) with every optional field OpenAI sends:
  ``logprobs`` (chat: ``content`` entries with ``bytes`` and ``top_logprobs``;
  completions: ``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``),
  ``system_fingerprint`` and usage ``prompt_tokens_details`` /
  ``completion_tokens_details``; streamed and not.
- ``strict``: validates like OpenAI: a top-level ``null`` it does not take
  (``n``, ``stream``, ``echo``) or an assistant ``tool_calls`` entry without a
  following ``tool`` message answering its id is a 400; otherwise like echo.

Used by tests and by ``benchmarks/`` (``echo`` is cheap enough to measure against).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

from tests.support.loopback import LoopbackServer


class State:
    def __init__(self):
        self.calls: Counter = Counter()
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.disconnects: list[float] = []
        self.lock = threading.Lock()
        self.models = ["echo-1", "tools", "upstream-model"]

    def settled_disconnects(self, quiet: float = 0.25, timeout: float = 5.0) -> int:
        """The disconnect count once it has not changed for ``quiet`` s: an ``endless``
        stream an earlier test left notices at its next write (every 50 ms), and would
        otherwise be counted as the current test's."""
        end = time.monotonic() + timeout
        count, since = len(self.disconnects), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.02)
            if len(self.disconnects) != count:
                count, since = len(self.disconnects), time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return count


def _completion(model: str, text: str, chat: bool, usage=(5, 3)) -> dict:
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": "stop"}
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    return {"id": "up-1", "object": "chat.completion" if chat else "text_completion",
            "created": 1, "model": model, "choices": [choice],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": usage[0] + usage[1]}}


TOOL_ARGS = '{"city": "Paris", "unit": "celsius"}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle on, a kept-alive client's delayed
    # ACK holds the body back about 40 ms per response.
    disable_nagle_algorithm = True
    server: "UpstreamServer"

    def log_message(self, *args):  # quiet
        pass

    # ---- helpers ---------------------------------------------------------------
    def _send_json(self, status: int, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, obj):
        self._chunk(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
                    + b"\n\n")

    def _end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- routes ----------------------------------------------------------------
    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1, "owned_by": "stand-in"}
                for m in self.server.state.models]})
        else:
            self._send_json(404, {"error": {"message": "no such route"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        st = self.server.state
        model = str(body.get("model", ""))
        with st.lock:
            st.calls[model] += 1
            n = st.calls[model]
            st.bodies.append(body)
            st.headers.append(dict(self.headers))
        chat = self.path.endswith("/chat/completions")
        stream = bool(body.get("stream"))

        if model.startswith("flaky-") and n <= int(model.split("-")[1]):
            return self._send_json(503, {"error": {"message": "warming up"}}, {"Retry-After": "0"})
        if model == "always-500":
            return self._send_json(500, {"error": {"message": "upstream exploded"}})
        if model == "always-503":
            return self._send_json(503, {"error": {"message": "overloaded"}})
        if model == "always-429":
            return self._send_json(429, {"error": {"message": "slow down"}}, {"Retry-After": "7"})
        if model == "auth-fail":
            return self._send_json(401, {"error": {"message": "bad key"}})
        if model == "missing":
            return self._send_json(404, {"error": {"message": "model 'missing' not found"}})
        if model.startswith("ctx-") and len(_last_text(body, chat)) > int(model[4:]):
            return self._send_json(400, {"error": {
                "message": f"This model's maximum context length is {model[4:]} tokens. "
                           "However, you requested more.", "type": "BadRequestError"}})
        if model == "slow":
            time.sleep(3)
        if model == "nonjson":
            data = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return

        if self.path.endswith("/embeddings"):
            return self._embeddings(model, body)
        text = "echo: " + _last_text(body, chat)
        if model == "truncated":
            return self._truncated(chat)
        if model == "jsonstream" or (model == "stall" and not stream):
            return self._json_then_stall(_completion(model, text, chat), model == "stall")
        if model == "tools" and not _after_tool_result(body):
            return self._tools(model, stream)
        if model == "tools":
            text = "echo: " + str(body["messages"][-1].get("content") or "")
        if model == "full":
            return self._full(chat, stream, body)
        if model == "strict":
            problem = _strict_problem(body)
            if problem:
                return self._send_json(400, {"error": {
                    "message": problem, "type": "invalid_request_error", "param": "messages",
                    "code": None}})
        if not chat and not stream and isinstance(body.get("prompt"), list):
            return self._prompt_batch(model, body["prompt"])
        if not stream:
            answer = _completion(model, text, chat)
            if model in ("nofinish", "abortfinish"):
                answer["choices"][0]["finish_reason"] = "abort" if model == "abortfinish" else None
            return self._send_json(200, answer)
        return self._stream(model, text, chat, body)

    def _prompt_batch(self, model, prompts):
        """One choice per prompt, as OpenAI answers a prompt list; sent last first, so
        a gateway must order them by ``index``."""
        choices = [{"index": i, "text": "echo: " + str(p), "finish_reason": "stop",
                    "logprobs": None} for i, p in enumerate(prompts)]
        self._send_json(200, {"id": "up-batch", "object": "text_completion", "created": 1,
                              "model": model, "choices": choices[::-1],
                              "usage": {"prompt_tokens": 5 * len(prompts),
                                        "completion_tokens": 3 * len(prompts),
                                        "total_tokens": 8 * len(prompts)}})

    def _stream(self, model, text, chat, body):
        self._start_stream()
        words = text.split(" ")
        try:
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                if chat:
                    delta = {"content": piece}
                    if i == 0:
                        delta["role"] = "assistant"
                    ch = {"index": 0, "delta": delta, "finish_reason": None}
                else:
                    ch = {"index": 0, "text": piece, "finish_reason": None}
                self._event({"id": "up-1", "object": "chat.completion.chunk", "created": 1,
                             "model": model, "choices": [ch]})
                if model == "cut" and i == 1:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if model == "stream-error" and i == 0:
                    self._event({"error": {"message": "backend crashed", "type": "server_error"}})
                    self._end_stream()
                    return
                if model == "badevent" and i == 0:
                    self._event(b"this is not json")
                    self._end_stream()
                    return
            if model == "endless":
                return self._endless(chat)
            fin = {"index": 0, "delta": {}, "finish_reason": "stop"} if chat else \
                {"index": 0, "text": "", "finish_reason": "stop"}
            self._event({"id": "up-1", "object": "chat.completion.chunk", "created": 1,
                         "model": model, "choices": [fin]})
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event({"id": "up-1", "object": "chat.completion.chunk", "created": 1,
                             "model": model, "choices": [],
                             "usage": {"prompt_tokens": 5, "completion_tokens": len(words),
                                       "total_tokens": 5 + len(words)}})
            self._event(b"[DONE]")
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError):
            # The client left while the words were written (a loaded machine can be that
            # slow): as much a disconnect as one during the endless tail.
            self._note_disconnect()

    def _note_disconnect(self):
        with self.server.state.lock:
            self.server.state.disconnects.append(time.monotonic())
        self.close_connection = True

    def _truncated(self, chat):
        """Three chunks, then the connection closes: no finish, no [DONE], no framing."""
        out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        for i, word in enumerate(["one", " two", " three"]):
            ch = ({"index": 0, "delta": {"content": word, **({"role": "assistant"} if i == 0
                                                            else {})}, "finish_reason": None}
                  if chat else {"index": 0, "text": word, "finish_reason": None})
            out += b"data: " + json.dumps({"id": "up-3", "object": "chat.completion.chunk",
                                           "created": 1, "model": "truncated",
                                           "choices": [ch]}).encode() + b"\n\n"
        self.connection.sendall(out)
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _json_then_stall(self, obj, stall: bool):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not stall:
            self.wfile.write(data)
            return
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        time.sleep(3)
        self.close_connection = True

    def _endless(self, chat):
        start = time.monotonic()
        try:
            while time.monotonic() - start < 30:
                ch = {"index": 0, "delta": {"content": " more"}, "finish_reason": None} if chat \
                    else {"index": 0, "text": " more", "finish_reason": None}
                self._event({"id": "up-1", "object": "chat.completion.chunk", "created": 1,
                             "model": "endless", "choices": [ch]})
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            self._note_disconnect()
        self.close_connection = True

    def _tools(self, model, stream):
        call = {"id": "call_abc", "type": "function",
                "function": {"name": "get_weather", "arguments": TOOL_ARGS}}
        if not stream:
            return self._send_json(200, {
                "id": "up-2", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                     "tool_calls": [call]},
                             "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}})
        self._start_stream()
        half = len(TOOL_ARGS) // 2
        frags = [
            {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": "call_abc", "type": "function",
                 "function": {"name": "get_weather", "arguments": ""}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": TOOL_ARGS[:half]}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": TOOL_ARGS[half:]}}]},
        ]
        for d in frags:
            self._event({"id": "up-2", "object": "chat.completion.chunk", "created": 1,
                         "model": model, "choices": [{"index": 0, "delta": d,
                                                      "finish_reason": None}]})
        self._event({"id": "up-2", "object": "chat.completion.chunk", "created": 1, "model": model,
                     "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        self._event({"id": "up-2", "object": "chat.completion.chunk", "created": 1, "model": model,
                     "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 10,
                                              "total_tokens": 30}})
        self._event(b"[DONE]")
        self._end_stream()

    def _full(self, chat, stream, body):
        """Two tokens with logprobs, a fingerprint and usage details."""
        toks = [("Hi", -0.25, [("Hi", -0.25), ("Hello", -1.5)]),
                (" there", -0.5, [(" there", -0.5), ("!", -2.0)])]
        usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9,
                 "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 1, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0,
                                               "rejected_prediction_tokens": 0}}
        base = {"id": "up-full", "created": 1, "model": "full", "system_fingerprint": "fp_up123"}

        def chat_lp(ts):
            return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                                 "top_logprobs": [{"token": a, "logprob": b,
                                                   "bytes": list(a.encode())} for a, b in top]}
                                for t, lp, top in ts], "refusal": None}

        def legacy_lp(ts, start):
            offsets, at = [], start
            for t, _, _ in ts:
                offsets.append(at)
                at += len(t)
            return {"tokens": [t for t, _, _ in ts], "token_logprobs": [lp for _, lp, _ in ts],
                    "top_logprobs": [dict(top) for _, _, top in ts], "text_offset": offsets}

        if not stream:
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": "Hi there",
                                                  "refusal": None},
                          "logprobs": chat_lp(toks), "finish_reason": "stop"}
            else:
                choice = {"index": 0, "text": "Hi there", "logprobs": legacy_lp(toks, 0),
                          "finish_reason": "stop"}
            return self._send_json(200, {**base, "object": "chat.completion" if chat
                                         else "text_completion", "choices": [choice],
                                         "usage": usage})
        self._start_stream()
        kind = "chat.completion.chunk" if chat else "text_completion"
        at = 0
        for i, tok in enumerate(toks):
            if chat:
                delta = {"content": tok[0], **({"role": "assistant"} if i == 0 else {})}
                ch = {"index": 0, "delta": delta, "logprobs": chat_lp([tok]),
                      "finish_reason": None}
            else:
                ch = {"index": 0, "text": tok[0], "logprobs": legacy_lp([tok], at),
                      "finish_reason": None}
            at += len(tok[0])
            self._event({**base, "object": kind, "choices": [ch], "usage": None})
        fin = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"} if chat \
            else {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}
        self._event({**base, "object": kind, "choices": [fin], "usage": None})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "object": kind, "choices": [], "usage": usage})
        self._event(b"[DONE]")
        self._end_stream()

    def _embeddings(self, model, body):
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) or (
            inputs and isinstance(inputs[0], int)) else inputs
        dims = int(body.get("dimensions") or 8)
        data = []
        for i, x in enumerate(inputs):
            digest = hashlib.sha256(json.dumps(x).encode()).digest()
            vec = [round(b / 255, 6) for b in (digest * 8)[:dims]]
            if body.get("encoding_format") == "base64":
                vec = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vec})
        self._send_json(200, {"object": "list", "model": model, "data": data,
                              "usage": {"prompt_tokens": 3 * len(inputs),
                                        "total_tokens": 3 * len(inputs)}})


def _after_tool_result(body: dict) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"


def _last_text(body: dict, chat: bool) -> str:
    if not chat:
        p = body.get("prompt", "")
        return p if isinstance(p, str) else str(p)
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if p.get("type") == "text")
            return c or ""
    return ""


def _strict_problem(body: dict):
    """What OpenAI itself would reject in ``body`` (the checks ``strict`` makes), or None."""
    for key in ("n", "stream", "echo", "stream_options"):
        if key in body and body[key] is None:
            return f"None is not of type 'boolean' or 'integer' - '{key}'"
    msgs = body.get("messages") or []
    for i, m in enumerate(msgs):
        ids = [c.get("id") for c in m.get("tool_calls") or ()] if m.get("role") == "assistant" \
            else []
        answered = set()
        for follower in msgs[i + 1:]:
            if follower.get("role") != "tool":
                break
            answered.add(follower.get("tool_call_id"))
        missing = [x for x in ids if x not in answered]
        if missing:
            return ("An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not "
                    f"have response messages: {', '.join(map(str, missing))}")
        if m.get("role") == "tool" and (i == 0 or not any(
                c.get("id") == m.get("tool_call_id")
                for prev in msgs[:i] for c in prev.get("tool_calls") or ())):
            return ("Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.")
    return None


class UpstreamServer(LoopbackServer):
    handler = Handler
    state_class = State


def start_upstream(port: int = 0) -> UpstreamServer:
    return UpstreamServer.start(port)


if __name__ == "__main__":  # python -m tests.support.upstream PORT
    import sys

    srv = UpstreamServer(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(srv.url, flush=True)
    srv.serve_forever()
