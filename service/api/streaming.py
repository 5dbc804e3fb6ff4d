"""Streaming responses: SSE for OpenAI, NDJSON for Ollama.

``write_stream`` turns a provider's chunks into a family's framed objects (the
same error and cleanup rules for every family); ``sse_response`` and
``ndjson_response`` wrap the bytes with the headers that stop proxies from
buffering (``X-Accel-Buffering: no``, ``Cache-Control: no-cache``).
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, Optional, Protocol

import orjson
from flask import Response

from ..core import errors
from ..core.types import Chunk, ChunkStream, Usage
from .context import RequestRecord
from .errors import to_gateway_error

log = logging.getLogger(__name__)

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


class StreamEncoder(Protocol):
    """An API family's stream encoder: chunks in, wire objects out."""

    usage: Optional[Usage]

    def encode(self, chunk: Chunk) -> Iterable[dict]: ...

    def closing(self) -> Iterable[dict]: ...


def write_stream(stream: ChunkStream, encoder: StreamEncoder, record: RequestRecord, *,
                 frame: Callable[[dict], bytes],
                 error_body: Callable[[errors.GatewayError], dict],
                 terminator: Optional[bytes] = None) -> Iterator[bytes]:
    """Chunks -> framed wire objects, for every family.

    A failure after the first byte becomes one error object (then the
    terminator, if the family has one); ``finally`` closes the stream, which
    stops generation on a client disconnect too, and records token usage: the
    backend's final counts, or, when the client hung up first (the server closes
    this generator at a ``yield``), what was spent until then, with status 499.
    """
    left = False
    try:
        try:
            for chunk in stream:
                for obj in encoder.encode(chunk):
                    record.first_token()
                    yield frame(obj)
            for obj in encoder.closing():
                yield frame(obj)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error object
            err = to_gateway_error(exc, record.request_id)
            record.error_code = err.code or err.type
            log.warning("stream failed: %s", err.message, extra={"request_id": record.request_id})
            yield frame(error_body(err))
        if terminator is not None:
            yield terminator
    except GeneratorExit:
        left = True
        raise
    finally:
        stream.close()
        if left:
            record.add_usage(stream.spent())
            record.client_closed()
        else:
            record.add_usage(encoder.usage or stream.spent())
