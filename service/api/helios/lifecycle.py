"""Which backend serves Helios, whether it is ready, and ``/restart`` in the background.

A restart calls the provider's ``reload()`` in a thread: the local provider
waits for generations in flight and swaps the model; HTTP providers rebuild
what they cache. While it runs, ``/health`` answers 503 and ``/complete`` 503
``MODEL_NOT_LOADED``; requests already generating finish normally. Reloads
are per worker process.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

from ...core import errors
from ...core.routing import Router
from ...core.types import GenerationRequest
from ...providers.base import Provider
from ...settings import Settings

log = logging.getLogger(__name__)


class ModelLifecycle:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.reloading = False
        self.last_error: Optional[str] = None
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def target(self, router: Router) -> tuple[Provider, str]:
        """The provider and model id serving ``/complete`` (``HELIOS_MODEL`` or the default)."""
        req = GenerationRequest(kind="completion", model=self.settings.helios_model or "")
        provider = router.resolve(req)
        return provider, req.model

    def try_target(self, router: Router) -> tuple[Optional[Provider], Optional[str]]:
        try:
            return self.target(router)
        except errors.GatewayError as exc:
            log.warning("no backend for Helios: %s", exc.message)
            return None, self.settings.helios_model

    def ready(self, provider: Optional[Provider]) -> bool:
        return provider is not None and not self.reloading and provider.is_ready()

    def status(self, provider: Optional[Provider]) -> str:
        """``healthy``, ``reloading``, ``loading`` or ``unhealthy``."""
        if self.reloading:
            return "reloading"
        if provider is None:
            return "unhealthy"
        if provider.is_ready():
            return "healthy"
        return "loading" if getattr(provider, "loading", False) else "unhealthy"

    def restart(self, provider: Provider) -> bool:
        """Start reloading ``provider`` in the background; False if a reload is running."""
        with self._lock:
            if self.reloading:
                return False
            self.reloading = True
            self._thread = threading.Thread(target=self._reload, args=(provider,),
                                            name="helios-restart", daemon=True)
            self._thread.start()
        return True

    def _reload(self, provider: Provider) -> None:
        try:
            provider.reload()
            self.last_error = None
            log.info("helios restart: %s backend reloaded", provider.name)
        except Exception as exc:  # noqa: BLE001 - reported by /health, never raised
            self.last_error = str(exc)
            log.exception("helios restart: reloading the %s backend failed", provider.name)
        finally:
            self.reloading = False

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for a running reload (shutdown, tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
