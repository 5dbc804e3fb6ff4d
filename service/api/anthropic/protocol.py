"""Anthropic Messages API wire models (requests), validated with pydantic.

Unknown fields (``cache_control`` on any block, ``citations``, ``service_tier``…)
are allowed and kept, so an Anthropic backend receives the body as the client
sent it; other backends ignore them. :func:`parse` is the OpenAI family's
validator: the first problem becomes a 400 naming its ``param``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ..openai.protocol import parse  # one validator for every family

__all__ = ["MessagesRequest", "CountTokensRequest", "parse"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlockIn(_Wire):
    type: Literal["text"]
    text: str


class Base64SourceIn(_Wire):
    type: Literal["base64"]
    media_type: str = Field(pattern=r"^image/[A-Za-z0-9.+-]+$")
    data: str = Field(min_length=1)


class UrlSourceIn(_Wire):
    type: Literal["url"]
    url: str = Field(pattern=r"^https?://")


class ImageBlockIn(_Wire):
    type: Literal["image"]
    source: Annotated[Union[Base64SourceIn, UrlSourceIn], Field(discriminator="type")]


class ToolUseBlockIn(_Wire):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


ToolResultPart = Annotated[Union[TextBlockIn, ImageBlockIn], Field(discriminator="type")]


class ToolResultBlockIn(_Wire):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: Union[str, list[ToolResultPart], None] = None
    is_error: bool = False


class ThinkingBlockIn(_Wire):
    type: Literal["thinking"]
    thinking: str
    signature: str = ""


class RedactedThinkingBlockIn(_Wire):
    type: Literal["redacted_thinking"]
    data: str


class DocumentBlockIn(_Wire):
    """Accepted by the parser so the refusal can say what is not supported."""

    type: Literal["document"]


ContentBlockIn = Annotated[
    Union[TextBlockIn, ImageBlockIn, ToolUseBlockIn, ToolResultBlockIn, ThinkingBlockIn,
          RedactedThinkingBlockIn, DocumentBlockIn],
    Field(discriminator="type")]


class MessageIn(_Wire):
    role: Literal["user", "assistant"]
    content: Union[list[ContentBlockIn], str]  # list first: its errors are the useful ones


class ToolIn(_Wire):
    """A client tool (``input_schema``); Anthropic's server tools carry another ``type``."""

    name: str = Field(min_length=1, max_length=128)
    description: Optional[str] = None
    input_schema: Optional[dict[str, Any]] = None
    type: Optional[str] = None


class _ChoiceBase(_Wire):
    disable_parallel_tool_use: Optional[bool] = None


class AutoChoiceIn(_ChoiceBase):
    type: Literal["auto"]


class AnyChoiceIn(_ChoiceBase):
    type: Literal["any"]


class ToolChoiceToolIn(_ChoiceBase):
    type: Literal["tool"]
    name: str = Field(min_length=1)


class NoneChoiceIn(_Wire):
    type: Literal["none"]


ToolChoiceIn = Annotated[Union[AutoChoiceIn, AnyChoiceIn, ToolChoiceToolIn, NoneChoiceIn],
                         Field(discriminator="type")]


class ThinkingIn(_Wire):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: Optional[int] = Field(None, ge=1)


class MetadataIn(_Wire):
    user_id: Optional[str] = None


class CountTokensRequest(_Wire):
    """``POST /v1/messages/count_tokens``: a Messages request without ``max_tokens``."""

    model: str = Field(min_length=1)
    messages: list[MessageIn] = Field(min_length=1)
    system: Union[str, list[TextBlockIn], None] = None
    tools: Optional[list[ToolIn]] = None
    tool_choice: Optional[ToolChoiceIn] = None
    thinking: Optional[ThinkingIn] = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: Optional[list[str]] = Field(None, max_length=16)
    temperature: Optional[float] = Field(None, ge=0, le=1)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    top_k: Optional[int] = Field(None, ge=0)
    metadata: Optional[MetadataIn] = None
    stream: bool = False
