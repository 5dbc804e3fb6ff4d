"""Static JSON endpoints from ``CUSTOM_ENDPOINTS_FILE`` (seed 004), validated at start-up.

The file is TOML::

    [[endpoints]]
    method = "GET"            # GET, POST, PUT, DELETE or PATCH (any case)
    path = "/api/custom"      # a literal path
    response = { status = "ok", items = [1, 2] }   # any TOML value, served as JSON
    status_code = 200         # optional, 200-599 (not 204/304: they carry no body)

Unlike the seed, nothing is guessed: an unknown method, a duplicate method and
path, a path a built-in route already serves, a bad status or an unknown key
stops start-up with a message naming the entry. Bodies are rendered once at load.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import orjson
from flask import Flask, Response
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect

from .settings import ConfigError

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
_KEYS = {"method", "path", "response", "status_code"}
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_SETTING = "CUSTOM_ENDPOINTS_FILE"


@dataclass(frozen=True, slots=True)
class CustomEndpoint:
    method: str
    path: str
    status_code: int
    body: bytes  # the response, already JSON


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{_SETTING}: {path}: {message}")


def load(path: Path) -> list[CustomEndpoint]:
    """Parse and check the file (everything but clashes with built-in routes)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, f"cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"is not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"endpoints"})
    if extra:
        raise _fail(path, f"unknown top-level key(s) {', '.join(extra)}; expected only "
                          "[[endpoints]] tables")
    entries = data.get("endpoints")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _fail(path, "expected one or more [[endpoints]] tables")
    out: list[CustomEndpoint] = []
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(entries, start=1):
        ep = _entry(path, i, entry)
        key = (ep.method, ep.path)
        if key in seen:
            raise _fail(path, f"{_name(i, entry)}: duplicate of endpoint #{seen[key]} "
                              f"({ep.method} {ep.path})")
        seen[key] = i
        out.append(ep)
    return out


def _name(i: int, entry: dict) -> str:
    method, where = entry.get("method"), entry.get("path")
    label = " ".join(str(x) for x in (method, where) if x is not None)
    return f"endpoint #{i}" + (f" ({label})" if label else "")


def _entry(path: Path, i: int, entry: dict) -> CustomEndpoint:
    def bad(msg: str) -> ConfigError:
        return _fail(path, f"{_name(i, entry)}: {msg}")

    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; allowed: method, path, response, "
                  "status_code")
    for key in ("method", "path", "response"):
        if key not in entry:
            raise bad(f"'{key}' is required")
    method = entry["method"]
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise bad(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    where = entry["path"]
    if not isinstance(where, str) or not _PATH.match(where) or "//" in where:
        raise bad(f"path {where!r} must be a literal URL path starting with '/' "
                  "(no '//', spaces, '?', '#', '<' or '>')")
    status = entry.get("status_code", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise bad(f"status_code {status!r} must be an integer from 200 to 599")
    if status in (204, 304):
        raise bad(f"status_code {status} cannot carry the response body")
    try:
        body = orjson.dumps(entry["response"])  # TOML dates become RFC 3339 strings
    except orjson.JSONEncodeError as exc:
        raise bad(f"response cannot be served as JSON: {exc}") from None
    return CustomEndpoint(method=method.upper(), path=where, status_code=status, body=body)


def check_clashes(path: Path, endpoints: list[CustomEndpoint], url_map: Map) -> None:
    """Refuse an endpoint whose path a built-in route already answers (any method)."""
    adapter = url_map.bind("localhost")
    for i, ep in enumerate(endpoints, start=1):
        clash: Optional[str] = None
        try:
            endpoint, _ = adapter.match(ep.path, method=ep.method)
            clash = endpoint
        except MethodNotAllowed:
            clash = "a route with other methods"
        except RequestRedirect:
            clash = "a route that redirects it"
        except NotFound:
            pass
        if clash is not None:
            raise _fail(path, f"endpoint #{i} ({ep.method} {ep.path}): the path belongs to a "
                              f"built-in route ({clash}); custom endpoints cannot shadow it")


def init_app(app: Flask, path: Optional[Path]) -> list[CustomEndpoint]:
    """Load, check against the routes registered so far, and serve. Call it last."""
    if path is None:
        return []
    endpoints = load(path)
    check_clashes(path, endpoints, app.url_map)
    for i, ep in enumerate(endpoints, start=1):
        app.add_url_rule(ep.path, endpoint=f"custom_endpoint_{i}", view_func=_view(ep),
                         methods=[ep.method])
    return endpoints


def _view(ep: CustomEndpoint):
    def serve():
        return Response(ep.body, status=ep.status_code, mimetype="application/json")
    return serve
