"""llama.cpp server wire format for ``/infill``: the request model and the error body.

Fields are those of llama.cpp's ``tools/server`` README that llama.vim and
llama.vscode send. Sampler choices the gateway's backends cannot follow
(``samplers`` order, ``id_slot``, ``n_probs``…) are accepted and ignored, as
llama.cpp ignores fields it does not know. Errors are llama.cpp's
``{"error": {"code", "message", "type"}}``.
"""

from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ...core import errors
from ..openai.protocol import parse  # one validator for every family

__all__ = ["parse", "InfillRequest", "ExtraChunk", "error_body"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class ExtraChunk(_Wire):
    """One ``input_extra`` entry: context from another file (or another part of this one)."""

    filename: str = "tmp"
    text: str = ""


class InfillRequest(_Wire):
    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[ExtraChunk] = Field(default_factory=list)
    # Text after the FIM middle token: the start of the middle, already typed (llama.vim
    # sends the cursor's line up to the cursor here).
    prompt: str = ""
    model: Optional[str] = None
    n_predict: int = Field(-1, ge=-1)
    t_max_predict_ms: int = Field(0, ge=-1)
    n_indent: int = Field(0, ge=0)
    cache_prompt: bool = True
    stream: bool = False
    temperature: Optional[float] = Field(None, ge=0)
    top_k: Optional[int] = Field(None, ge=0)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    seed: Optional[int] = None
    stop: Union[str, list[str], None] = None
    samplers: Union[list[str], str, None] = None
    response_fields: Optional[list[str]] = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 501: "not_supported_error", 503: "unavailable_error"}


def error_body(exc: errors.GatewayError) -> dict:
    """llama.cpp's error shape (``type`` from its own vocabulary, by status)."""
    return {"error": {"code": exc.status, "message": exc.message,
                      "type": _TYPES.get(exc.status, "server_error")}}
