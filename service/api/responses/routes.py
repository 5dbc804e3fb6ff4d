"""OpenAI Responses API routes: ``/v1/responses`` (create, retrieve, delete, input items).

Thin views: validate, add the stored items of ``previous_response_id``, convert,
run through the dispatcher (every backend; auth, rate limits, usage rows and
metrics as for every model route), convert back, store when asked.
"""

from __future__ import annotations

from typing import Iterator, Optional

from flask import Blueprint, current_app, request

from ...auth import current_key
from ...core import errors
from ...core.types import ChunkStream
from ...gateway import get_gateway
from ..context import RequestRecord, current_record, disconnect_check, json_response, read_json
from ..errors import register_renderer
from ..openai.convert import error_body
from ..streaming import sse_response, write_stream
from . import convert
from .protocol import ResponsesRequest, parse_request
from .store import ResponseStore

bp = Blueprint("responses", __name__, url_prefix="/v1/responses")
register_renderer("responses", error_body)  # OpenAI's error format


@bp.record_once
def _open_store(state) -> None:
    app = state.app
    app.extensions["responses_store"] = ResponseStore(
        app.extensions["db"], app.extensions["gateway"].settings.responses_retention_hours)


def _store() -> ResponseStore:
    return current_app.extensions["responses_store"]


def _key_id() -> Optional[str]:
    key = current_key()
    return key.id if key is not None else None


@bp.post("")
def create():
    w = parse_request(read_json())
    store = _store()
    history: list[dict] = []
    if w.previous_response_id:
        prev = store.load(w.previous_response_id, _key_id())
        history = prev.input_items + list(prev.response.get("output") or [])
    items = history + convert.input_items(w)
    req = convert.generation_request(w, items)
    record = current_record()
    dispatch = get_gateway().dispatch
    env = convert.Envelope(w, w.model)
    if req.stream:
        stream = dispatch.stream(req, record)
        env.model = stream.model
        return sse_response(_sse(stream, env, w, items, record))
    gen = dispatch.generate(req, record, disconnect_check())
    record.add_usage(gen.usage)
    env.model = gen.model
    response = convert.response_object(env, gen)
    _save(w, items, response)
    return json_response(response)


def _save(w: ResponsesRequest, items: list[dict], response: dict) -> None:
    if w.store:
        _store().save(_key_id(), items, response)


def _sse(stream: ChunkStream, env: convert.Envelope, w: ResponsesRequest, items: list[dict],
         record: RequestRecord) -> Iterator[bytes]:
    store, key_id = _store(), _key_id()  # the generator runs outside the request context

    def on_final(response: dict) -> None:
        if w.store:
            store.save(key_id, items, response)

    enc = convert.StreamEncoder(env, stream.spent, on_final)
    return write_stream(stream, enc, record, frame=convert.sse_events, error_body=enc.failed)


@bp.get("/<response_id>")
def retrieve(response_id: str):
    if request.args.get("stream", "").lower() == "true":
        raise errors.UnsupportedFeature("streaming a stored response again is not supported",
                                        param="stream")
    return json_response(_store().load(response_id, _key_id()).response)


@bp.delete("/<response_id>")
def delete(response_id: str):
    _store().delete(response_id, _key_id())
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


@bp.get("/<response_id>/input_items")
def input_items(response_id: str):
    items = _store().load(response_id, _key_id()).input_items
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.InvalidRequest("'order' must be 'asc' or 'desc'", param="order")
    try:
        limit = int(request.args.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise errors.InvalidRequest("'limit' must be an integer from 1 to 100", param="limit")
    if order == "desc":
        items = items[::-1]
    after = request.args.get("after")
    if after:
        ids = [i.get("id") for i in items]
        if after not in ids:
            raise errors.InvalidRequest(f"no input item '{after[:100]}' in this response",
                                        param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return json_response({"object": "list", "data": page,
                          "first_id": page[0]["id"] if page else None,
                          "last_id": page[-1]["id"] if page else None,
                          "has_more": len(items) > limit})
