"""Model name -> provider.

Rule (docs/model-routing.md, "Without MODELS_FILE"): a request's ``model`` goes
to the provider that lists exactly that id (the local model's id, or an id an
upstream's ``/v1/models`` returned). Any other name goes, unchanged, to the
default provider: the first configured of internal > OpenAI-compatible (LM
Studio) > Vertex > local that can serve the request's kind (the internal API
serves text completions only).
"""

from __future__ import annotations

from typing import Optional

from . import errors
from .types import EmbeddingRequest, GenerationRequest, ModelInfo
from ..providers.base import Provider


class Router:
    def __init__(self, providers: list[Provider]):
        if not providers:
            raise ValueError("at least one provider is required")
        self.providers = providers  # in default-precedence order

    def default(self, kind: str = "chat") -> Provider:
        for p in self.providers:
            if _serves(p, kind):
                return p
        if kind == "embedding":
            raise errors.NotSupported("no configured backend offers embeddings")
        raise errors.InvalidRequest(f"no configured backend serves {kind} requests")

    def by_name(self, name: str) -> Optional[Provider]:
        for p in self.providers:
            if p.name == name:
                return p
        return None

    def resolve(self, request: GenerationRequest | EmbeddingRequest) -> Provider:
        """Pick the provider and fill ``request.model`` when the client left it empty."""
        if request.model:
            for p in self.providers:
                if p.owns(request.model):
                    self._check_kind(p, request)
                    return p
        provider = self.default(request.kind)
        if not request.model:
            models = provider.list_models()
            if not models:
                raise errors.InvalidRequest("'model' is required", param="model")
            request.model = models[0].id
        return provider

    @staticmethod
    def _check_kind(p: Provider, request: GenerationRequest) -> None:
        if not _serves(p, request.kind):
            raise errors.InvalidRequest(
                f"model '{request.model}' does not serve {request.kind} requests", param="model")

    def list_models(self) -> list[ModelInfo]:
        seen, out = set(), []
        for p in self.providers:
            for m in p.list_models():
                if m.id not in seen:
                    seen.add(m.id)
                    out.append(m)
        return out

    def find_model(self, model: str) -> Optional[ModelInfo]:
        for p in self.providers:
            info = p.model_info(model)
            if info is not None:
                return info
        return None


def _serves(p: Provider, kind: str) -> bool:
    if kind == "chat":
        return p.supports_chat
    if kind == "embedding":
        return p.supports_embeddings
    return p.supports_completion
