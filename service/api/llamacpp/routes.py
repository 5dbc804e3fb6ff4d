"""llama.cpp server routes: ``POST /infill`` (thin: validate, route, run, render)."""

from __future__ import annotations

from typing import Iterator, Optional

from flask import Blueprint, Response, current_app

from ...core.types import GenerationRequest
from ...gateway import get_gateway
from ..context import RequestRecord, current_record, disconnect_check, json_response, read_json
from ..errors import register_renderer, to_gateway_error
from ..helios.cache import CompletionCache
from ..helios.limits import client_key
from ..helios.pace import Arrival
from ..streaming import sse_event, sse_response
from . import infill
from .protocol import InfillRequest, error_body, parse

bp = Blueprint("llamacpp", __name__)
register_renderer("llamacpp", error_body)


@bp.post("/infill")
def infill_route():
    gw = get_gateway()
    w: InfillRequest = parse(InfillRequest, read_json())
    req = infill.generation_request(w, gw.settings)
    record = current_record()
    # The key's allow-list applies to the resolved public name, before any model work.
    model = gw.dispatch.resolve(req, record, stream=w.stream).public
    helios = current_app.extensions["helios"]
    cache: CompletionCache = helios.cache  # shared with /complete
    key = _CacheKey(cache, model,
                    cache.context(*infill.cache_context(w, req, gw.settings)),
                    w.input_prefix + w.prompt)
    if w.n_predict == 0:  # llama.vim's warm-up asks for no text: nothing to run here
        return _render(_settled(w, record, "", "limit"), w, req)
    # /infill carries no file name: the client's requests are one typing stream.
    arrival = helios.pace.arrive(f"{client_key()}\0/infill")
    streaming = False
    try:
        hit = cache.lookup(key.model, key.context, key.prefix, "infill")
        if hit is not None:
            return _render(_settled(w, record, hit.suggestion, "eos"), w, req, hit.kind)
        # Editors cancel a stale /infill by dropping its connection: look often (a select()
        # call), also from the local model's queue and inside its prompt evaluation.
        gone = disconnect_check(0.02)
        req.cancel = _Dropped(gone)
        run = infill.InfillRun(gw.dispatch.stream(req, record, to_client=w.stream), w,
                               record.request_id, gone, arrival, req.max_tokens)
        if w.stream:
            streaming = True
            return sse_response(_events(run, w, req, record, key, arrival))
        for _ in run:
            pass
        record.add_usage(run.usage)
        key.store(run.content)
        return _render(run, w, req, "miss" if cache.enabled else None)
    finally:
        if not streaming:
            arrival.answered()


class _Dropped:
    """``GenerationRequest.cancel`` for a request whose only cancel is its client leaving."""

    __slots__ = ("is_set",)

    def __init__(self, gone):
        self.is_set = gone


class _CacheKey:
    __slots__ = ("cache", "model", "context", "prefix")

    def __init__(self, cache: CompletionCache, model: str, context: bytes, prefix: str):
        self.cache, self.model, self.context, self.prefix = cache, model, context, prefix

    def store(self, content: str) -> None:
        self.cache.store(self.model, self.context, self.prefix, content, 0.0)


def _settled(w: InfillRequest, record: RequestRecord, content: str,
             stop_type: str) -> infill.InfillRun:
    """A run answered without the model (cache hit, warm-up)."""
    run = infill.InfillRun(iter(()), w, record.request_id)
    run.content, run.stop_type = content, stop_type
    return run


def _render(run: infill.InfillRun, w: InfillRequest, req: GenerationRequest,
            cache: Optional[str] = None) -> Response:
    final = infill.final_body(run, w, req.model, req.prompt)
    if w.stream:
        events = [sse_event(infill.partial_body(run.content, run))] if run.content else []
        events.append(sse_event(infill.select_fields(dict(final, content=""), w.response_fields)))
        resp = sse_response(events)
    else:
        resp = json_response(infill.select_fields(final, w.response_fields))
    if cache:
        resp.headers["X-Completion-Cache"] = cache
    if run.paced and not w.stream:  # llama.cpp's stop_type says only "limit"
        resp.headers["X-Finish-Reason"] = "pace"
    return resp


def _events(run: infill.InfillRun, w: InfillRequest, req: GenerationRequest,
            record: RequestRecord, key: _CacheKey, arrival: Arrival) -> Iterator[bytes]:
    """SSE as llama.cpp streams: a partial object per piece, then the final one (content
    empty, ``stop: true``); a failure after the first byte is one ``{"error"}`` event."""
    try:
        for text in run:
            record.first_token()
            yield sse_event(infill.partial_body(text, run))
        key.store(run.content)
        final = dict(infill.final_body(run, w, req.model, req.prompt), content="")
        yield sse_event(infill.select_fields(final, w.response_fields))
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error event
        err = to_gateway_error(exc, record.request_id)
        record.error_code = err.code or err.type
        yield sse_event(error_body(err))
    finally:
        run.stream.close()
        record.add_usage(run.usage)
        arrival.answered()
