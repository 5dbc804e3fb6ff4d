"""Streaming response writers: SSE for OpenAI, NDJSON for Ollama.

Both take an iterator of already-encoded events and add the headers that stop
proxies from buffering (``X-Accel-Buffering: no``, ``Cache-Control: no-cache``).
"""

from __future__ import annotations

from typing import Iterable

import orjson
from flask import Response

NO_BUFFER_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def ndjson_line(obj) -> bytes:
    return orjson.dumps(obj) + b"\n"


def sse_response(events: Iterable[bytes]) -> Response:
    return Response(events, mimetype="text/event-stream", headers=NO_BUFFER_HEADERS)


def ndjson_response(lines: Iterable[bytes]) -> Response:
    return Response(lines, mimetype="application/x-ndjson", headers=NO_BUFFER_HEADERS)
