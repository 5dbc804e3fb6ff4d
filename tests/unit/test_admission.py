"""Admission control and the local model queue: bounds, bounded waits, drain-rate Retry-After."""

from __future__ import annotations

import threading
import time

import pytest

from service.admission import Admission, DrainRate, Slots, client_gone, fit_to_threads
from service.core import errors
from service.providers.local import ModelGate
from service.settings import load_settings


def test_drain_rate_turns_measured_completions_into_retry_after():
    rate = DrainRate()
    assert rate.retry_after(5) == 1.0  # nothing measured yet: the floor
    now = time.monotonic()
    rate._times.extend([now - 3.0, now - 2.0, now - 1.0])  # 2 completions in 3 s
    assert rate.retry_after(10) == pytest.approx(15.0, rel=0.1)
    assert rate.retry_after(10_000, ceiling=60) == 60


def test_slots_refuse_after_the_bounded_wait_and_when_too_many_wait():
    slots = Slots("worker", limit=1, max_waiting=1)
    slots.acquire(time.monotonic() + 1, None)
    start = time.monotonic()
    with pytest.raises(errors.ServiceUnavailable) as exc:
        slots.acquire(time.monotonic() + 0.3, None)
    assert 0.25 < time.monotonic() - start < 3
    assert exc.value.code == "overloaded" and exc.value.retry_after >= 1

    waiter = threading.Thread(target=lambda: (slots.acquire(time.monotonic() + 5, None),
                                              slots.release()))
    waiter.start()
    while slots.waiting == 0:
        time.sleep(0.01)
    start = time.monotonic()
    with pytest.raises(errors.ServiceUnavailable, match="already waiting"):
        slots.acquire(time.monotonic() + 5, None)  # the one waiting place is taken: at once
    assert time.monotonic() - start < 0.5
    slots.release()
    waiter.join(5)
    assert slots.in_use == 0


def test_a_waiter_whose_client_left_gives_up_its_place():
    adm = Admission(max_in_flight=1, per_upstream=1, max_waiting=4, wait_seconds=10)
    release = adm.admit("openai")
    gone = threading.Event()
    start = time.monotonic()
    threading.Timer(0.3, gone.set).start()
    with pytest.raises(errors.GatewayError) as exc:
        adm.admit("openai", gone.is_set)
    assert exc.value.status == 499 and time.monotonic() - start < 2
    release()
    with pytest.raises(errors.GatewayError) as exc:  # left while queued before us: no dispatch
        adm.admit("openai", lambda: True)
    assert exc.value.status == 499
    adm.admit("openai")()  # and both slots were given back


def test_one_upstream_cannot_take_every_worker_slot():
    adm = Admission(max_in_flight=3, per_upstream=2, max_waiting=0, wait_seconds=0)
    held = [adm.admit("slow"), adm.admit("slow")]
    with pytest.raises(errors.ServiceUnavailable, match="upstream slow"):
        adm.admit("slow")
    adm.admit("fast")()  # another backend still gets a slot
    for r in held:
        r()


def test_caps_fitted_to_threads_leave_threads_for_liveness():
    s = load_settings()
    for threads in (4, 16, 64, 512):
        adm = Admission(s.gateway_max_in_flight, s.gateway_max_in_flight_per_upstream,
                        s.gateway_max_waiting, s.gateway_queue_wait_seconds)
        fit_to_threads(adm, threads)
        assert adm.worker.limit + adm.worker.max_waiting < threads
        assert adm.upstream("x").limit <= adm.worker.limit
    adm = Admission(s.gateway_max_in_flight, s.gateway_max_in_flight_per_upstream,
                    s.gateway_max_waiting, s.gateway_queue_wait_seconds)
    fit_to_threads(adm, 512)  # the defaults fit the default thread count unchanged
    assert (adm.worker.limit, adm.worker.max_waiting) == (384, 64)
    adm = Admission(s.gateway_max_in_flight, s.gateway_max_in_flight_per_upstream,
                    s.gateway_max_waiting, s.gateway_queue_wait_seconds,
                    max_sockets=s.lmstudio_ws_max_connections)
    fit_to_threads(adm, 512)  # LM Studio's WebSockets take half the probes' reserve at most
    assert (adm.worker.limit, adm.worker.max_waiting, adm.sockets.limit) == (384, 64, 32)
    small = Admission(384, 320, 64, 10.0, max_sockets=32)
    fit_to_threads(small, 16)
    assert small.sockets.limit == 1 and small.worker.limit + small.worker.max_waiting + 1 < 16
    # Two workers hold 512 streams from one upstream.
    assert 2 * min(s.gateway_max_in_flight_per_upstream, adm.worker.limit) >= 512


def test_local_queue_bound_is_reachable_with_defaults():
    """LOCAL_MAX_QUEUE waiters fit in the threads admission leaves to one worker."""
    s = load_settings()
    adm = Admission(s.gateway_max_in_flight, s.gateway_max_in_flight_per_upstream,
                    s.gateway_max_waiting, s.gateway_queue_wait_seconds)
    fit_to_threads(adm, 512)
    assert s.local_max_queue + 2 <= adm.upstream("local").limit


def test_model_busy_retry_after_follows_the_measured_drain():
    gate = ModelGate(max_waiting=0, max_wait=1)
    for _ in range(4):  # four quick turns: a fast drain
        gate.acquire("m")
        gate.release()
    gate.acquire("m")
    with pytest.raises(errors.ModelBusy) as fast:
        gate.acquire("m")
    gate.release()
    now = time.monotonic()
    gate.drain._times.clear()
    gate.drain._times.extend([now - 30, now - 20, now - 10, now])  # one turn per 10 s
    gate.acquire("m")
    with pytest.raises(errors.ModelBusy) as slow:
        gate.acquire("m")
    gate.release()
    assert fast.value.retry_after == 1.0
    assert slow.value.retry_after == pytest.approx(10, rel=0.2)


def test_model_queue_waiter_leaves_when_its_client_does():
    gate = ModelGate(max_waiting=2, max_wait=10)
    gate.acquire("m")
    gone = threading.Event()
    threading.Timer(0.3, gone.set).start()
    token = client_gone.set(gone.is_set)
    start = time.monotonic()
    try:
        with pytest.raises(errors.GatewayError) as exc:
            gate.acquire("m")
    finally:
        client_gone.reset(token)
    assert exc.value.status == 499 and time.monotonic() - start < 2 and gate.waiting == 0
    gate.release()
