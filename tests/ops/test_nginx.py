"""The deployment shape, for real: nginx (``deploy/nginx.conf``) in front of two gateway
instances under gunicorn (two workers each, multiprocess metrics), on loopback.

nginx comes from the Debian package (``make test`` installs it when it can). When it is
missing these tests fail under CI (``CI`` set) and are skipped elsewhere, saying why.
The instance-killing test comes last of those sharing `stack` (a module fixture).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import openai
import pytest
import requests

from tests.support.helios import assert_helios_error
from tests.support.loopback import session_from
from tests.support.metrics import scrape, value
from tests.support.nginx import nginx, nginx_binary
from tests.support.procs import gunicorn
from tests.support.upstream import start_upstream

CHAT = "/v1/chat/completions"

if nginx_binary() is None:
    reason = "nginx is not installed (apt-get install nginx-light; `make test` does it as root)"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    up = start_upstream()
    up.state.models.append("echo-count")  # served by name: it gets its own metric label
    env = {"LM_STUDIO_BASE_URL": up.url, "LOCAL_PRELOAD": "false", "GUNICORN_THREADS": "4"}

    def metrics_dir(name):  # one per instance, as in production (B is killed: no clean-up)
        return {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp(name))}

    try:
        with gunicorn({**env, **metrics_dir("metrics-a")}, workers=2) as a, \
                gunicorn({**env, **metrics_dir("metrics-b")}, workers=2) as b:
            backends = [url.removeprefix("http://") for url, _, _ in (a, b)]
            with nginx(backends, tmp_path_factory.mktemp("nginx")) as proxy:
                yield proxy, [a, b], up
    finally:
        up.shutdown()
        up.server_close()


def _access_lines(log_path) -> list[dict]:
    out = []
    for line in log_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("logger") == "service.access":
            out.append(rec)
    return out


def _eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_streams_pass_through_unbuffered_and_stop_with_the_client(stack):
    proxy, instances, up = stack

    def in_flight():  # summed over both instances' workers (multiprocess "livesum")
        return sum(value(scrape(url), "gateway_requests_in_flight") for url, _, _ in instances)

    start = time.monotonic()
    arrivals = []
    with requests.post(proxy + CHAT, json={"model": "endless", "stream": True, "messages": [
            {"role": "user", "content": "go"}]}, stream=True, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for line in resp.iter_lines(chunk_size=1):
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic() - start)
                if len(arrivals) == 20:
                    break
        assert in_flight() == 1
    # the stand-in emits one event every 50 ms: unbuffered, they arrive spread out
    # (a buffering proxy would hand these ~3 KB over in one piece, or at the end)
    assert arrivals[-1] - arrivals[0] >= 0.6, arrivals
    assert arrivals[0] < arrivals[-1] / 2, arrivals
    # closing the client connection reaches the upstream through nginx and the gateway
    _eventually(lambda: up.state.disconnects)
    _eventually(lambda: in_flight() == 0)


def test_request_id_round_trips(stack):
    proxy, instances, _ = stack
    r = requests.post(proxy + CHAT, headers={"X-Request-ID": "trace-through-nginx-1"},
                      json={"model": "echo-rid", "messages": [{"role": "user", "content": "a"}]})
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "trace-through-nginx-1"
    # without one, nginx makes one ($request_id) and the gateway uses and returns it
    r2 = requests.get(proxy + "/v1/models")
    generated = r2.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)

    def logged(rid):
        return [rec for _, log, _ in instances for rec in _access_lines(log)
                if rec["request_id"] == rid]

    _eventually(lambda: logged("trace-through-nginx-1") and logged(generated))
    assert logged("trace-through-nginx-1")[0]["model"] == "echo-rid"


def test_each_instance_counts_what_it_served(stack):
    proxy, instances, _ = stack
    c = openai.OpenAI(base_url=proxy + "/v1", api_key="x", max_retries=0)
    n = 10
    for i in range(n):
        c.chat.completions.create(model="echo-count", messages=[{"role": "user", "content": "a b"}])
    labels = dict(route=CHAT, method="POST", status="200", model="echo-count", provider="openai")

    def served(log):
        return len([r for r in _access_lines(log) if r.get("model") == "echo-count"])

    _eventually(lambda: sum(served(log) for _, log, _ in instances) == n)
    totals = []
    for url, log, _ in instances:
        samples = scrape(url)  # every worker's values, through the multiprocess directory
        count = value(samples, "gateway_requests_total", **labels)
        assert count == served(log), (url, count, served(log))
        assert value(samples, "gateway_prompt_tokens_total", model="echo-count") == 5 * count
        assert value(samples, "gateway_completion_tokens_total", model="echo-count") == 3 * count
        assert value(samples, "gateway_request_duration_seconds_count", route=CHAT,
                     provider="openai") >= count
        totals.append(count)
    assert sum(totals) == n and all(t > 0 for t in totals), totals  # nginx balanced them


def test_slow_clients_wait_in_nginx_not_in_the_gateway(stack):
    """Clients trickling headers and bodies through nginx hold no gateway thread
    (each instance has 4): the gateway stays fast for everyone else."""
    import socket

    proxy, instances, _ = stack
    host, port = proxy.removeprefix("http://").split(":")
    stop = threading.Event()

    def trickle(head: bytes):
        try:
            s = socket.create_connection((host, int(port)), timeout=30)
            for b in head:
                if stop.is_set():
                    break
                s.sendall(bytes([b]))
                time.sleep(0.2)
            s.close()
        except OSError:
            pass

    heads = [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"y" * 100 + b"\r\n\r\n",
             b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n"
             + b" " * 100]
    threads = [threading.Thread(target=trickle, args=(heads[i % 2],), daemon=True)
               for i in range(40)]  # 40 slow clients; 2 instances x 2 workers x 4 threads = 16
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        for _ in range(10):
            start = time.monotonic()
            assert requests.get(proxy + "/healthz", timeout=5).status_code == 200
            assert time.monotonic() - start < 1.0
            r = requests.post(proxy + CHAT, json={"model": "echo-1", "messages": [
                {"role": "user", "content": "hi"}]}, timeout=5)
            assert r.status_code == 200
    finally:
        stop.set()


def test_killing_an_instance_loses_no_non_streaming_request(stack):
    proxy, instances, _ = stack
    (_, _, proc_a), (_, log_b, proc_b) = instances
    results: list[int] = []
    errors: list[str] = []
    killed = threading.Event()
    after_kill = []
    wanted_after_kill = 60

    def client():
        s = requests.Session()
        while len(after_kill) < wanted_after_kill:
            was_killed = killed.is_set()
            try:
                r = s.post(proxy + CHAT, timeout=20, json={
                    "model": "echo-failover", "messages": [{"role": "user", "content": "x"}]})
                results.append(r.status_code)
                if r.status_code != 200:
                    errors.append(r.text[:200])
            except requests.RequestException as exc:
                errors.append(repr(exc))
            if was_killed:
                after_kill.append(1)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    # traffic is flowing and instance B has served part of it
    _eventually(lambda: len(results) >= 30 and any(
        r.get("model") == "echo-failover" for r in _access_lines(log_b)))
    os.killpg(proc_b.pid, signal.SIGKILL)  # master and workers, mid-traffic
    proc_b.wait(10)
    killed.set()
    for t in threads:
        t.join(60)
    assert len(after_kill) >= wanted_after_kill  # the survivor kept serving
    assert proc_a.poll() is None
    assert not errors, errors[:5]
    assert set(results) == {200}


# Its own stack, started after the killing test so it adds no load there.
@pytest.fixture(scope="module")
def forwarded_stack(tmp_path_factory):
    """nginx in front of one instance that trusts it (FORWARDED_ALLOW_IPS) and limits
    each client address to 3 requests/minute."""
    up = start_upstream()
    env = {"LM_STUDIO_BASE_URL": up.url, "LOCAL_PRELOAD": "false",
           "FORWARDED_ALLOW_IPS": "127.0.0.1", "RATE_LIMIT_PER_IP": "3",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics-f"))}
    try:
        with gunicorn(env, workers=1) as (url, _, _):
            with nginx([url.removeprefix("http://")], tmp_path_factory.mktemp("nginx-f")) as proxy:
                yield proxy, url
    finally:
        up.shutdown()
        up.server_close()


def test_per_client_limits_see_clients_through_nginx(forwarded_stack):
    proxy, _ = forwarded_stack
    a, b = session_from("127.0.0.2"), session_from("127.0.0.3")  # two developers
    assert [a.get(proxy + "/v1/models").status_code for _ in range(4)] == [200] * 3 + [429]
    assert b.get(proxy + "/v1/models").status_code == 200  # not counted with a
    # a's own X-Forwarded-For is kept, but nginx appends a's real address after it
    forged = a.get(proxy + "/v1/models", headers={"X-Forwarded-For": "10.0.0.9"})
    assert forged.status_code == 429


def test_restart_is_not_forwarded(forwarded_stack):
    proxy, _ = forwarded_stack
    r = requests.post(proxy + "/restart")
    body = assert_helios_error(r, 403, "FORBIDDEN")
    assert "directly" in body["detail"]
