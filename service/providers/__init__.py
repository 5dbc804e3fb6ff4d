"""Backends: from the seed variables (``build_providers``) or from ``MODELS_FILE``
(``build_backends``). Each provider instance has the ``name`` it is known by in
logs, metrics, readiness and usage rows, and a small frozen config of its own
(:mod:`.config`: built from its entry, or from the seed variables); a file's HTTP
backends each get an HTTP client of their own (retries, timeouts, pool). The local backend, and with it ``llama_cpp``,
is imported only when a local model is configured.
"""

from __future__ import annotations

from ..settings import Settings
from .base import Provider
from .config import (
    AnthropicConfig, HttpConfig, InternalConfig, LocalConfig, OpenAIConfig, TokenConfig,
    VertexConfig,
)
from .http_client import HttpClient

__all__ = ["Provider", "HttpClient", "build_providers", "build_backends", "HttpConfig",
           "OpenAIConfig", "InternalConfig", "VertexConfig", "TokenConfig", "LocalConfig",
           "AnthropicConfig"]


def build_providers(settings: Settings, http: HttpClient) -> list[Provider]:
    """internal > OpenAI-compatible upstream > Vertex > local, each only when configured;
    the HTTP ones share ``http`` (the process's pool)."""
    from .local import LocalProvider

    providers: list[Provider] = []
    if settings.internal_completions_url:
        from .internal import InternalProvider

        providers.append(InternalProvider(InternalConfig.from_settings(settings), http))
    if settings.lm_studio_base_url:
        from .openai_compat import OpenAICompatProvider

        providers.append(OpenAICompatProvider(OpenAIConfig.from_settings(settings), http))
    if settings.vertex_project:
        from .vertex import VertexProvider

        providers.append(VertexProvider(VertexConfig.from_settings(settings), http))
    local_is_default = not any(p.supports_chat for p in providers)
    preload = settings.local_preload if settings.local_preload is not None else local_is_default
    providers.append(LocalProvider(LocalConfig.from_settings(settings, preload=preload)))
    return providers


def build_backends(model_list, settings: Settings, observers: list) -> dict[str, Provider]:
    """One provider per ``[backends.<name>]`` entry, named ``<name>``, each HTTP one with a
    client of its own (its timeouts, retries, pool) reporting to the shared ``observers``."""
    out: dict[str, Provider] = {}
    for name, entry in model_list.backends.items():
        out[name] = _build(name, entry, settings, observers)
    return out


def _build(name: str, entry, settings: Settings, observers: list) -> Provider:
    if entry.kind == "local":
        from .local import LocalProvider

        return LocalProvider(LocalConfig.from_entry(name, entry, settings))
    if entry.kind == "vertex":
        from .vertex import VertexProvider as cls
        config = VertexConfig.from_entry(name, entry, settings)
    elif entry.kind == "anthropic":
        from .anthropic import AnthropicProvider as cls
        config = AnthropicConfig.from_entry(name, entry, settings)
    elif entry.kind == "internal":
        from .internal import InternalProvider as cls
        config = InternalConfig.from_entry(name, entry, settings)
    else:
        from .openai_compat import OpenAICompatProvider as cls
        config = OpenAIConfig.from_entry(name, entry, settings)
    http = HttpClient(config.http)
    http.observers = observers  # the same list: observers added later see this backend too
    return cls(config, http)  # type: ignore[arg-type]
