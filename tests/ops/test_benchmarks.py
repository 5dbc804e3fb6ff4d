"""The benchmarks run as the README says: ``python benchmarks/<name>.py``."""

from __future__ import annotations

import sys

from tests.support.procs import ROOT


def test_no_benchmark_shadows_a_standard_module():
    """A script's directory comes first on sys.path: a benchmarks/typing.py would be imported
    as ``typing`` by every other benchmark (and by the standard library under it)."""
    names = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    assert not names & set(sys.stdlib_module_names)
