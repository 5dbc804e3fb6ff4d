"""Issue 17 on the embedded model: a superseded request costs the model (almost) nothing.

A request superseded while it waits for the model never touches it; one
superseded while llama.cpp evaluates its prompt stops inside that evaluation
(llama.cpp's abort callback, between two graph nodes), and the evaluated
prefix it leaves behind is sound for the next request.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import pytest

from service.providers import llama_runner
from service.providers.config import LocalConfig
from service.providers.llama_runner import AbortSwitch, Sampling, TokenRun
from service.providers.local.provider import LocalProvider, ModelGate, RequestCancelled
from tests.conftest import make_settings

# About 1,400 tokens of code: one evaluation long enough to be cut inside.
LONG = "".join(f"def f{i}(x):\n    return x * {i} + {i * 7} - len(str(x))\n\n" for i in range(60))


def test_a_cancelled_waiter_never_takes_the_model():
    gate = ModelGate(max_waiting=4, max_wait=10)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RequestCancelled):  # superseded before it even asked
        gate.acquire("model", cancel)
    # Cancelled in the same moment its turn comes (the waiter may win the lock first):
    # it still gives the turn up, and the lock is free for the next request.
    for _ in range(5):
        gate.acquire("model")
        cancel = threading.Event()
        outcome: list = []

        def wait(cancel=cancel, outcome=outcome):
            try:
                gate.acquire("model", cancel)
                outcome.append("ran")
            except RequestCancelled:
                outcome.append("cancelled")

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert _wait(lambda: gate.waiting == 1)
        cancel.set()
        gate.release()
        waiter.join(10)
        assert outcome == ["cancelled"]
        assert gate._lock.acquire(blocking=False)  # nobody kept the model
        gate._lock.release()


@pytest.fixture(scope="module")
def llama():
    provider = LocalProvider(LocalConfig.from_settings(make_settings(), preload=True))
    yield provider._llama
    provider.close()


def _run(llama, tokens, cancel=None, abort=None, reuse=True, max_tokens=8) -> tuple[str, TokenRun]:
    run = TokenRun(llama, tokens, max_tokens=max_tokens, stop=[], sampling=Sampling(temperature=0),
                   cancelled=cancel.is_set if cancel else None, abort=abort, reuse_prompt=reuse)
    return "".join(p.text for p in run), run


@contextmanager
def _superseded_at_eval(llama, switch: AbortSwitch,
                        nth: int) -> Iterator[tuple[list[int], threading.Event]]:
    """Wrap ``llama.eval``: as its ``nth`` call starts, a newer request cancels the run, and
    the call goes on only once the watcher has raised llama.cpp's abort flag, so that
    llama.cpp is told to stop before that batch is done. Yields the batch sizes evaluated
    and the run's cancel event."""
    evaluate, calls = llama.eval, []

    def eval_superseded(batch):
        calls.append(len(batch))
        if len(calls) == nth:
            cancel.set()
            assert _wait(lambda: switch.tripped), "the watcher never saw the cancel"
        return evaluate(batch)

    cancel = threading.Event()
    llama.eval = eval_superseded
    try:
        yield calls, cancel
    finally:
        del llama.eval


def test_prompt_evaluation_stops_inside_llama_cpp_and_leaves_a_sound_cache(llama, monkeypatch):
    switch = AbortSwitch(llama)
    assert switch.available
    tokens = llama.tokenize(LONG.encode(), add_bos=False)
    assert len(tokens) > 1000
    monkeypatch.setattr(llama_runner, "PREFILL_STEP", len(tokens))  # one evaluation call
    short = llama.tokenize(b"def square(x):\n    return", add_bos=False)
    expected, _ = _run(llama, short, reuse=False)

    with _superseded_at_eval(llama, switch, 1) as (calls, cancel):
        text, run = _run(llama, tokens, cancel=cancel, abort=switch, reuse=False)
    assert len(calls) == 1  # it was inside the one evaluation of the prompt
    assert (text, run.finish_reason, run.completion_tokens) == ("", "cancelled", 0)
    assert switch.aborts == 1
    assert llama.n_tokens == 0  # the unfinished batch is not left in the KV cache as evaluated

    # The switch is off again, and the model answers as a fresh one would.
    again, _ = _run(llama, short, cancel=threading.Event(), abort=switch)
    assert again == expected
    assert switch.aborts == 1


def test_a_finished_prefix_survives_the_abort_for_the_next_request(llama, monkeypatch):
    switch = AbortSwitch(llama)
    tokens = llama.tokenize(LONG.encode(), add_bos=False)
    monkeypatch.setattr(llama_runner, "PREFILL_STEP", 256)
    with _superseded_at_eval(llama, switch, 3) as (calls, cancel):
        _, run = _run(llama, tokens, cancel=cancel, abort=switch, reuse=False)
    assert calls == [256, 256, 256]
    assert run.finish_reason == "cancelled" and switch.aborts == 1
    assert llama.n_tokens == 512  # two batches evaluated and kept, the third dropped
    tail = llama.tokenize(b"def g(x):\n    return", add_bos=False)
    _, newer = _run(llama, tokens + tail, max_tokens=1)
    assert newer.cached_tokens == 512  # the next request starts from them


def _wait(done, timeout: float = 30) -> bool:
    end = threading.Event()
    for _ in range(int(timeout / 0.002)):
        if done():
            return True
        end.wait(0.002)
    return done()
