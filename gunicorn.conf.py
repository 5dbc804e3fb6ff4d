"""gunicorn settings: gthread workers, bind from HELIOS_HOST/HELIOS_PORT.

Settings are validated here, in the master, so a bad variable stops start-up
with one readable line before any worker forks.

Environment: GUNICORN_WORKERS (default: CPU count, at most 4), GUNICORN_THREADS
(8), GUNICORN_TIMEOUT (120 s; gthread workers heartbeat from their main loop,
so a long stream is not killed by it), GUNICORN_GRACEFUL_TIMEOUT (60 s, time
for streams to finish on shutdown), GUNICORN_KEEPALIVE (5 s).

Usage rows still queued when a worker exits are written by ``worker_exit``.
"""

import os

from service.auth import check_binding
from service.settings import load_settings

_settings = load_settings()
# Migrate the key/usage schema once and refuse an exposed bind without keys (issue 6).
check_binding(_settings)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"configuration error: {name}: must be an integer (got {raw!r})")
    if value < 0:
        raise SystemExit(f"configuration error: {name}: must not be negative (got {raw!r})")
    return value


bind = f"{_settings.helios_host}:{_settings.helios_port}"
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", min(4, os.cpu_count() or 1))
threads = _int("GUNICORN_THREADS", 8)
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 60)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
accesslog = None  # the app writes one JSON line per request
errorlog = "-"
loglevel = _settings.log_level


def worker_exit(server, worker):
    """Flush queued usage rows before a worker process ends (SIGTERM included)."""
    from service.usage import close_all

    close_all()
