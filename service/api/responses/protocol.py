"""OpenAI Responses API wire models (requests), validated with pydantic.

What the gateway serves: ``input`` as a string or as items (messages with
``input_text``/``input_image``/``output_text`` parts, ``function_call``,
``function_call_output``; ``reasoning`` items accepted and dropped), function
tools (also grouped in a ``namespace`` tool, as Codex CLI sends them),
``tool_choice``, ``text.format``, sampling fields and ``previous_response_id``.
Fields clients send that change nothing here (``include``, ``prompt_cache_key``,
``client_metadata``, ``service_tier``, ``truncation``…) are accepted and kept in
``model_extra``; what the gateway cannot do (hosted tools such as ``web_search``,
``background``, ``conversation``, stored prompts) is refused with a 400 naming it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...core import errors
from ..openai.protocol import parse as _parse

#: Tool types the gateway runs (function tools and namespaces of them); any other is a 400.
SUPPORTED_TOOL_TYPES = ("function", "namespace")
#: Request fields naming server-side features the gateway does not have.
_REFUSED_FIELDS = {
    "background": "background responses are not supported; send the request without "
                  "'background'",
    "conversation": "conversations are not supported; chain responses with "
                    "'previous_response_id' or send the items again",
    "prompt": "stored prompt templates are not supported; send 'instructions' and 'input'",
}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---- input items --------------------------------------------------------------------
class InputText(_Wire):
    type: Literal["input_text", "output_text", "refusal"]
    text: str = ""
    refusal: Optional[str] = None


class InputImage(_Wire):
    type: Literal["input_image"]
    image_url: Optional[str] = None
    file_id: Optional[str] = None
    detail: Optional[str] = None


class InputFile(_Wire):
    type: Literal["input_file"]


ContentPart = Annotated[Union[InputText, InputImage, InputFile], Field(discriminator="type")]


class MessageItem(_Wire):
    type: Literal["message"] = "message"
    id: Optional[str] = None
    role: Literal["user", "system", "developer", "assistant"]
    content: Union[list[ContentPart], str] = Field(union_mode="left_to_right")


class FunctionCallItem(_Wire):
    type: Literal["function_call"]
    id: Optional[str] = None
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    namespace: Optional[str] = None
    arguments: str = ""


class FunctionCallOutputItem(_Wire):
    type: Literal["function_call_output"]
    id: Optional[str] = None
    call_id: str = Field(min_length=1)
    output: Union[list[ContentPart], str] = Field(union_mode="left_to_right")


class ReasoningItem(_Wire):
    type: Literal["reasoning"]


class ItemReference(_Wire):
    type: Literal["item_reference"]
    id: str


InputItem = Annotated[
    Union[MessageItem, FunctionCallItem, FunctionCallOutputItem, ReasoningItem, ItemReference],
    Field(discriminator="type")]


# ---- tools ----------------------------------------------------------------------------
class FunctionTool(_Wire):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    strict: Optional[bool] = None


class NamespaceTool(_Wire):
    type: Literal["namespace"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: Optional[str] = None
    tools: list[FunctionTool]


ToolIn = Annotated[Union[FunctionTool, NamespaceTool], Field(discriminator="type")]


class FunctionChoice(_Wire):
    type: Literal["function"]
    name: str


class TextFormat(_Wire):
    type: Literal["text", "json_object", "json_schema"]
    name: Optional[str] = None
    schema_: Optional[dict[str, Any]] = Field(None, alias="schema")
    strict: Optional[bool] = None
    description: Optional[str] = None


class TextConfig(_Wire):
    format: Optional[TextFormat] = None
    verbosity: Optional[str] = None


class ReasoningConfig(_Wire):
    effort: Optional[str] = None
    summary: Optional[str] = None


class ResponsesRequest(_Wire):
    model: str = ""
    # The list first: a bad item is then reported as that item's problem, not as "not a string".
    input: Union[list[InputItem], str] = Field("", union_mode="left_to_right")
    instructions: Optional[str] = None
    tools: Optional[list[ToolIn]] = None
    tool_choice: Union[Literal["none", "auto", "required"], FunctionChoice, None] = None
    parallel_tool_calls: Optional[bool] = None
    max_output_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    text: Optional[TextConfig] = None
    reasoning: Optional[ReasoningConfig] = None
    stream: bool = False
    store: bool = True  # OpenAI's default
    previous_response_id: Optional[str] = None
    metadata: Optional[dict[str, str]] = None
    user: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _message_type(cls, data):
        # "Easy" input messages ({"role", "content"}) carry no type.
        if isinstance(data, dict) and isinstance(data.get("input"), list):
            data = dict(data)
            data["input"] = [dict(i, type="message") if isinstance(i, dict) and "type" not in i
                             and "role" in i else i for i in data["input"]]
        return data


def _refuse_unsupported(body: dict) -> None:
    """Features the gateway does not have, refused by name before validation."""
    for name, why in _REFUSED_FIELDS.items():
        if body.get(name) not in (None, False):
            raise errors.UnsupportedFeature(why, param=name)
    tools = body.get("tools")
    if isinstance(tools, list):
        for i, t in enumerate(tools):
            kind = t.get("type") if isinstance(t, dict) else None
            if isinstance(kind, str) and kind not in SUPPORTED_TOOL_TYPES:
                raise errors.UnsupportedFeature(
                    f"tool type '{kind[:64]}' is not supported by this gateway: only function "
                    f"tools (and namespaces of them) are; the gateway runs no hosted tools",
                    param=f"tools[{i}].type")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") not in ("function", None):
        raise errors.UnsupportedFeature(
            f"tool_choice of type '{str(choice.get('type'))[:64]}' is not supported; use "
            f"'auto', 'none', 'required' or a function", param="tool_choice")


# pydantic names the union member (the item's or tool's type) in an error's location.
_TAGS = re.compile(r"\.(message|function_call|function_call_output|reasoning|item_reference|"
                   r"function|namespace|input_text|output_text|refusal|input_image|input_file)"
                   r"(?=[.\[']|$)")


def parse_request(body: dict) -> ResponsesRequest:
    """Validate a ``POST /v1/responses`` body; the first problem is a 400 naming its param."""
    _refuse_unsupported(body)
    try:
        return _parse(ResponsesRequest, body)
    except errors.InvalidRequest as exc:
        exc.message = _TAGS.sub("", exc.message)
        exc.args = (exc.message,)
        exc.param = _TAGS.sub("", exc.param) if exc.param else exc.param
        raise
