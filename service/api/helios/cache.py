"""The completion cache: answers a keystroke already answered without touching the model.

An entry is one model answer for one cursor: the text before the cursor
(``prefix``), everything else that shaped the answer (``context``: file,
language, the text after the cursor, sampling) and the suggestion. A request
is served from the cache when

- its prefix and context equal an entry's (``exact``: the editor asked again,
  e.g. after a backspace), or
- its prefix is an entry's prefix followed by the start of that entry's
  suggestion (``typed``: the user typed what was suggested), and the answer is
  the rest of the suggestion.

Only hashes of prefixes and contexts are kept (plus a short tail of the prefix
for a cheap pre-check), so a whole file per entry costs a few hundred bytes.
Bounded per model (least recently used out); thread-safe.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, Optional

from ... import metrics

HitKind = Literal["exact", "typed"]

_TAIL = 64          # characters of the prefix kept as they are, to rule candidates out fast
_SCAN = 64          # newest entries of one context tried for a "typed" hit


def _digest(*parts: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.digest()


@dataclass(frozen=True, slots=True)
class Hit:
    suggestion: str
    confidence: float
    kind: HitKind


@dataclass(frozen=True, slots=True)
class _Entry:
    context: bytes
    prefix_len: int
    prefix_tail: str
    suggestion: str
    confidence: float


class _ModelCache:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: OrderedDict[tuple[bytes, bytes], _Entry] = OrderedDict()
        self.by_context: dict[bytes, OrderedDict[tuple[bytes, bytes], None]] = {}

    def get(self, context: bytes, prefix: str) -> Optional[Hit]:
        key = (context, _digest(prefix))
        entry = self.entries.get(key)
        if entry is not None and entry.prefix_len == len(prefix):
            self._touch(key)
            return Hit(entry.suggestion, entry.confidence, "exact")
        for key in reversed(list(self.by_context.get(context, ()))[-_SCAN:]):
            entry = self.entries[key]
            typed = len(prefix) - entry.prefix_len
            if not 0 < typed < len(entry.suggestion):
                continue
            if not entry.suggestion.startswith(prefix[entry.prefix_len:]):
                continue
            start = max(0, entry.prefix_len - _TAIL)
            if prefix[start:entry.prefix_len] != entry.prefix_tail:
                continue
            if _digest(prefix[:entry.prefix_len]) != key[1]:
                continue
            self._touch(key)
            return Hit(entry.suggestion[typed:], entry.confidence, "typed")
        return None

    def put(self, context: bytes, prefix: str, suggestion: str, confidence: float) -> None:
        key = (context, _digest(prefix))
        self.entries[key] = _Entry(context, len(prefix), prefix[-_TAIL:], suggestion, confidence)
        self._touch(key)
        while len(self.entries) > self.capacity:
            old, _ = self.entries.popitem(last=False)
            group = self.by_context[old[0]]
            group.pop(old, None)
            if not group:
                del self.by_context[old[0]]

    def _touch(self, key: tuple[bytes, bytes]) -> None:
        self.entries.move_to_end(key)
        group = self.by_context.setdefault(key[0], OrderedDict())
        group[key] = None
        group.move_to_end(key)


class CompletionCache:
    """Suggestions per model, at most ``capacity`` each; ``capacity`` 0 turns it off."""

    def __init__(self, capacity: int, max_models: int = 8):
        self.capacity = capacity
        self.max_models = max_models
        self._models: OrderedDict[str, _ModelCache] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    @staticmethod
    def context(*parts: str) -> bytes:
        """One key for everything besides the prefix that shaped an answer."""
        return _digest(*parts)

    def lookup(self, model: str, context: bytes, prefix: str, api: str) -> Optional[Hit]:
        """The cached answer for ``prefix`` (counted as a hit or a miss), or None."""
        if not self.enabled:
            return None
        with self._lock:
            cache = self._models.get(model)
            hit = cache.get(context, prefix) if cache is not None else None
        metrics.completion_cache(api, model, hit.kind if hit else "miss")
        return hit

    def store(self, model: str, context: bytes, prefix: str, suggestion: str,
              confidence: float) -> None:
        if not self.enabled:
            return
        with self._lock:
            cache = self._models.get(model)
            if cache is None:
                cache = self._models[model] = _ModelCache(self.capacity)
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            self._models.move_to_end(model)
            cache.put(context, prefix, suggestion, confidence)
