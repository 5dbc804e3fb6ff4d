"""The dispatch layer without Flask: picking, fallbacks, cool-downs, the hooks."""

from __future__ import annotations

import pytest

from service.core import errors
from service.core.catalog import FileCatalog
from service.core.dispatch import Dispatcher
from service.core.types import Chunk, ChunkStream, Choice, Generation, GenerationRequest
from service.models_file import ModelList
from service.providers.base import Provider


class Fake(Provider):
    def __init__(self, name, fail=None):
        self.name, self.fail, self.seen = name, fail, []

    def list_models(self):
        return []

    def generate(self, request, disconnected=None):
        self.seen.append(request.model)
        if self.fail is not None:
            raise self.fail
        return Generation(model=request.model, choices=[Choice(text=self.name)])

    def stream(self, request):
        self.seen.append(request.model)
        if self.fail is not None:
            raise self.fail

        def chunks():
            if isinstance(self.fail_mid, errors.GatewayError):
                raise self.fail_mid
            yield Chunk(text=self.name)
        return ChunkStream(chunks(), model=request.model)

    fail_mid = None


class Record:
    upstream_model = None

    def routed(self, model, provider, stream=False):
        self.model, self.provider = model, provider


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def _dispatcher(backends, models, clock=None, **router):
    ml = ModelList.model_validate({
        "backends": {n: {"kind": "openai", "base_url": "http://127.0.0.1:9"} for n in backends},
        "models": models, "router": router})
    catalog = FileCatalog(ml, backends)
    return Dispatcher(catalog, allowed_fails=ml.router.allowed_fails,
                      cooldown_seconds=ml.router.cooldown_seconds,
                      clock=clock or Clock())


def _req(model, stream=False):
    return GenerationRequest(kind="chat", model=model, stream=stream)


def test_alias_and_public_name():
    a = Fake("a")
    d = _dispatcher({"a": a}, {"coder": {"deployments": [{"backend": "a", "model": "qwen-32b"}],
                                         "aliases": ["gpt-4o"]}})
    rec = Record()
    req = _req("gpt-4o")
    gen = d.generate(req, rec)
    assert a.seen == ["qwen-32b"] and gen.model == "gpt-4o" and req.model == "gpt-4o"
    assert (rec.model, rec.provider, rec.upstream_model) == ("coder", "a", "qwen-32b")


def test_unknown_name_is_model_not_found():
    d = _dispatcher({"a": Fake("a")}, {"coder": {"deployments": [{"backend": "a", "model": "x"}]}})
    with pytest.raises(errors.ModelNotFound, match="does not exist"):
        d.generate(_req("nope"), Record())


def test_weights_share_the_load():
    a, b = Fake("a"), Fake("b")
    d = _dispatcher({"a": a, "b": b}, {"m": {"deployments": [
        {"backend": "a", "model": "x", "weight": 3}, {"backend": "b", "model": "x"}]}})
    for _ in range(400):
        d.generate(_req("m"), Record())
    assert len(a.seen) == 300 and len(b.seen) == 100


def test_failure_falls_back_then_cools_down_then_retries():
    clock = Clock()
    a, b = Fake("a", errors.UpstreamUnavailable("refused")), Fake("b")
    d = _dispatcher({"a": a, "b": b}, {"m": {"deployments": [
        {"backend": "a", "model": "x"}, {"backend": "b", "model": "x"}]}},
        clock, allowed_fails=2, cooldown_seconds=10)
    for _ in range(6):
        assert d.generate(_req("m"), Record()).choices[0].text == "b"
    assert len(a.seen) == 2  # cooled after two failures, then skipped
    assert d.cooldowns() == {"a/x": 10.0}
    clock.now += 11
    a.fail = None
    d.generate(_req("m"), Record()), d.generate(_req("m"), Record())
    assert len(a.seen) >= 3 and d.cooldowns() == {}  # retried after the cool-down


def test_bad_request_does_not_fall_back():
    a, b = Fake("a", errors.InvalidRequest("bad temperature")), Fake("b")
    d = _dispatcher({"a": a, "b": b}, {"m": {"deployments": [{"backend": "a", "model": "x"}],
                                             "fallbacks": ["n"]},
                                       "n": {"deployments": [{"backend": "b", "model": "y"}]}})
    with pytest.raises(errors.InvalidRequest):
        d.generate(_req("m"), Record())
    assert b.seen == []


def test_fallback_models_and_context_window_fallbacks():
    small = Fake("small", errors.InvalidRequest(
        "small rejected the request: This model's maximum context length is 16 tokens"))
    big, other = Fake("big"), Fake("other")
    d = _dispatcher({"small": small, "big": big, "other": other}, {
        "m": {"deployments": [{"backend": "small", "model": "s"}], "fallbacks": ["o"],
              "context_window_fallbacks": ["b"]},
        "b": {"deployments": [{"backend": "big", "model": "l"}]},
        "o": {"deployments": [{"backend": "other", "model": "o"}]}})
    rec = Record()
    gen = d.generate(_req("m"), rec)
    assert gen.choices[0].text == "big" and gen.model == "m" and rec.provider == "big"
    assert other.seen == []


def test_stream_that_fails_before_its_first_chunk_falls_back():
    a, b = Fake("a"), Fake("b")
    a.fail_mid = errors.UpstreamError("connection dropped")
    d = _dispatcher({"a": a, "b": b}, {"m": {"deployments": [
        {"backend": "a", "model": "x"}, {"backend": "b", "model": "x"}]}})
    texts = [c.text for _ in range(4) for c in d.stream(_req("m", True), Record())]
    assert texts == ["b"] * 4


def test_authorize_hook_sees_the_resolved_public_name():
    seen = []

    def authorize(name):
        seen.append(name)
        if name == "coder":
            raise errors.PermissionDenied("not for this key")

    d = _dispatcher({"a": Fake("a")}, {"coder": {"deployments": [{"backend": "a", "model": "x"}],
                                                 "aliases": ["gpt-4o"]}})
    d.authorize = authorize
    with pytest.raises(errors.PermissionDenied):
        d.generate(_req("gpt-4o"), Record())
    assert seen == ["coder"]


def test_admission_full_backend_is_skipped():
    a, b = Fake("a"), Fake("b")
    d = _dispatcher({"a": a, "b": b}, {"m": {"deployments": [
        {"backend": "a", "model": "x"}, {"backend": "b", "model": "x"}]}})
    from service.admission import Admission
    d.admission = Admission(10, 10, 4, 5, limits={"a": 1, "b": 1})
    s = d.stream(_req("m", True), Record())  # holds a's slot (fewest in flight: a first)
    assert d.generate(_req("m"), Record()).choices[0].text == "b"
    s.close()


def test_one_cap_per_backend_skip_then_bounded_wait_then_503():
    """The backend's max_concurrency is admission's cap: a full backend is skipped at once
    while another candidate remains; the last one waits (bounded) and refuses with 503."""
    import time

    from service import metrics
    from service.admission import Admission

    a, b = Fake("a"), Fake("b")
    d = _dispatcher({"a": a, "b": b}, {
        "m": {"deployments": [{"backend": "a", "model": "x"}, {"backend": "b", "model": "x"}]},
        "solo": {"deployments": [{"backend": "a", "model": "x"}]}})
    d.admission = Admission(10, 10, 4, 0.3, limits={"a": 1})
    held = d.admission.admit("a")  # a is full (taken outside this dispatcher)
    start = time.monotonic()
    assert d.generate(_req("m"), Record()).choices[0].text == "b"  # a skipped, no wait
    assert time.monotonic() - start < 0.25
    before = metrics.ADMISSION_REJECTIONS.labels("upstream a")._value.get()
    with pytest.raises(errors.ServiceUnavailable) as exc:
        d.generate(_req("solo"), Record())
    assert time.monotonic() - start >= 0.3  # the bounded wait came first
    assert exc.value.code == "overloaded" and exc.value.retry_after >= 1
    assert metrics.ADMISSION_REJECTIONS.labels("upstream a")._value.get() == before + 1
    held()
    assert d.generate(_req("solo"), Record()).choices[0].text == "a"
    assert d.admission.upstream("a").in_use == 0 and d.admission.worker.in_use == 0
