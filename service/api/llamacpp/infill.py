"""``/infill``: llama.cpp's fill-in-the-middle request as one text completion with a suffix.

Request: ``input_extra`` chunks (newest kept, within ``INFILL_MAX_EXTRA_CHARS``),
each after llama.cpp's separator for models without a file-separator token,
then the end of ``input_prefix`` (``HELIOS_MAX_PREFIX_CHARS``) and ``prompt``
form the text before the gap; the start of ``input_suffix``
(``HELIOS_MAX_SUFFIX_CHARS``) is the suffix. Any backend serves it: the local
model with its FIM tokens or the documented fallback, an upstream's
``suffix``, Vertex's FIM instruction.

Generation stops as llama.cpp's does: ``n_predict`` tokens, the time budget
``t_max_predict_ms`` (at a newline once spent), or a line indented less than
``n_indent`` (that line is cut); and, as on ``/complete``, at the typing pace's
deadline (:mod:`..helios.pace`; ``stop_type`` "limit", as for the time budget).
:class:`InfillRun` yields the text as it is released and knows afterwards why
it ended and how long each phase took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Optional

from ...core import errors
from ...core.types import ChunkStream, GenerationRequest
from ...settings import Settings
from ..budgets import TimeBudget
from ..errors import to_gateway_error
from ..helios import prompting
from ..helios.pace import Arrival
from .protocol import ExtraChunk, InfillRequest

#: llama.cpp's chunk separator when the model has no file-separator token.
SNIPPET = "\n\n--- snippet ---\n\n"


def extra_context(chunks: list[ExtraChunk], max_chars: int) -> str:
    """The newest chunks that fit in ``max_chars``, in their order, each after SNIPPET."""
    kept: list[str] = []
    used = 0
    for chunk in reversed(chunks):
        piece = SNIPPET + chunk.text
        if used + len(piece) > max_chars:
            break
        kept.append(piece)
        used += len(piece)
    return "".join(reversed(kept)) + ("\n\n" if kept else "")


def generation_request(w: InfillRequest, s: Settings) -> GenerationRequest:
    if w.n_predict > s.helios_max_tokens_limit:
        raise errors.InvalidRequest(
            f"'n_predict' must be at most {s.helios_max_tokens_limit} (HELIOS_MAX_TOKENS_LIMIT)",
            param="n_predict")
    prefix = extra_context(w.input_extra, s.infill_max_extra_chars) + prompting.tail(
        w.input_prefix, s.helios_max_prefix_chars) + w.prompt
    suffix = prompting.head(w.input_suffix, s.helios_max_suffix_chars)
    return GenerationRequest(
        kind="completion", model=w.model or s.helios_model or "", prompt=prefix,
        suffix=suffix or None, stop=w.stop_list(), stream=True, cache_prompt=w.cache_prompt,
        max_tokens=w.n_predict if w.n_predict > 0 else s.helios_default_max_tokens,
        temperature=s.helios_default_temperature if w.temperature is None else w.temperature,
        top_k=w.top_k, top_p=w.top_p, seed=w.seed)


def cache_context(w: InfillRequest, req: GenerationRequest, s: Settings) -> tuple[str, ...]:
    """Everything besides the text before the cursor that shapes an answer."""
    return (extra_context(w.input_extra, s.infill_max_extra_chars), req.suffix or "",
            str(req.max_tokens), str(req.temperature), str(req.top_k), str(req.top_p),
            "\x1f".join(req.stop), str(w.n_indent), str(w.t_max_predict_ms))


def indent_cut(text: str, n_indent: int) -> Optional[int]:
    """Where the first line after a newline indented less than ``n_indent`` starts, if any."""
    nl = text.find("\n")
    while nl >= 0:
        start = nl + 1
        nl = text.find("\n", start)
        line = text[start: nl if nl >= 0 else len(text)]
        body = line.lstrip(" \t")
        if body and len(line) - len(body) < n_indent:
            return start
    return None


@dataclass(slots=True)
class Timings:
    prompt_n: int = 0
    prompt_ms: float = 0.0
    predicted_n: int = 0
    predicted_ms: float = 0.0
    cache_n: int = 0

    def as_json(self) -> dict:
        def per(ms: float, n: int) -> tuple[float, float]:
            return (ms / n if n else 0.0), (1000 * n / ms if ms > 0 else 0.0)
        p_tok, p_sec = per(self.prompt_ms, self.prompt_n)
        g_tok, g_sec = per(self.predicted_ms, self.predicted_n)
        return {"cache_n": self.cache_n, "prompt_n": self.prompt_n,
                "prompt_ms": round(self.prompt_ms, 3), "prompt_per_token_ms": round(p_tok, 3),
                "prompt_per_second": round(p_sec, 3), "predicted_n": self.predicted_n,
                "predicted_ms": round(self.predicted_ms, 3),
                "predicted_per_token_ms": round(g_tok, 3), "predicted_per_second": round(g_sec, 3)}


class InfillRun:
    """Iterate for released text; afterwards ``content``, ``stop_type``, counts and timings."""

    def __init__(self, stream: ChunkStream, w: InfillRequest, request_id: str, gone=None,
                 pace: Optional[Arrival] = None, max_tokens: int = 0):
        self.stream = stream
        self.w = w
        self.request_id = request_id
        self.gone = gone or (lambda: False)
        self.pace = pace or Arrival()
        self.paced = False  # ended at the typing pace's deadline
        self.max_tokens = max_tokens  # enforced here too: some backends ignore it
        self.content = ""
        self.stop_type = "none"
        self.tokens_predicted = 0
        self.tokens_evaluated = 0
        self.timings = Timings()
        self.usage = None

    def __iter__(self) -> Iterator[str]:
        w, budget = self.w, TimeBudget(self.w.t_max_predict_ms)
        start = time.perf_counter()
        first: Optional[float] = None
        sent = 0
        finish: Optional[str] = None
        try:
            for chunk in self.stream:
                if self.gone():  # checked before the first token too: the model is just taken
                    raise errors.GatewayError("client disconnected; generation stopped", status=499)
                if chunk.usage is not None:
                    self.usage = chunk.usage
                if chunk.index != 0:
                    continue
                finish = chunk.finish_reason or finish
                if not chunk.text:
                    continue
                if first is None:
                    first = time.perf_counter()
                self.tokens_predicted += 1
                self.content += chunk.text
                if w.n_indent > 0:
                    cut = indent_cut(self.content, w.n_indent)
                    if cut is not None:
                        self.content, finish = self.content[:cut], "limit"
                        break
                if budget.exceeded(chunk.text):
                    finish = "limit"
                    break
                if self.pace.passed():  # the editor's next request is due: answer in time
                    finish, self.paced = "limit", True
                    break
                if 0 < self.max_tokens <= self.tokens_predicted:
                    finish = "length"
                    break
                ready = self._releasable()
                if ready > sent:
                    yield self.content[sent:ready]
                    sent = ready
        except errors.GatewayError:
            raise
        except Exception as exc:  # noqa: BLE001 - one classification for every backend
            raise to_gateway_error(exc, self.request_id) from exc
        finally:
            self.stream.close()
        if len(self.content) > sent:
            yield self.content[sent:]
        self._finish(finish, start, first)

    def _releasable(self) -> int:
        """With ``n_indent``, a line is held back until its indentation is known."""
        if self.w.n_indent <= 0:
            return len(self.content)
        nl = self.content.rfind("\n")
        if nl < 0 or self.content[nl + 1:].strip(" \t"):
            return len(self.content)
        return nl + 1

    def _finish(self, finish: Optional[str], start: float, first: Optional[float]) -> None:
        self.stop_type = {"stop": "eos", "length": "limit", "limit": "limit"}.get(
            finish or "", "eos" if finish else "none")
        now = time.perf_counter()
        t = self.timings
        u = self.usage or self.stream.spent()  # what the stream has cost, also when cut short
        t.prompt_ms = (u.prompt_ms if u is not None and u.prompt_ms is not None
                       else ((first or now) - start) * 1000)
        t.predicted_ms = max(0.0, (now - start) * 1000 - t.prompt_ms)
        self.tokens_evaluated = u.prompt_tokens if u is not None else 0
        if u is not None and u.completion_tokens:
            self.tokens_predicted = u.completion_tokens
        t.cache_n = (u.cached_tokens or 0) if u is not None else 0
        t.prompt_n = max(0, self.tokens_evaluated - t.cache_n)
        t.predicted_n = self.tokens_predicted


def final_body(run: InfillRun, w: InfillRequest, model: str, prompt: str) -> dict:
    """llama.cpp's final ``/infill`` object (before ``response_fields``)."""
    return {
        "index": 0, "content": run.content, "tokens": [], "id_slot": 0, "stop": True,
        "model": model, "tokens_predicted": run.tokens_predicted,
        "tokens_evaluated": run.tokens_evaluated,
        "generation_settings": {
            "n_predict": w.n_predict, "temperature": w.temperature, "top_k": w.top_k,
            "top_p": w.top_p, "seed": w.seed, "stop": w.stop_list(), "n_indent": w.n_indent,
            "t_max_predict_ms": w.t_max_predict_ms, "samplers": w.samplers,
            "stream": w.stream, "cache_prompt": w.cache_prompt},
        "prompt": prompt, "has_new_line": "\n" in run.content, "truncated": False,
        "stop_type": run.stop_type, "stopping_word": "",
        "tokens_cached": run.timings.cache_n, "timings": run.timings.as_json(),
    }


def partial_body(text: str, run: InfillRun) -> dict:
    """One streamed piece, as llama.cpp sends it."""
    return {"index": 0, "content": text, "tokens": [], "stop": False, "id_slot": 0,
            "tokens_predicted": run.tokens_predicted, "tokens_evaluated": run.tokens_evaluated}


def select_fields(body: dict, fields: Optional[list[str]]) -> dict:
    """``response_fields``: only those fields; ``a/b`` paths are lifted to the top under their
    path; missing ones are left out (llama.cpp's rules)."""
    if not fields:
        return body
    out = {}
    for path in fields:
        cur = body
        for part in path.split("/"):
            if not isinstance(cur, dict) or part not in cur:
                break
            cur = cur[part]
        else:
            out[path] = cur
    return out
