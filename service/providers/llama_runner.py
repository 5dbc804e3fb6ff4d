"""The token loop over a loaded ``llama_cpp.Llama``: sampling, stops, counts.

We drive ``Llama.generate`` ourselves instead of ``create_completion`` so that
token counts are exact (streamed or not), chosen-token probabilities are
available without ``logits_all``, stop sequences never leak a partial match,
and closing the iterator stops generation at the next token. A run given a
``cancelled`` check (the client left, a newer request superseded it) stops
within one step: between tokens, between the prompt's batches, which it
evaluates itself (``_prefill``), and, given an :class:`AbortSwitch`, inside
llama.cpp's evaluation of a batch or a token too.
"""

from __future__ import annotations

import codecs
import ctypes
import ctypes.util
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import llama_cpp
import numpy as np

from ..core.types import TokenLogprob


# Prompt tokens evaluated between two cancellation checks: a 256-token batch of even a
# 135M model takes seconds of one busy core; 32 keeps a cancelled prompt to a fraction of one.
PREFILL_STEP = 32
# How often a running request's cancel check is looked at while llama.cpp evaluates.
ABORT_POLL = 0.005


class AbortSwitch:
    """Stops ``llama_decode`` of one context between two graph nodes once a run is cancelled.

    A typing editor supersedes a request every few hundred milliseconds, and its
    new text is usually one short batch: evaluated as one uninterruptible call,
    a superseded run kept the model until that call ended (seconds on a loaded
    machine). llama.cpp asks a context's abort callback between graph nodes; a
    Python callback there would take the GIL hundreds of times per token, so the
    callback is C's ``atoi`` over a two-byte flag (``"0"``/``"1"``): no Python
    runs inside the evaluation. While a run is armed (:meth:`watching`), a
    watcher thread looks at its cancel check every :data:`ABORT_POLL` seconds
    and sets the flag; ``llama_decode`` then returns 2, llama.cpp drops the
    unfinished batch from the KV cache (finished batches stay, so the next
    request reuses them) and llama-cpp-python raises ``RuntimeError``, which the
    run turns into ``finish_reason="cancelled"``. Without a C library to call
    (``available`` False) runs stop between batches and tokens only.
    """

    def __init__(self, llama):
        self.llama = llama
        self._flag = ctypes.create_string_buffer(b"0", 2)
        self._lock = threading.Lock()
        self._armed: Optional[object] = None
        self.tripped = False
        self.aborts = 0  # evaluations stopped inside llama.cpp (for tests and benchmarks)
        libc = ctypes.util.find_library("c")
        ctx = getattr(getattr(llama, "_ctx", None), "ctx", None)
        self._callback = None
        if libc is None or ctx is None:
            return
        self._callback = ctypes.cast(ctypes.CDLL(libc).atoi, llama_cpp.ggml_abort_callback)
        llama_cpp.llama_set_abort_callback(ctx, self._callback,
                                           ctypes.cast(self._flag, ctypes.c_void_p))
        _quiet_aborts()

    @property
    def available(self) -> bool:
        return self._callback is not None

    @contextmanager
    def watching(self, cancelled: Optional[Callable[[], bool]]) -> Iterator[None]:
        """Abort llama.cpp's evaluations in this block once ``cancelled()`` turns true."""
        if cancelled is None or not self.available:
            yield
            return
        run, stop = object(), threading.Event()
        with self._lock:
            self._armed, self.tripped = run, False
            self._flag.value = b"0"
        watcher = threading.Thread(target=self._watch, args=(run, cancelled, stop),
                                   name="llama-abort", daemon=True)
        watcher.start()
        _armed_here.switch = self
        try:
            yield
        finally:
            _armed_here.switch = None
            stop.set()
            with self._lock:
                self._armed = None
                self._flag.value = b"0"  # the next run starts unaborted
            watcher.join()

    def _watch(self, run: object, cancelled: Callable[[], bool], stop: threading.Event) -> None:
        while not stop.wait(ABORT_POLL):
            if cancelled():
                with self._lock:
                    if self._armed is run:
                        self._flag.value = b"1"
                        self.tripped = True
                return

    def aborted(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from an evaluation) is this switch's abort; counts it."""
        if self.tripped and isinstance(exc, RuntimeError) and "returned 2" in str(exc):
            self.aborts += 1
            return True
        return False


@dataclass(slots=True)
class Sampling:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: Optional[int] = None


@dataclass(slots=True)
class Piece:
    """Text released to the caller, with the log-probabilities of its tokens."""

    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)


class _ProbeLogits:
    """A logits processor that keeps the log-softmax of the last step."""

    __slots__ = ("last",)

    def __init__(self):
        self.last: Optional[np.ndarray] = None

    def __call__(self, _input_ids, logits):
        x = logits.astype(np.float64)
        m = x.max()
        self.last = x - (m + np.log(np.exp(x - m).sum()))
        return logits


class DryPenalty:
    """The DRY ("don't repeat yourself") penalty, over the run's own output only.

    A token that would extend a sequence the output already contains is pushed
    down by ``multiplier * base ** (match_length - allowed_length)``; matches do
    not extend across sequence breakers (tokens holding a quote, newline, colon
    or comma), so closing a JSON string is never penalised; ``frequency`` also
    pushes down each non-breaker token by its count so far (a loop that varies,
    ``Project1/Project2/…``, ends too). Used on constrained runs, where a small
    model looping inside a string would otherwise run to ``max_tokens`` and
    leave a call unfinished. Copying from the prompt is free.
    """

    def __init__(self, llama, n_prompt: int, multiplier: float = 2.0, base: float = 2.0,
                 allowed_length: int = 2, breakers: str = '"\n:,', frequency: float = 0.5):
        self.n_prompt = n_prompt
        self.frequency = frequency
        self.multiplier = multiplier
        self.base = base
        self.allowed = allowed_length
        self._llama = llama
        self._breaker_chars = breakers
        self._breaks: dict[int, bool] = {}

    def _is_breaker(self, token: int) -> bool:
        hit = self._breaks.get(token)
        if hit is None:
            text = self._llama.detokenize([token]).decode("utf-8", errors="replace")
            hit = self._breaks[token] = any(c in text for c in self._breaker_chars)
        return hit

    def __call__(self, input_ids, logits):
        out = list(input_ids[self.n_prompt:])
        n = len(out)
        if n < 2:
            return logits
        longest: dict[int, int] = {}
        last = out[-1]
        if self._is_breaker(last):
            return logits
        for j in range(n - 1):
            if out[j] != last:
                continue
            length = 1
            while (length <= j and out[j - length] == out[n - 1 - length]
                   and not self._is_breaker(out[j - length])):
                length += 1
            follower = out[j + 1]
            if length > longest.get(follower, 0):
                longest[follower] = length
        for token, length in longest.items():
            if length >= self.allowed:
                logits[token] -= self.multiplier * self.base ** (length - self.allowed)
        if self.frequency:
            counts: dict[int, int] = {}
            for t in out:
                if not self._is_breaker(t):
                    counts[t] = counts.get(t, 0) + 1
            for t, c in counts.items():
                logits[t] -= self.frequency * c
        return logits


_armed_here = threading.local()  # the AbortSwitch armed by this thread's run, if any
_log_filter = None


def _quiet_aborts() -> None:
    """Keep llama.cpp's report of a deliberate abort (a warning and three error lines per
    aborted evaluation, from the thread that called it) off stderr; everything else goes
    to llama-cpp-python's own log callback as before."""
    global _log_filter
    if _log_filter is not None:
        return
    from llama_cpp import _logger

    forward = _logger.llama_log_callback

    @llama_cpp.llama_log_callback
    def log_filter(level, text, user_data):
        switch = getattr(_armed_here, "switch", None)
        if switch is None or not switch.tripped:
            forward(level, text, user_data)

    _log_filter = log_filter  # llama.cpp keeps only the pointer
    llama_cpp.llama_log_set(log_filter, ctypes.c_void_p(0))


class TokenRun:
    """Iterate to get text pieces; ``finish_reason`` and ``completion_tokens`` after."""

    def __init__(self, llama, prompt_tokens: list[int], *, max_tokens: int, stop: list[str],
                 sampling: Sampling, grammar=None, want_logprobs: bool = False,
                 top_logprobs: int = 0, dry: bool = False,
                 cancelled: Optional[Callable[[], bool]] = None,
                 reuse_prompt: bool = True, abort: Optional[AbortSwitch] = None):
        self.llama = llama
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.stop = [s for s in stop if s]
        self.sampling = sampling
        self.grammar = grammar
        self.want_logprobs = want_logprobs
        self.top_logprobs = top_logprobs  # alternatives reported per token
        self.cancelled = cancelled
        self.abort = abort
        self.finish_reason: Optional[str] = None
        self.stop_hit: Optional[str] = None  # the stop string that ended the run
        self.completion_tokens = 0
        self.reuse_prompt = reuse_prompt
        self.cached_tokens = 0       # prompt tokens llama.cpp's KV cache already held
        self.prompt_ms: Optional[float] = None  # prompt evaluation + first token
        self._probe = _ProbeLogits() if want_logprobs else None
        self._dry = DryPenalty(llama, len(prompt_tokens)) if dry else None

    def __iter__(self) -> Iterator[Piece]:
        if self.abort is None:
            yield from self._run()
            return
        with self.abort.watching(self.cancelled):
            try:
                yield from self._run()
            except RuntimeError as exc:
                if not self.abort.aborted(exc):
                    raise
                self.finish_reason = "cancelled"

    def _run(self) -> Iterator[Piece]:
        llama, s = self.llama, self.sampling
        if s.seed is not None:
            llama.set_seed(s.seed)
        # Incremental: a character split across tokens is held back until it is whole.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""             # decoded text not yet released (may start a stop string)
        pending_lp: list[TokenLogprob] = []
        longest_stop = max((len(x) for x in self.stop), default=0)
        if self.reuse_prompt:  # Llama.generate keeps the common prefix of its KV cache itself
            self.cached_tokens = cached_prefix(llama, self.prompt_tokens)
        else:
            llama.reset()
        started = time.perf_counter()
        if not self._prefill():
            self.finish_reason = "cancelled"
            return
        gen = llama.generate(
            self.prompt_tokens, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p,
            temp=s.temperature, repeat_penalty=s.repeat_penalty,
            presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
            logits_processor=[p for p in (self._probe, self._dry) if p] or None,
            grammar=self.grammar)
        try:
            for token in gen:
                if self.prompt_ms is None:
                    self.prompt_ms = (time.perf_counter() - started) * 1000
                if self.cancelled is not None and self.cancelled():
                    self.finish_reason = "cancelled"
                    break
                self.completion_tokens += 1
                if self._probe is not None and self._probe.last is not None:
                    pending_lp.append(self._logprob(token, self._probe.last))
                if _is_eog(llama, token):
                    self.finish_reason = "stop"
                    break
                pending += decoder.decode(llama.detokenize([token]))
                hit = _first_stop(pending, self.stop)
                if hit is not None:
                    self.stop_hit = next(x for x in self.stop if pending.find(x) == hit)
                    pending = pending[:hit]
                    self.finish_reason = "stop"
                    break
                keep = _partial_stop_len(pending, self.stop, longest_stop)
                if len(pending) > keep:
                    out = pending[: len(pending) - keep] if keep else pending
                    pending = pending[len(out):]
                    yield Piece(out, pending_lp)
                    pending_lp = []
                if self.completion_tokens >= self.max_tokens:
                    self.finish_reason = "length"
                    break
            else:
                self.finish_reason = self.finish_reason or "length"
        finally:
            gen.close()
        # No final decode: bytes still buffered are a character cut short (by max_tokens or a
        # stop), which would come out as U+FFFD; they are dropped instead.
        if pending or pending_lp:
            yield Piece(pending, pending_lp)

    def _logprob(self, token: int, row: np.ndarray) -> TokenLogprob:
        """The chosen token's entry, with the ``top_logprobs`` most likely alternatives."""
        entry = self._token(token, float(row[token]))
        k = min(self.top_logprobs, row.shape[0])
        if k > 0:
            best = np.argpartition(row, -k)[-k:]
            entry.top = [self._token(int(t), float(row[t]))
                         for t in best[np.argsort(row[best])[::-1]]]
        return entry

    def _token(self, token: int, logprob: float) -> TokenLogprob:
        raw = self.llama.detokenize([token])
        return TokenLogprob(token=raw.decode("utf-8", errors="replace"), logprob=logprob,
                            bytes=list(raw))

    def _prefill(self) -> bool:
        """Evaluate all but the prompt's last token a batch at a time; False once cancelled.

        ``Llama.generate`` then finds them cached as a prefix and evaluates the
        last token only. Short prompts (one batch) are left to ``generate``.
        """
        if self.cancelled is None:
            return True
        llama, tokens = self.llama, self.prompt_tokens[:-1]
        cached = self.cached_tokens  # what the KV cache holds of them (0 after a reset)
        if len(tokens) - cached <= PREFILL_STEP:
            return not self.cancelled()
        llama.n_tokens = cached  # eval() drops the KV cache past this point
        for i in range(cached, len(tokens), PREFILL_STEP):
            if self.cancelled():
                return False
            llama.eval(tokens[i:i + PREFILL_STEP])
        return True


def cached_prefix(llama, tokens: list[int]) -> int:
    """How many leading ``tokens`` the model's KV cache holds already (at least one token is
    always evaluated again, for fresh logits)."""
    held = llama._input_ids[: llama.n_tokens]
    n = 0
    for a, b in zip(held, tokens):
        if a != b:
            break
        n += 1
    return min(n, max(0, len(tokens) - 1))


def _is_eog(llama, token: int) -> bool:
    return bool(llama_cpp.llama_vocab_is_eog(llama._model.vocab, token))


def _first_stop(text: str, stops: list[str]) -> Optional[int]:
    found = [text.find(s) for s in stops]
    found = [i for i in found if i >= 0]
    return min(found) if found else None


def _partial_stop_len(text: str, stops: list[str], longest: int) -> int:
    """Length of the longest tail of ``text`` that begins some stop string."""
    for n in range(min(longest - 1, len(text)), 0, -1):
        tail = text[-n:]
        if any(s.startswith(tail) for s in stops):
            return n
    return 0


class LazyGrammarRun:
    """A run that starts unconstrained and restarts under ``grammar`` if it opens with ``trigger``.

    Text answers pay nothing for the grammar; once the model's first non-blank
    output starts with ``trigger`` (e.g. ``<`` of ``<tool_call>``) generation is
    restarted from the same prompt (its KV cache is reused) with the grammar on.
    Same interface as :class:`TokenRun`.
    """

    def __init__(self, free: TokenRun, constrained: TokenRun, trigger: str):
        self.free = free
        self.constrained = constrained
        self.trigger = trigger
        self.triggered = False
        self._current = free

    @property
    def finish_reason(self) -> Optional[str]:
        return self._current.finish_reason

    @property
    def stop_hit(self) -> Optional[str]:
        return self._current.stop_hit

    @property
    def cached_tokens(self) -> int:
        return self.free.cached_tokens

    @property
    def prompt_ms(self) -> Optional[float]:
        return self.free.prompt_ms

    @property
    def completion_tokens(self) -> int:
        # The answer's tokens: once triggered, the free run's opening ("<") was thrown away and
        # generated again under the grammar, so counting it too would overshoot max_tokens.
        return self.constrained.completion_tokens if self.triggered else self.free.completion_tokens

    def __iter__(self) -> Iterator[Piece]:
        it = iter(self.free)
        seen = ""
        try:
            for piece in it:
                if not seen.strip():
                    seen += piece.text
                    if seen.lstrip().startswith(self.trigger):
                        break
                    if not seen.strip():
                        continue  # blank so far: undecided
                    piece = Piece(seen, piece.logprobs)
                yield piece
            else:
                if seen and not seen.strip():
                    yield Piece(seen)
                return
        finally:
            it.close()
        self.triggered = True
        self._current = self.constrained
        yield from self.constrained
