"""LLM gateway for coding assistants: OpenAI, Ollama and Helios APIs over pluggable backends."""

from __future__ import annotations

import re
from typing import Optional

from flask import Flask

from .settings import Settings, load_settings

__all__ = ["create_app", "Settings", "load_settings"]
__version__ = "0.1.0"

_SLASHES = re.compile(r"/{2,}")


class _MergeSlashes:
    """WSGI middleware: ``/v1//models`` (as Roo builds it) routes like ``/v1/models``."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = _SLASHES.sub("/", path)
        return self.app(environ, start_response)


def create_app(settings: Optional[Settings] = None) -> Flask:
    """Application factory: settings, logging, gateway objects, blueprints, errors."""
    from . import api, auth, console, cors, custom_endpoints, limits, status, usage
    from .api import capacity, context, errors, ops
    from .db import open_database
    from .gateway import Gateway
    from .logs import configure_logging
    from .proxies import ForwardedFor, TrustedProxies, parse_networks

    settings = settings or load_settings()
    configure_logging("debug" if settings.helios_debug else settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    context.init_app(app)
    capacity.init_app(app)  # X-Gateway-Overhead-Ms, from context's request record
    errors.init_app(app)
    cors.init_app(app, settings)  # before auth and limits: preflights need no key, cost nothing
    db = open_database(settings)
    app.extensions["db"] = db
    auth.init_app(app, settings, db)  # refuses an exposed bind without keys, before any model loads
    limits.init_app(app, settings)  # after auth: limits are per key
    status.init_app(app)  # after limits: counts refusals in their storage
    usage.init_app(app, settings, db)
    app.extensions["gateway"] = Gateway(settings)
    api.register_blueprints(app)
    ops.init_app(app, settings)
    console.init_app(app)
    # Last: custom endpoints are checked against every route registered before them.
    custom_endpoints.init_app(app, settings.custom_endpoints_file)
    app.wsgi_app = _MergeSlashes(app.wsgi_app)
    if settings.forwarded_allow_ips:  # behind a reverse proxy: per-client limits see clients
        app.wsgi_app = ForwardedFor(app.wsgi_app, TrustedProxies(
            parse_networks(settings.forwarded_allow_ips)))
    return app
