"""Latency of Helios ``/complete`` on the embedded model, and where the time goes.

Serves the gateway on 127.0.0.1 (in this process, so the local provider can be
timed) and sends sequential ``/complete`` requests asking for 16-token
suggestions. For every request, in the same run, it records:

- the client's round trip (``requests`` → response parsed),
- the server's ``processing_time`` (request arrival → response body built),
- the model's time: the provider's ``stream()`` call, every chunk pulled from
  it and its ``close()`` (:mod:`benchmarks.model_clock`).

It prints p50/p95 of each and the share of time spent outside the model
(``1 - model / processing_time``, and for the whole round trip). Ratios, not
absolute times, are what carry over between machines.

    python benchmarks/helios_latency.py [--requests 40] [--max-tokens 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.model_clock import ModelClock, pct  # noqa: E402
from service import create_app  # noqa: E402
from service.settings import load_settings  # noqa: E402
from tests.conftest import serve  # noqa: E402

BODIES = [
    {"code": "def factorial(n):\n    if n == 0:\n        return 1\n    else:\n        ",
     "language": "python", "position": {"line": 4, "character": 8}, "filename": "math_utils.py"},
    {"code": "function calculateSum(arr) {\n    let total = 0;\n    for (let i = 0; i < arr.length; "
             "i++) {\n        ", "language": "javascript", "position": {"line": 3, "character": 8},
     "filename": "utils.js"},
    {"code": "def fibonacci(n):\n    if n <= 1:\n        return n\n    ", "language": "python",
     "position": {"line": 3, "character": 4}, "filename": "fibonacci.py"},
    {"code": "import os\nimport sys\n\n\ndef read_config(path):\n    \"\"\"Read KEY=VALUE lines.\"\"\"\n"
             "    values = {}\n    with open(path) as f:\n        for line in f:\n            ",
     "language": "python", "position": {"line": 9, "character": 12}, "filename": "config.py"},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    args = ap.parse_args()

    app = create_app(load_settings(log_level="warning", local_n_threads=args.threads,
                                   helios_rate_limit_per_second=0,
                                   helios_cache_entries=0))  # every request runs the model
    provider = app.extensions["gateway"].router.by_name("local")
    clock = ModelClock(provider)
    rows = []
    with serve(app) as url, requests.Session() as http:
        for i in range(args.requests + 4):
            body = dict(BODIES[i % len(BODIES)], max_tokens=args.max_tokens, temperature=0)
            start = time.perf_counter()
            r = http.post(url + "/complete", json=body, timeout=120,
                          headers={"X-Request-ID": f"latency-{i}"})
            out = r.json()
            rtt = time.perf_counter() - start
            r.raise_for_status()
            if i >= 4:  # the first round warms caches
                e = clock.entries[f"latency-{i}"]
                rows.append((rtt, out["processing_time"], e.stream_s, e.sampled))

    rtt = [r[0] for r in rows]
    proc = [r[1] for r in rows]
    model = [r[2] for r in rows]
    tokens = [r[3] for r in rows]
    print(f"Helios /complete on {provider.model_id}, {len(rows)} sequential requests, "
          f"max_tokens={args.max_tokens}, {args.threads} llama.cpp threads")
    print(f"  tokens generated per request: mean {statistics.mean(tokens):.1f} "
          f"(a suggestion ends early at a block boundary)")
    print(f"  {'':24}{'p50':>9}{'p95':>9}")
    for name, values in (("client round trip (ms)", rtt), ("processing_time (ms)", proc),
                         ("model time (ms)", model)):
        print(f"  {name:24}{pct(values, 50) * 1000:9.1f}{pct(values, 95) * 1000:9.1f}")
    outside = 1 - sum(model) / sum(proc)
    outside_rtt = 1 - sum(model) / sum(rtt)
    per_request = statistics.median([p - m for p, m in zip(proc, model)])
    print(f"  share of processing_time outside the model: {outside:.1%} "
          f"(median {per_request * 1000:.2f} ms per request)")
    print(f"  share of the client round trip outside the model: {outside_rtt:.1%}")


if __name__ == "__main__":
    main()
