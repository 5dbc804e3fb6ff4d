"""Who may call the model endpoints: bearer keys, checked before any view runs.

Auth is on when any key exists (a static ``API_KEYS`` entry or a stored key,
revoked or not: revoking the last key must not open the gateway) or when
``REQUIRE_AUTH=true``. Then every model endpoint (``/v1/*``, ``/api/*`` but
``/api/version``, ``/complete``, ``/infill``) needs ``Authorization: Bearer <key>``
(or, as Anthropic's clients send it, ``x-api-key: <key>``):
missing, unknown, revoked or expired keys get 401, rendered in the caller's
API format by the app's error handlers. A model outside the key's
``allowed_models`` gets 403 from :func:`authorize_model`, which
``Dispatcher.authorize`` calls with the public name the request is really served under.
Health endpoints and ``GET /`` stay open; ``/admin`` and ``POST /restart`` need
the admin key (:meth:`Authenticator.check_restart`).

Key lookups are cached in-process for ``AUTH_CACHE_SECONDS`` (≤ 5 s), so a key
revoked on one instance is refused by every instance within that time.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import threading
import time
from collections import OrderedDict
from typing import Optional

import orjson
from flask import Flask, g, request
from sqlalchemy.exc import SQLAlchemyError

from .api.context import current_record
from .api.errors import render_error
from .core import errors
from .db import Database, utcnow
from .keys import ApiKey, KeySpec, KeyStore, hash_key, static_key
from .settings import ConfigError, Settings

log = logging.getLogger(__name__)

_CACHE_MAX = 10_000
_MODEL_BLUEPRINTS = frozenset({"openai", "ollama", "helios", "llamacpp", "responses",
                               "anthropic"})
RESTART_PATH = "/restart"


def needs_key(path: str) -> bool:
    """Whether ``path`` is a model endpoint (auth, limits and usage apply)."""
    if path == "/v1" or path.startswith("/v1/"):
        return True
    if path.startswith("/api/"):
        return path != "/api/version"
    return path in ("/complete", "/infill")


def static_secrets(settings: Settings) -> list[str]:
    return [k.strip() for k in (settings.api_keys or "").split(",") if k.strip()]


class Authenticator:
    """Resolves bearer keys to :class:`ApiKey` records, with a short TTL cache."""

    def __init__(self, settings: Settings, store: KeyStore):
        self.store = store
        self.admin_key = settings.admin_api_key or None
        self.ttl = settings.auth_cache_seconds
        self._static = {hash_key(s): static_key(s) for s in static_secrets(settings)}
        self._forced = settings.require_auth or bool(self._static)
        self._stored_exist: Optional[bool] = None
        self._stored_checked = 0.0
        self._cache: OrderedDict[str, tuple[float, Optional[ApiKey]]] = OrderedDict()
        self._lock = threading.Lock()
        self.clock = time.monotonic  # replaceable in tests

    def enabled(self) -> bool:
        if self._forced or self._stored_exist:
            return True  # once a key was stored, auth stays on
        now = self.clock()
        if self._stored_exist is None or now >= self._stored_checked + self.ttl:
            self._stored_exist = self._ask(self.store.any_exists)
            self._stored_checked = now
        return bool(self._stored_exist)

    def create_key(self, spec: KeySpec) -> tuple[ApiKey, str]:
        record, secret = self.store.create(spec)
        self._stored_exist = True  # auth is on from this request on
        return record, secret

    def lookup(self, secret: str) -> Optional[ApiKey]:
        """The record for ``secret`` (revoked/expired included), or None if unknown."""
        digest = hash_key(secret)
        found = None
        for known, record in self._static.items():  # compare every one: constant time
            if hmac.compare_digest(known, digest):
                found = record
        if found is not None:
            return found
        now = self.clock()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and hit[0] > now:
                return hit[1]
        record = self._ask(lambda: self.store.find(secret))
        with self._lock:
            self._cache[digest] = (now + self.ttl, record)
            self._cache.move_to_end(digest)
            while len(self._cache) > _CACHE_MAX:
                self._cache.popitem(last=False)
        return record

    def authenticate(self, authorization: Optional[str]) -> ApiKey:
        """The usable key named by an ``Authorization`` header, or AuthenticationFailed."""
        scheme, _, secret = (authorization or "").strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise errors.AuthenticationFailed(
                "missing API key: send 'Authorization: Bearer <key>'")
        record = self.lookup(secret)
        if record is None:
            raise errors.AuthenticationFailed("invalid API key")
        refusal = record.refusal(utcnow())
        if refusal:
            raise errors.AuthenticationFailed(refusal)
        return record

    def is_admin(self, authorization: Optional[str]) -> bool:
        """Whether an ``Authorization`` header carries ``ADMIN_API_KEY``."""
        scheme, _, given = (authorization or "").partition(" ")
        return bool(self.admin_key) and scheme.lower() == "bearer" and hmac.compare_digest(
            hash_key(given.strip()), hash_key(self.admin_key))

    def check_restart(self, authorization: Optional[str]) -> None:
        """``POST /restart``: the admin key once auth is on or ``ADMIN_API_KEY`` is set.

        A restart reloads the model under everyone's requests, so a model key
        does not suffice; with auth off and no admin key (one developer on
        loopback) it stays open, as the Helios contract has it.
        """
        if self.is_admin(authorization):
            return
        if self.admin_key:
            raise errors.AuthenticationFailed(
                "POST /restart needs 'Authorization: Bearer <ADMIN_API_KEY>'")
        if self.enabled():
            raise errors.PermissionDenied(
                "POST /restart needs the admin key, and ADMIN_API_KEY is not set")

    @staticmethod
    def _ask(fn):
        try:
            return fn()
        except SQLAlchemyError as exc:
            log.error("key store unavailable: %s", exc)
            raise errors.ServiceUnavailable("the API key store is unavailable; retry shortly",
                                            retry_after=1) from exc


def credentials() -> Optional[str]:
    """The request's key as an ``Authorization`` value: that header, else Anthropic's
    ``x-api-key`` (Claude Code sends ``ANTHROPIC_API_KEY`` there)."""
    header = request.headers.get("Authorization")
    if not header and request.headers.get("x-api-key"):
        return "Bearer " + request.headers["x-api-key"]
    return header


def current_key() -> Optional[ApiKey]:
    """The authenticated key of this request (None when auth is off or not needed)."""
    return g.get("api_key")


def authorize_model(model: str) -> None:
    """Refuse (403) a model outside the current key's ``allowed_models``.

    Called with the public name a request is actually served under, once the
    dispatcher resolved it (``Dispatcher.authorize``), never with what the body seemed to name:
    a body's ``name``, an empty ``model`` or a default filled in later must
    not slip past the allow-list.
    """
    key = current_key()
    if key is not None and not key.allows(model):
        raise errors.PermissionDenied(f"this API key may not use the model '{model}'",
                                      param="model")
    g.model_authorized = True


def _unchecked_model_use(response) -> bool:
    """A restricted key got a 2xx from a model view that never called authorize_model."""
    key = current_key()
    return (key is not None and key.allowed_models is not None and request.method == "POST"
            and request.blueprint in _MODEL_BLUEPRINTS and response.status_code < 300
            and not g.get("model_authorized"))


def init_app(app: Flask, settings: Settings, db: Database) -> Authenticator:
    auth = Authenticator(settings, KeyStore(db))
    app.extensions["auth"] = auth
    check_exposure(settings, auth.enabled())

    @app.before_request
    def _authenticate():
        if request.path == RESTART_PATH and request.method == "POST":
            auth.check_restart(request.headers.get("Authorization"))
            return
        if not needs_key(request.path) or not auth.enabled():
            return
        key = auth.authenticate(credentials())
        g.api_key = key
        current_record().key_id = key.id
        # The model allow-list is checked where the model is known: authorize_model.

    @app.after_request
    def _fail_closed(response):
        # Backstop: a model route that skipped the dispatcher must not widen a key's access.
        if _unchecked_model_use(response):
            log.error("route %s served a restricted key without a model check", request.path)
            return render_error(errors.PermissionDenied(
                "this API key is limited to some models and this route did not check one"))
        return response

    return auth


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_exposure(settings: Settings, keys_exist: bool, host: Optional[str] = None) -> None:
    """Refuse to serve on ``host`` (default ``HELIOS_HOST``) beyond loopback without auth,
    unless ALLOW_UNAUTHENTICATED=true."""
    where = f"HELIOS_HOST={settings.helios_host}" if host is None else f"the bind address {host}"
    host = settings.helios_host if host is None else host
    if settings.allow_unauthenticated or _is_loopback(host):
        return
    if settings.require_auth or static_secrets(settings) or keys_exist:
        return
    raise ConfigError(
        f"{where} serves the gateway beyond this machine, but no API "
        "key exists: create one (python -m service keys create --name NAME), or set "
        "API_KEYS=sk-..., or set ALLOW_UNAUTHENTICATED=true to serve without keys on purpose")


def migrate(settings: Settings) -> None:
    """Create or migrate the key/usage schema (gunicorn's master, before any worker forks)."""
    from .db import open_database

    open_database(settings).dispose()


def check_listeners(settings: Settings, hosts: list[str]) -> None:
    """:func:`check_exposure` for every address the server really listens on.

    gunicorn's master calls it once its sockets exist and before any worker
    forks, so ``-b``, ``GUNICORN_CMD_ARGS`` or inherited sockets are checked as
    well as ``HELIOS_HOST``; nothing is served before it passed.
    """
    exposed = [h for h in hosts if not _is_loopback(h)]
    if not exposed or settings.allow_unauthenticated:
        return
    from .db import open_database

    db = open_database(settings)
    try:
        keys_exist = KeyStore(db).any_exists()
    finally:
        db.dispose()
    for host in exposed:
        check_exposure(settings, keys_exist, host)
