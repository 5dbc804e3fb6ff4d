"""Raw-socket HTTP for streaming tests: see when each line or event arrives, or hang up."""

from __future__ import annotations

import json
import socket
import time
from typing import Optional


def open_post(url: str, path: str, body: dict,
              headers: Optional[dict] = None) -> socket.socket:
    """Send a POST that asks the server to close after the response; return the socket."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
    s = socket.create_connection((host, int(port)), timeout=60)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (path.encode(), extra, len(data), data))
    return s


def open_sse(url: str, path: str, body: dict, events: int,
             headers: Optional[dict] = None) -> socket.socket:
    """POST ``body`` and return the socket once ``events`` SSE events arrived."""
    s = open_post(url, path, body, headers)
    got = b""
    while got.count(b"data: ") < events:
        data = s.recv(4096)
        if not data:
            raise ConnectionError(f"stream ended early: {got[-300:]!r}")
        got += data
    return s


def _dechunk(raw: bytes) -> tuple[bytes, bytes, bool]:
    """Complete chunks of a chunked body -> (payload, rest, ended)."""
    out = b""
    while b"\r\n" in raw:
        size_line, after = raw.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out, b"", True
        if len(after) < size + 2:
            break
        out += after[:size]
        raw = after[size + 2:]
    return out, raw, False


def read_lines(s: socket.socket,
               limit: Optional[int] = None) -> tuple[bytes, list[tuple[float, dict]]]:
    """The response head and ``(arrival time, parsed line)`` pairs, up to ``limit`` lines.

    Every line must be one complete JSON object (``json.loads`` raises otherwise)
    and the body must not end inside a line.
    """
    raw, buf, head, out, chunked, ended = b"", b"", None, [], False, False
    while not ended and (limit is None or len(out) < limit):
        data = s.recv(65536)
        if not data:
            break
        now = time.monotonic()
        raw += data
        if head is None:
            if b"\r\n\r\n" not in raw:
                continue
            head, raw = raw.split(b"\r\n\r\n", 1)
            chunked = b"transfer-encoding: chunked" in head.lower()
        if chunked:
            payload, raw, ended = _dechunk(raw)
        else:
            payload, raw = raw, b""
        buf += payload
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            out.append((now, json.loads(line)))
    assert limit is not None or not buf.strip(), f"the stream ended inside a line: {buf[:80]!r}"
    return head or b"", out
