"""Vertex AI Gemini over REST, through the shared pooled session.

URL: ``{root}/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}/publishers/
google/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse`` when
streaming, ``:predict`` for embeddings). ``root`` is the regional host
(``https://{location}-aiplatform.googleapis.com``), the global host for
``VERTEX_LOCATION=global``, or ``VERTEX_BASE_URL`` (its path prefix kept; when it
already ends in ``/v1`` or ``/v1beta1`` no version is added).

Every call carries ``Authorization: Bearer <token>`` (Helix or ADC, see
``tokens``) and ``CUSTOM_HEADER_NAME: CUSTOM_USER_ID``, and verifies TLS with
``SSL_CERT_FILE`` when set. 429/5xx are retried by the shared client before any
byte reaches the client; a 401 refreshes the token and retries once.

Models owned for routing: ``VERTEX_MODEL``, ``VERTEX_EMBEDDING_MODEL``, any
``gemini-*`` and Vertex embedding model name, and the retired PaLM names, which
are served by the configured Gemini model (logged once per name).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Optional
from urllib.parse import quote

from ...core import errors
from ...core.metering import estimated_prompt_tokens
from ...core.types import (
    ChunkStream, EmbeddingRequest, Embeddings, Generation, GenerationRequest, ModelInfo,
    StreamMeter,
)
from . import convert as vc
from ..base import DisconnectCheck, Provider
from ..config import VertexConfig
from ..http_client import HttpClient, UpstreamResponse
from ..tokens import TokenSource, build_token_source

log = logging.getLogger(__name__)

DEFAULT_GEMINI_MODEL = "gemini-2.5-flash"
UPSTREAM = "vertex"  # the seed backend's upstream metrics label
_VERSIONED = re.compile(r"/v1(beta1)?$")


def models_url(config: VertexConfig) -> str:
    """``…/v1/projects/{p}/locations/{l}/publishers/google/models`` for this backend."""
    location = config.location
    if config.base_url:
        root = config.base_url.rstrip("/")
    elif location == "global":
        root = "https://aiplatform.googleapis.com"
    else:
        root = f"https://{location}-aiplatform.googleapis.com"
    if not _VERSIONED.search(root):
        root += "/v1"
    return (f"{root}/projects/{quote(config.project, safe='')}"
            f"/locations/{location}/publishers/google/models")


class VertexProvider(Provider):
    name = "vertex"
    supports_images = True
    supports_embeddings = True

    def __init__(self, config: VertexConfig, http: HttpClient,
                 tokens: Optional[TokenSource] = None):
        self.config = config
        self.http = http
        self.name = config.name
        self.label = config.label  # the ``upstream`` metrics label: the backend's name
        self.base = models_url(config)
        self.model = _bare(config.model)
        if vc.is_palm(self.model):
            log.warning("VERTEX_MODEL=%s is a retired PaLM model; using %s instead",
                        self.model, DEFAULT_GEMINI_MODEL)
            self.model = DEFAULT_GEMINI_MODEL
        self.embedding_model = config.embedding_model
        self.thinking_budget = config.thinking_budget
        self.verify = config.verify
        self.headers: dict[str, str] = dict(config.headers)
        self.tokens = tokens or build_token_source(config.tokens)
        self._warned: set[str] = set()
        self._warned_lock = threading.Lock()

    # ---- models ---------------------------------------------------------------
    def list_models(self) -> list[ModelInfo]:
        return [self._info(self.model), self._info(self.embedding_model)]

    def owns(self, model: str) -> bool:
        name = _bare(model)
        return (name in (self.model, self.embedding_model) or name.startswith("gemini-")
                or vc.is_palm(name) or vc.is_embedding_model(name))

    def model_info(self, model: str) -> Optional[ModelInfo]:
        return self._info(model) if self.owns(model) else None

    def _info(self, model: str) -> ModelInfo:
        embedding = vc.is_embedding_model(_bare(model)) or model == self.embedding_model
        return ModelInfo(id=model, provider=self.name, owned_by="google",
                         supports_tools=not embedding, supports_vision=not embedding,
                         supports_embeddings=embedding)

    def resolve_model(self, model: str) -> str:
        """The Gemini model that serves ``model`` (PaLM names -> VERTEX_MODEL)."""
        name = _bare(model) or self.model
        if vc.is_palm(name):
            with self._warned_lock:
                first = name not in self._warned
                self._warned.add(name)
            if first:
                log.warning("model '%s' is a retired PaLM model (shut down 2025-04-09); "
                            "serving it with %s (VERTEX_MODEL)", name, self.model)
            return self.model
        return name

    # ---- calls ---------------------------------------------------------------------
    def _send(self, url: str, body: dict, *, stream: bool = False) -> UpstreamResponse:
        """POST with the current token; on 401 refresh it and retry once."""
        for attempt in (1, 2):
            token = self.tokens.token()
            headers = dict(self.headers)
            headers["Authorization"] = f"Bearer {token}"
            try:
                return self.http.send("POST", url, body=body, headers=headers, stream=stream,
                                      verify=self.verify, upstream=self.label)
            except errors.GatewayError as exc:
                if exc.upstream_status == 401 and attempt == 1:
                    log.warning("vertex rejected the access token (401); refreshing it once")
                    self.tokens.invalidate(token)
                    continue
                raise
        raise AssertionError("unreachable")

    def _url(self, model: str, method: str) -> str:
        return f"{self.base}/{quote(model, safe='@.-_')}:{method}"

    def generate(self, request: GenerationRequest,
                 disconnected: Optional[DisconnectCheck] = None) -> Generation:
        model = self.resolve_model(request.model)
        body = vc.encode_request(request, model, self.thinking_budget)
        data = self._send(self._url(model, "generateContent"), body).json()
        gen = vc.decode_response(data, request, model)
        gen.provider = self.name
        return gen

    def stream(self, request: GenerationRequest) -> ChunkStream:
        model = self.resolve_model(request.model)
        body = vc.encode_request(request, model, self.thinking_budget)
        resp = self._send(self._url(model, "streamGenerateContent") + "?alt=sse", body,
                          stream=True)
        chunks = resp.watch(vc.decode_stream(resp.iter_lines(), request))
        return ChunkStream(chunks, resp.close, model=model, provider=self.name,
                           meter=StreamMeter(estimated_prompt_tokens(request)))

    def embed(self, request: EmbeddingRequest) -> Embeddings:
        model = _bare(request.model) or self.embedding_model
        if not (vc.is_embedding_model(model) or model == self.embedding_model):
            raise errors.InvalidRequest(
                f"'{request.model}' is not a Vertex embedding model; use e.g. "
                f"'{self.embedding_model}' (VERTEX_EMBEDDING_MODEL)", param="model")
        texts = request.inputs
        if any(not isinstance(t, str) for t in texts):
            raise errors.InvalidRequest("Vertex embeds text; send strings, not token ids",
                                        param="input")
        # gemini-embedding models take one instance per call, the others up to 250.
        batch = 1 if model.startswith("gemini-embedding") else 250
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), batch):
            part = texts[start:start + batch]
            data = self._send(self._url(model, "predict"),
                              vc.encode_embeddings(part, request.dimensions)).json()
            got, n = vc.decode_embeddings(data, len(part))
            vectors += got
            tokens += n
        return Embeddings(model=model, vectors=vectors, prompt_tokens=tokens, provider=self.name)


def _bare(model: str) -> str:
    """``google/gemini-2.5-flash`` (Vertex's OpenAI-style name) -> ``gemini-2.5-flash``."""
    return model.removeprefix("google/") if model else ""
