"""Ollama wire models (requests), validated with pydantic.

Fields Ollama accepts but the gateway has no use for (``keep_alive``,
``context``, ``template``, ``shift``, unknown ``options`` such as
``mirostat``) are accepted and ignored, as Ollama ignores what a model
cannot use. :func:`parse` is the OpenAI family's validator: the first problem
becomes a 400 naming the field.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..openai.protocol import parse  # one validator for every family

__all__ = ["parse", "ChatRequest", "GenerateRequest", "ShowRequest", "EmbedRequest",
           "EmbeddingsRequest", "Options"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class Options(_Wire):
    """The ``options`` object; only what maps onto a backend is modelled."""

    temperature: Optional[float] = Field(None, ge=0)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    top_k: Optional[int] = Field(None, ge=0)
    # -1 = unlimited, -2 = fill the context; 0 is unlimited too (as in Ollama's runner)
    num_predict: Optional[int] = Field(None, ge=-2)
    num_ctx: Optional[int] = Field(None, ge=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    repeat_penalty: Optional[float] = Field(None, gt=0)
    presence_penalty: Optional[float] = Field(None, ge=-2, le=2)
    frequency_penalty: Optional[float] = Field(None, ge=-2, le=2)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ToolCallFunctionIn(_Wire):
    name: str = Field(min_length=1)
    # Ollama sends objects; a JSON string is tolerated (some clients re-send OpenAI's form).
    arguments: Union[dict[str, Any], str] = Field(default_factory=dict)


class ToolCallIn(_Wire):
    id: Optional[str] = None
    function: ToolCallFunctionIn


class MessageIn(_Wire):
    role: Literal["system", "user", "assistant", "tool"]
    content: Optional[str] = ""
    images: Optional[list[str]] = None
    tool_calls: Optional[list[ToolCallIn]] = None
    tool_name: Optional[str] = None
    tool_call_id: Optional[str] = None
    thinking: Optional[str] = None

    @field_validator("role", mode="before")
    @classmethod
    def _role_any_case(cls, v):
        return v.lower() if isinstance(v, str) else v  # Ollama reads "USER" as "user"


class FunctionDefIn(_Wire):
    name: str = Field(min_length=1, max_length=64)
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None


class ToolIn(_Wire):
    type: Literal["function"] = "function"
    function: FunctionDefIn


Format = Union[Literal["", "json"], dict[str, Any], None]


class _GenerateFields(_Wire):
    model: str = Field(min_length=1)
    format: Format = None
    options: Optional[Options] = None
    stream: Optional[bool] = None  # absent or null: stream (Ollama's default)
    keep_alive: Union[float, str, None] = None
    think: Union[bool, str, None] = None
    # A prompt longer than num_ctx: drop the oldest messages (default), or fail (false).
    truncate: Optional[bool] = None


class ChatRequest(_GenerateFields):
    messages: list[MessageIn] = Field(default_factory=list)
    tools: Optional[list[ToolIn]] = None


class GenerateRequest(_GenerateFields):
    prompt: str = ""
    suffix: Optional[str] = None
    system: Optional[str] = None
    template: Optional[str] = None
    raw: bool = False
    images: Optional[list[str]] = None
    context: Optional[list[int]] = None


class ShowRequest(_Wire):
    model: str = ""
    name: str = ""  # the older field name, still sent by some clients
    verbose: bool = False

    def model_name(self) -> str:
        return self.model or self.name


class EmbedRequest(_Wire):
    model: str = Field(min_length=1)
    input: Union[str, list[str]] = Field(default_factory=list)
    truncate: bool = True
    dimensions: Optional[int] = Field(None, ge=1)
    options: Optional[dict[str, Any]] = None
    keep_alive: Union[float, str, None] = None

    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingsRequest(_Wire):
    """The legacy ``/api/embeddings`` body: one ``prompt``, one ``embedding`` back."""

    model: str = Field(min_length=1)
    prompt: str = ""
    options: Optional[dict[str, Any]] = None
    keep_alive: Union[float, str, None] = None
