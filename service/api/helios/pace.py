"""Typing pace: end a suggestion by the time the editor's next request is due.

While someone types, an editor asks for a suggestion at every pause, and a
newer request for the file supersedes the older one. A suggestion that takes
longer than the gap to the next request is cut and thrown away, and the model
time it took is wasted. :class:`TypingPace` watches when each client's
requests for each file arrive. Once they come in a burst, it gives each new
request a deadline, and the route ends the suggestion there, first line or
not, with what it has (``X-Finish-Reason: pace``).

- A *typing gap* is the time between two requests when the second was sent
  without waiting for the first's answer: while the first still ran, or at
  least :data:`THINK` after its answer. A client that sends its next request
  straight after each answer (a script, a test, a benchmark loop) never cuts
  its own requests short, so its gaps do not count and it gets no deadline.
- A burst is at least :data:`MIN_GAPS` typing gaps since the last pause (the
  last :data:`WINDOW` are kept); a request that comes after a typing gap in a
  burst gets a deadline. A gap longer than :data:`IDLE_GAP` is a pause: it
  ends the burst.
- The deadline is the arrival plus a short gap of the burst, less
  :data:`MARGIN` for the answer to travel, and at least :data:`FLOOR`. The
  short gap is the shortest, or the second shortest once there are five, so
  that one quick typo fix does not set it.

Outside a burst a request has no deadline but the usual ones (``max_tokens``,
``HELIOS_MAX_PREDICT_MS``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Optional

#: A gap between two requests longer than this is a pause in typing, not typing.
IDLE_GAP = 1.0
#: A request sent sooner than this after the previous answer waited for it.
THINK = 0.05
#: Typing gaps since the last pause before a deadline is given; the last WINDOW are kept.
MIN_GAPS = 3
WINDOW = 8
#: Time kept back for the answer to reach the editor before its next request.
MARGIN = 0.015
#: The shortest deadline: editors debounce for at least 100 ms.
FLOOR = 0.1
#: Clients and files remembered (least recently seen forgotten first).
MAX_KEYS = 4096


class Arrival:
    """One request's place in its client's pace: its deadline, and when it was answered."""

    __slots__ = ("at", "deadline", "answered_at")

    def __init__(self, at: float = 0.0, deadline: Optional[float] = None):
        self.at = at              # when it arrived (perf_counter())
        self.deadline = deadline  # a perf_counter() time, or None: no pace deadline
        self.answered_at: Optional[float] = None

    def passed(self) -> bool:
        """True once the deadline is behind us."""
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def answered(self) -> None:
        """The request has its answer (or failed): the client may now send the next one."""
        self.answered_at = time.perf_counter()


class _Burst:
    __slots__ = ("latest", "gaps")

    def __init__(self):
        self.latest: Optional[Arrival] = None
        self.gaps: deque[float] = deque(maxlen=WINDOW)


class TypingPace:
    """Request arrivals by key (client identity + file); ``enabled`` False: no deadlines."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, _Burst] = OrderedDict()

    def arrive(self, key: str) -> Arrival:
        """Record a request for ``key`` now; call ``answered()`` on the result when done."""
        if not self.enabled:
            return Arrival()
        now = time.perf_counter()
        with self._lock:
            burst = self._keys.pop(key, None) or _Burst()
            self._keys[key] = burst
            if len(self._keys) > MAX_KEYS:
                self._keys.popitem(last=False)
            typing = False
            previous = burst.latest
            if previous is not None:
                gap = now - previous.at
                if gap > IDLE_GAP:
                    burst.gaps.clear()
                elif previous.answered_at is None or now - previous.answered_at >= THINK:
                    burst.gaps.append(gap)
                    typing = True
            gaps = sorted(burst.gaps) if typing and len(burst.gaps) >= MIN_GAPS else None
            arrival = Arrival(now, None if gaps is None else
                              now + max(FLOOR, gaps[1 if len(gaps) >= 5 else 0] - MARGIN))
            burst.latest = arrival
        return arrival
