"""``/admin``: manage API keys and read usage, behind ``Authorization: Bearer $ADMIN_API_KEY``.

Off (404) unless ``ADMIN_API_KEY`` is set. Errors use OpenAI's envelope; a
validation error names the field in ``param``. Usage listings answer CSV with
``?format=csv``. The web console (``/console/``) is a client of this API.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any, Optional

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel, ValidationError

from ..core import errors
from ..keys import KeyLimits, KeySpec
from ..status import status as gateway_status
from ..usage import usage_report
from ..usage_stats import FIELDS as REQUEST_FIELDS
from ..usage_stats import latency_summary, recent_requests
from .context import json_response, read_json

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _auth():
    return current_app.extensions["auth"]


@bp.before_request
def _admin_only():
    admin_key = _auth().admin_key
    if not admin_key:
        raise errors.NotFound("the admin API is off; set ADMIN_API_KEY to enable it")
    if not _auth().is_admin(request.headers.get("Authorization")):
        raise errors.AuthenticationFailed("this endpoint needs 'Authorization: Bearer "
                                          "<ADMIN_API_KEY>'")


def _validated(model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(read_json())
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        param = loc[0] if loc else None  # the field, as the console shows errors beside it
        where = ".".join(loc) or "body"
        raise errors.InvalidRequest(f"{where}: {err['msg'].removeprefix('Value error, ')}",
                                    param=param) from None


@bp.post("/keys")
def create_key():
    spec = _validated(KeySpec)
    record, secret = _auth().create_key(spec)
    return json_response({"key": secret, **record.public()}, status=201)


@bp.get("/keys")
def list_keys():
    include_revoked = request.args.get("include_revoked", "true").lower() != "false"
    keys = _auth().store.list(include_revoked=include_revoked)
    return json_response({"object": "list", "data": [k.public() for k in keys]})


@bp.get("/keys/<key_id>")
def show_key(key_id: str):
    return json_response(_existing(_auth().store.get(key_id), key_id).public())


@bp.delete("/keys/<key_id>")
@bp.post("/keys/<key_id>/revoke")
def revoke_key(key_id: str):
    return json_response(_existing(_auth().store.revoke(key_id), key_id).public())


@bp.patch("/keys/<key_id>")
def update_key(key_id: str):
    """Change a key's limits, allowed models, tier or expiry (cached for AUTH_CACHE_SECONDS)."""
    changes = _validated(KeyLimits)
    return json_response(_existing(_auth().store.update(key_id, changes), key_id).public())


@bp.get("/usage")
def usage():
    rows = usage_report(_auth().store.db, key_id=request.args.get("key") or None,
                        since=_day("since"), until=_day("until"))
    return _listing(rows, ("day", "key_id", "model", "requests", "prompt_tokens",
                           "completion_tokens", "total_tokens", "errors"), "usage-daily")


@bp.get("/usage/requests")
def usage_requests():
    """Usage rows of the last ``hours`` (24): ``order`` slowest, failing or recent."""
    order = request.args.get("order", "recent")
    if order not in ("slowest", "failing", "recent"):
        raise errors.InvalidRequest("'order' must be slowest, failing or recent", param="order")
    rows = recent_requests(_auth().store.db, hours=_number("hours", 24, 1, 24 * 90),
                           order=order, limit=int(_number("limit", 50, 1, 100_000)),
                           key_id=request.args.get("key") or None)
    return _listing(rows, REQUEST_FIELDS, f"requests-{order}")


@bp.get("/usage/latency")
def usage_latency():
    """Duration and time-to-first-token percentiles over the last ``hours`` (24)."""
    return json_response(latency_summary(_auth().store.db,
                                         hours=_number("hours", 24, 1, 24 * 90)))


@bp.get("/status")
def status():
    """Readiness (/readyz's JSON), requests in flight, rate-limit refusals in the last hour."""
    return json_response(gateway_status(current_app))


def _listing(rows: list[dict], fields, name: str) -> Response:
    """JSON ``{"object": "list", "data": rows}``, or CSV with ``?format=csv``."""
    fmt = request.args.get("format", "json")
    if fmt == "json":
        return json_response({"object": "list", "data": rows})
    if fmt != "csv":
        raise errors.InvalidRequest("'format' must be json or csv", param="format")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}.csv"'})


def _number(name: str, default: float, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise errors.InvalidRequest(f"'{name}' must be a number from {low:g} to {high:g} "
                                    f"(got {raw!r})", param=name)
    return value


def _existing(record, key_id: str):
    if record is None:
        raise errors.NotFound(f"no API key with id '{key_id}'")
    return record


def _day(name: str) -> Optional[date]:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise errors.InvalidRequest(f"'{name}' must be a date like 2026-01-31 (got {raw!r})",
                                    param=name) from None
