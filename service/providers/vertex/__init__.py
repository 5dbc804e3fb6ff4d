"""Vertex AI Gemini over REST: the provider (:mod:`.provider`) and the conversions between
the internal model and Gemini's JSON (:mod:`.convert`)."""

from .provider import DEFAULT_GEMINI_MODEL, UPSTREAM, VertexProvider, models_url

__all__ = ["DEFAULT_GEMINI_MODEL", "UPSTREAM", "VertexProvider", "models_url"]
