"""Gateway overhead vs. calling the upstream directly, and vs. a bare Flask proxy.

Starts, side by side in one run: a static OpenAI-compatible upstream, a bare
20-line Flask + requests proxy (2 gunicorn gthread workers × 8 threads) and the
gateway (2 workers at its own default thread count, every feature on:
validation, routing, admission, JSON logs, request ids, metrics, the per-IP rate
limiter, readiness and usage hooks). It then drives non-streaming chat
completions at concurrency 1 and 16, interleaving the three targets over several
rounds, and prints requests/s and p50/p99 latency with each target's ratio to
the direct upstream, side by side. Refusals (503, e.g. admission's
``overloaded``) are counted apart and left out of the latencies; other failures
are errors. Absolute numbers depend on the machine; the ratios are the result.
Usage: ``python benchmarks/gateway_overhead.py [--seconds 3] [--rounds 3]
[--gateway-threads N] [--baseline REV]`` (default: the gateway's GUNICORN_THREADS
default; with few threads admission fits its caps to them and refuses some
requests at 16). ``--baseline REV`` also runs the gateway as of git revision
REV (checked out in a temporary worktree, same settings, same interpreter) as a
fourth target, so "the overhead did not grow" is measured side by side in one
run rather than against numbers from another day's machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.procs import free_port  # noqa: E402

BODY = json.dumps({"model": "static", "messages": [
    {"role": "system", "content": "You are a coding assistant."},
    {"role": "user", "content": "Write a function that adds two numbers."}],
    "temperature": 0, "max_tokens": 64}).encode()


def wait_up(port: int, path: str = "/v1/models", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not come up")


def load(port: int, concurrency: int, seconds: float) -> dict:
    lat: list[float] = []
    errors = [0]
    refused = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/chat/completions", body=BODY,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 503:
                    refused[0] += 1
                    continue
                if resp.status != 200:
                    errors[0] += 1
                    continue
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
    return {"rps": len(lat) / elapsed, "p50": q(0.50), "p99": q(0.99), "errors": errors[0],
            "refused": refused[0], "ok": len(lat)}


def gunicorn(app: str, port: int, env: dict, log, root: Path = ROOT) -> subprocess.Popen:
    full = dict(os.environ, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "8",
         "-b", f"127.0.0.1:{port}", app] if app != "wsgi:app" else
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app],
        cwd=root if app == "wsgi:app" else ROOT / "benchmarks", env=full, stdout=log, stderr=log)


def checkout(rev: str, into: Path) -> Path:
    """A detached git worktree of ``rev`` (removed by :func:`drop_checkout`)."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                    str(into), rev], check=True)
    return into


def drop_checkout(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                   check=False)
    shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gateway-threads", type=int, default=None,
                    help="GUNICORN_THREADS of the gateway (default: its own default)")
    ap.add_argument("--baseline", metavar="REV", default=None,
                    help="also run the gateway at this git revision, side by side")
    args = ap.parse_args()

    up_port, bare_port, gw_port = free_port(), free_port(), free_port()
    logdir = Path(tempfile.mkdtemp(prefix="bench-"))
    # Checked out before any server starts: a bad REV then leaves nothing running.
    base_root = checkout(args.baseline, logdir / "baseline") if args.baseline else None
    procs = [subprocess.Popen([sys.executable, str(ROOT / "benchmarks/static_upstream.py"),
                               str(up_port)])]
    upstream = f"http://127.0.0.1:{up_port}"
    procs.append(gunicorn("bare_proxy:app", bare_port, {"UPSTREAM": upstream},
                          open(logdir / "bare.log", "w")))
    gw_env = {"GUNICORN_THREADS": str(args.gateway_threads)} if args.gateway_threads else {}

    def gateway_env(port: int, name: str) -> dict:
        data, metrics = logdir / f"data-{name}", logdir / f"metrics-{name}"
        metrics.mkdir()
        return gw_env | {
            "LM_STUDIO_BASE_URL": upstream, "HELIOS_PORT": str(port), "GUNICORN_WORKERS": "2",
            "LOG_LEVEL": "info", "LOCAL_PRELOAD": "false", "DATA_DIR": str(data),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            # The per-IP limiter stays on (its cost is measured), set high enough never to refuse.
            "RATE_LIMIT_PER_IP": "100000000"}

    procs.append(gunicorn("wsgi:app", gw_port, gateway_env(gw_port, "gateway"),
                          open(logdir / "gateway.log", "w")))
    targets = {"direct": up_port, "bare proxy": bare_port, "gateway": gw_port}
    if base_root is not None:
        base_port = free_port()
        procs.append(gunicorn("wsgi:app", base_port, gateway_env(base_port, "baseline"),
                              open(logdir / "baseline.log", "w"), root=base_root))
        targets[f"gw@{args.baseline[:8]}"] = base_port
    try:
        for name, p in targets.items():
            wait_up(p, "/" if name == "bare proxy" else "/v1/models")
        for port in targets.values():  # warm up connections and model caches
            load(port, 4, 0.5)
        for conc in (1, 16):
            runs = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, port in targets.items():
                    runs[name].append(load(port, conc, args.seconds))
            med = {name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")}
                   | {k: sum(r[k] for r in rs) for k in ("errors", "refused", "ok")}
                   for name, rs in runs.items()}
            d = med["direct"]
            print(f"\nconcurrency {conc} (median of {args.rounds} rounds of {args.seconds:g}s; "
                  f"ratios: target / direct upstream)")
            print(f"{'target':<12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ok':>8}{'503':>6}"
                  f"{'errors':>7}{'p50 ×':>8}{'p99 ×':>8}{'req/s ×':>9}")
            for name, m in med.items():
                print(f"{name:<12}{m['rps']:>9.0f}{m['p50']:>9.2f}{m['p99']:>9.2f}{m['ok']:>8}"
                      f"{m['refused']:>6}{m['errors']:>7}{m['p50'] / d['p50']:>8.2f}"
                      f"{m['p99'] / d['p99']:>8.2f}{m['rps'] / d['rps']:>9.2f}")
            b = med["bare proxy"]
            for name in ["gateway"] + [t for t in targets if t.startswith("gw@")]:
                g = med[name]
                print(f"{name}: added p50 latency {g['p50'] - d['p50']:.2f} ms vs bare proxy "
                      f"{b['p50'] - d['p50']:.2f} ms "
                      f"(/bare = {(g['p50'] - d['p50']) / max(b['p50'] - d['p50'], 1e-9):.2f}x); "
                      f"throughput /direct = {g['rps'] / d['rps']:.2f}, "
                      f"/bare proxy = {g['rps'] / b['rps']:.2f}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        if base_root is not None:
            drop_checkout(base_root)


if __name__ == "__main__":
    main()
