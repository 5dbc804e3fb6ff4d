"""The process-wide objects every blueprint uses: settings, HTTP pool, providers, router."""

from __future__ import annotations

import time

from flask import current_app

from .auth import authorize_model
from .admission import Admission, AdmittedProvider
from .core.routing import Router
from .core.types import EmbeddingRequest, GenerationRequest
from .providers import HttpClient, build_providers
from .providers.base import Provider
from .settings import Settings


class Gateway:
    """Built once per process by ``create_app``; kept in ``app.extensions``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.started = time.time()
        self.http = HttpClient(settings)
        self.admission = Admission(
            settings.gateway_max_in_flight, settings.gateway_max_in_flight_per_upstream,
            settings.gateway_max_waiting, settings.gateway_queue_wait_seconds)
        from .api.capacity import gone_check, note_backend  # the web glue; Flask-side

        self.providers = [AdmittedProvider(p, self.admission, gone_check, note_backend)
                          for p in build_providers(settings, self.http)]
        self.router = Router(self.providers)

    def route(self, req: GenerationRequest | EmbeddingRequest, record) -> Provider:
        """Pick the provider for ``req``, check the key may use the model it will be
        served by, and note both on the request ``record``.

        Every model route goes through here, so the allow-list sees the routed
        model (``req.model`` after the router filled in a default), not the body.
        """
        provider = self.router.resolve(req)
        authorize_model(req.model)
        record.routed(req.model, provider.name, getattr(req, "stream", False))
        return provider

    def authorize(self, model: str) -> None:
        """The allow-list check for a route that names a model without running it (show)."""
        authorize_model(model)

    def close(self) -> None:
        for p in self.providers:
            p.close()
        self.http.close()


def get_gateway() -> Gateway:
    return current_app.extensions["gateway"]
