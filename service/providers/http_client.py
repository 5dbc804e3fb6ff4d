"""One pooled ``requests.Session`` per process for every HTTP provider.

Retries (urllib3 ``Retry``): connect errors, dropped keep-alive connections
and 429/500/502/503/504, with exponential backoff and jitter, honouring
``Retry-After`` up to a cap. They happen inside ``send``, i.e. before the
gateway has written any byte to its client; a read timeout is never retried
(the upstream may still be generating).

Translation of failures happens here, once::

    requests.ConnectTimeout / ConnectionError  -> UpstreamUnavailable (503, Retry-After)
    requests.ReadTimeout                       -> UpstreamTimeout (504)
    upstream status >= 400                      -> raise_for_upstream_status()
    a failure while reading the body            -> UpstreamError (502)
    the body stalling past the read timeout     -> UpstreamTimeout (504)
    a body that decodes badly (``watch``)       -> the decoder's error, reported

Bodies are always read lazily (``stream=True`` towards requests), so a
non-streamed answer that stalls or breaks mid-body is translated by the same
code as a stream, never mistaken for a failed connection. Every 503 for an
unavailable upstream carries ``retry_after`` (the upstream's own value, else
:data:`UNAVAILABLE_RETRY_AFTER`), so each API family sends ``Retry-After``.

Every call is reported to ``HttpClient.observers`` as an :class:`UpstreamCall`
(time to response headers, retries by kind, error kind), which is how metrics
and the access log learn about upstream timing without this module knowing them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, TypeVar

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from ..core import errors
from .config import HttpConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Seconds a client is told to wait (``Retry-After``) when an upstream is unreachable,
#: its connection pool is full, or it answered 503 without saying how long.
UNAVAILABLE_RETRY_AFTER = 1.0


@dataclass(slots=True)
class UpstreamCall:
    """One ``send`` as observers see it."""

    upstream: str
    method: str
    seconds: float  # until the response headers (or the failure)
    status: Optional[int] = None
    retries: list[str] = field(default_factory=list)  # kind of each retry, e.g. "status_503"
    error: Optional[str] = None  # kind of failure, None when the call succeeded
    phase: str = "headers"  # "body": a failure while reading an accepted response


UpstreamObserver = Callable[[UpstreamCall], None]


def _retry_kind(response, error) -> str:
    if response is not None and response.status:
        return f"status_{response.status}"
    name = type(error).__name__ if error is not None else ""
    if "Timeout" in name:
        return "connect_timeout"
    return "connection_error"


class _Retry(Retry):
    """urllib3 Retry that caps Retry-After and never retries a read timeout."""

    retry_after_cap: float = 10.0
    on_retry: Optional[Callable[[str], None]] = None

    def new(self, **kw):
        new = super().new(**kw)
        new.retry_after_cap = self.retry_after_cap
        new.on_retry = self.on_retry
        return new

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.retry_after_cap)

    def increment(self, method=None, url=None, response=None, error=None,
                  _pool=None, _stacktrace=None):
        if isinstance(error, ReadTimeoutError):
            raise error
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.on_retry is not None:  # reached only when a retry will happen
            self.on_retry(_retry_kind(response, error))
        return new


class HttpClient:
    """The shared session, pool limits, timeouts and error translation."""

    def __init__(self, config):
        """``config``: an :class:`HttpConfig` (a ``Settings`` is read as its seed values)."""
        c = config if isinstance(config, HttpConfig) else HttpConfig.from_settings(config)
        self.config = c
        self.timeout = (c.connect_timeout_seconds, c.request_timeout_seconds)
        retry = _Retry(
            total=c.max_retries,
            connect=c.max_retries,
            read=c.max_retries,
            status=c.max_retries,
            other=0,
            allowed_methods=None,  # POST too: nothing has reached the client yet
            status_forcelist=RETRY_STATUSES,
            backoff_factor=c.retry_backoff_seconds,
            backoff_jitter=c.retry_backoff_seconds / 2,
            backoff_max=c.retry_after_max_seconds,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        retry.retry_after_cap = c.retry_after_max_seconds
        retry.on_retry = self._note_retry
        self.observers: list[UpstreamObserver] = []
        self._retries = threading.local()  # retries happen in the sending thread
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=c.max_keepalive,
                              max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.trust_env = False  # no proxy/netrc surprises from the environment
        self._slots = threading.BoundedSemaphore(c.max_connections)
        self._slot_wait = c.connect_timeout_seconds

    def _note_retry(self, kind: str) -> None:
        kinds = getattr(self._retries, "kinds", None)
        if kinds is not None:
            kinds.append(kind)

    def _report(self, call: UpstreamCall) -> None:
        for observer in self.observers:
            try:
                observer(call)
            except Exception:  # noqa: BLE001 - observing must not break requests
                log.exception("upstream observer %r failed", observer)

    def send(self, method: str, url: str, *, body: Any = None, headers: Optional[dict] = None,
             stream: bool = False, timeout=None, verify=True, upstream: str = "upstream",
             check_status: bool = True) -> "UpstreamResponse":
        """Send a request and (unless ``check_status`` is false) check its status.

        The caller closes the result. ``stream`` only documents the caller's intent:
        every body is read lazily through the result.
        """
        start = time.perf_counter()
        call = UpstreamCall(upstream=upstream, method=method, seconds=0.0)
        self._retries.kinds = call.retries
        try:
            result = self._send(method, url, body, headers, timeout, verify, upstream,
                                check_status, call)
        except errors.GatewayError as exc:
            call.error = call.error or _error_kind(exc)
            raise
        finally:
            self._retries.kinds = None
            call.seconds = time.perf_counter() - start
            self._report(call)
        return result

    def _send(self, method, url, body, headers, timeout, verify, upstream,
              check_status, call: UpstreamCall) -> "UpstreamResponse":
        if not self._slots.acquire(timeout=self._slot_wait):
            call.error = "pool_exhausted"
            raise errors.UpstreamUnavailable(
                f"too many concurrent requests to {upstream} (HTTPX_MAX_CONNECTIONS)",
                retry_after=UNAVAILABLE_RETRY_AFTER)
        hdrs = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        try:
            # stream=True always: the body is read by UpstreamResponse, whose failures are
            # body failures (a stall is a 504), not connection failures.
            resp = self.session.request(method, url, data=data, headers=hdrs, stream=True,
                                        timeout=timeout or self.timeout, verify=verify,
                                        allow_redirects=False)
        except requests.ReadTimeout as exc:
            self._slots.release()
            call.error = "read_timeout"
            raise errors.UpstreamTimeout(f"{upstream} did not answer in time") from exc
        except requests.ConnectTimeout as exc:
            self._slots.release()
            call.error = "connect_timeout"
            raise errors.UpstreamUnavailable(f"could not connect to {upstream}: timed out",
                                             retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        except requests.RequestException as exc:
            self._slots.release()
            call.error = "connection_error"
            raise errors.UpstreamUnavailable(f"could not connect to {upstream}: {_reason(exc)}",
                                             retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        call.status = resp.status_code
        result = UpstreamResponse(resp, self._slots, upstream, self._report)
        if resp.status_code >= 400 and check_status:
            call.error = f"status_{resp.status_code}"
            try:
                raise_for_upstream_status(resp, upstream)
            except errors.GatewayError as exc:
                exc.upstream_status = resp.status_code
                raise
            finally:
                result.close()
        return result

    def close(self) -> None:
        self.session.close()


class UpstreamResponse:
    """A response holding one connection slot until closed."""

    def __init__(self, response: requests.Response, slots: threading.BoundedSemaphore,
                 upstream: str, report: Optional[UpstreamObserver] = None):
        self.response = response
        self.upstream = upstream
        self._report = report
        self._slots = slots
        self._closed = False
        self._body_reported = False
        self._lock = threading.Lock()

    @property
    def retries(self) -> int:
        retries = getattr(self.response.raw, "retries", None)
        return len(retries.history) if retries is not None else 0

    def json(self) -> Any:
        """The whole body as JSON; a non-JSON body is a 502."""
        try:
            content = self.response.content
        except requests.RequestException as exc:
            raise self._broken(exc) from exc
        finally:
            self.close()
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            raise errors.UpstreamError(
                f"{self.upstream} returned a non-JSON answer: {_excerpt(content)}") from None

    def iter_lines(self) -> Iterator[bytes]:
        """Body lines as they arrive (no read-ahead buffering)."""
        raw = self.response.raw
        pending = b""
        try:
            while True:
                data = raw.read1(65536)
                if not data:
                    break
                pending += data
                if b"\n" not in data:
                    continue
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.rstrip(b"\r")
        except (requests.RequestException, OSError, ValueError) as exc:
            raise self._broken(exc) from exc
        except Exception as exc:  # urllib3 protocol/decode errors
            if type(exc).__module__.startswith("urllib3"):
                raise self._broken(exc) from exc
            raise
        if pending.strip():
            yield pending

    def watch(self, items: Iterator[T]) -> Iterator[T]:
        """``items`` decoded from this body; a failure raised while decoding them (a
        truncated stream, a body that is not the promised format, an error event) is
        reported to observers as a body error of this upstream call, once."""
        try:
            yield from items
        except errors.InvalidRequest:
            raise  # the upstream refused the request (e.g. a blocked prompt): not its fault
        except errors.GatewayError as exc:
            self._report_body(_BODY_KINDS.get(exc.code or "", "stream_error"))
            raise

    def _broken(self, exc: Exception) -> errors.GatewayError:
        """Translate a failure while reading the body, and report it to observers."""
        err = _read_error(exc, self.upstream)
        self._report_body("read_timeout" if isinstance(err, errors.UpstreamTimeout)
                          else "broken_body")
        return err

    def _report_body(self, kind: str) -> None:
        with self._lock:
            if self._body_reported or self._report is None:
                return
            self._body_reported = True
        method = getattr(self.response.request, "method", None) or "?"
        self._report(UpstreamCall(upstream=self.upstream, method=method, seconds=0.0,
                                  status=self.response.status_code, error=kind, phase="body"))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.response.close()
        finally:
            self._slots.release()


# Error codes of decoders (see ``sse``) -> the kind counted in gateway_upstream_errors.
_BODY_KINDS = {"upstream_incomplete": "truncated_stream", "upstream_not_sse": "not_sse",
               "upstream_timeout": "read_timeout"}


def _read_error(exc: Exception, upstream: str) -> errors.GatewayError:
    # requests wraps a body read timeout as ConnectionError(ReadTimeoutError(...)).
    wrapped = exc.args[0] if exc.args else None
    if isinstance(exc, (requests.ReadTimeout, ReadTimeoutError)) \
            or isinstance(wrapped, ReadTimeoutError) or "timed out" in str(exc):
        return errors.UpstreamTimeout(f"{upstream} stopped sending (read timed out)")
    return errors.UpstreamError(f"connection to {upstream} broke mid-response: {_reason(exc)}")


def _error_kind(exc: errors.GatewayError) -> str:
    return type(exc).__name__


def _reason(exc: Exception) -> str:
    inner = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__
    text = str(getattr(inner, "reason", None) or inner)
    return text[:200]


def _excerpt(content: bytes, limit: int = 200) -> str:
    text = content[:limit].decode("utf-8", "replace").strip()
    return repr(text) if text else "(empty body)"


def upstream_message(resp: requests.Response) -> str:
    """The error message an upstream put in its body, in any common shape."""
    try:
        content = resp.content
    except (requests.RequestException, RuntimeError):  # the error body itself broke off
        return "(unreadable body)"
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return _excerpt(content)
    if isinstance(body, list) and body:  # Vertex streaming errors come as a list
        body = body[0]
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("msg")
            if msg:
                return str(msg)
        elif isinstance(err, str):
            return err
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    return _excerpt(content)


def raise_for_upstream_status(resp: requests.Response, upstream: str) -> None:
    """Map an upstream error status to the gateway's error, message kept."""
    status = resp.status_code
    msg = upstream_message(resp)
    retry_after = _retry_after(resp)
    if status in (400, 422):
        raise errors.InvalidRequest(f"{upstream} rejected the request: {msg}")
    if status in (401, 403):
        raise errors.UpstreamError(f"upstream authentication failed ({upstream}, {status}): {msg}")
    if status == 404:
        raise errors.ModelNotFound(f"{upstream}: {msg}")
    if status == 408 or status == 504:
        raise errors.UpstreamTimeout(f"{upstream} timed out: {msg}")
    if status == 413:
        raise errors.PayloadTooLarge(f"{upstream}: {msg}")
    if status == 429:
        raise errors.RateLimited(f"{upstream} is rate limiting: {msg}", retry_after=retry_after)
    if status == 503:
        raise errors.UpstreamUnavailable(
            f"{upstream} is unavailable: {msg}",
            retry_after=UNAVAILABLE_RETRY_AFTER if retry_after is None else retry_after)
    raise errors.UpstreamError(f"{upstream} failed with HTTP {status}: {msg}")


def _retry_after(resp: requests.Response) -> Optional[float]:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
