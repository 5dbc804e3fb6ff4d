"""What a hard kill (SIGKILL, OOM) of a worker costs in usage rows: only those of requests
that ended within the last USAGE_FLUSH_SECONDS (plus the write in progress) before it."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import requests

from tests.support.procs import gunicorn

FLUSH = 0.5
MARGIN = 2.5  # the write in progress and a loaded machine: generous on purpose


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_sigkill_loses_at_most_the_last_flush_interval(upstream, tmp_path):
    env = {"LM_STUDIO_BASE_URL": upstream.url, "DATA_DIR": str(tmp_path),
           "USAGE_FLUSH_SECONDS": str(FLUSH), "LOG_LEVEL": "warning"}
    done: list[tuple[float, str]] = []  # (time the response was complete, request id)
    stop = threading.Event()

    def client(url):
        session = requests.Session()
        while not stop.is_set():
            rid = uuid.uuid4().hex
            try:
                r = session.post(url + "/v1/completions", timeout=10,
                                 json={"model": "echo-1", "prompt": "x", "max_tokens": 2},
                                 headers={"X-Request-ID": rid})
            except requests.RequestException:
                session = requests.Session()  # the killed worker's connection
                continue
            if r.status_code == 200:
                done.append((time.monotonic(), rid))

    with gunicorn(env, workers=1) as (url, _log, proc):
        threads = [threading.Thread(target=client, args=(url,)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(3)
        os.kill(_worker_pid(proc.pid), signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(2)  # the master starts a new worker; traffic goes on
        stop.set()
        for t in threads:
            t.join(15)
    # gunicorn stopped gracefully (SIGTERM): the new worker flushed everything it had.
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        stored = {r for (r,) in conn.execute("SELECT request_id FROM usage_records")}
    before_kill = [(t, rid) for t, rid in done if t < killed]
    lost = [(t, rid) for t, rid in done if rid not in stored]
    ages = [killed - t for t, _ in lost]
    print(f"{len(done)} requests, {len(before_kill)} before the kill, {len(lost)} rows lost, "
          f"ended {min(ages, default=0):.3f} to {max(ages, default=0):.3f} s before the kill")
    assert len(before_kill) > 20  # there was steady traffic to lose rows from
    # A response the killed worker had just sent may reach the client after the kill.
    assert all(-1.0 < age < FLUSH + MARGIN for age in ages), \
        f"a row older than the flush interval was lost: {sorted(ages)[-3:]}"
