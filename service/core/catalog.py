"""Model lists the dispatcher routes over: from ``MODELS_FILE`` or from the seed variables.

:class:`FileCatalog` serves exactly the public names (and aliases) of the file,
plus ids found by discovery on backends that ask for it; any other name is
404 ``model_not_found`` unless the file names a ``default_model``. Resolution is
one dict lookup (``benchmarks/routing.py``).

:class:`LegacyCatalog` is the seed behaviour (docs/model-routing.md, "Without
MODELS_FILE"): one backend per kind from the environment, names as the backends list them, anything
else to the default backend. Both offer the listing calls the API families use
(``list_models``, ``find_model``, ``by_name``, ``resolve``).
"""

from __future__ import annotations

import threading
from typing import Optional

from . import errors
from .dispatch import Deployment, Route
from .routing import Router
from .types import EmbeddingRequest, GenerationRequest, ModelInfo
from ..models_file import ModelList
from ..providers.base import Provider


def not_found(name: str) -> errors.ModelNotFound:
    # OpenAI's wording, so clients that match on it behave as they do against OpenAI.
    return errors.ModelNotFound(
        f"The model '{name}' does not exist or you do not have access to it.", param="model")


class LegacyCatalog(Router):
    """The seed environment variables' routing, unchanged (the Router, plus routes)."""

    def route(self, request: GenerationRequest | EmbeddingRequest) -> Route:
        provider = self.resolve(request)
        return Route(request.model, [Deployment(provider, request.model)])

    def named(self, name: str) -> Route:
        raise errors.ModelNotFound(f"no fallbacks without MODELS_FILE ({name!r})")

    def deployments(self) -> list[Deployment]:
        return []


class FileCatalog:
    """Public names from a validated :class:`~service.models_file.ModelList`."""

    def __init__(self, model_list: ModelList, backends: dict[str, Provider],
                 started: int = 0):
        self.providers = list(backends.values())
        self._backends = backends
        self._routes: dict[str, Route] = {}
        self._listed: list[Route] = []
        for name, entry in model_list.models.items():
            clock = [0.0]  # the model's deployments share one virtual clock
            deps = [Deployment(backends[d.backend], d.model, d.weight, clock=clock)
                    for d in entry.deployments]
            caps = set(entry.capabilities)
            info = ModelInfo(id=name, provider=deps[0].backend, owned_by="gateway",
                             created=started, context_length=entry.context_length,
                             supports_tools="tools" in caps, supports_vision="vision" in caps,
                             supports_embeddings="embeddings" in caps)
            route = Route(name, deps, tuple(entry.fallbacks),
                          tuple(entry.context_window_fallbacks), info)
            self._listed.append(route)
            for public in (name, *entry.aliases):
                self._routes[public] = route
        self._default = model_list.default_model
        self._discovery = [(backends[n], b.discovery.prefix)
                           for n, b in model_list.backends.items()
                           if getattr(b, "discovery", None) is not None]
        self._discovered: dict[str, Route] = {}
        self._lock = threading.Lock()

    # ---- resolution ----------------------------------------------------------------------
    def route(self, request: GenerationRequest | EmbeddingRequest) -> Route:
        if not request.model:
            request.model = self._default or self._listed[0].public
        route = self._routes.get(request.model) or self._discover(request.model)
        if route is None:
            if self._default is None:
                raise not_found(request.model)
            # The default model answers, under the name the client used.
            base = self._routes[self._default]
            route = Route(request.model, base.deployments, base.fallbacks,
                          base.context_fallbacks, base.info)
        return route

    def named(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is None:
            raise not_found(name)
        return route

    def _discover(self, name: str) -> Optional[Route]:
        if not self._discovery:
            return None
        route = self._discovered.get(name)
        if route is not None:
            return route
        for provider, prefix in self._discovery:
            if name.startswith(prefix):
                info = provider.model_info(name[len(prefix):])
                if info is not None:
                    with self._lock:
                        route = self._discovered.get(name)
                        if route is None:
                            route = Route(name, [Deployment(provider, info.id)],
                                          info=_renamed(info, name))
                            self._discovered[name] = route
                    return route
        return None

    def deployments(self) -> list[Deployment]:
        seen: dict[int, Deployment] = {}
        for route in [*self._listed, *self._discovered.values()]:
            for d in route.deployments:
                seen.setdefault(id(d), d)
        return list(seen.values())

    # ---- listing -----------------------------------------------------------------------------
    def list_models(self) -> list[ModelInfo]:
        out = [r.info for r in self._listed]
        names = {m.id for m in out}
        for provider, prefix in self._discovery:
            for m in provider.list_models():
                if prefix + m.id not in names:
                    names.add(prefix + m.id)
                    out.append(_renamed(m, prefix + m.id))
        return out

    def find_model(self, name: str) -> Optional[ModelInfo]:
        route = self._routes.get(name) or self._discover(name)
        if route is None:
            return None
        return route.info if route.info.id == name else _renamed(route.info, name)

    def by_name(self, name: str) -> Optional[Provider]:
        return self._backends.get(name)

    def resolve(self, request) -> Provider:
        """The first deployment's backend (Helios status; dispatching picks per request)."""
        return self.route(request).deployments[0].provider


def _renamed(info: ModelInfo, name: str) -> ModelInfo:
    from dataclasses import replace

    return replace(info, id=name)
