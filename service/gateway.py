"""The process-wide objects every blueprint uses: settings, HTTP pool, providers, router."""

from __future__ import annotations

import time

from flask import current_app

from .core.routing import Router
from .providers import HttpClient, build_providers
from .settings import Settings


class Gateway:
    """Built once per process by ``create_app``; kept in ``app.extensions``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.started = time.time()
        self.http = HttpClient(settings)
        self.providers = build_providers(settings, self.http)
        self.router = Router(self.providers)

    def close(self) -> None:
        for p in self.providers:
            p.close()
        self.http.close()


def get_gateway() -> Gateway:
    return current_app.extensions["gateway"]
