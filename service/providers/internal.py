"""The internal completion API (``INTERNAL_COMPLETIONS_URL``, seed 000).

It takes ``/v1/completions``-style bodies at one URL and answers in the same
format (streaming as SSE when asked), so it is the OpenAI-compatible relay
pointed at a single endpoint, for text completions only. It lists no models:
it is reached as the default provider for completion requests.
"""

from __future__ import annotations

from ..core.types import GenerationRequest, ModelInfo
from .openai_compat import OpenAICompatProvider


class InternalProvider(OpenAICompatProvider):
    name = "internal"
    supports_chat = False
    supports_images = False

    def list_models(self) -> list[ModelInfo]:
        return []

    def _url(self, request: GenerationRequest) -> str:
        return self.base_url
