"""CORS for browser clients (flask-cors), limited to the origins in ``CORS_ALLOW_ORIGINS``.

The default is Ollama's: ``localhost``, ``127.0.0.1`` and ``0.0.0.0`` on any
port (http and https) and the schemes of editor webviews and desktop apps, so a
tool running on the developer's machine can call the gateway but an arbitrary
web page cannot. ``*`` allows every origin (helios-engine's behaviour).

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered
here, before auth and the rate limits run: it needs no key and is not counted.
A request whose ``Origin`` is not allowed (and is not the gateway's own origin,
e.g. the console) is refused with 403 in the caller's API format, as Ollama
does: a simple cross-site request (a form POST) would otherwise still run.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

from flask import Flask, request
from flask_cors import CORS

from .core import errors
from .settings import Settings

#: Ollama's default OLLAMA_ORIGINS (envconfig.AllowedOrigins).
DEFAULT_ORIGINS = (
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
)

#: Response headers a browser client may read (request ids, limits, back-off).
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                   "X-RateLimit-Reset", "X-RateLimit-Limit-Tokens",
                   "X-RateLimit-Remaining-Tokens", "X-RateLimit-Reset-Tokens")


def origin_patterns(value: Optional[str]) -> list[re.Pattern] | str:
    """``CORS_ALLOW_ORIGINS`` as compiled patterns (``*`` inside an entry: any characters
    but ``/``), or the string ``"*"`` for every origin. Unset: :data:`DEFAULT_ORIGINS`."""
    entries = DEFAULT_ORIGINS if value is None else [v.strip() for v in value.split(",")]
    entries = [e.rstrip("/") for e in entries if e]
    if "*" in entries:
        return "*"
    return [re.compile("^" + "[^/]*".join(re.escape(p) for p in e.split("*")) + "$",
                       re.IGNORECASE) for e in entries]


def _allowed(origin: str, patterns: list[re.Pattern] | str) -> bool:
    if patterns == "*":
        return True
    parts, host = urlsplit(origin), request.host.lower()
    if parts.netloc.lower() == host or parts.hostname == host:
        # The gateway's own pages (the console) post with their own Origin; a proxy's
        # Host ($host in nginx) may have dropped the port.
        return True
    return any(p.match(origin) for p in patterns)


def init_app(app: Flask, settings: Settings) -> None:
    """Register before auth and limits: their hooks never see a preflight."""
    patterns = origin_patterns(settings.cors_allow_origins)
    CORS(app, origins=patterns, allow_headers="*", expose_headers=list(EXPOSED_HEADERS),
         always_send=False, max_age=600)

    @app.before_request
    def _cors_gate():
        origin = request.headers.get("Origin")
        if not origin:
            return None  # not a browser's cross-origin request
        if not _allowed(origin, patterns):
            raise errors.PermissionDenied(
                f"origin {origin!r} is not allowed; add it to CORS_ALLOW_ORIGINS")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            # flask-cors' after_request hook adds the Access-Control-* headers.
            return app.make_default_options_response()
        return None
