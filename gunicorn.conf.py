"""gunicorn settings: gthread workers sized for streaming, bind from HELIOS_HOST/HELIOS_PORT.

Settings (and the custom endpoints file) are validated here, in the master, so
a bad variable stops start-up with one readable line before any worker forks.

Environment: the GUNICORN_* settings (``GunicornSettings`` in service/settings.py,
listed in docs/configuration.md): threads are sized for I/O, not cores (a stream
is a thread blocked on sockets; docs/operations.md "Capacity"); gthread workers heartbeat
from their main loop, so a long stream is not killed by GUNICORN_TIMEOUT; the
recycling jitter makes workers restart one at a time, not all at once.

Metrics: prometheus-client's multiprocess mode. ``on_starting`` (master, before
any worker forks) sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh temporary
directory unless it is given, in which case it is emptied; each exited worker is
marked dead; a directory created here is removed at exit. Give each instance on
a host its own directory.

The worker class (``service.gunicorn_worker``) is gthread plus a read deadline
per request (CLIENT_READ_TIMEOUT_SECONDS) and admission caps fitted to the
thread count, so liveness probes always find a free thread.

Usage rows still queued when a worker exits are written by ``worker_exit``.

Exposure (issue 11): ``when_ready`` checks every address gunicorn really
listens on (``bind`` here, ``-b``, ``GUNICORN_CMD_ARGS``, inherited sockets)
and stops the master before any worker forks when one is beyond loopback and
no API key exists (see docs/security.md).
"""

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

from service import custom_endpoints, models_file
from service.auth import check_listeners, migrate
from service.settings import ConfigError, load_settings

_settings = load_settings()
if _settings.custom_endpoints_file is not None:
    custom_endpoints.load(_settings.custom_endpoints_file)  # clashes are checked by the app
if _settings.models_file is not None:
    # Validated in the master; forked workers inherit the list. This file runs again on
    # every HUP: a bad model list is then logged and refused, and the old one stays.
    models_file.activate_or_keep(_settings.models_file, logging.getLogger("gunicorn.error"))
migrate(_settings)  # the key/usage schema, once, before any worker forks (issue 6)


bind = f"{_settings.helios_host}:{_settings.helios_port}"
worker_class = "service.gunicorn_worker.GatewayThreadWorker"
# GUNICORN_* are typed settings (service.settings.GunicornSettings), validated with the rest.
workers = _settings.gunicorn_workers
threads = _settings.gunicorn_threads
worker_connections = _settings.gunicorn_worker_connections  # open connections per worker
timeout = _settings.gunicorn_timeout
graceful_timeout = _settings.gunicorn_graceful_timeout
keepalive = _settings.gunicorn_keepalive
max_requests = _settings.gunicorn_max_requests
max_requests_jitter = _settings.max_requests_jitter
accesslog = None  # the app writes one JSON line per request
errorlog = "-"
# gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl):
# several instances on a host would take it from each other, and nothing here uses it.
control_socket_disable = True
loglevel = _settings.log_level


_made_metrics_dir = None


def on_starting(server):
    """Give workers a metrics directory, empty: files of an earlier run would be summed in.

    Runs in the master before any worker forks, so workers inherit the variable
    before they import prometheus_client.
    """
    global _made_metrics_dir
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for f in path.glob("*.db"):
            f.unlink()
    else:
        _made_metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_metrics_dir


def _listening_hosts(server) -> list[str]:
    """The host of every TCP socket gunicorn listens on (Unix sockets stay on this machine)."""
    from gunicorn.util import parse_address

    hosts = []
    for listener in server.LISTENERS:
        sock = getattr(listener, "sock", listener)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            hosts.append(sock.getsockname()[0])
    if not server.LISTENERS:  # reuse_port: each worker binds; check what it will bind
        for address in server.cfg.bind:
            parsed = parse_address(address)
            if isinstance(parsed, tuple):
                hosts.append(parsed[0] or "0.0.0.0")
    return hosts


def when_ready(server):
    """Refuse an exposed bind without keys: sockets exist, no worker has forked yet."""
    try:
        check_listeners(_settings, _listening_hosts(server))
    except ConfigError as exc:
        server.halt(reason=str(exc.code), exit_status=1)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)


def worker_exit(server, worker):
    """Flush queued usage rows before a worker process ends (SIGTERM included)."""
    from service.usage import close_all

    close_all()
