"""Server-sent events from an upstream: ``data:`` lines parsed as JSON objects."""

from __future__ import annotations

from typing import Iterable, Iterator

import orjson

from ..core import errors


def sse_objects(lines: Iterable[bytes], upstream: str) -> Iterator[dict]:
    """Each ``data:`` line as a dict; stops at ``[DONE]`` or EOF.

    Comments, event names and keep-alives are skipped; a non-JSON event is a 502.
    An error body sent as a one-element JSON array (as Vertex does) is unwrapped.
    """
    for line in lines:
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        if not data:
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise errors.UpstreamError(
                f"{upstream} sent a non-JSON stream event: {data[:120]!r}") from None
        if isinstance(event, list) and event:
            event = event[0]
        if not isinstance(event, dict):
            raise errors.UpstreamError(f"{upstream} sent a stream event that is not an object")
        yield event
