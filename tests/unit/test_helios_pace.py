"""The typing-pace tracker (issue 17): which requests get a deadline, and which."""

from __future__ import annotations

import pytest

from service.api.helios import pace
from service.api.helios.pace import FLOOR, MARGIN, MAX_KEYS, TypingPace


class _Clock:
    def __init__(self):
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(pace, "time", c)
    return c


def _typist(p: TypingPace, clock: _Clock, gaps: list[float], run: float = 0.1, key="k"):
    """Requests ``gaps`` apart, each answered ``run`` after it arrived (if before the next)."""
    out = []
    for gap in gaps:
        a = p.arrive(key)
        out.append(a)
        if run < gap:
            clock.now += run
            a.answered()
            clock.now += gap - run
        else:
            clock.now += gap
    return out


def test_a_typist_gets_a_deadline_after_three_typing_gaps(clock):
    p = TypingPace()
    arrivals = _typist(p, clock, [0.4, 0.3, 0.5, 0.6, 0.6])
    assert [a.deadline is None for a in arrivals] == [True, True, True, False, False]
    # Arrived at 100 + 0.4 + 0.3 + 0.5; the shortest gap so far is 0.3.
    assert arrivals[3].deadline == pytest.approx(101.2 + 0.3 - MARGIN)
    clock.now = arrivals[3].deadline - 0.001
    assert not arrivals[3].passed()
    clock.now = arrivals[3].deadline
    assert arrivals[3].passed()


def test_one_quick_gap_does_not_set_the_deadline_once_there_are_five(clock):
    p = TypingPace()
    arrivals = _typist(p, clock, [0.4, 0.12, 0.5, 0.45, 0.6, 0.7], run=0.05)
    last = arrivals[-1]
    arrived = 100 + 0.4 + 0.12 + 0.5 + 0.45 + 0.6
    assert last.deadline == pytest.approx(arrived + 0.4 - MARGIN)  # not 0.12


def test_overlapping_requests_count_and_the_floor_holds(clock):
    p = TypingPace()
    arrivals = _typist(p, clock, [0.05] * 5, run=1.0)  # never answered before the next
    assert arrivals[3].deadline == pytest.approx(clock.now - 0.05 * 2 + FLOOR)


def test_a_client_that_waits_for_each_answer_never_gets_a_deadline(clock):
    p = TypingPace()
    for _ in range(20):
        a = p.arrive("k")
        assert a.deadline is None
        clock.now += 0.2
        a.answered()
        clock.now += 0.001  # sends the next at once: a script or a test loop


def test_a_pause_ends_the_burst(clock):
    p = TypingPace()
    _typist(p, clock, [0.3] * 5)
    clock.now += 1.0  # 1.3 s after the last request
    arrivals = _typist(p, clock, [0.3] * 4)
    assert [a.deadline is None for a in arrivals] == [True, True, True, False]


def test_keys_are_separate_bounded_and_the_switch_works(clock):
    p = TypingPace()
    _typist(p, clock, [0.3] * 3, key="a.py")
    assert p.arrive("b.py").deadline is None  # another file
    clock.now += 0.3
    assert p.arrive("a.py").deadline is not None
    for i in range(MAX_KEYS):
        p.arrive(f"other-{i}")
    assert len(p._keys) == MAX_KEYS and "a.py" not in p._keys
    off = TypingPace(enabled=False)
    assert all(a.deadline is None for a in _typist(off, clock, [0.3] * 6))
