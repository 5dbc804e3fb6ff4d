"""A stand-in for the Helix CLI: an executable ``helix`` that prints ``tok-<n>``.

``install(directory)`` writes it; it keeps its state next to itself:

- ``calls.log``: one line per invocation with its arguments (count them with ``calls()``);
- ``fail``: when present, the CLI writes that file's text to stderr and exits 1;
- ``delay``: seconds to sleep before answering (to make concurrent callers overlap).
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

SCRIPT = '''#!{python}
import pathlib, sys, time
here = pathlib.Path(__file__).resolve().parent
with open(here / "calls.log", "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
n = len((here / "calls.log").read_text().splitlines())
if (here / "delay").exists():
    time.sleep(float((here / "delay").read_text()))
if (here / "fail").exists():
    sys.stderr.write((here / "fail").read_text())
    sys.exit(1)
print("helix: using profile default", file=sys.stderr)
print(f"tok-{{n}}")
'''


def install(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "helix"
    path.write_text(SCRIPT.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def calls(directory: Path) -> list[str]:
    log = directory / "calls.log"
    return log.read_text().splitlines() if log.exists() else []
