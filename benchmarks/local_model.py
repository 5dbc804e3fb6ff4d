"""The embedded model served by the gateway vs. llama-cpp-python in-process, side by side.

Starts the gateway under gunicorn with its default settings (the embedded
SmolLM2 model; LOCAL_* variables in the environment apply to both sides) and
loads the same GGUF in this process with the same settings. Each round streams the same completion from both, one
after the other (temperature 0, the same prompt and token count), and the
medians are printed: decode throughput (tokens/s after the first token), the
ratio gateway / in-process, and the time-to-first-token difference. Absolute
numbers depend on the machine and its load; the ratio and the difference are
the result. Usage: ``python benchmarks/local_model.py [--rounds 5] [--tokens 128]``.
"""

from __future__ import annotations

import argparse
import http.client
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
from gateway_overhead import wait_up  # noqa: E402  (a sibling script)
from tests.support.procs import free_port  # noqa: E402

PROMPT = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"


def via_gateway(port: int, model: str, tokens: int) -> tuple[float, float, int]:
    """(seconds to the first token, decode tokens/s, tokens) of one streamed completion."""
    body = json.dumps({"model": model, "prompt": PROMPT, "max_tokens": tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first = last = None
    count = 0
    for line in r:
        if not line.startswith(b"data: {"):
            continue
        event = json.loads(line[6:])
        if event.get("usage"):
            count = event["usage"]["completion_tokens"]
        if event.get("choices") and event["choices"][0].get("text"):
            last = time.perf_counter()
            first = first or last
    c.close()
    return first - start, (count - 1) / (last - first), count


def http_floor(port: int, n: int = 20) -> float:
    """Median seconds of a GET /v1/models: what any gateway round trip costs here."""
    times = []
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start = time.perf_counter()
        c.request("GET", "/v1/models")
        c.getresponse().read()
        times.append(time.perf_counter() - start)
        c.close()
    return statistics.median(times)


def in_process(llama, tokens: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = last = None
    count = 0
    for chunk in llama.create_completion(PROMPT, max_tokens=tokens, temperature=0, stream=True):
        count += 1
        last = time.perf_counter()
        first = first or last
    return first - start, (count - 1) / (last - first), count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()

    from llama_cpp import Llama

    from service.providers.local.provider import _KV_TYPES, default_model_path, model_id_for
    from service.settings import load_settings

    s = load_settings()
    path = s.local_model_path or default_model_path()
    port = free_port()
    logdir = Path(tempfile.mkdtemp(prefix="bench-local-"))
    env = dict(os.environ)  # LOCAL_* set here apply to both sides
    env.update({"HELIOS_PORT": str(port), "DATA_DIR": str(logdir / "data"),
                "RATE_LIMIT_PER_IP": "0", "LOG_LEVEL": "warning"})
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=env,
                            stdout=open(logdir / "gateway.log", "w"), stderr=subprocess.STDOUT)
    kv = _KV_TYPES[s.local_kv_cache_type]
    llama = Llama(model_path=str(path), n_ctx=s.local_n_ctx, n_threads=s.local_n_threads,
                  n_threads_batch=s.local_n_threads, n_batch=s.local_n_batch,
                  flash_attn=s.local_flash_attn, type_k=kv, type_v=kv, verbose=False)
    model = model_id_for(path)
    try:
        wait_up(port, timeout=120)
        via_gateway(port, model, 8)  # warm up both
        in_process(llama, 8)
        gw, local = [], []
        for _ in range(args.rounds):
            gw.append(via_gateway(port, model, args.tokens))
            local.append(in_process(llama, args.tokens))
        floor = http_floor(port)
    finally:
        proc.terminate()
        proc.wait(30)
    med = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
    print(f"LOCAL_N_THREADS={s.local_n_threads} LOCAL_N_CTX={s.local_n_ctx} "
          f"kv={s.local_kv_cache_type} flash_attn={s.local_flash_attn} cpus={os.cpu_count()} "
          f"rounds={args.rounds} tokens={args.tokens}")
    print(f"{'':12} {'TTFT ms':>9} {'tokens/s':>9}")
    for name, runs in (("gateway", gw), ("in-process", local)):
        print(f"{name:12} {med(runs, 0) * 1000:9.1f} {med(runs, 1):9.1f}")
    print(f"throughput ratio gateway/in-process: {med(gw, 1) / med(local, 1):.2f}x")
    print(f"TTFT difference gateway - in-process: {(med(gw, 0) - med(local, 0)) * 1000:+.1f} ms "
          f"(a GET /v1/models round trip here: {floor * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
