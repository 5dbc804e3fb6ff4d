"""Helios wire format (seed 001): the request model, error codes and the error body.

Errors on Helios routes are ``{"detail", "error_code", "timestamp"}`` with the
seed's codes; the HTTP status comes from the :class:`GatewayError` raised.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ...core import errors

MODEL_NOT_LOADED = "MODEL_NOT_LOADED"
INVALID_REQUEST = "INVALID_REQUEST"
COMPLETION_FAILED = "COMPLETION_FAILED"
SERVER_OVERLOADED = "SERVER_OVERLOADED"
UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
INTERNAL_ERROR = "INTERNAL_ERROR"
# Not in seed 001: a request superseded by a newer one for the same file (issue 17).
REQUEST_CANCELLED = "REQUEST_CANCELLED"

_BY_STATUS = {
    400: INVALID_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED, 413: INVALID_REQUEST, 429: SERVER_OVERLOADED,
    499: REQUEST_CANCELLED, 503: MODEL_NOT_LOADED,
}


class CompletionFailed(errors.GatewayError):
    """The backend failed while generating (upstream error, timeout, crash); message kept."""

    status = 500
    type = "server_error"
    code = "completion_failed"


class _Wire(BaseModel):
    # Strict: JSON "3" is not a line number and true is not a token count.
    model_config = ConfigDict(extra="ignore", strict=True)


class Position(_Wire):
    """Zero-based cursor position; ``character`` counts UTF-16 code units (as LSP/VS Code)."""

    line: int = Field(ge=0)
    character: int = Field(ge=0)


class CompletionRequest(_Wire):
    code: str
    language: str
    position: Position
    filename: str
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=1)

    @field_validator("max_tokens")
    @classmethod
    def _cap(cls, value: Optional[int], info: ValidationInfo) -> Optional[int]:
        cap = (info.context or {}).get("max_tokens_limit")
        if value is not None and cap is not None and value > cap:
            raise ValueError(f"Input should be less than or equal to {cap} (HELIOS_MAX_TOKENS_LIMIT)")
        return value


def parse(body: dict, max_tokens_limit: int) -> CompletionRequest:
    """Validate ``body``; every problem is named pydantic-style (``position.line: …``)."""
    try:
        return CompletionRequest.model_validate(body, context={"max_tokens_limit": max_tokens_limit})
    except ValidationError as exc:
        named = [(".".join(str(p) for p in err["loc"]) or "body",
                  err["msg"].removeprefix("Value error, ")) for err in exc.errors(include_url=False)]
        raise errors.InvalidRequest("; ".join(f"{field}: {msg}" for field, msg in named),
                                    param=named[0][0]) from None


def error_code(exc: errors.GatewayError) -> str:
    if isinstance(exc, CompletionFailed):
        return COMPLETION_FAILED
    return _BY_STATUS.get(exc.status, INTERNAL_ERROR)


def timestamp() -> str:
    """Now as ISO 8601 UTC, the seed's ``2023-10-07T12:00:00Z`` form."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_body(exc: errors.GatewayError) -> dict:
    return {"detail": exc.message, "error_code": error_code(exc), "timestamp": timestamp()}
