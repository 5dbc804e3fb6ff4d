"""The gateway's one internal model of a generation request, its result and its stream.

Every API family (OpenAI, Ollama, Helios, Anthropic) converts its wire format to a
:class:`GenerationRequest` and renders :class:`Generation` / :class:`Chunk`
back; every provider takes a :class:`GenerationRequest` and returns those.
Nothing here knows HTTP, Flask or any backend's wire format.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Optional

import orjson

Role = Literal["system", "developer", "user", "assistant", "tool"]
# "stop" | "length" | "tool_calls" | "content_filter", or another reason a backend gave
# (passed through, e.g. vLLM's "abort"); None when the backend gave none.
FinishReason = str


@dataclass(slots=True)
class ImagePart:
    """An image given by URL (``data:<mime>;base64,…`` or http(s))."""

    url: str
    detail: Optional[str] = None


@dataclass(slots=True)
class TextPart:
    text: str


ContentPart = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    """A function call made by the assistant; ``arguments`` is a JSON string."""

    id: str
    name: str
    arguments: str

    def arguments_object(self) -> Optional[dict[str, Any]]:
        """The arguments parsed as the JSON object APIs that nest them want (Ollama's
        ``arguments``, Anthropic's ``input``); empty means ``{}``; None when not an object."""
        try:
            value = orjson.loads(self.arguments) if self.arguments.strip() else {}
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def arguments_wrapped(self) -> dict[str, Any]:
        """The arguments as an object for backends that require one (Gemini's ``args``,
        Anthropic's ``input``), lenient with odd histories from other models: text that is
        not JSON becomes ``{"arguments": text}``, JSON that is not an object ``{"value": …}``."""
        try:
            value = orjson.loads(self.arguments or "{}")
        except orjson.JSONDecodeError:
            return {"arguments": self.arguments}
        return value if isinstance(value, dict) else {"value": value}


@dataclass(slots=True)
class Message:
    role: Role
    # A plain string, or a list of parts when the client sent parts.
    content: str | list[ContentPart] | None = None
    name: Optional[str] = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: Optional[str] = None

    def text(self) -> str:
        """The message's text parts joined; images dropped."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    def images(self) -> list[ImagePart]:
        if isinstance(self.content, list):
            return [p for p in self.content if isinstance(p, ImagePart)]
        return []


@dataclass(slots=True)
class Tool:
    """A function tool: name, description and JSON-schema parameters."""

    name: str
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    strict: Optional[bool] = None


@dataclass(slots=True)
class GenerationRequest:
    """A chat (``messages``) or text-completion (``prompt``) request.

    ``extra`` holds request fields the gateway does not model; providers that
    speak the same wire format pass them through untouched.
    """

    kind: Literal["chat", "completion"]
    model: str
    messages: list[Message] = field(default_factory=list)
    prompt: str = ""
    suffix: Optional[str] = None
    echo: bool = False
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: Optional[int] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    repeat_penalty: Optional[float] = None
    logprobs: Optional[int] = None
    tools: list[Tool] = field(default_factory=list)
    # "auto" | "none" | "required" | {"type": "function", "function": {"name": …}}
    tool_choice: Any = None
    parallel_tool_calls: Optional[bool] = None
    # {"type": "text" | "json_object" | "json_schema", "json_schema": {...}}
    response_format: Optional[dict[str, Any]] = None
    user: Optional[str] = None
    # Tokens the model may spend reasoning before it answers (Anthropic's thinking
    # budget_tokens, Gemini's thinkingBudget); 0 turns reasoning off; None: the backend's default.
    thinking_budget: Optional[int] = None
    stream: bool = False
    include_usage: bool = False
    num_ctx: Optional[int] = None
    # A prompt longer than the context: False fails (400 context_length_exceeded); True
    # drops the oldest messages, then cuts tokens, as Ollama does (its ``truncate``, default on).
    truncate: bool = False
    # Reuse the backend's evaluated prompt prefix (llama.cpp's KV cache) when it can;
    # False evaluates the whole prompt again (llama.cpp's ``cache_prompt``).
    cache_prompt: bool = True
    # Set (a ``threading.Event``) when the caller no longer wants the answer, e.g. a newer
    # completion superseded it: the local model stops waiting for its turn, or generating,
    # within one token step.
    cancel: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The API family's own body, for providers that can relay it as is.
    raw: Optional[dict[str, Any]] = None
    raw_family: Optional[str] = None
    # The family's protocol headers (e.g. anthropic-version, anthropic-beta), forwarded
    # unchanged to a backend that speaks the same family.
    raw_headers: dict[str, str] = field(default_factory=dict)

    def has_images(self) -> bool:
        return any(m.images() for m in self.messages)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens taken from a cache (the local KV cache, or an upstream's
    # ``prompt_tokens_details.cached_tokens``); the local prompt's evaluation time.
    cached_tokens: Optional[int] = None
    prompt_ms: Optional[float] = None
    # An upstream's ``prompt_tokens_details`` / ``completion_tokens_details``, relayed as given.
    prompt_details: Optional[dict[str, Any]] = None
    completion_details: Optional[dict[str, Any]] = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class TokenLogprob:
    """One generated token with its log-probability (OpenAI's logprob entry).

    ``top`` holds the most likely alternatives at that position (entries whose own
    ``top`` is empty); ``text_offset`` is the token's character offset in the
    choice's text, when the backend reports it.
    """

    token: str
    logprob: float
    bytes: Optional[list[int]] = None
    top: list["TokenLogprob"] = field(default_factory=list)
    text_offset: Optional[int] = None


@dataclass(slots=True)
class Choice:
    index: int = 0
    text: str = ""
    reasoning: Optional[str] = None
    # The backend's signature over ``reasoning`` (Anthropic's thinking blocks), kept so a
    # client can send the reasoning back.
    reasoning_signature: Optional[str] = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: Optional[FinishReason] = None
    # The stop sequence that ended the text, when the backend says which.
    stop_sequence: Optional[str] = None
    # Probabilities of the chosen tokens, when the backend reports them.
    token_logprobs: Optional[list[float]] = None
    # The same tokens in full (text, bytes, alternatives), when the backend reports them.
    logprobs: Optional[list[TokenLogprob]] = None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@dataclass(slots=True)
class Generation:
    """A complete (non-streamed) result."""

    model: str
    choices: list[Choice]
    usage: Optional[Usage] = None
    id: str = field(default_factory=lambda: new_id("gen"))
    created: int = field(default_factory=lambda: int(time.time()))
    provider: str = ""
    # The backend configuration's fingerprint (OpenAI's ``system_fingerprint``).
    system_fingerprint: Optional[str] = None


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call; ``id`` and ``name`` come on the first."""

    index: int
    id: Optional[str] = None
    name: Optional[str] = None
    arguments: str = ""


@dataclass(slots=True)
class Chunk:
    """One event of a stream: a delta for one choice, a finish, or usage.

    A stream is an iterator of chunks; the first chunk of each choice carries
    ``role``; a chunk with ``finish_reason`` ends that choice; a chunk with
    ``usage`` (and ``index`` -1) may come last.
    """

    index: int = 0
    role: Optional[str] = None
    text: str = ""
    reasoning: Optional[str] = None
    reasoning_signature: Optional[str] = None
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: Optional[FinishReason] = None
    stop_sequence: Optional[str] = None
    usage: Optional[Usage] = None
    token_logprobs: Optional[list[float]] = None
    logprobs: Optional[list[TokenLogprob]] = None
    system_fingerprint: Optional[str] = None


@dataclass(slots=True)
class EmbeddingRequest:
    """Texts (or token-id lists) to embed with one model."""

    model: str
    inputs: list[str] | list[list[int]]
    dimensions: Optional[int] = None
    user: Optional[str] = None
    # Cut an input longer than the model's context instead of failing (Ollama's default).
    truncate: bool = False
    raw: Optional[dict[str, Any]] = None
    raw_family: Optional[str] = None
    kind: Literal["embedding"] = "embedding"


@dataclass(slots=True)
class Embeddings:
    """One vector per input, in input order."""

    model: str
    vectors: list[list[float]]
    prompt_tokens: int = 0
    provider: str = ""


@dataclass(slots=True)
class ModelInfo:
    """What the gateway knows of a model, for listings (/v1/models, /api/tags)."""

    id: str
    provider: str
    owned_by: str = "gateway"
    created: int = 0
    context_length: Optional[int] = None
    size_bytes: Optional[int] = None
    family: Optional[str] = None
    parameter_size: Optional[str] = None
    quantization: Optional[str] = None
    format: Optional[str] = None
    digest: Optional[str] = None
    supports_tools: bool = False
    supports_vision: bool = False
    supports_embeddings: bool = False
    chat_template: Optional[str] = None
    metadata: dict[str, Any] = field(default_factory=dict)


class StreamMeter:
    """What a stream has cost so far (see ``core/metering.py``): the provider's own
    running count when it has one, else usage the backend reported, else the chunks
    seen (one completion token each) and an estimate of the prompt."""

    __slots__ = ("prompt_estimate", "exact", "reported", "relayed")

    def __init__(self, prompt_estimate: int = 0,
                 exact: Optional[Callable[[], Usage]] = None):
        self.prompt_estimate = prompt_estimate
        self.exact = exact
        self.reported: Optional[Usage] = None
        self.relayed = 0

    def see(self, chunk: Chunk) -> None:
        if chunk.usage is not None:
            self.reported = chunk.usage
        elif chunk.index >= 0 and (chunk.text or chunk.reasoning or chunk.tool_calls):
            self.relayed += 1

    def usage(self) -> Usage:
        if self.exact is not None:
            return self.exact()
        reported = self.reported or Usage()
        return Usage(prompt_tokens=reported.prompt_tokens or self.prompt_estimate,
                     completion_tokens=max(reported.completion_tokens, self.relayed))


class ChunkStream:
    """An iterator of :class:`Chunk` with an explicit, idempotent ``close``.

    Providers return one from ``stream()`` after the backend accepted the
    request, so errors before the first byte still become plain HTTP errors.
    ``close`` stops generation (upstream response closed, model lock released)
    whether or not iteration ever started. :meth:`spent` is what the stream has
    cost so far, also when it was closed before its usage chunk.
    """

    __slots__ = ("_it", "_on_close", "_closed", "model", "id", "created", "provider", "meter")

    def __init__(self, it: Iterator[Chunk], on_close=None, *, model: str = "",
                 provider: str = "", meter: Optional[StreamMeter] = None):
        self._it = it
        self._on_close = on_close
        self._closed = False
        self.model = model
        self.provider = provider
        self.meter = meter or StreamMeter()
        self.id = new_id("gen")
        self.created = int(time.time())

    def __iter__(self) -> "ChunkStream":
        return self

    def __next__(self) -> Chunk:
        chunk = next(self._it)
        self.meter.see(chunk)
        return chunk

    def also_on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` after the stream's own close, even when that raises (a layer that
        took a slot for the stream, e.g. admission or the dispatcher, releases it here)."""
        inner = self._on_close

        def on_close() -> None:
            try:
                if inner is not None:
                    inner()
            finally:
                fn()

        self._on_close = on_close

    def spent(self) -> Usage:
        """Tokens spent so far (final once the usage chunk went by)."""
        return self.meter.usage()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()
        finally:
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> "ChunkStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
