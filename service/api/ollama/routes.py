"""Ollama-compatible routes (no ``/v1`` prefix): thin views over convert + router + provider."""

from __future__ import annotations

import time
from typing import Iterator

from flask import Blueprint, Response

from ...core import errors
from ...core.types import ChunkStream, EmbeddingRequest, GenerationRequest, Usage
from ...gateway import get_gateway
from ..context import (
    RequestRecord, current_record, disconnect_check, json_response, read_json,
)
from ..errors import register_renderer
from ..streaming import ndjson_line, ndjson_response, write_stream
from . import convert, models
from .protocol import (
    ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest, ShowRequest, parse,
)

bp = Blueprint("ollama", __name__)
register_renderer("ollama", convert.error_body)


def _elapsed_ns(record: RequestRecord) -> int:
    return time.perf_counter_ns() - int(record.start * 1e9)


# ---- probes and models --------------------------------------------------------------
@bp.get("/")
def root():
    return Response("Ollama is running", mimetype="text/plain")


@bp.get("/api/version")
def version():
    return json_response({"version": get_gateway().settings.ollama_api_version})


@bp.get("/api/tags")
def tags():
    gw = get_gateway()
    return json_response({"models": [models.tag(m, gw.started) for m in gw.router.list_models()]})


@bp.post("/api/show")
def show():
    w = parse(ShowRequest, read_json())
    name = w.model_name()
    if not name:
        raise errors.InvalidRequest("'model' is required", param="model")
    gw = get_gateway()
    info = models.find(gw.router, name)
    if info is None:
        raise errors.ModelNotFound(f"model '{name}' not found", param="model")
    gw.authorize(info.id)
    return json_response(models.show(info, gw.started))


@bp.get("/api/ps")
def ps():
    loaded = [m for p in get_gateway().router.providers for m in p.loaded_models()]
    return json_response({"models": [models.running(m) for m in loaded]})


# ---- generation ---------------------------------------------------------------------
@bp.post("/api/chat")
def chat():
    body = read_json()
    w = parse(ChatRequest, body)
    return _generate("chat", w, convert.chat_request(w, body))


@bp.post("/api/generate")
def generate():
    body = read_json()
    w = parse(GenerateRequest, body)
    return _generate("generate", w, convert.generate_request(w, body))


def _generate(endpoint: convert.Endpoint, w, req: GenerationRequest) -> Response:
    gw = get_gateway()
    record = current_record()
    req.model = models.canonical_name(gw.router, req.model)
    if convert.is_load_only(endpoint, w):
        gw.dispatch.resolve(req, record)
        return json_response(convert.load_response(endpoint, w.model))
    if req.stream:
        enc = convert.StreamEncoder(endpoint, w.model, start_ns=int(record.start * 1e9))
        return ndjson_response(_ndjson(gw.dispatch.stream(req, record), enc, record))
    gen = gw.dispatch.generate(req, record, disconnect_check())
    record.add_usage(gen.usage)
    return json_response(convert.response(endpoint, w.model, gen, _elapsed_ns(record)))


def _ndjson(stream: ChunkStream, enc: convert.StreamEncoder,
            record: RequestRecord) -> Iterator[bytes]:
    """Chunks -> NDJSON; a failure after the first byte is one final ``{"error"}`` line."""
    return write_stream(stream, enc, record, frame=ndjson_line, error_body=convert.error_body)


# ---- embeddings ---------------------------------------------------------------------
def _embed(model: str, inputs: list[str], body: dict, dimensions=None, truncate=True):
    """Route and run one embedding request; ``None`` vectors for an empty input."""
    gw = get_gateway()
    record = current_record()
    req = EmbeddingRequest(model=models.canonical_name(gw.router, model), inputs=inputs,
                           dimensions=dimensions, truncate=truncate, raw=body,
                           raw_family="ollama")
    if not inputs:  # Ollama loads the model and answers with no vectors
        gw.dispatch.resolve(req, record)
        return None
    result = gw.dispatch.embed(req, record)
    record.add_usage(Usage(prompt_tokens=result.prompt_tokens))
    return result


@bp.post("/api/embed")
def embed():
    body = read_json()
    w = parse(EmbedRequest, body)
    result = _embed(w.model, w.inputs(), body, w.dimensions, w.truncate)
    out = {"model": w.model, "embeddings": result.vectors if result else []}
    out.update(total_duration=_elapsed_ns(current_record()), load_duration=0,
               prompt_eval_count=result.prompt_tokens if result else 0)
    return json_response(out)


@bp.post("/api/embeddings")
def embeddings():
    body = read_json()
    w = parse(EmbeddingsRequest, body)
    result = _embed(w.model, [w.prompt] if w.prompt else [], body)
    return json_response({"embedding": result.vectors[0] if result else []})
