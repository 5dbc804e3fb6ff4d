"""The process-wide objects every blueprint uses: settings, HTTP pool, providers, dispatcher."""

from __future__ import annotations

import time
from typing import Optional

from flask import current_app

from .admission import Admission
from .auth import authorize_model
from .core.catalog import FileCatalog, LegacyCatalog
from .core.dispatch import Authorize, Dispatcher
from .providers import HttpClient, build_backends, build_providers
from .settings import Settings


class Gateway:
    """Built once per process by ``create_app``; kept in ``app.extensions``.

    ``router`` answers the listing calls (``list_models``, ``find_model``, ``by_name``);
    ``dispatch`` runs every model call (``generate``/``stream``/``embed``).
    """

    def __init__(self, settings: Settings, *, authorize: Authorize = authorize_model):
        self.settings = settings
        self.started = time.time()
        self.http = HttpClient(settings)
        if settings.models_file is not None:
            from . import models_file

            model_list = models_file.active(settings.models_file)
            backends = build_backends(model_list, settings, self.http.observers)
            self.providers = list(backends.values())
            self.router = FileCatalog(model_list, backends, int(self.started))
            router_options = {"allowed_fails": model_list.router.allowed_fails,
                              "cooldown_seconds": model_list.router.cooldown_seconds}
        else:
            self.providers = build_providers(settings, self.http)
            self.router = LegacyCatalog(self.providers)
            router_options = {}
        self.admission = self._admission(settings)
        self.dispatch = Dispatcher(self.router, authorize=authorize, admission=self.admission,
                                   **router_options)

    def _admission(self, settings: Settings) -> Admission:
        """One concurrency cap per backend (its config's ``max_concurrency``, else
        GATEWAY_MAX_IN_FLIGHT_PER_UPSTREAM) and the worker's (issue 12)."""
        from .api.capacity import gone_check, note_backend  # the web glue; Flask-side

        limits = {p.name: getattr(getattr(p, "config", None), "max_concurrency", None)
                  for p in self.providers}
        return Admission(
            settings.gateway_max_in_flight, settings.gateway_max_in_flight_per_upstream,
            settings.gateway_max_waiting, settings.gateway_queue_wait_seconds,
            limits=limits, gone_factory=gone_check, note_backend=note_backend,
            max_sockets=settings.lmstudio_ws_max_connections)

    @property
    def router(self) -> FileCatalog | LegacyCatalog:
        return self._catalog

    @router.setter
    def router(self, catalog) -> None:
        """Swap the model list (tests put providers of their own in); calls follow it."""
        if not hasattr(catalog, "route"):  # a bare Router: the seed routing over its providers
            catalog = LegacyCatalog(catalog.providers)
        self._catalog = catalog
        if hasattr(self, "dispatch"):
            self.dispatch.catalog = catalog

    def authorize(self, model: str) -> None:
        """The allow-list check for a route that names a model without running it (show)."""
        self.dispatch.authorize(model)

    def close(self) -> None:
        for p in self.providers:
            p.close()
            http: Optional[object] = getattr(p, "http", None)
            if http is not None and http is not self.http:
                http.close()
        self.http.close()


def get_gateway() -> Gateway:
    return current_app.extensions["gateway"]
