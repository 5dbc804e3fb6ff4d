"""Run the real nginx (Debian package) with ``deploy/nginx.conf`` on loopback ports.

The deploy file is used as written except for its two ``server`` lines (the
gateway instances) and its ``listen`` port; a minimal main config around it puts
pid, logs and temp files in a temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import ROOT, free_port

DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def render_site(backends: list[str], port: int, conf: Path = DEPLOY_CONF) -> str:
    """deploy/nginx.conf (or ``conf``) with its upstream servers and listen port replaced."""
    text = conf.read_text()
    block = re.search(r"upstream helios_gateway \{(.*?)\n\}", text, re.S)
    assert block, "deploy/nginx.conf has no 'upstream helios_gateway' block"
    servers = re.findall(r"^\s*server \S+( [^;]*)?;$", block.group(1), re.M)
    assert len(servers) >= 2, "the upstream block should list several gateway instances"
    options = servers[0] or ""
    body = re.sub(r"^\s*server \S+[^;]*;\n", "", block.group(1), flags=re.M)
    lines = "".join(f"\n    server {b}{options};" for b in backends)
    text = text.replace(block.group(0), "upstream helios_gateway {" + lines + body + "\n}")
    text, n = re.subn(r"^(\s*)listen \d+;", rf"\g<1>listen 127.0.0.1:{port};", text, flags=re.M)
    assert n == 1, "deploy/nginx.conf should have one 'listen <port>;'"
    return text


@contextmanager
def nginx(backends: list[str], workdir: Path, conf: Path = DEPLOY_CONF):
    """Yield nginx's URL; it proxies to ``backends`` ("127.0.0.1:port" each)."""
    binary = nginx_binary()
    port = free_port()
    (workdir / "site.conf").write_text(render_site(backends, port, conf))
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / d).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach workdir
    (workdir / "main.conf").write_text(f"""{user}daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {workdir}/site.conf;
}}
""")
    cmd = [binary, "-p", str(workdir), "-e", str(workdir / "error.log"),
           "-c", str(workdir / "main.conf")]
    check = subprocess.run(cmd + ["-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start: "
                                       + (workdir / "error.log").read_text()[-2000:])
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
