"""The provider protocol: what every backend offers the API families.

A provider takes the internal :class:`~service.core.types.GenerationRequest`
and returns a :class:`~service.core.types.Generation` or a
:class:`~service.core.types.ChunkStream`. It raises only
:class:`~service.core.errors.GatewayError` subclasses, and never imports Flask.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional

import orjson

from ..core import errors
from ..core.types import (
    ChunkStream, EmbeddingRequest, Embeddings, Generation, GenerationRequest, ModelInfo,
)

# Returns True once the client has gone away; providers poll it while working.
DisconnectCheck = Callable[[], bool]


class Provider(ABC):
    """A backend. Thread-safe: one instance serves every request of a process."""

    #: Short stable name used in logs, metrics and routing ("local", "openai"…).
    name: str = ""
    supports_chat: bool = True
    supports_completion: bool = True
    supports_images: bool = False
    supports_embeddings: bool = False

    @abstractmethod
    def list_models(self) -> list[ModelInfo]:
        """Models this provider serves by name (may query the backend, cached)."""

    def owns(self, model: str) -> bool:
        """True when ``model`` is one of this provider's model ids exactly."""
        return any(m.id == model for m in self.list_models())

    def model_info(self, model: str) -> Optional[ModelInfo]:
        for m in self.list_models():
            if m.id == model:
                return m
        return None

    def loaded_models(self) -> list[ModelInfo]:
        """Models whose weights this process holds in memory now (Ollama's ``/api/ps``)."""
        return []

    @abstractmethod
    def generate(self, request: GenerationRequest,
                 disconnected: Optional[DisconnectCheck] = None) -> Generation:
        """Run a request to completion."""

    def generate_batch(self, requests: list[GenerationRequest],
                       disconnected: Optional[DisconnectCheck] = None) -> list[Generation]:
        """Run requests that differ only in their prompt (a legacy completions batch);
        one after another here, as one call where the backend takes a list."""
        return [self.generate(r, disconnected) for r in requests]

    @abstractmethod
    def stream(self, request: GenerationRequest) -> ChunkStream:
        """Start a streamed request; the backend has accepted it when this returns."""

    def count_tokens(self, request: GenerationRequest) -> int:
        """The prompt's size in tokens; estimated from its text unless the backend can count."""
        from ..core.metering import estimated_prompt_tokens, estimate_tokens

        tools = sum(estimate_tokens(orjson.dumps(t.parameters or {}).decode() + t.name
                                    + (t.description or "")) for t in request.tools)
        return estimated_prompt_tokens(request) + tools

    def embed(self, request: EmbeddingRequest) -> Embeddings:
        """Embed ``request.inputs``; backends without embeddings answer 501."""
        raise errors.NotSupported(
            f"model '{request.model}' ({self.name} backend) does not offer embeddings")

    def is_ready(self) -> bool:
        """True when the provider can serve now (model loaded, client built)."""
        return True

    def probe(self, timeout: float = 5.0) -> Optional[str]:
        """Why the backend cannot serve now, or None when it can (``/readyz``).

        HTTP backends ask their upstream something cheap (results are cached by
        the caller); the default trusts :meth:`is_ready`.
        """
        return None if self.is_ready() else f"the {self.name} backend is not ready"

    def reload(self) -> None:
        """Reload the model or rebuild clients; requests in flight finish first."""

    def close(self) -> None:
        """Release resources at shutdown."""
