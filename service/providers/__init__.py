"""Backends. ``build_providers`` returns them in default-precedence order."""

from __future__ import annotations

from ..settings import Settings
from .base import Provider
from .http_client import HttpClient

__all__ = ["Provider", "HttpClient", "build_providers"]


def build_providers(settings: Settings, http: HttpClient) -> list[Provider]:
    """internal > OpenAI-compatible upstream > Vertex > local, each only when configured."""
    from .local import LocalProvider

    providers: list[Provider] = []
    if settings.internal_completions_url:
        from .internal import InternalProvider

        providers.append(InternalProvider(settings, http, settings.internal_completions_url,
                                          settings.upstream_api_key, label="internal API"))
    if settings.lm_studio_base_url:
        from .openai_compat import OpenAICompatProvider

        providers.append(OpenAICompatProvider(settings, http, settings.lm_studio_base_url,
                                              settings.upstream_api_key, label="upstream"))
    if settings.vertex_project:
        from .vertex import VertexProvider

        providers.append(VertexProvider(settings, http))
    local_is_default = not any(p.supports_chat for p in providers)
    preload = settings.local_preload if settings.local_preload is not None else local_is_default
    providers.append(LocalProvider(settings, preload=preload))
    return providers
