"""Capacity: how many long streams one instance relays, and where it breaks.

Starts a loopback stand-in upstream (asyncio) that streams ``--rate`` chunks/s
for ``--duration`` s per request, then, for each target (the gateway with its
defaults, and a naive Flask + requests streaming relay under the same gunicorn
worker and thread counts), ramps concurrent streams (``--steps``, default
64 128 256 512 1024) and prints per step: streams ok / failed / refused,
first-byte p50/p99, added per-chunk delay p99 (arrival minus the upstream's
send time, both on this machine's clock), ``/healthz`` p99 (polled every
100 ms on new connections, 5 s timeout) and the workers' peak RSS and CPU.

``--slow-clients N ...`` then opens N clients per step that trickle a byte per
``--trickle`` seconds (half their headers, half a request body after whole
headers) for ``--slow-window`` seconds, and prints how many the target cut (and
with which status, how long after their first byte) and ``/healthz`` p50/p99
meanwhile. ``--steps`` with no value skips the stream ramp.

Usage: ``python benchmarks/capacity.py [--duration 30] [--steps 64 128 ...]
[--targets gateway naive] [--workers 2] [--threads 512] [--slow-clients 256]``. The client is one
asyncio process, so it is cheap next to what it measures, but it shares the
machine: say what else was running when you quote the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.procs import free_port  # noqa: E402

BODY = json.dumps({"model": "stream", "stream": True,
                   "messages": [{"role": "user", "content": "Refactor this module."}]}).encode()


# ---- the stand-in upstream ------------------------------------------------------------
async def _serve_stream(reader, writer, rate: float, duration: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            if head.startswith(b"GET"):
                body = b'{"object":"list","data":[{"id":"stream","object":"model","created":1,' \
                       b'"owned_by":"bench"}]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            n = max(1, int(rate * duration))
            start = time.monotonic()
            for i in range(n):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                event = {"id": "s", "object": "chat.completion.chunk", "created": 1,
                         "model": "stream", "choices": [{"index": 0, "delta": {
                             "content": f"<{time.time():.6f}>"}, "finish_reason": None}]}
                data = b"data: " + json.dumps(event).encode() + b"\n\n"
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
            tail = b'data: {"id":"s","object":"chat.completion.chunk","created":1,' \
                   b'"model":"stream","choices":[{"index":0,"delta":{},' \
                   b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve_upstream(port: int, rate: float, duration: float) -> None:
    async def main():
        server = await asyncio.start_server(
            lambda r, w: _serve_stream(r, w, rate, duration), "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---- the naive relay (what a first version of a gateway looks like) --------------------
NAIVE = '''
import os, requests
from flask import Flask, Response, request
app = Flask(__name__)
session = requests.Session()
UPSTREAM = os.environ["UPSTREAM"]

@app.get("/healthz")
def healthz():
    return {"status": "ok"}

@app.post("/v1/chat/completions")
def chat():
    r = session.post(UPSTREAM + "/v1/chat/completions", data=request.get_data(),
                     headers={"Content-Type": "application/json"}, stream=True)
    return Response(r.iter_content(chunk_size=None), status=r.status_code,
                    mimetype="text/event-stream")
'''


# ---- the client -------------------------------------------------------------------------
async def one_stream(port: int, out: dict) -> None:
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    except OSError:
        out["failed"] += 1
        return
    try:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(BODY), BODY))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
        status = int(head.split(b" ")[1])
        if status in (429, 503):
            out["refused"] += 1
            return
        if status != 200:
            out["failed"] += 1
            return
        first, done, buf = None, False, b""
        while True:
            data = await asyncio.wait_for(reader.read(65536), 60)
            if not data:
                break
            now = time.time()
            if first is None:
                first = time.monotonic() - t0
            buf += data
            while b"<" in buf and b">" in buf[buf.index(b"<"):]:
                i = buf.index(b"<")
                j = buf.index(b">", i)
                try:
                    out["delays"].append(now - float(buf[i + 1:j]))
                except ValueError:
                    pass
                buf = buf[j + 1:]
            if b"[DONE]" in buf or b"[DONE]" in data:
                done = True
            buf = buf[-64:] if b"<" not in buf else buf
        if done:
            out["ok"] += 1
            out["first"].append(first)
        else:
            out["failed"] += 1
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        out["failed"] += 1
    finally:
        writer.close()


async def poll_health(port: int, stop: asyncio.Event, out: list) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await w.drain()
            await asyncio.wait_for(r.read(), 5)
            w.close()
            out.append(time.monotonic() - t0)
        except (OSError, asyncio.TimeoutError):
            out.append(5.0)
        await asyncio.sleep(0.1)


SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"y" * 200 + b"\r\n\r\n"
SLOW_BODY_HEAD = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n")


async def slow_client(port: int, body: bool, trickle: float, until: float, out: dict) -> None:
    """Trickle headers (or, after whole headers, a body) a byte at a time until cut or
    ``until``; note when the target answered or closed, and its status."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        out["failed"] += 1
        return
    start = time.monotonic()
    answer = asyncio.create_task(reader.read(4096))
    try:
        if body:
            writer.write(SLOW_BODY_HEAD)
        for b in (b" " * 400 if body else SLOW_HEAD):
            if answer.done() or time.monotonic() >= until:
                break
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.wait([answer], timeout=trickle)
    except OSError:
        pass
    if answer.done():
        took = time.monotonic() - start
        try:
            data = answer.result()
        except OSError:
            data = b""
        out["cut"].append(took)
        status = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed"
        out["status"][status] = out["status"].get(status, 0) + 1
    else:
        answer.cancel()
        out["open"] += 1
    writer.close()


async def slow_step(port: int, master: int, n: int, window: float, trickle: float) -> dict:
    out = {"cut": [], "status": {}, "open": 0, "failed": 0}
    workers = _children(master)
    cpu0 = {w: _cpu(w) for w in workers}
    stop, health = asyncio.Event(), []
    t0 = time.monotonic()
    until = t0 + window
    clients = [asyncio.create_task(slow_client(port, bool(i % 2), trickle, until, out))
               for i in range(n)]
    await asyncio.sleep(1.0)  # all connected and trickling
    poller = asyncio.create_task(poll_health(port, stop, health))
    rss = {w: 0.0 for w in workers}
    pending = set(clients)
    while pending or time.monotonic() < until:  # /healthz is polled the whole window
        if pending:
            _, pending = await asyncio.wait(pending, timeout=1.0)
        else:
            await asyncio.sleep(min(1.0, max(0.0, until - time.monotonic())))
        for w in workers:
            rss[w] = max(rss[w], _rss_mb(w))
    stop.set()
    await poller
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
    return {"n": n, "cut": len(out["cut"]), "open": out["open"], "failed": out["failed"],
            "status": " ".join(f"{k}:{v}" for k, v in sorted(out["status"].items())) or "-",
            "cut_p50": q(out["cut"], 0.5), "cut_max": q(out["cut"], 1.0),
            "health_p50": q(health, 0.5) * 1000, "health_p99": q(health, 0.99) * 1000,
            "polls": len(health), "rss_mb": max(rss.values(), default=0.0),
            "cpu_pct": 100 * sum(_cpu(w) - cpu0[w] for w in workers)
            / (time.monotonic() - t0)}


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def step(port: int, master: int, n: int, ramp: float) -> dict:
    out = {"ok": 0, "failed": 0, "refused": 0, "first": [], "delays": []}
    workers = _children(master)
    cpu0 = {w: _cpu(w) for w in workers}
    stop, health, rss = asyncio.Event(), [], {w: 0.0 for w in workers}
    poller = asyncio.create_task(poll_health(port, stop, health))
    t0 = time.monotonic()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one_stream(port, out)))
        await asyncio.sleep(ramp / n)
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=1.0)
        for w in workers:
            rss[w] = max(rss[w], _rss_mb(w))
    elapsed = time.monotonic() - t0
    stop.set()
    await poller
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")
    return {"n": n, "ok": out["ok"], "failed": out["failed"], "refused": out["refused"],
            "first_p50": q(out["first"], 0.5), "first_p99": q(out["first"], 0.99),
            "delay_p99": q(out["delays"], 0.99), "health_p99": q(health, 0.99),
            "rss_mb": max(rss.values(), default=0.0),
            "cpu_pct": 100 * sum(_cpu(w) - cpu0[w] for w in workers) / elapsed}


def start_target(name: str, port: int, upstream: str, workers: int, threads: int,
                 log, tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, GUNICORN_WORKERS=str(workers), GUNICORN_THREADS=str(threads),
               HELIOS_PORT=str(port), LM_STUDIO_BASE_URL=upstream, LOCAL_PRELOAD="false",
               LOG_LEVEL="warning", DATA_DIR=str(tmp), RATE_LIMIT_PER_IP="0",
               REQUEST_TIMEOUT_SECONDS="120", UPSTREAM=upstream)
    if name == "gateway":
        cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
        cwd = ROOT
    else:
        (tmp / "naive_relay.py").write_text(NAIVE)
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread",
               "--threads", str(threads), "--worker-connections", "2048",
               "-b", f"127.0.0.1:{port}", "naive_relay:app"]
        cwd = tmp
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=log)


def wait_up(port: int, timeout: float = 60) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} did not come up")


def ramp_streams(args, name: str, port: int, master: int) -> None:
    print(f"\n{name}")
    print(f"{'streams':>8} {'ok':>5} {'failed':>6} {'refused':>7} {'1st p50':>8} {'1st p99':>8} "
          f"{'chunk p99':>9} {'health p99':>10} {'RSS/wkr':>8} {'CPU':>6}")
    for n in args.steps:
        r = asyncio.run(step(port, master, n, args.ramp))
        print(f"{r['n']:>8} {r['ok']:>5} {r['failed']:>6} {r['refused']:>7} "
              f"{r['first_p50']:>6.0f}ms {r['first_p99']:>6.0f}ms {r['delay_p99']:>7.0f}ms "
              f"{r['health_p99']:>8.0f}ms {r['rss_mb']:>6.0f}MB {r['cpu_pct']:>5.0f}%",
              flush=True)


def _seconds(x: float) -> str:
    return f"{'-':>8}" if x != x else f"{x:>7.1f}s"  # x != x: nan, nothing was cut


def slow_clients(args, name: str, port: int, master: int) -> None:
    print(f"\n{name}, slow clients (a byte per {args.trickle:g}s, "
          f"{args.slow_window:g}s at most)")
    print(f"{'clients':>8} {'cut':>5} {'statuses':>16} {'open':>5} {'cut p50':>8} "
          f"{'cut max':>8} {'health p50':>10} {'health p99':>10} {'polls':>5} {'RSS/wkr':>8} "
          f"{'CPU':>6}")
    for n in args.slow_clients:
        r = asyncio.run(slow_step(port, master, n, args.slow_window, args.trickle))
        print(f"{r['n']:>8} {r['cut']:>5} {r['status']:>16} {r['open']:>5} "
              f"{_seconds(r['cut_p50'])} {_seconds(r['cut_max'])} {r['health_p50']:>8.0f}ms "
              f"{r['health_p99']:>8.0f}ms {r['polls']:>5} {r['rss_mb']:>6.0f}MB "
              f"{r['cpu_pct']:>5.0f}%", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per stream")
    ap.add_argument("--rate", type=float, default=10.0, help="chunks per second per stream")
    ap.add_argument("--steps", type=int, nargs="*", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--targets", nargs="+", default=["gateway", "naive"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=512)
    ap.add_argument("--ramp", type=float, default=2.0, help="seconds to open a step's streams")
    ap.add_argument("--slow-clients", type=int, nargs="*", default=[],
                    help="slow-client steps: clients trickling headers or bodies")
    ap.add_argument("--slow-window", type=float, default=45.0,
                    help="seconds each slow client trickles at most")
    ap.add_argument("--trickle", type=float, default=1.0,
                    help="seconds between a slow client's bytes")
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        return serve_upstream(args.serve_upstream, args.rate, args.duration)

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port),
                                 "--rate", str(args.rate), "--duration", str(args.duration)])
    print(f"streams of {args.duration:g}s at {args.rate:g} chunks/s; {args.workers} workers x "
          f"{args.threads} threads; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.1f} at start")
    try:
        time.sleep(0.5)
        for name in args.targets:
            with tempfile.TemporaryDirectory() as tmp:
                port = free_port()
                log = open(Path(tmp) / "server.log", "w")
                proc = start_target(name, port, f"http://127.0.0.1:{up_port}", args.workers,
                                    args.threads, log, Path(tmp))
                try:
                    wait_up(port)
                    if args.steps:
                        ramp_streams(args, name, port, proc.pid)
                    if args.slow_clients:
                        slow_clients(args, name, port, proc.pid)
                finally:
                    proc.terminate()
                    proc.wait(30)
                    log.close()
    finally:
        upstream.terminate()
        upstream.wait(10)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
