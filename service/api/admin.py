"""``/admin``: manage API keys and read usage, behind ``Authorization: Bearer $ADMIN_API_KEY``.

Off (404) unless ``ADMIN_API_KEY`` is set. Errors use OpenAI's envelope.
"""

from __future__ import annotations

from datetime import date
from typing import Optional

from flask import Blueprint, current_app, request
from pydantic import ValidationError

from ..core import errors
from ..keys import KeySpec
from ..usage import usage_report
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


@bp.post("/keys")
def create_key():
    try:
        spec = KeySpec.model_validate(read_json())
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise errors.InvalidRequest(f"{param}: {err['msg']}", param=param) from None
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


@bp.get("/usage")
def usage():
    rows = usage_report(_auth().store.db, key_id=request.args.get("key") or None,
                        since=_day("since"), until=_day("until"))
    return json_response({"object": "list", "data": rows})


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
