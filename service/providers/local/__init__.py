"""Local GGUF models through llama-cpp-python: the provider (:mod:`.provider`) and its
embedding-mode instance (:mod:`.embeddings`). Imported only when a local backend is
configured, so a proxy-only install never loads ``llama_cpp``."""

from .provider import (DEFAULT_MODEL_PACKAGE, LocalProvider, ModelGate, RequestCancelled,
                       default_model_path, model_id_for)

__all__ = ["DEFAULT_MODEL_PACKAGE", "LocalProvider", "ModelGate", "RequestCancelled",
           "default_model_path", "model_id_for"]
