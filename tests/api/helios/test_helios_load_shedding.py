"""Rate limit, concurrency limit and client disconnects, with real concurrent requests."""

from __future__ import annotations

import itertools
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from urllib.parse import urlsplit

import requests

from tests.support.helios import SEED_PYTHON, assert_helios_error, held_upstream, helios_app


_files = itertools.count()


def _post(url: str, headers: dict | None = None, **changes) -> requests.Response:
    # Each request edits its own file: a newer request for the *same* file would cancel the
    # older one (issue 17), which is not what these limits are about.
    body = dict(SEED_PYTHON, filename=f"file{next(_files)}.py", **changes)
    return requests.post(url + "/complete", json=body, headers=headers, timeout=30)


def _burst(url: str, n: int, headers: dict | None = None) -> list[requests.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: _post(url, headers), range(n)))


def test_rate_limit_per_client_with_burst(up):
    # 0.1/s with a burst of 5: the window (50 s) is far longer than the test, so
    # exactly the burst gets through however slowly the machine runs.
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1",
                    helios_rate_limit_per_second=0.1, helios_rate_limit_burst=5,
                    helios_max_concurrent=50) as (url, _):
        results = _burst(url, 8)
        assert sorted(r.status_code for r in results) == [200] * 5 + [429] * 3
        for r in results:
            if r.status_code == 429:
                err = assert_helios_error(r, 429, "SERVER_OVERLOADED")
                assert "rate limit" in err["detail"]
                assert 1 <= int(r.headers["Retry-After"]) <= 51
        # With auth off a bearer is not an identity (issue 11): still the same client.
        assert _post(url, {"Authorization": "Bearer key-b"}).status_code == 429
        # Health and status are not limited.
        for path in ("/health", "/status"):
            assert all(requests.get(url + path, timeout=10).status_code == 200 for _ in range(8))


def test_rate_limit_seed_numbers(up):
    # 10/s with a burst of 20: a burst of 25 admits 20 (all are sent well within
    # the 2 s window; the 21st onwards are refused).
    with helios_app(lm_studio_base_url=up.url, helios_model="echo-1",
                    helios_max_concurrent=50) as (url, _):
        start = time.monotonic()
        results = _burst(url, 25)
        assert all(r.status_code in (200, 429) for r in results)
        if time.monotonic() - start < 1.9:  # else the 2 s window moved on: counts may differ
            assert sum(r.status_code == 200 for r in results) == 20


def test_concurrency_limit_sheds_the_excess():
    with held_upstream() as up, helios_app(lm_studio_base_url=up.url, helios_model="held",
                                           helios_queue_wait_seconds=0.1) as (url, _):
        with ThreadPoolExecutor(8) as pool:
            held = [pool.submit(_post, url) for _ in range(5)]   # the seed's limit: 5
            assert up.wait_arrived(5)                          # all five are generating
            start = time.monotonic()
            extra = [pool.submit(_post, url) for _ in range(3)]
            for f in as_completed(extra, timeout=10):
                err = assert_helios_error(f.result(), 429, "SERVER_OVERLOADED")
                assert "HELIOS_MAX_CONCURRENT" in err["detail"]
                assert f.result().headers["Retry-After"] == "1"
            assert time.monotonic() - start < 5  # a brief wait, not a queue
            assert not any(f.done() for f in held)
            up.release.set()
            assert [f.result(timeout=10).status_code for f in held] == [200] * 5
        assert up.arrived == 5


def test_concurrency_limit_waits_briefly_for_a_slot():
    with held_upstream() as up, helios_app(lm_studio_base_url=up.url, helios_model="held",
                                           helios_max_concurrent=2,
                                           helios_queue_wait_seconds=10) as (url, _):
        with ThreadPoolExecutor(3) as pool:
            first = [pool.submit(_post, url) for _ in range(2)]
            assert up.wait_arrived(2)
            waiting = pool.submit(_post, url)
            assert up.arrived == 2 and not waiting.done()
            up.release.set()  # the first two finish and the third takes a slot
            assert [f.result(timeout=10).status_code for f in first + [waiting]] == [200] * 3
        assert up.arrived == 3


def test_disconnected_client_stops_generation(up):
    # "endless" streams until the client goes away; one line of code, so the
    # suggestion never completes on its own and only the disconnect can stop it.
    with helios_app(lm_studio_base_url=up.url, helios_model="endless",
                    helios_max_predict_ms=0) as (url, _):
        u = urlsplit(url)
        body = json.dumps({"code": "total = ", "language": "python", "filename": "a.py",
                           "position": {"line": 0, "character": 8}, "max_tokens": 500}).encode()
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(b"POST /complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        deadline = time.monotonic() + 10
        while up.state.calls["endless"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert up.state.calls["endless"] == 1
        before = len(up.state.disconnects)
        closed_at = time.monotonic()
        sock.close()  # the editor cancels the stale request
        deadline = time.monotonic() + 10
        while len(up.state.disconnects) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        # The gateway closed its upstream stream long before the upstream's 30 s.
        assert len(up.state.disconnects) == before + 1
        assert up.state.disconnects[-1] > closed_at
