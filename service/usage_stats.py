"""Read-side views of the usage rows for the console: recent requests and percentiles.

Totals per key, model and day are :func:`service.usage.usage_report`; this module
answers "what happened in the last hours": the rows themselves (slowest,
failing, most recent) and latency / time-to-first-token percentiles computed
from them (nearest rank; time to first token from streamed requests only).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Iterable, Literal, Optional

from sqlalchemy import select

from .db import Database, as_utc, usage, utcnow

Order = Literal["slowest", "failing", "recent"]
PERCENTILES = (50, 90, 95, 99)
#: Rows read for percentiles; beyond this the newest rows of the window are used.
MAX_ROWS = 200_000

_COLUMNS = (usage.c.ts, usage.c.request_id, usage.c.key_id, usage.c.model, usage.c.provider,
            usage.c.path, usage.c.stream, usage.c.status, usage.c.error_code,
            usage.c.duration_ms, usage.c.ttft_ms, usage.c.prompt_tokens,
            usage.c.completion_tokens)
FIELDS = tuple(str(c.name) for c in _COLUMNS)


def _row(r) -> dict[str, Any]:
    out = {str(k): v for k, v in r._mapping.items()}  # str(): orjson refuses str subclasses
    out["ts"] = as_utc(out["ts"]).isoformat()
    return out


def recent_requests(db: Database, hours: float = 24, order: Order = "recent", limit: int = 50,
                    key_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Usage rows of the last ``hours``: the slowest, the failing (status ≥ 400) or newest."""
    u = usage.c
    query = select(*_COLUMNS).where(u.ts >= utcnow() - timedelta(hours=hours))
    if key_id is not None:
        query = query.where(u.key_id == key_id)
    if order == "slowest":
        query = query.where(u.duration_ms.is_not(None)).order_by(u.duration_ms.desc())
    elif order == "failing":
        query = query.where(u.status >= 400).order_by(u.ts.desc())
    else:
        query = query.order_by(u.ts.desc())
    with db.engine.connect() as conn:
        return [_row(r) for r in conn.execute(query.limit(limit))]


def percentiles(values: Iterable[float]) -> dict[str, Optional[float]]:
    """Nearest-rank percentiles of ``values`` (None when there are none)."""
    ordered = sorted(values)
    out: dict[str, Optional[float]] = {}
    for p in PERCENTILES:
        if not ordered:
            out[f"p{p}"] = None
        else:
            out[f"p{p}"] = round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 2)
    return out


def latency_summary(db: Database, hours: float = 24) -> dict[str, Any]:
    """Duration and time-to-first-token percentiles (ms) of the last ``hours``, overall and
    per model."""
    u = usage.c
    query = (select(u.model, u.duration_ms, u.ttft_ms, u.stream)
             .where(u.ts >= utcnow() - timedelta(hours=hours))
             .order_by(u.ts.desc()).limit(MAX_ROWS))
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r.model or "", []).append(r)

    def summary(items) -> dict[str, Any]:
        return {"requests": len(items),
                "duration_ms": percentiles(r.duration_ms for r in items
                                           if r.duration_ms is not None),
                "ttft_ms": percentiles(r.ttft_ms for r in items
                                       if r.stream and r.ttft_ms is not None)}

    return {"hours": hours, "overall": summary(rows),
            "by_model": {model: summary(items) for model, items in sorted(groups.items())}}


__all__ = ["recent_requests", "latency_summary", "percentiles", "FIELDS", "PERCENTILES"]
