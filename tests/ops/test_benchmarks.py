"""The benchmarks run as the README says: ``python benchmarks/<name>.py``."""

from __future__ import annotations

import sys

from tests.support.procs import ROOT


def test_no_benchmark_shadows_a_standard_module():
    """A script's directory comes first on sys.path: a benchmarks/typing.py would be imported
    as ``typing`` by every other benchmark (and by the standard library under it)."""
    names = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    assert not names & set(sys.stdlib_module_names)


def test_capacity_benchmark_runs_its_stream_and_slow_client_steps():
    """A miniature run of benchmarks/capacity.py: streams relayed, slow clients cut (408) at
    the read timeout, every figure printed."""
    import os
    import re
    import subprocess

    env = dict(os.environ, CLIENT_READ_TIMEOUT_SECONDS="1")
    r = subprocess.run([sys.executable, "benchmarks/capacity.py", "--targets", "gateway",
                        "--workers", "1", "--threads", "16", "--duration", "1", "--steps", "4",
                        "--slow-clients", "4", "--slow-window", "5", "--trickle", "0.2"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    streams = lines[lines.index("gateway") + 2].split()
    assert streams[:4] == ["4", "4", "0", "0"], r.stdout  # 4 streams, 4 ok, none failed
    slow = next(line for line in lines if re.match(r"\s+4\s+4\s+408:4\s", line))
    assert slow.split()[3] == "0", r.stdout  # none left open
