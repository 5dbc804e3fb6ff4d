"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import sys

from service import create_app
from service.settings import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # A configuration the app itself rejects (e.g. custom endpoints shadowing a route):
    # exit code 4 is gunicorn's "app failed to load", which stops the master instead of
    # respawning workers that would fail the same way forever.
    print(exc.code, file=sys.stderr, flush=True)
    sys.exit(4)
