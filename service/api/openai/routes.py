"""OpenAI-compatible routes: thin views over convert + router + provider."""

from __future__ import annotations

import logging
from typing import Iterator

import orjson
from flask import Blueprint, Response, request

from ...core import errors
from ...core.types import ChunkStream, EmbeddingRequest, GenerationRequest
from ...gateway import get_gateway
from ..context import RequestRecord, current_record, disconnect_check, read_json
from ..errors import register_renderer, to_gateway_error
from ..streaming import SSE_DONE, sse_event, sse_response
from . import convert
from .protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequestIn, parse

log = logging.getLogger(__name__)
bp = Blueprint("openai", __name__, url_prefix="/v1")
register_renderer("openai", convert.error_body)


def _json(obj, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def _route(req: GenerationRequest | EmbeddingRequest, record: RequestRecord):
    provider = get_gateway().router.resolve(req)
    record.model, record.provider = req.model, provider.name
    record.stream = getattr(req, "stream", False)
    return provider


def _account(record: RequestRecord, usage) -> None:
    if usage is not None:
        record.prompt_tokens = (record.prompt_tokens or 0) + usage.prompt_tokens
        record.completion_tokens = (record.completion_tokens or 0) + usage.completion_tokens


@bp.post("/chat/completions")
def chat_completions():
    body = read_json()
    req = convert.chat_request(parse(ChatCompletionRequest, body), body)
    record = current_record()
    provider = _route(req, record)
    if req.stream:
        return sse_response(_sse(provider.stream(req), req, record))
    gen = provider.generate(req, disconnect_check())
    _account(record, gen.usage)
    return _json(convert.chat_response(gen))


@bp.post("/completions")
def completions():
    body = read_json()
    reqs = convert.completion_requests(parse(CompletionRequest, body), body)
    record = current_record()
    provider = _route(reqs[0], record)
    if reqs[0].stream:
        return sse_response(_sse(provider.stream(reqs[0]), reqs[0], record))
    check = disconnect_check()
    gens = []
    for r in reqs:
        gens.append(provider.generate(r, check))
        _account(record, gens[-1].usage)
    return _json(convert.completion_response(gens))


@bp.post("/embeddings")
def embeddings():
    body = read_json()
    wire = parse(EmbeddingRequestIn, body)
    req = convert.embedding_request(wire, body)
    record = current_record()
    emb = _route(req, record).embed(req)
    record.prompt_tokens = emb.prompt_tokens
    return _json(convert.embeddings_response(emb, wire.encoding_format))


def _sse(stream: ChunkStream, req: GenerationRequest, record: RequestRecord) -> Iterator[bytes]:
    """Chunks -> SSE; an error after the first byte becomes one error event + [DONE]."""
    enc = convert.StreamEncoder(req.kind, stream.id, stream.created, req.model, req.include_usage)
    try:
        try:
            for chunk in stream:
                obj = enc.encode(chunk)
                if obj is not None:
                    record.first_token()
                    yield sse_event(obj)
            for obj in enc.closing():
                yield sse_event(obj)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an event
            err = to_gateway_error(exc, record.request_id)
            record.error_code = err.code or err.type
            log.warning("stream failed: %s", err.message, extra={"request_id": record.request_id})
            yield sse_event(convert.error_body(err))
        yield SSE_DONE
    finally:
        stream.close()
        _account(record, enc.usage)


@bp.get("/models")
def list_models():
    models = get_gateway().router.list_models()
    return _json({"object": "list", "data": [_model(m) for m in models]})


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    info = get_gateway().router.find_model(model_id)
    if info is None:
        raise errors.ModelNotFound(f"The model '{model_id}' does not exist", param="model")
    return _json(_model(info))


def _model(m) -> dict:
    out = {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
    if m.context_length:
        out["context_length"] = m.context_length
    return out
