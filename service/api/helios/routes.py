"""Helios code-completion routes (seed 001): /complete, /health, /status, /restart.

``/complete`` is one text completion through the router and the same
providers as the OpenAI API, streamed so that generation stops as soon as the
suggestion is complete (or the client went away).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Optional

from flask import Blueprint, Flask, current_app

from ... import __version__
from ...core import errors
from ...core.dispatch import Dispatcher
from ...core.types import GenerationRequest
from ...gateway import get_gateway
from ..context import (
    RequestRecord, current_record, disconnect_check, json_response, read_json,
)
from ..budgets import TimeBudget
from ..errors import register_renderer, to_gateway_error
from . import prompting, protocol
from .cache import CompletionCache
from .lifecycle import ModelLifecycle
from .limits import ConcurrencyLimit, RateLimit, client_key, init_rate_limit
from .pace import Arrival, TypingPace
from .prompting import Cursor
from .suggestions import SuggestionBuilder
from .supersede import Supersession, Ticket

log = logging.getLogger(__name__)
bp = Blueprint("helios", __name__)
register_renderer("helios", protocol.error_body)


@dataclass(slots=True)
class Helios:
    """Per-app Helios state, in ``app.extensions["helios"]``."""

    lifecycle: ModelLifecycle
    concurrency: ConcurrencyLimit
    rate_limit: Optional[RateLimit]
    cache: CompletionCache  # shared with /infill
    supersession: Supersession
    pace: TypingPace


def init_app(app: Flask) -> None:
    gw = app.extensions["gateway"]
    s = gw.settings
    helios = Helios(ModelLifecycle(s), ConcurrencyLimit(s.helios_max_concurrent,
                                                       s.helios_queue_wait_seconds),
                    init_rate_limit(s), CompletionCache(s.helios_cache_entries),
                    Supersession(s.helios_supersede), TypingPace(s.helios_typing_pace))
    app.extensions["helios"] = helios
    app.register_blueprint(bp)
    local = gw.router.by_name("local")
    if local is not None and s.helios_model == getattr(local, "model_id", None) \
            and not local.is_ready():
        helios.lifecycle.restart(local)  # HELIOS_MODEL is the local model: load it now


def _helios() -> Helios:
    return current_app.extensions["helios"]


def _uptime() -> float:
    return round(time.time() - get_gateway().started, 2)


@bp.post("/complete")
def complete():
    gw, helios = get_gateway(), _helios()
    if helios.rate_limit is not None:
        helios.rate_limit.check()
    s = gw.settings
    wire = protocol.parse(read_json(), s.helios_max_tokens_limit)
    language = prompting.resolve_language(wire.language, wire.filename)
    cursor = prompting.locate(wire.code, wire.position.line, wire.position.character)
    if helios.lifecycle.reloading:
        raise errors.ModelNotLoaded("the model is reloading (POST /restart); retry shortly",
                                    retry_after=1)
    req = GenerationRequest(
        kind="completion", model=s.helios_model or "",
        prompt=prompting.build_prompt(cursor, language, wire.filename, s.helios_max_prefix_chars),
        suffix=prompting.suffix_for(cursor, s.helios_max_suffix_chars),
        max_tokens=wire.max_tokens or s.helios_default_max_tokens,
        temperature=s.helios_default_temperature if wire.temperature is None else wire.temperature,
        stop=prompting.stop_sequences(language), logprobs=1, stream=True)
    record = current_record()
    # An unknown HELIOS_MODEL (or a key not allowed it) is refused before a slot is taken.
    model = gw.dispatch.resolve(req, record, stream=False).public
    context = helios.cache.context(language, wire.filename, cursor.suffix, str(req.max_tokens),
                                   str(req.temperature))
    key = f"{client_key()}\0{wire.filename}"
    arrival = helios.pace.arrive(key)
    try:
        with helios.supersession.claim(key, "helios", model) as ticket:
            hit = helios.cache.lookup(model, context, cursor.prefix, "helios")
            if hit is not None:
                return _answer(hit.suggestion, hit.confidence, record, cache=hit.kind)
            with helios.concurrency.hold():
                ticket.check()
                suggestion, confidence, finish = _suggest(
                    gw.dispatch, req, cursor, record, ticket,
                    TimeBudget(s.helios_max_predict_ms), arrival)
            helios.cache.store(model, context, cursor.prefix, suggestion, confidence)
    finally:
        arrival.answered()
    return _answer(suggestion, confidence, record, finish=finish,
                   cache="miss" if helios.cache.enabled else None)


def _answer(suggestion: str, confidence: float, record: RequestRecord, *,
            finish: Optional[str] = None, cache: Optional[str] = None):
    """The seed's body; why the suggestion ended and where it came from go in headers
    (the seed's response has no field for them)."""
    resp = json_response({"suggestion": suggestion, "confidence": round(confidence, 4),
                          "processing_time": round(time.perf_counter() - record.start, 4)})
    if finish:
        resp.headers["X-Finish-Reason"] = finish
    if cache:
        resp.headers["X-Completion-Cache"] = cache
    return resp


def _suggest(dispatch: Dispatcher, req: GenerationRequest, cursor: Cursor,
             record: RequestRecord, ticket: Ticket,
             budget: TimeBudget, pace: Arrival) -> tuple[str, float, str]:
    """Stream the completion into a suggestion; stop once it is complete, the time budget is
    spent, the typing pace's deadline passed, a newer request superseded it, or the client
    left. Returns why it ended too."""
    gone = disconnect_check()
    builder = SuggestionBuilder(cursor)
    finish: Optional[str] = None
    req.cancel = ticket.event  # a superseded request leaves the model's queue, or stops, at once
    try:
        stream = dispatch.stream(req, record, to_client=False)
    except Exception as exc:  # noqa: BLE001 - classified below
        ticket.check("completion")  # cancelled while waiting for its turn
        raise _failure(exc, record) from exc
    ticket.model_start()
    try:
        for chunk in stream:
            ticket.check("completion")  # at every token: a superseded run frees the model now
            if chunk.index != 0:
                continue
            finish = chunk.finish_reason or finish
            if chunk.text or chunk.token_logprobs:
                record.first_token()
                if builder.feed(chunk.text, chunk.token_logprobs):
                    finish = "stop"
                    break
                if budget.exceeded(chunk.text):
                    finish = "time"
                    break
                if pace.passed():  # the editor's next request is due: answer in time
                    finish = "pace"
                    break
            if builder.pieces >= req.max_tokens:  # a backend that ignores max_tokens
                finish = "length"
                break
            if gone():
                log.info("client went away; completion stopped",
                         extra={"request_id": record.request_id})
                raise errors.GatewayError("client disconnected; generation stopped", status=499)
    except errors.GatewayError as exc:
        if exc.status == 499:
            raise
        raise _failure(exc, record) from exc
    except Exception as exc:  # noqa: BLE001 - classified below
        raise _failure(exc, record) from exc
    finally:
        stream.close()
        ticket.model_stop()
        # Also when the suggestion was complete (or the client left) before the backend's
        # usage chunk: the tokens generated until then were spent.
        record.add_usage(stream.spent())
    suggestion, confidence = builder.result(truncated=finish in ("length", "time", "pace"))
    return suggestion, confidence, finish


def _failure(exc: BaseException, record: RequestRecord) -> errors.GatewayError:
    """A backend failure in Helios terms: busy -> 429, not loaded -> 503, bad input -> 4xx,
    anything else -> 500 COMPLETION_FAILED with the backend's message."""
    err = to_gateway_error(exc, record.request_id)
    if isinstance(err, errors.ModelBusy):
        return errors.RateLimited(f"server overloaded: {err.message}",
                                  retry_after=err.retry_after or 1)
    if isinstance(err, errors.ModelNotFound):  # HELIOS_MODEL is not served by its backend
        return errors.ModelNotLoaded(f"model not available: {err.message}")
    if err.status < 500 or err.status == 503:
        return err
    return protocol.CompletionFailed(f"completion failed: {err.message}")


@bp.get("/health")
def health():
    helios = _helios()
    provider, _ = helios.lifecycle.try_target(get_gateway().router)
    status = helios.lifecycle.status(provider)
    body = {"status": status, "model_loaded": helios.lifecycle.ready(provider),
            "server_version": __version__, "uptime": _uptime()}
    return json_response(body, 200 if status == "healthy" else 503)


@bp.get("/status")
def status():
    gw, helios = get_gateway(), _helios()
    s = gw.settings
    provider, model = helios.lifecycle.try_target(gw.router)
    return json_response({
        "server_status": "reloading" if helios.lifecycle.reloading else "running",
        "model_loaded": helios.lifecycle.ready(provider),
        "model_name": model,
        "uptime": _uptime(),
        # Exactly the Helios document's keys; the context served is in the model listings.
        "config": {"max_tokens": s.helios_default_max_tokens,
                   "temperature": s.helios_default_temperature,
                   "host": s.helios_host, "port": s.helios_port},
    })


@bp.post("/restart")
def restart():
    helios = _helios()
    provider, model = helios.lifecycle.try_target(get_gateway().router)
    if provider is None:
        raise errors.ModelNotLoaded(f"no backend serves the Helios model {model or '(default)'!r}")
    helios.lifecycle.restart(provider)  # a restart already running covers this one
    return json_response({"message": "Server restart initiated"})
