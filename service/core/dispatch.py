"""The seam between API families and providers: resolve, authorize, pick, fall back.

Every model call of every family goes through :class:`Dispatcher`::

    public name --catalog--> Route (deployments, fallbacks)
        --authorize(public name)--> allowed?            (the key's allow-list hook)
        --pick--> deployments by fewest in-flight/weight, cooled ones last
        --admit--> the backend's and the worker's slots  (``service.admission``)
        --provider--> generate / stream / embed with the upstream model name

Admission is the one concurrency cap per backend (``max_concurrency``, else
``GATEWAY_MAX_IN_FLIGHT_PER_UPSTREAM``): a full backend is skipped at once while
other candidates remain; the last candidate waits a bounded time and then the
request is refused with 503 ``overloaded`` and ``Retry-After``.

A deployment that fails *before the first byte* (connection refused, timeout,
5xx, 429, busy) is charged a failure and the next candidate is tried: the
model's other deployments, then its ``fallbacks``' deployments. ``allowed_fails``
consecutive failures cool a deployment down for ``cooldown_seconds``: it is
tried only after every healthy candidate, and once the time is up one more
failure cools it again (one success clears it). A "prompt too long" answer
jumps to the model's ``context_window_fallbacks`` instead.

The client always sees the name it asked for (an alias included; the public
name when it sent none); the record gets the public name, the backend and the
upstream model. Flask-free: the record is
any object with ``routed(model, provider, stream)`` and ``upstream_model``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Protocol, TypeVar

from . import errors
from .. import metrics
from ..admission import Admission
from .types import (
    Chunk, ChunkStream, EmbeddingRequest, Embeddings, Generation, GenerationRequest, ModelInfo,
)
from ..providers.base import DisconnectCheck, Provider

log = logging.getLogger(__name__)
T = TypeVar("T")

#: ``authorize(public_name)`` raises (e.g. PermissionDenied) when the caller may not use it.
Authorize = Callable[[str], None]


def allow_all(public_name: str) -> None:
    """The default allow-list hook: every public name is allowed."""


@dataclass(eq=False)
class Deployment:
    """One (backend, upstream model) serving a public name; holds its load and health."""

    provider: Provider
    model: str  # the name the backend knows it by
    weight: float = 1.0
    in_flight: int = 0
    vtime: float = 0.0  # stride scheduling: advances 1/weight per pick; breaks ties
    clock: list[float] = field(default_factory=lambda: [0.0])  # shared by one model's peers
    fails: int = 0  # consecutive failures
    cooled_until: float = 0.0

    @property
    def backend(self) -> str:
        return self.provider.name

    def cooling(self, now: float) -> bool:
        return now < self.cooled_until


@dataclass(eq=False)
class Route:
    """A public name (or alias) and how to serve it."""

    public: str
    deployments: list[Deployment]
    fallbacks: tuple[str, ...] = ()
    context_fallbacks: tuple[str, ...] = ()
    info: Optional[ModelInfo] = None


class Catalog(Protocol):
    """What the dispatcher needs from a model list (file-based or from the seed variables)."""

    providers: list[Provider]

    def route(self, request: GenerationRequest | EmbeddingRequest) -> Route: ...

    def named(self, name: str) -> Route: ...


_OVERFLOW = re.compile(r"context.{0,20}(length|window|size)|too many tokens|prompt is too long"
                       r"|maximum context|exceeds? the (model'?s )?(context|max)", re.IGNORECASE)


def is_context_overflow(exc: errors.GatewayError) -> bool:
    """The backend refused the prompt as too long for the model (a 400 in any wording)."""
    if exc.code == "context_length_exceeded":
        return True
    # Upstreams put this in free text only (vLLM, llama-server, LM Studio, Ollama): the
    # message is all there is to go on.
    return exc.status in (400, 413) and bool(_OVERFLOW.search(exc.message))


def can_fall_back(exc: errors.GatewayError) -> bool:
    """Failures another deployment may not have: unavailable, timeout, 5xx, 429, busy."""
    return exc.status >= 500 or exc.status == 429


class Dispatcher:
    """Runs requests against a catalog's deployments; one per process, thread-safe."""

    def __init__(self, catalog: Catalog, *, authorize: Authorize = allow_all,
                 allowed_fails: int = 2, cooldown_seconds: float = 30.0,
                 admission: Optional[Admission] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.catalog = catalog
        self.authorize = authorize  # the allow-list hook, applied to the resolved public name
        self.allowed_fails = allowed_fails
        self.cooldown_seconds = cooldown_seconds
        self.admission = admission  # None: no caps (tests, benchmarks)
        self.clock = clock
        self._lock = threading.Lock()

    # ---- the three calls ------------------------------------------------------------
    def generate(self, request: GenerationRequest, record,
                 disconnected: Optional[DisconnectCheck] = None) -> Generation:
        def call(d: Deployment, attempt: GenerationRequest, last: bool) -> Generation:
            return d.provider.generate(attempt, disconnected)

        route, d, gen, release = self._run(request, record, call)
        release()
        gen.model = request.model  # the name the client asked for (an alias stays an alias)
        return gen

    def stream(self, request: GenerationRequest, record, *,
               to_client: bool = True) -> ChunkStream:
        """Open a stream; with candidates left, its first chunk is read here, so a backend
        that fails before its first byte is replaced by the next one. ``to_client``: the
        client gets it as a stream (Helios folds it into one answer)."""

        def call(d: Deployment, attempt: GenerationRequest, last: bool):
            stream = d.provider.stream(attempt)
            if last:
                return stream, ()
            try:
                return stream, _first(stream)
            except BaseException:
                stream.close()
                raise

        route, d, (stream, head), release = self._run(request, record, call, stream=to_client)
        return _adopt(stream, head, release, request.model)

    def generate_batch(self, requests: list[GenerationRequest], record,
                       disconnected: Optional[DisconnectCheck] = None) -> list[Generation]:
        """A legacy completions prompt list (requests that differ only in their prompt):
        one deployment for all of them, one call where the backend takes a list."""

        def call(d: Deployment, attempt: GenerationRequest, last: bool) -> list[Generation]:
            return d.provider.generate_batch([replace(r, model=d.model) for r in requests],
                                             disconnected)

        route, d, gens, release = self._run(requests[0], record, call)
        release()
        for gen in gens:
            gen.model = requests[0].model
        return gens

    def embed(self, request: EmbeddingRequest, record) -> Embeddings:
        def call(d: Deployment, attempt: EmbeddingRequest, last: bool) -> Embeddings:
            return d.provider.embed(attempt)

        route, d, result, release = self._run(request, record, call)
        release()
        result.model = request.model
        return result

    def count_tokens(self, request: GenerationRequest, record) -> int:
        """The prompt's size in tokens as the deployment that would serve it counts it."""

        def call(d: Deployment, attempt: GenerationRequest, last: bool) -> int:
            return d.provider.count_tokens(attempt)

        route, d, tokens, release = self._run(request, record, call)
        release()
        return tokens

    def resolve(self, request: GenerationRequest | EmbeddingRequest, record=None, *,
                stream: Optional[bool] = None) -> Route:
        """The route for ``request`` (``request.model`` filled with the public name when
        empty), authorized; ``record`` notes the first choice."""
        route = self.catalog.route(request)
        self.authorize(route.public)
        if record is not None:
            d = self._candidates(route)[0]
            _note(record, route.public, d,
                  getattr(request, "stream", False) if stream is None else stream)
        return route

    # ---- the loop ----------------------------------------------------------------------
    def _run(self, request, record, call, stream: bool = False):
        route = self.resolve(request)
        queue = self._candidates(route)
        context_fallen = False
        failure: Optional[errors.GatewayError] = None
        adm = self.admission
        gone = adm.gone_factory() if adm is not None else None
        i = 0
        while i < len(queue):
            d = queue[i]
            i += 1
            _note(record, route.public, d, stream)
            # Full: skipped while others remain; the last one waits (bounded) or refuses.
            release = self.admit(d, gone, wait=i == len(queue))
            if release is None:
                metrics.fell_back(route.public, d.backend, "busy")
                continue
            # A copy per attempt only when the name changes (a copy costs ~13 µs a request).
            attempt = request if request.model == d.model else replace(request, model=d.model)
            try:
                with adm.calling(gone) if adm is not None else nullcontext():
                    result = call(d, attempt, last=i == len(queue))
            except errors.GatewayError as exc:
                release()
                if is_context_overflow(exc) and route.context_fallbacks and not context_fallen:
                    context_fallen = True
                    queue[i:] = self._candidates_of(route.context_fallbacks)
                    log.info("%s: prompt too long for %s/%s; trying %s", route.public,
                             d.backend, d.model, ", ".join(route.context_fallbacks))
                    failure = exc
                    continue
                if not can_fall_back(exc):
                    raise
                self._failed(d, exc)
                failure = exc
                if i < len(queue):
                    metrics.fell_back(route.public, d.backend, exc.code or type(exc).__name__)
                    log.warning("%s: %s/%s failed before the first byte (%s); falling back",
                                route.public, d.backend, d.model, exc.message)
                continue
            except BaseException:
                release()
                raise
            self._succeeded(d)
            return route, d, result, release
        assert failure is not None
        raise failure

    def admit(self, d: Deployment, gone=None, *, wait: bool = True
              ) -> Optional[Callable[[], None]]:
        """Take the backend's and the worker's slots and count the request in flight;
        returns the release (call once), None when the backend is full and ``wait`` is
        false, or raises 503 ``overloaded`` after the bounded wait."""
        adm = None
        if self.admission is not None:
            adm = self.admission.admit(d.backend, gone, wait=wait)
            if adm is None:
                return None
        with self._lock:
            d.in_flight += 1
            # A deployment back from a cool-down starts at the current virtual time, so it
            # gets its share from now on rather than a burst that "catches up".
            start = max(d.vtime, d.clock[0])
            d.vtime = start + 1.0 / d.weight
            d.clock[0] = start
        done = False

        def release() -> None:
            nonlocal done
            if done:
                return
            done = True
            with self._lock:
                d.in_flight -= 1
            if adm is not None:
                adm()

        return release

    # ---- picking and health ---------------------------------------------------------------
    def _candidates(self, route: Route) -> list[Deployment]:
        """The route's deployments then its fallbacks', healthy before cooling, each model's
        in fewest-in-flight order (weights respected)."""
        return self._order([route, *(self.catalog.named(n) for n in route.fallbacks)])

    def _candidates_of(self, names: tuple[str, ...]) -> list[Deployment]:
        return self._order([self.catalog.named(n) for n in names])

    def _order(self, routes: list[Route]) -> list[Deployment]:
        now = self.clock()
        healthy: list[Deployment] = []
        cooling: list[Deployment] = []
        seen: set[int] = set()
        with self._lock:
            for r in routes:
                ds = r.deployments
                if len(ds) > 1:
                    ds = sorted(ds, key=lambda d: (d.in_flight / d.weight,
                                                   max(d.vtime, d.clock[0])))
                for d in ds:
                    if id(d) not in seen:
                        seen.add(id(d))
                        (cooling if d.cooling(now) else healthy).append(d)
        return healthy + cooling

    def _failed(self, d: Deployment, exc: errors.GatewayError) -> None:
        with self._lock:
            d.fails += 1
            if d.fails >= self.allowed_fails and not d.cooling(self.clock()):
                d.cooled_until = self.clock() + self.cooldown_seconds
                metrics.cooled_down(d.backend, d.model)
                log.warning("deployment %s/%s cooled down for %gs after %d failures: %s",
                            d.backend, d.model, self.cooldown_seconds, d.fails, exc.message)

    def _succeeded(self, d: Deployment) -> None:
        if d.fails or d.cooled_until:
            with self._lock:
                d.fails, d.cooled_until = 0, 0.0

    def cooldowns(self) -> dict[str, float]:
        """``backend/model`` -> seconds of cool-down left, for deployments cooling now."""
        now = self.clock()
        out = {}
        for d in getattr(self.catalog, "deployments", lambda: [])():
            if d.cooling(now):
                out[f"{d.backend}/{d.model}"] = round(d.cooled_until - now, 1)
        return out


def _note(record, public: str, d: Deployment, stream: bool) -> None:
    if record is None:
        return
    record.routed(public, d.backend, stream)
    record.upstream_model = d.model


def _first(stream: ChunkStream) -> tuple[Chunk, ...]:
    """Read the stream's first chunk from its source (past the stream's own meter, which
    counts it once, when it is handed on)."""
    try:
        return (next(stream._it),)
    except StopIteration:
        return ()


def _adopt(stream: ChunkStream, head: tuple[Chunk, ...], release: Callable[[], None],
           public: str) -> ChunkStream:
    """The provider's own stream (its id, its meter of what was spent) under the public
    name, with the peeked chunk put back and the dispatcher's release after its close."""
    if head:
        stream._it = _Prefixed(head, stream._it)
    stream.also_on_close(release)
    stream.model = public
    return stream


class _Prefixed:
    """The peeked first chunk, then the rest of the source. A plain iterator, not a
    generator delegating with ``yield from``: closing goes straight to the source."""

    __slots__ = ("_head", "_rest")

    def __init__(self, head: tuple[Chunk, ...], rest):
        self._head = list(head)
        self._rest = rest

    def __iter__(self) -> "_Prefixed":
        return self

    def __next__(self) -> Chunk:
        if self._head:
            return self._head.pop(0)
        return next(self._rest)

    def close(self) -> None:
        close = getattr(self._rest, "close", None)
        if close is not None:
            close()
