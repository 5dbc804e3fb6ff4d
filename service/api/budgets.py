"""Generation time budgets for code completion (llama.cpp's ``t_max_predict_ms``).

llama.cpp's rule, kept as is so editors tuned for it behave the same: the
clock starts at the first generated piece, and the budget only ends a
generation once that has written a newline, so a suggestion always keeps at
least its first line.
"""

from __future__ import annotations

import time
from typing import Optional


class TimeBudget:
    """``exceeded(text)`` after each generated piece; ``ms`` None or ≤ 0 means no limit."""

    __slots__ = ("limit", "_first", "_newline")

    def __init__(self, ms: Optional[float]):
        self.limit = ms / 1000 if ms and ms > 0 else None
        self._first: Optional[float] = None
        self._newline = False

    def exceeded(self, text: str) -> bool:
        if self.limit is None:
            return False
        now = time.perf_counter()
        if self._first is None:
            self._first = now
        self._newline = self._newline or "\n" in text
        return self._newline and now - self._first > self.limit
