"""OpenAI wire models (requests), validated with pydantic.

Sampling fields are declared once on :class:`SamplingFields` and shared by
chat and completion requests. Unknown fields are allowed and kept
(``model_extra``) so OpenAI-compatible upstreams receive them untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ...core import errors


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPartIn(_Wire):
    type: Literal["text"]
    text: str


class ImageURLIn(_Wire):
    url: str
    detail: Optional[str] = None


class ImagePartIn(_Wire):
    type: Literal["image_url"]
    image_url: Union[ImageURLIn, str]


ContentPartIn = Annotated[Union[TextPartIn, ImagePartIn], Field(discriminator="type")]


class FunctionCallIn(_Wire):
    name: str
    arguments: Union[str, dict[str, Any]] = "{}"


class ToolCallIn(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallIn


class MessageIn(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPartIn], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[ToolCallIn]] = None
    tool_call_id: Optional[str] = None


class FunctionDefIn(_Wire):
    name: str = Field(min_length=1, max_length=64)
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    strict: Optional[bool] = None


class ToolIn(_Wire):
    type: Literal["function"]
    function: FunctionDefIn


class NamedFunctionIn(_Wire):
    name: str


class NamedToolChoiceIn(_Wire):
    type: Literal["function"]
    function: NamedFunctionIn


class ResponseFormatIn(_Wire):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: Optional[dict[str, Any]] = None


class StreamOptionsIn(_Wire):
    include_usage: Optional[bool] = False


class SamplingFields(_Wire):
    """Fields shared by chat and text completions."""

    model: str = ""
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    top_k: Optional[int] = Field(None, ge=0)
    n: int = Field(1, ge=1, le=128)
    stop: Union[str, list[str], None] = None
    max_tokens: Optional[int] = Field(None, ge=1)
    seed: Optional[int] = None
    presence_penalty: Optional[float] = Field(None, ge=-2, le=2)
    frequency_penalty: Optional[float] = Field(None, ge=-2, le=2)
    repeat_penalty: Optional[float] = Field(None, gt=0)
    user: Optional[str] = None
    stream: bool = False
    stream_options: Optional[StreamOptionsIn] = None

    # OpenAI's OpenAPI document marks these nullable with a non-null default: null is the
    # default. (Its other nullable fields are Optional here already.)
    NULL_MEANS_DEFAULT: ClassVar[tuple[str, ...]] = ("n", "stream")

    @model_validator(mode="before")
    @classmethod
    def _nulls_to_defaults(cls, data):
        if isinstance(data, dict) and any(data.get(n, 0) is None for n in cls.NULL_MEANS_DEFAULT):
            data = {k: v for k, v in data.items()
                    if not (v is None and k in cls.NULL_MEANS_DEFAULT)}
        return data

    @field_validator("stop")
    @classmethod
    def _stop(cls, v):
        if isinstance(v, list) and len(v) > 16:
            raise ValueError("at most 16 stop sequences")
        return v

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(SamplingFields):
    messages: list[MessageIn] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    tools: Optional[list[ToolIn]] = None
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoiceIn, None] = None
    parallel_tool_calls: Optional[bool] = None
    response_format: Optional[ResponseFormatIn] = None
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)


class CompletionRequest(SamplingFields):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    suffix: Optional[str] = None
    echo: bool = False
    logprobs: Optional[int] = Field(None, ge=0, le=5)
    best_of: Optional[int] = Field(None, ge=1)

    NULL_MEANS_DEFAULT: ClassVar[tuple[str, ...]] = ("n", "stream", "echo")

    @field_validator("prompt", mode="before")
    @classmethod
    def _null_prompt(cls, v):
        # null is OpenAI's default prompt: a new document (the local model starts from
        # its BOS/EOS token; an upstream gets "").
        return "" if v is None else v


class EmbeddingRequestIn(_Wire):
    model: str = ""
    input: Union[str, list[str], list[int], list[list[int]]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = Field(None, ge=1)
    user: Optional[str] = None


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal", "union"}


def _param(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier() and part.lower() not in _TYPE_TAGS:
            if part in ("ImagePartIn", "TextPartIn", "NamedToolChoiceIn") or part[0].isupper():
                continue
            out += f".{part}" if out else part
    return out


def parse(model: type[_Wire], body: dict) -> _Wire:
    """Validate ``body``; the first problem becomes a 400 naming its ``param``."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = _param(err["loc"])
        if err["type"] == "missing":
            msg = f"'{param}' is required"
        else:
            msg = f"Invalid value for '{param}': {err['msg']}"
        raise errors.InvalidRequest(msg, param=param or None) from None
