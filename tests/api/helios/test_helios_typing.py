"""Issue 17 on /complete: supersession, the completion cache, the time budget."""

from __future__ import annotations

import threading
import time

import requests

from tests.support.helios import SEED_PYTHON, assert_helios_error, helios_app
from tests.support.loopback import session_from
from tests.support.metrics import scrape, value


def _body(code: str, filename: str = "typing.py", **extra) -> dict:
    lines = code.split("\n")
    return {"code": code, "language": "python", "filename": filename,
            "position": {"line": len(lines) - 1, "character": len(lines[-1])}, **extra}


class _InFlight:
    """A /complete request running in a thread; ``result`` once it answered."""

    def __init__(self, url: str, body: dict, headers=None):
        self.result: requests.Response | None = None
        self.done_at = 0.0
        self.thread = threading.Thread(target=self._run, args=(url, body, headers), daemon=True)
        self.thread.start()

    def _run(self, url, body, headers):
        self.result = requests.post(url + "/complete", json=body, headers=headers, timeout=60)
        self.done_at = time.monotonic()

    def join(self, timeout: float) -> requests.Response | None:
        self.thread.join(timeout)
        return self.result


def _wait_calls(up, model: str, n: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while up.state.calls[model] < n and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.2)  # a few chunks streamed: the older request is generating


def test_newer_request_for_the_same_file_cancels_the_older(up):
    # "endless" streams a piece every 50 ms: 400 pieces would take 20 s to run out.
    with helios_app(lm_studio_base_url=up.url, helios_model="endless",
                    helios_max_predict_ms=0) as (url, _):
        m0 = scrape(url)
        before = up.state.calls["endless"]
        older = _InFlight(url, _body("x = ", max_tokens=400))
        _wait_calls(up, "endless", before + 1)
        sent = time.monotonic()
        newer = requests.post(url + "/complete", json=_body("x = 1", max_tokens=3), timeout=30)
        first = older.join(10)
        assert first is not None, "the superseded request kept running"
        err = assert_helios_error(first, 499, "REQUEST_CANCELLED")
        assert "superseded" in err["detail"]
        assert older.done_at - sent < 5  # at once (vs 20 s), generous for a loaded machine
        assert newer.status_code == 200, newer.text
        assert newer.headers["X-Finish-Reason"] == "length"
        # The older one's upstream stream was closed: the backend is free.
        deadline = time.monotonic() + 5
        while not up.state.disconnects and time.monotonic() < deadline:
            time.sleep(0.05)
        assert up.state.disconnects
        m = scrape(url)
        delta = lambda name: value(m, name, api="helios") - value(m0, name, api="helios")  # noqa: E731
        assert delta("gateway_completions_superseded_total") == 1
        assert delta("gateway_superseded_model_seconds_total") > 0


def test_other_files_and_other_clients_are_not_cancelled(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="endless",
                    helios_max_predict_ms=0) as (url, _):
        before = up.state.calls["endless"]
        older = _InFlight(url, _body("x = ", max_tokens=30))
        _wait_calls(up, "endless", before + 1)
        other_file = requests.post(url + "/complete", json=_body("x = ", "other.py", max_tokens=2),
                                   timeout=30)
        # Another client is another address (with auth off a bearer is no identity).
        other_client = session_from("127.0.0.2").post(
            url + "/complete", json=_body("x = ", max_tokens=2), timeout=30)
        assert other_file.status_code == 200 and other_client.status_code == 200
        first = older.join(30)
        assert first is not None and first.status_code == 200, first and first.text


def test_supersession_can_be_turned_off(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="endless", helios_max_predict_ms=0,
                    helios_supersede=False) as (url, _):
        before = up.state.calls["endless"]
        older = _InFlight(url, _body("x = ", max_tokens=20))
        _wait_calls(up, "endless", before + 1)
        requests.post(url + "/complete", json=_body("x = 1", max_tokens=2), timeout=30)
        first = older.join(30)
        assert first is not None and first.status_code == 200


def test_cache_exact_and_typed_hits_skip_the_backend(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1") as (url, _):
        m0 = scrape(url)
        code = "def area(r):\n    return "
        first = requests.post(url + "/complete", json=_body(code), timeout=20)
        assert first.status_code == 200 and first.headers["X-Completion-Cache"] == "miss"
        suggestion = first.json()["suggestion"]
        assert len(suggestion) > 3, suggestion
        calls = up.state.calls["echo-1"]

        again = requests.post(url + "/complete", json=_body(code), timeout=20)
        assert again.headers["X-Completion-Cache"] == "exact"
        assert again.json()["suggestion"] == suggestion
        assert again.json()["confidence"] == first.json()["confidence"]

        # The user typed the first three characters of the suggestion: the rest is the answer.
        typed = requests.post(url + "/complete", json=_body(code + suggestion[:3]), timeout=20)
        assert typed.headers["X-Completion-Cache"] == "typed"
        assert typed.json()["suggestion"] == suggestion[3:]
        assert up.state.calls["echo-1"] == calls  # none of these reached the backend

        # Something else typed, another suffix, other sampling: the model is asked.
        for body in (_body(code + "zz"), {**_body(code), "code": code + "\n\nprint(1)\n"},
                     _body(code, max_tokens=7), _body(code, "other.py")):
            r = requests.post(url + "/complete", json=body, timeout=20)
            assert r.headers["X-Completion-Cache"] == "miss", body
        assert up.state.calls["echo-1"] == calls + 4

        m = scrape(url)
        for result, n in (("exact", 1), ("typed", 1), ("miss", 5)):
            got = (value(m, "gateway_completion_cache_total", api="helios", result=result)
                   - value(m0, "gateway_completion_cache_total", api="helios", result=result))
            assert got == n, result


def test_cache_is_bounded_and_can_be_turned_off(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1",
                    helios_cache_entries=2) as (url, _):
        codes = [f"v{i} = " for i in range(3)]
        for code in codes:
            requests.post(url + "/complete", json=_body(code), timeout=20)
        oldest = requests.post(url + "/complete", json=_body(codes[0]), timeout=20)
        newest = requests.post(url + "/complete", json=_body(codes[2]), timeout=20)
        assert oldest.headers["X-Completion-Cache"] == "miss"  # evicted
        assert newest.headers["X-Completion-Cache"] == "exact"
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1",
                    helios_cache_entries=0) as (url, _):
        calls = up.state.calls["echo-1"]
        for _ in range(2):
            r = requests.post(url + "/complete", json=SEED_PYTHON, timeout=20)
            assert "X-Completion-Cache" not in r.headers
        assert up.state.calls["echo-1"] == calls + 2


def test_time_budget_ends_a_long_suggestion_with_reason_time(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="endless",
                    helios_max_predict_ms=300) as (url, _):
        start = time.monotonic()
        r = requests.post(url + "/complete", json=_body("x = ", max_tokens=400), timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["X-Finish-Reason"] == "time"
        assert time.monotonic() - start < 10  # 400 pieces would take 20 s


def test_superseded_request_leaves_the_local_models_queue_and_the_newer_gets_it():
    with helios_app(helios_max_predict_ms=0) as (url, app):
        local = app.extensions["gateway"].router.by_name("local")
        prepared: list[str] = []  # prompts of the requests that got the model
        inner = getattr(local, "_provider", local)  # behind admission control
        prepare = inner._prepare
        inner._prepare = lambda llama, req: prepared.append(req.prompt) or prepare(llama, req)
        local.gate.acquire("test")  # someone else's generation holds the model
        try:
            older = _InFlight(url, _body("def area(r):\n    return ", max_tokens=8))
            deadline = time.monotonic() + 10
            while local.gate.waiting == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert local.gate.waiting == 1  # queued for the model
            newer = _InFlight(url, _body("def area(r):\n    return r", max_tokens=8))
            first = older.join(5)  # answers while the model is still busy: it left the queue
            assert first is not None
            assert_helios_error(first, 499, "REQUEST_CANCELLED")
            assert newer.result is None
        finally:
            local.gate.release()
        second = newer.join(60)
        assert second is not None and second.status_code == 200, second and second.text
        # The older request never touched the model: only the newer one's prompt was prepared.
        assert len(prepared) == 1 and prepared[0].endswith("return r"), prepared


def _type_in_bursts(url: str, gaps: list[float], last_max_tokens: int = 400):
    """Requests for one file, sent ``gaps`` apart without waiting for answers; the answers."""
    sent = []
    for i, gap in enumerate([*gaps, 0]):
        tokens = last_max_tokens if i == len(gaps) else 400
        sent.append(_InFlight(url, _body("x = " + "1" * i, max_tokens=tokens)))
        time.sleep(gap)
    return [f.join(30) for f in sent]


def test_a_typing_client_gets_each_suggestion_before_its_next_request(up):
    # "endless" would stream for 20 s; the client types on, a request every 0.25–0.7 s.
    gaps = [0.25, 0.7, 0.7, 0.7, 0.7]
    with helios_app(lm_studio_base_url=up.url, helios_model="endless",
                    helios_max_predict_ms=0) as (url, _):
        start = time.monotonic()
        answers = _type_in_bursts(url, gaps)
        took = time.monotonic() - start
    # Three gaps show the pace; until then each request is cut by the next (499).
    for r in answers[:3]:
        assert_helios_error(r, 499, "REQUEST_CANCELLED")
    # From then on each ends by the shortest gap (0.25 s) and is answered before the next
    # request supersedes it: a 200 with what was generated so far.
    for r in answers[3:]:
        assert r.status_code == 200, r.text
        assert r.headers["X-Finish-Reason"] == "pace"
        assert r.json()["suggestion"], r.text  # what the stand-in streamed until then
    assert took < 10  # the last request too ended by its deadline, not after 20 s


def test_without_the_typing_pace_each_request_is_cut_by_the_next(up):
    with helios_app(lm_studio_base_url=up.url, helios_model="endless",
                    helios_max_predict_ms=0, helios_typing_pace=False) as (url, _):
        answers = _type_in_bursts(url, [0.25, 0.7, 0.7, 0.7], last_max_tokens=3)
    for r in answers[:-1]:
        assert_helios_error(r, 499, "REQUEST_CANCELLED")
    assert answers[-1].headers["X-Finish-Reason"] == "length"


def test_a_client_that_waits_for_its_answers_gets_whole_suggestions(up):
    # A script (or an editor that waits) sends the next request as the answer arrives: it
    # never cuts its own requests short, so no pace deadline shortens them.
    with helios_app(lm_studio_base_url=up.url, helios_model="endless",
                    helios_max_predict_ms=0) as (url, _):
        for i in range(6):
            r = requests.post(url + "/complete", json=_body("y = " + "2" * i, max_tokens=4),
                              timeout=30)
            assert r.status_code == 200, r.text
            assert r.headers["X-Finish-Reason"] == "length", i
