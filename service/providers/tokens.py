"""OAuth access tokens for Vertex AI: printed by the Helix CLI, or Google ADC.

Both sources cache the token and refresh it single-flight: one refresh at a
time per process, other threads wait for it and reuse its result. A failed
refresh is never cached: it fails the requests that waited for it, and the next
request tries again. Tokens are never logged; errors quote the command's
stderr (not its stdout, where the token would be).

``VERTEX_AUTH`` picks the source (see ``Settings._auth``): ``helix`` runs
``HELIX_ACCESS_TOKEN_CMD`` (+ ``--profile <HELIX_PROFILE>``) as an argument
list, without a shell; ``adc`` asks ``google.auth.default`` for cloud-platform
credentials.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import Callable, Optional

from ..core import errors
from .config import TokenConfig

log = logging.getLogger(__name__)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
Clock = Callable[[], float]


class TokenUnavailable(errors.ServiceUnavailable):
    """No access token could be obtained (503: the gateway cannot reach Vertex now)."""

    code = "token_unavailable"


class TokenSource(ABC):
    """A cached bearer token with single-flight refresh."""

    def __init__(self, clock: Clock = time.monotonic):
        self._clock = clock
        self._token: Optional[str] = None
        self._expires_at = float("-inf")
        self._refresh_at = float("-inf")
        self._state_lock = threading.Lock()
        self._flight: Optional[_Flight] = None

    @abstractmethod
    def _fetch(self) -> tuple[str, float, float]:
        """Obtain a fresh token: (token, expires_at, refresh_at) on this source's clock."""

    def token(self) -> str:
        """A valid token; refreshes when it is due, at most one refresh at a time."""
        with self._state_lock:
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token
            current = self._token if now < self._expires_at else None
            flight = self._flight
            leader = flight is None
            if leader:
                flight = self._flight = _Flight()
        if not leader:
            if current is not None:
                return current  # still valid: do not wait for the early refresh
            return flight.wait()
        try:
            token, expires_at, refresh_at = self._fetch()
        except errors.GatewayError as exc:
            with self._state_lock:
                self._flight = None
            flight.fail(exc)
            if current is not None:
                log.warning("early token refresh failed, using the current token: %s",
                            exc.message)
                return current
            raise
        with self._state_lock:
            self._token, self._expires_at, self._refresh_at = token, expires_at, refresh_at
            self._flight = None
        flight.succeed(token)
        return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (Vertex answered 401 with it); the next call refreshes."""
        with self._state_lock:
            if self._token == token:
                self._token = None
                self._expires_at = self._refresh_at = float("-inf")


class _Flight:
    """One refresh in progress; waiters get its token or its error."""

    def __init__(self):
        self._done = threading.Event()
        self._token: Optional[str] = None
        self._error: Optional[errors.GatewayError] = None

    def succeed(self, token: str) -> None:
        self._token = token
        self._done.set()

    def fail(self, exc: errors.GatewayError) -> None:
        self._error = exc
        self._done.set()

    def wait(self) -> str:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._token is not None
        return self._token


def helix_argv(command: str, profile: Optional[str]) -> list[str]:
    """``HELIX_ACCESS_TOKEN_CMD`` split like a shell would, plus ``--profile <p>`` if set."""
    argv = shlex.split(command)
    if profile:
        argv += ["--profile", profile]
    return argv


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "…" + text[-limit:]


class HelixTokenSource(TokenSource):
    """Runs the Helix CLI; its last non-empty stdout line is the token.

    The CLI does not say when the token expires, so it is trusted for
    ``HELIX_TOKEN_TTL`` seconds and refreshed ``HELIX_REFRESH_MARGIN`` seconds
    before that.
    """

    def __init__(self, argv: list[str], *, ttl: float, margin: float, timeout: float,
                 clock: Clock = time.monotonic):
        super().__init__(clock)
        self.argv = argv
        self.ttl = ttl
        self.margin = min(margin, ttl)
        self.timeout = timeout

    def _fetch(self) -> tuple[str, float, float]:
        started = self._clock()
        try:
            out = subprocess.run(self.argv, capture_output=True, text=True, timeout=self.timeout,
                                 stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise TokenUnavailable(
                f"could not obtain an access token: command not found: {self.argv[0]} "
                f"(HELIX_ACCESS_TOKEN_CMD)") from None
        except subprocess.TimeoutExpired:
            raise TokenUnavailable(
                f"could not obtain an access token: {self.argv[0]} did not finish in "
                f"{self.timeout:g} s") from None
        except OSError as exc:
            raise TokenUnavailable(
                f"could not obtain an access token: cannot run {self.argv[0]}: {exc.strerror}"
            ) from None
        if out.returncode != 0:
            detail = _excerpt(out.stderr) or f"exit status {out.returncode}"
            raise TokenUnavailable(f"could not obtain an access token: {detail}")
        lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
        if lines:
            lines[-1] = lines[-1].removeprefix("Bearer ").strip()
        if not lines or not lines[-1] or any(c.isspace() for c in lines[-1]):
            raise TokenUnavailable(
                f"could not obtain an access token: {self.argv[0]} printed no token"
                + (f" ({_excerpt(out.stderr)})" if out.stderr.strip() else ""))
        log.info("obtained an access token from %s", self.argv[0])
        return lines[-1], started + self.ttl, started + self.ttl - self.margin


class AdcTokenSource(TokenSource):
    """Google Application Default Credentials with the cloud-platform scope.

    ``google.auth.default`` is called on first use (not at start-up: on a
    machine without credentials it probes the metadata server), and again
    after a failure.
    """

    #: Refresh this long before google-auth's own expiry.
    MARGIN = 300.0

    def __init__(self, *, default: Optional[Callable] = None, clock: Clock = time.monotonic):
        super().__init__(clock)
        self._default = default
        self._credentials = None
        self._request = None  # google-auth's transport, built once (it holds a Session)

    def _fetch(self) -> tuple[str, float, float]:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests

        started = self._clock()
        try:
            if self._credentials is None:
                default = self._default or google.auth.default
                self._credentials, _ = default(scopes=[CLOUD_PLATFORM_SCOPE])
            if self._request is None:
                self._request = google.auth.transport.requests.Request()
            self._credentials.refresh(self._request)
        except (google.auth.exceptions.GoogleAuthError, ValueError, OSError) as exc:
            raise TokenUnavailable(
                f"could not obtain an access token: {_excerpt(str(exc))}") from None
        token = self._credentials.token
        if not token:
            raise TokenUnavailable("could not obtain an access token: credentials gave none")
        lifetime = 3600.0
        expiry = getattr(self._credentials, "expiry", None)
        if expiry is not None:
            # google-auth keeps expiry as a naive UTC datetime
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            lifetime = max(0.0, (expiry - now).total_seconds())
        margin = min(self.MARGIN, lifetime / 2)
        return token, started + lifetime, started + lifetime - margin


def build_token_source(config: TokenConfig) -> TokenSource:
    """The source ``config.source`` names (``VERTEX_AUTH``, resolved at start-up)."""
    if config.source == "adc":
        return AdcTokenSource()
    return HelixTokenSource(helix_argv(config.command, config.profile),
                            ttl=config.ttl, margin=config.refresh_margin,
                            timeout=config.command_timeout)
