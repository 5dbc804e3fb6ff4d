"""Backends: from the seed variables (``build_providers``) or from ``MODELS_FILE``
(``build_backends``). Each provider instance has the ``name`` it is known by in
logs, metrics, readiness and usage rows, and an HTTP client of its own (retries,
timeouts, pool) built from its entry. The local backend, and with it ``llama_cpp``,
is imported only when a local model is configured.
"""

from __future__ import annotations

import shlex
import shutil
from typing import Any, Optional

from ..settings import Settings
from .base import Provider
from .http_client import HttpClient

__all__ = ["Provider", "HttpClient", "build_providers", "build_backends"]


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


class BackendHttp:
    """A backend's own :class:`HttpClient` plus its CA bundle; reports to the shared
    observers (metrics, access log)."""

    def __init__(self, http: HttpClient, verify: Any):
        self._http = http
        self.verify = verify

    def send(self, method: str, url: str, **kw):
        kw.setdefault("verify", self.verify)
        return self._http.send(method, url, **kw)

    def close(self) -> None:
        self._http.close()


def _http_for(entry, settings: Settings, observers: list) -> BackendHttp:
    update = {k: v for k, v in {
        "connect_timeout_seconds": entry.connect_timeout_seconds,
        "request_timeout_seconds": entry.request_timeout_seconds,
        "request_max_retries": entry.max_retries,
        "httpx_max_connections": entry.max_concurrency,
        "httpx_max_keepalive": min(entry.max_concurrency, settings.httpx_max_keepalive),
    }.items() if v is not None}
    http = HttpClient(settings.model_copy(update=update))
    http.observers = observers  # the same list: observers added later see this backend too
    return BackendHttp(http, str(entry.ca_bundle) if entry.ca_bundle else True)


def build_backends(model_list, settings: Settings, observers: list) -> dict[str, Provider]:
    """One provider per ``[backends.<name>]`` entry, named ``<name>``."""
    out: dict[str, Provider] = {}
    for name, entry in model_list.backends.items():
        provider = _build(name, entry, settings, observers)
        provider.name = name
        out[name] = provider
    return out


def _build(name: str, entry, settings: Settings, observers: list) -> Provider:
    if entry.kind == "local":
        from .local import LocalProvider

        local = settings.model_copy(update={
            "local_model_path": entry.path, "local_embedding_model_path": None,
            **({"local_n_ctx": entry.n_ctx} if entry.n_ctx else {})})
        return LocalProvider(local, preload=entry.preload)
    http = _http_for(entry, settings, observers)
    if entry.kind == "vertex":
        from .vertex import VertexProvider

        vertex = settings.model_copy(update={
            "vertex_project": entry.project, "vertex_location": entry.location,
            "vertex_base_url": entry.base_url, "vertex_auth": settings.vertex_auth or _auth(settings),
            **({"ssl_cert_file": entry.ca_bundle} if entry.ca_bundle else {})})
        provider = VertexProvider(vertex, http, label=name)  # type: ignore[arg-type]
        provider.headers.update(entry.headers)
        return provider
    if entry.kind == "anthropic":
        from .anthropic import AnthropicProvider

        provider = AnthropicProvider(settings, http, entry.base_url,  # type: ignore[arg-type]
                                     entry.api_key(), version=entry.anthropic_version,
                                     default_max_tokens=entry.default_max_tokens, label=name)
        provider._headers.update(entry.headers)
        return provider
    if entry.kind == "internal":
        from .internal import InternalProvider as cls
        url: Optional[str] = entry.url
    else:
        from .openai_compat import OpenAICompatProvider as cls
        url = entry.base_url
    provider = cls(settings, http, url, entry.api_key(), label=name)  # type: ignore[arg-type]
    provider._headers.update(entry.headers)
    return provider


def _auth(settings: Settings) -> str:
    found = shutil.which(shlex.split(settings.helix_access_token_cmd)[0]) is not None
    return "helix" if found else "adc"
