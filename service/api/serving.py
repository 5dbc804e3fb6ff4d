"""One generation request served the way every chat-style family serves it.

The dispatcher runs it; a stream goes out as SSE framed by the family, a whole
answer as JSON rendered by the family, its token counts on the request record.
"""

from __future__ import annotations

from typing import Callable, Iterator

from flask import Response

from ..core.types import ChunkStream, Generation, GenerationRequest
from ..gateway import get_gateway
from .context import RequestRecord, current_record, disconnect_check, json_response
from .streaming import sse_response

SseWriter = Callable[[ChunkStream, GenerationRequest, RequestRecord], Iterator[bytes]]


def serve_generation(req: GenerationRequest, render: Callable[[Generation], dict],
                     sse: SseWriter) -> Response:
    """``render(generation)`` as JSON, or, for ``req.stream``, ``sse(stream, req, record)``."""
    record = current_record()
    dispatch = get_gateway().dispatch
    if req.stream:
        return sse_response(sse(dispatch.stream(req, record), req, record))
    gen = dispatch.generate(req, record, disconnect_check())
    record.add_usage(gen.usage)
    return json_response(render(gen))
