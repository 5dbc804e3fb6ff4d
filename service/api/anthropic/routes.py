"""Anthropic Messages routes: thin views over convert + dispatcher.

``POST /v1/messages`` (streamed and not) and ``POST /v1/messages/count_tokens``.
The gateway key comes in ``x-api-key`` or ``Authorization: Bearer`` (``service.auth``);
``anthropic-version`` and ``anthropic-beta`` are accepted and handed on to an
Anthropic backend unchanged.
"""

from __future__ import annotations

from typing import Iterator

from flask import Blueprint, request

from ...core.types import ChunkStream, GenerationRequest
from ...gateway import get_gateway
from ..context import RequestRecord, current_record, json_response, read_json
from ..errors import register_renderer
from ..serving import serve_generation
from ..streaming import write_stream
from . import convert
from .protocol import CountTokensRequest, MessagesRequest, parse

bp = Blueprint("anthropic", __name__, url_prefix="/v1")
register_renderer("anthropic", convert.error_body)


def _request(model: type) -> GenerationRequest:
    body = read_json()
    headers = {h: request.headers[h] for h in convert.FORWARDED_HEADERS if h in request.headers}
    return convert.messages_request(parse(model, body), body, headers)


@bp.post("/messages")
def messages():
    return serve_generation(_request(MessagesRequest), convert.message_response, _sse)


@bp.post("/messages/count_tokens")
def count_tokens():
    req = _request(CountTokensRequest)
    tokens = get_gateway().dispatch.count_tokens(req, current_record())
    return json_response(convert.count_tokens_response(tokens))


def _sse(stream: ChunkStream, req: GenerationRequest, record: RequestRecord) -> Iterator[bytes]:
    enc = convert.StreamEncoder(stream.id, req.model, stream.spent().prompt_tokens)
    return write_stream(stream, enc, record, frame=convert.sse_frame, error_body=convert.error_body)
