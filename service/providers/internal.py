"""The internal completion API (``INTERNAL_COMPLETIONS_URL``, seed 000).

It takes ``/v1/completions``-style bodies at one URL and answers in the same
format (streaming as SSE when asked), so it is the OpenAI-compatible relay
pointed at a single endpoint, for text completions only. It lists no models:
it is reached as the default provider for completion requests.
"""

from __future__ import annotations

from typing import Optional

from ..core import errors
from ..core.types import GenerationRequest, ModelInfo
from .config import InternalConfig
from .openai_compat import OpenAICompatProvider


class InternalProvider(OpenAICompatProvider):
    name = "internal"
    supports_chat = False
    supports_images = False
    supports_embeddings = False
    config: InternalConfig

    @staticmethod
    def _endpoint(config: InternalConfig) -> str:
        return config.url

    def list_models(self) -> list[ModelInfo]:
        return []

    def _url(self, request: GenerationRequest) -> str:
        return self.base_url

    def probe(self, timeout: float = 5.0) -> Optional[str]:
        """Ready when the URL answers at all (a GET on a POST endpoint may say 405):
        only a failed connection, a timeout, a 5xx or an authentication refusal count."""
        try:
            resp = self._send("GET", self.base_url, timeout=(timeout, timeout),
                              check_status=False)
        except errors.GatewayError as exc:
            return exc.message
        status = resp.response.status_code
        resp.close()
        if status >= 500 or status in (401, 403):
            return f"{self.label} answered HTTP {status}"
        return None
