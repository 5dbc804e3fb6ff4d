"""Server-sent events from an upstream: ``data:`` lines parsed as JSON objects.

:class:`SseEvents` also remembers how the stream ended, so a decoder can tell
a finished answer from one cut short: ``done`` (``data: [DONE]`` arrived) and
``events`` (objects seen). :func:`incomplete` and :func:`not_sse` are the
errors for the two ways a 200 stream can be broken without a transport error.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import orjson

from ..core import errors

_EXCERPT = 160


class SseEvents:
    """Iterate the ``data:`` objects of ``lines``; stops at ``[DONE]`` or EOF.

    Comments, event names and keep-alives are skipped; a non-JSON event is a 502.
    An error body sent as a one-element JSON array (as Vertex does) is unwrapped.
    A body without a single ``data:`` line is not an SSE stream (a 502).
    """

    def __init__(self, lines: Iterable[bytes], upstream: str):
        self.lines = lines
        self.upstream = upstream
        self.done = False  # ``data: [DONE]`` ended the stream
        self.events = 0
        self._other = b""  # the start of what was not SSE, for the error message

    def __iter__(self) -> Iterator[dict]:
        for line in self.lines:
            if not line.startswith(b"data:"):
                if len(self._other) < _EXCERPT and line.strip():
                    self._other += line.strip() + b" "
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                return
            if not data:
                continue
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise errors.UpstreamError(
                    f"{self.upstream} sent a non-JSON stream event: {data[:120]!r}") from None
            if isinstance(event, list) and event:
                event = event[0]
            if not isinstance(event, dict):
                raise errors.UpstreamError(
                    f"{self.upstream} sent a stream event that is not an object")
            self.events += 1
            yield event
        if not self.events:
            raise not_sse(self.upstream, self._other)


def sse_objects(lines: Iterable[bytes], upstream: str) -> Iterator[dict]:
    """The ``data:`` objects of ``lines`` (see :class:`SseEvents`)."""
    return iter(SseEvents(lines, upstream))


def not_sse(upstream: str, start: bytes) -> errors.UpstreamError:
    text = start[:_EXCERPT].decode("utf-8", "replace").strip()
    return errors.UpstreamError(
        f"{upstream} answered the stream with something other than server-sent events: "
        f"{text!r}" if text else f"{upstream} answered the stream with an empty body",
        code="upstream_not_sse")


def incomplete(upstream: str, detail: str) -> errors.UpstreamError:
    return errors.UpstreamError(f"{upstream} ended the stream before the answer was complete "
                                f"({detail})", code="upstream_incomplete")
