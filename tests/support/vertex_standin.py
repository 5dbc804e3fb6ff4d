"""A loopback stand-in for Vertex AI's Gemini REST API (and an OAuth token endpoint).

Serves ``{prefix}/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}``
for ``generateContent``, ``streamGenerateContent?alt=sse`` and ``predict``, with
response shapes copied from real Gemini answers (``candidates[].content.parts``,
``finishReason``, ``usageMetadata``, ``modelVersion``, SSE without ``[DONE]``).

Behaviour, scripted by the model in the URL:

- any model: answers ``"echo: <last user text>"``; streamed word by word.
- with ``tools`` in the body and a user turn last: calls the first declared function
  with ``{"city": "Paris"}`` and a ``thoughtSignature``; once the function's answer
  comes back, the call in the history must carry that signature (else 400, like
  Gemini 3) and the answer is ``"The weather: <response JSON>"``.
- ``gemini-flaky-N``: 503 N times, then like any model. ``gemini-always-429``: 429.
- ``gemini-stream-error``: one event, then ``data: {"error": …}``.
- ``gemini-truncated``: three events without ``finishReason`` on a response with
  neither length nor chunked framing (raw socket), then the connection closes.
- ``gemini-missing``: 404 like Vertex's unknown publisher model.
- Bearer tokens in ``state.revoked`` get 401.
- ``POST /token``: an OAuth token endpoint (for google-auth service-account credentials).
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import NamedTuple

from tests.support.loopback import LoopbackServer

_PATH = re.compile(r"^(?P<prefix>.*)/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
                   r"/publishers/google/models/(?P<model>[^/:]+):(?P<method>\w+)$")
SIGNATURE = "CiQBjz1rX+sig/with+base64=="


class _Fail(NamedTuple):
    code: int
    status: str
    message: str


class State:
    def __init__(self):
        self.calls: Counter = Counter()
        self.requests: list[dict] = []  # {"path", "query", "headers", "body"}
        self.revoked: set[str] = set()
        self.tokens_issued = 0
        self.lock = threading.Lock()


def _usage(prompt: int, out: int) -> dict:
    return {"promptTokenCount": prompt, "candidatesTokenCount": out,
            "totalTokenCount": prompt + out, "trafficType": "ON_DEMAND"}


def _response(parts: list[dict], finish: str | None, model: str, usage: dict | None) -> dict:
    cand: dict = {"content": {"role": "model", "parts": parts}}
    if finish:
        cand["finishReason"] = finish
        cand["avgLogprobs"] = -0.12
    out = {"candidates": [cand], "modelVersion": model, "createTime": "2026-11-21T10:00:00Z",
           "responseId": "resp-1"}
    if usage:
        out["usageMetadata"] = usage
    return out


def _last_user_text(body: dict) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role") == "user":
            texts = [p["text"] for p in content.get("parts", []) if "text" in p]
            if texts:
                return " ".join(texts)
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle on, a kept-alive client's delayed
    # ACK holds the body back about 40 ms per response.
    disable_nagle_algorithm = True
    server: "VertexStandin"

    def log_message(self, *args):
        pass

    def _json(self, status: int, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, status: str, message: str, headers=None):
        self._json(code, {"error": {"code": code, "message": message, "status": status}}, headers)

    def _stream(self, events: list):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for e in events:
            data = b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\r\n\r\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _truncated(self, events: list):
        out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        out += b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)
        self.connection.sendall(out)
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path, _, query = self.path.partition("?")
        st = self.server.state
        if path == "/token":
            with st.lock:
                st.tokens_issued += 1
                n = st.tokens_issued
            return self._json(200, {"access_token": f"adc-token-{n}", "expires_in": 3600,
                                    "token_type": "Bearer"})
        m = _PATH.match(path)
        body = json.loads(raw or b"{}")
        with st.lock:
            st.requests.append({"path": path, "query": query, "headers": dict(self.headers),
                                "body": body})
            if m:
                st.calls[m["model"]] += 1
            n = st.calls[m["model"]] if m else 0
        if not m:
            return self._error(404, "NOT_FOUND", f"no such route {path}")
        model, method = m["model"], m["method"]
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if not token or token in st.revoked:
            return self._error(401, "UNAUTHENTICATED",
                               "Request had invalid authentication credentials.")
        if model.startswith("gemini-flaky-") and n <= int(model.rsplit("-", 1)[1]):
            return self._error(503, "UNAVAILABLE", "The model is overloaded.",
                               {"Retry-After": "0"})
        if model == "gemini-always-429":
            return self._error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.")
        if model == "gemini-missing":
            return self._error(404, "NOT_FOUND", f"Publisher Model `projects/{m['project']}/"
                               f"locations/{m['location']}/publishers/google/models/{model}` "
                               f"was not found or your project does not have access to it.")
        if method == "predict":
            return self._json(200, {"predictions": [
                {"embeddings": {"values": [float(len(i["content"])), 0.5, -0.25],
                                "statistics": {"token_count": len(i["content"].split()),
                                               "truncated": False}}}
                for i in body.get("instances", [])], "metadata": {"billableCharacterCount": 1}})
        stream = method == "streamGenerateContent"
        if stream and query != "alt=sse":
            return self._error(400, "INVALID_ARGUMENT", "this stand-in only streams with alt=sse")
        if method not in ("generateContent", "streamGenerateContent"):
            return self._error(404, "NOT_FOUND", f"unknown method {method}")
        reply = self._reply(model, body)
        if isinstance(reply, _Fail):
            return self._error(reply.code, reply.status, reply.message)
        parts, finish = reply
        usage = _usage(7, 5)
        if not stream:
            return self._json(200, _response(parts, finish, model, usage))
        if model == "gemini-stream-error":
            return self._stream([_response([{"text": "partial "}], None, model, None),
                                 {"error": {"code": 500, "status": "INTERNAL",
                                            "message": "Internal error encountered."}}])
        if model == "gemini-truncated":
            return self._truncated([_response([{"text": w}], None, model, _usage(7, 0))
                                    for w in ("one ", "two ", "three")])
        events = []
        if parts and "text" in parts[0]:
            words = parts[0]["text"].split(" ")
            for i, w in enumerate(words):
                last = i == len(words) - 1
                events.append(_response([{"text": w + ("" if last else " ")}],
                                        finish if last else None, model,
                                        usage if last else _usage(7, 0)))
        else:
            events.append(_response(parts, finish, model, usage))
        self._stream(events)

    def _reply(self, model: str, body: dict):
        contents = body.get("contents") or []
        decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations", [])]
        last = contents[-1] if contents else {}
        responses = [p["functionResponse"] for p in last.get("parts", []) if "functionResponse" in p]
        if responses:
            calls = [p for c in contents if c.get("role") == "model" for p in c["parts"]
                     if "functionCall" in p]
            if not calls or calls[-1].get("thoughtSignature") != SIGNATURE:
                return _Fail(400, "INVALID_ARGUMENT", "Function call is missing a "
                             "thought_signature in functionCall parts.")
            return [{"text": "The weather: " + json.dumps(responses[0]["response"])}], "STOP"
        if decls:
            return [{"functionCall": {"name": decls[0]["name"], "args": {"city": "Paris"}},
                     "thoughtSignature": SIGNATURE}], "STOP"
        return [{"text": "echo: " + _last_user_text(body)}], "STOP"


class VertexStandin(LoopbackServer):
    handler = Handler
    state_class = State


def start_vertex_standin(port: int = 0) -> VertexStandin:
    return VertexStandin.start(port)
