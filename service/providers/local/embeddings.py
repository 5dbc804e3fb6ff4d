"""Embeddings from a GGUF model in llama.cpp's embedding mode.

A second ``Llama(embedding=True)`` instance on ``LOCAL_EMBEDDING_MODEL_PATH``
(default: the generation model's own GGUF), loaded on first use and
serialised by its own :class:`ModelGate`, so embedding never waits for a
running generation. Vectors are mean-pooled over the input's tokens and
L2-normalised, like OpenAI's. A chat model such as SmolLM2-135M is a weak
embedder (fine for tests and rough similarity); point the variable at a real
embedding GGUF (nomic-embed, bge, e5…) for retrieval.

Token-array inputs are read as ids of this model's vocabulary.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Optional

from ...core import errors
from ..config import LocalConfig

log = logging.getLogger(__name__)


class LocalEmbedder:
    def __init__(self, config: LocalConfig, path: Path, gate):
        self.config = config
        self.path = path
        self.gate = gate
        self._llama = None
        self._load_lock = threading.Lock()

    def _ensure_loaded(self):
        if self._llama is None:
            with self._load_lock:
                if self._llama is None:
                    self._llama = self._load()
        return self._llama

    def _load(self):
        import llama_cpp

        n_ctx = self.config.embedding_n_ctx
        start = time.monotonic()
        try:
            llama = llama_cpp.Llama(
                model_path=str(self.path), embedding=True, n_ctx=n_ctx, n_batch=n_ctx,
                n_ubatch=n_ctx, n_threads=self.config.n_threads,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)
        except Exception as exc:  # a bad GGUF must not become a traceback
            raise errors.ModelNotLoaded(
                f"could not load embedding model {self.path.name}: {exc}") from exc
        log.info("loaded embedding model %s in %.2fs", self.path.name, time.monotonic() - start)
        return llama

    @property
    def dimensions(self) -> int:
        return self._ensure_loaded().n_embd()

    def embed(self, inputs: list[str] | list[list[int]], model: str,
              dimensions: Optional[int] = None,
              truncate: bool = False) -> tuple[list[list[float]], int]:
        """One normalised vector per input, and the number of tokens read; with
        ``truncate`` an input longer than the context is cut to it (else a 400)."""
        llama = self._ensure_loaded()
        if dimensions is not None and dimensions != llama.n_embd():
            raise errors.UnsupportedFeature(
                f"model '{model}' produces {llama.n_embd()}-dimensional embeddings and cannot "
                f"shorten them; omit 'dimensions'", param="dimensions")
        texts = [self._text(llama, x, i) for i, x in enumerate(inputs)]
        self.gate.acquire(f"embedding model '{model}'")
        vectors, count = [], 0
        try:
            # One input per decode: batching mixes sequences and changes the last bits,
            # and identical inputs must give identical vectors.
            for text in texts:
                vector, n = llama.embed(text, normalize=True, truncate=truncate,
                                        return_count=True)
                vectors.append(vector)
                count += n
        except ValueError as exc:  # an input longer than the context
            raise errors.InvalidRequest(
                f"an input is longer than the embedding context of {llama.n_ctx()} tokens "
                f"(LOCAL_EMBEDDING_N_CTX): {exc}", param="input",
                code="context_length_exceeded") from exc
        finally:
            self.gate.release()
        return [list(map(float, v)) for v in vectors], count

    @staticmethod
    def _text(llama, item, i: int) -> str:
        if isinstance(item, str):
            if not item:
                raise errors.InvalidRequest(f"input[{i}] is an empty string", param="input")
            text = item
        else:
            n_vocab = llama.n_vocab()
            if not item or any(not 0 <= t < n_vocab for t in item):
                raise errors.InvalidRequest(
                    f"input[{i}] must be a non-empty list of token ids below {n_vocab}",
                    param="input")
            text = llama.detokenize(item).decode("utf-8", errors="replace")
        # llama.cpp cannot embed nothing (llama_decode fails, and may abort the process):
        # only special tokens, or characters the tokenizer drops, leave no text to embed.
        if not llama.tokenize(text.encode("utf-8"), add_bos=False, special=False):
            raise errors.InvalidRequest(
                f"input[{i}] has no text the model can read (only special tokens or "
                f"characters its tokenizer drops)", param="input")
        return text

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None
