"""OpenAI-compatible routes: thin views over convert + router + provider."""

from __future__ import annotations

from typing import Iterator

from flask import Blueprint

from ...core.catalog import not_found
from ...core.types import ChunkStream, GenerationRequest
from ...gateway import get_gateway
from ..context import (
    RequestRecord, current_record, disconnect_check, json_response, read_json,
)
from ..errors import register_renderer
from ..serving import serve_generation
from ..streaming import SSE_DONE, sse_event, sse_response, write_stream
from . import convert
from .protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequestIn, parse

bp = Blueprint("openai", __name__, url_prefix="/v1")
register_renderer("openai", convert.error_body)


@bp.post("/chat/completions")
def chat_completions():
    body = read_json()
    req = convert.chat_request(parse(ChatCompletionRequest, body), body)
    return serve_generation(req, convert.chat_response, _sse)


@bp.post("/completions")
def completions():
    body = read_json()
    reqs = convert.completion_requests(parse(CompletionRequest, body), body)
    record = current_record()
    dispatch = get_gateway().dispatch
    if reqs[0].stream:
        return sse_response(_sse(dispatch.stream(reqs[0], record), reqs[0], record))
    gens = dispatch.generate_batch(reqs, record, disconnect_check())
    for gen in gens:
        record.add_usage(gen.usage)
    return json_response(convert.completion_response(gens))


@bp.post("/embeddings")
def embeddings():
    body = read_json()
    wire = parse(EmbeddingRequestIn, body)
    req = convert.embedding_request(wire, body)
    record = current_record()
    emb = get_gateway().dispatch.embed(req, record)
    record.prompt_tokens = emb.prompt_tokens
    return json_response(convert.embeddings_response(emb, wire.encoding_format))


def _sse(stream: ChunkStream, req: GenerationRequest, record: RequestRecord) -> Iterator[bytes]:
    enc = convert.StreamEncoder(req.kind, stream.id, stream.created, req.model, req.include_usage)
    return write_stream(stream, enc, record, frame=sse_event, error_body=convert.error_body,
                        terminator=SSE_DONE)


@bp.get("/models")
def list_models():
    models = get_gateway().router.list_models()
    return json_response({"object": "list", "data": [_model(m) for m in models]})


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    info = get_gateway().router.find_model(model_id)
    if info is None:
        raise not_found(model_id)
    return json_response(_model(info))


@bp.get("/model/info")
def model_info():
    """LiteLLM's model list with details (Roo Code's LiteLLM provider sizes prompts by it)."""
    models = get_gateway().router.list_models()
    return json_response({"data": [convert.litellm_model_info(m) for m in models]})


def _model(m) -> dict:
    out = {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
    if m.context_length:
        out["context_length"] = m.context_length
    caps = [name for name, on in (("tools", m.supports_tools), ("vision", m.supports_vision),
                                  ("embeddings", m.supports_embeddings)) if on]
    if caps:
        out["capabilities"] = caps
    return out
