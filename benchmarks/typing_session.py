"""A typing session against ``/complete`` and ``/infill`` on the embedded model (issue 17).

A file is typed character by character into the middle of an existing one
(8–12 characters per second; after every word a pause of 100–350 ms, and the
editor sends a completion request at each pause, as editors debounce; one
word in ten gets a typo that is noticed, deleted and retyped, after a pause
of its own). Requests run concurrently with the typing, as in an editor.

Each API runs the same session twice, side by side on two gateways in this
process: **typing** (completion cache on; ``/complete`` supersedes the older
request of the same file on the server, and for ``/infill`` the client drops
the stale request's connection, as llama.vim does) and **plain** (cache and
supersession off, nothing cancelled: every request runs to its end).

Per session it prints: requests sent, cancelled, refused (429), served from
the cache, time to suggestion p50/p95 for cache hits and for model runs (only
answers that were still current when they arrived: the editor discards the
rest), and the share of model time spent on requests whose answer was never
shown (superseded, cancelled or late). Model time is measured by wrapping the
local provider's ``stream`` (every chunk pulled, and ``close``), per request.

Prompt reuse: every model run's prompt is replayed afterwards with
``cache_prompt=False`` and its prompt-evaluation time compared with the time
measured in the session (llama.cpp's KV cache kept the common prefix there).

    python benchmarks/typing_session.py [--threads 2] [--seed 1] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import random
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service import create_app  # noqa: E402
from service.settings import load_settings  # noqa: E402
from tests.conftest import serve  # noqa: E402

HEAD = 'import math\n\n\ndef circle_area(radius):\n    """Area of a circle."""\n    return math.pi * radius ** 2\n\n\n'
TYPED = ('def circle_perimeter(radius):\n    """Perimeter of a circle."""\n'
         '    return 2 * math.pi * radius\n\n\ndef sphere_volume(radius):\n'
         '    """Volume of a sphere."""\n    return 4 / 3 * math.pi * radius ** 3\n')
TAIL = '\n\nif __name__ == "__main__":\n    print(circle_area(1.0))\n'
FILENAME = "shapes.py"
BOUNDARY = set(" \n(.,:")


# ---- the typist ---------------------------------------------------------------------------
@dataclasses.dataclass
class Event:
    at: float           # seconds from the session start
    text: str           # the typed text so far (after this keystroke)
    request: bool       # the editor sends a request now


def session(seed: int) -> list[Event]:
    """Keystrokes and request points of one typing session (deterministic per seed)."""
    rnd = random.Random(seed)
    events: list[Event] = []
    t, text = 0.0, ""

    def key(new_text: str, pause_after: bool):
        nonlocal t, text
        t += rnd.uniform(1 / 12, 1 / 8)
        text = new_text
        events.append(Event(t, text, False))
        if pause_after:
            events.append(Event(t, text, True))  # the pause starts: the editor asks
            t += rnd.uniform(0.100, 0.350)

    i = 0
    while i < len(TYPED):
        ch = TYPED[i]
        if ch == "\n":  # the editor auto-indents: the indentation comes with the newline
            j = i + 1
            while j < len(TYPED) and TYPED[j] == " ":
                j += 1
            key(TYPED[:j], True)
            i = j
            continue
        boundary = ch in BOUNDARY
        if boundary and rnd.random() < 0.1:  # a typo, noticed at the pause, fixed
            key(text + rnd.choice("qxzj"), True)
            key(text[:-1], True)
        key(TYPED[: i + 1], boundary)
        i += 1
    return events


# ---- the editor -----------------------------------------------------------------------------
@dataclasses.dataclass
class Sent:
    rid: str
    sent: float
    done: Optional[float] = None
    status: Optional[int] = None
    cache: Optional[str] = None
    cancelled_by_client: bool = False
    text: str = ""                         # what was typed when it was sent
    answer: str = ""
    superseded_at: Optional[float] = None  # when a newer request was sent

    @property
    def shown(self) -> bool:
        """The answer arrived while it was still the newest request's."""
        return (self.status == 200 and self.done is not None
                and (self.superseded_at is None or self.done <= self.superseded_at))


def complete_body(text: str, max_tokens: int) -> dict:
    code = HEAD + text + TAIL
    before = HEAD + text
    line = before.count("\n")
    col = len(before) - (before.rfind("\n") + 1)
    return {"code": code, "language": "python", "filename": FILENAME,
            "position": {"line": line, "character": col}, "max_tokens": max_tokens,
            "temperature": 0}


def infill_body(text: str, max_tokens: int) -> dict:
    before = HEAD + text
    cut = before.rfind("\n") + 1
    line = before[cut:]
    return {"input_prefix": before[:cut], "prompt": line, "input_suffix": TAIL,
            "n_indent": len(line) - len(line.lstrip(" ")),
            "input_extra": [], "n_predict": max_tokens, "t_max_predict_ms": 1000,
            "samplers": ["top_k", "top_p", "infill"], "top_k": 40, "top_p": 0.99,
            "temperature": 0, "cache_prompt": True, "stream": False,
            "response_fields": ["content", "timings/prompt_ms", "tokens_cached"]}


class Editor:
    """Sends requests from threads; a newer request marks the older ones superseded."""

    def __init__(self, url: str, path: str, client_cancels: bool):
        u = urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port, path
        self.client_cancels = client_cancels
        self.sent: list[Sent] = []
        self._conns: dict[str, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def request(self, body: dict, text: str = "") -> None:
        rid = f"typing-{len(self.sent)}"
        s = Sent(rid, self.now(), text=text)
        with self._lock:
            for old in self.sent:
                if old.done is None and old.superseded_at is None:
                    old.superseded_at = s.sent
                    if self.client_cancels:
                        old.cancelled_by_client = True
                        conn = self._conns.get(old.rid)
                        if conn is not None and conn.sock is not None:
                            conn.sock.shutdown(socket.SHUT_RDWR)
            self.sent.append(s)
        th = threading.Thread(target=self._run, args=(s, body), daemon=True)
        th.start()
        self._threads.append(th)

    def _run(self, s: Sent, body: dict) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        with self._lock:
            self._conns[s.rid] = conn
        try:
            conn.request("POST", self.path, json.dumps(body),
                         {"Content-Type": "application/json", "X-Request-ID": s.rid})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
            s.answer = data.get("suggestion", data.get("content", ""))
            s.status, s.cache = resp.status, resp.getheader("X-Completion-Cache")
        except OSError:
            s.status = None  # dropped by the client
        finally:
            s.done = self.now()
            conn.close()

    def join(self) -> None:
        for th in self._threads:
            th.join(180)


# ---- the model's clock ----------------------------------------------------------------------
class ModelClock:
    """Wraps the local provider's ``stream``: model seconds, prompt stats and the request, per id."""

    def __init__(self, provider):
        self._stream = provider.stream
        self.provider = provider
        self.by_rid: dict[str, dict] = {}
        provider.stream = self.stream

    def stream(self, request):
        from flask import g

        rid = g.record.request_id
        start = time.perf_counter()
        inner = self._stream(request)
        entry = self.by_rid[rid] = {"seconds": time.perf_counter() - start, "request": request}

        class Timed:
            def __iter__(self):
                return self

            def __next__(self):
                t = time.perf_counter()
                try:
                    return next(inner)
                finally:
                    entry["seconds"] += time.perf_counter() - t

            def close(self):
                t = time.perf_counter()
                inner.close()
                entry["seconds"] += time.perf_counter() - t
                u = inner.usage
                if u is not None:
                    entry.update(prompt_tokens=u.prompt_tokens, cached=u.cached_tokens,
                                 prompt_ms=u.prompt_ms)

            @property
            def usage(self):
                return inner.usage

        return Timed()

    def cold_prompt_ms(self, request) -> Optional[float]:
        """The same prompt evaluated from scratch (no KV reuse): time to the first token."""
        stream = self._stream(dataclasses.replace(request, cache_prompt=False, max_tokens=1,
                                                  cancel=None))
        try:
            for _ in stream:
                pass
        finally:
            stream.close()
        return stream.usage.prompt_ms if stream.usage else None


# ---- one run --------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_session(app, path: str, typing_mode: bool, events: list[Event], max_tokens: int):
    clock = ModelClock(app.extensions["gateway"].router.by_name("local"))
    body_for = complete_body if path == "/complete" else infill_body
    with serve(app) as url:
        # Warm-up: load the model and evaluate the file's head once (not measured).
        warm = Editor(url, path, False)
        warm.request(body_for("", max_tokens))
        warm.join()
        clock.by_rid.clear()
        editor = Editor(url, path, client_cancels=typing_mode and path == "/infill")
        for ev in events:
            delay = ev.at - editor.now()
            if delay > 0:
                time.sleep(delay)
            if ev.request:
                editor.request(body_for(ev.text, max_tokens), ev.text)
        editor.join()
        time.sleep(0.3)  # let the server finish closing cancelled runs
    return editor.sent, clock


def summarize(name: str, sent: list[Sent], clock: ModelClock) -> dict:
    shown = [s for s in sent if s.shown]
    hits = [s.done - s.sent for s in shown if s.cache in ("exact", "typed")]
    runs = [s.done - s.sent for s in shown if s.cache not in ("exact", "typed")]
    shown_ids = {s.rid for s in shown}
    total = sum(e["seconds"] for e in clock.by_rid.values())
    wasted = sum(e["seconds"] for rid, e in clock.by_rid.items() if rid not in shown_ids)
    return {
        "name": name, "sent": len(sent),
        "cancelled": sum(1 for s in sent if s.status == 499 or s.cancelled_by_client),
        "refused": sum(1 for s in sent if s.status == 429),
        "cache": sum(1 for s in sent if s.cache in ("exact", "typed")),
        "shown": len(shown),
        "hit_p50": pct(hits, 50), "hit_p95": pct(hits, 95),
        "run_p50": pct(runs, 50), "run_p95": pct(runs, 95),
        "all_p50": pct(hits + runs, 50),
        "model_s": total, "wasted": wasted / total if total else 0.0,
    }


def ms(x: Optional[float]) -> str:
    return "-" if x is None else f"{x * 1000:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--show", action="store_true", help="print every answer shown")
    args = ap.parse_args()
    events = session(args.seed)
    typed_s = events[-1].at
    print(f"session: {len(TYPED)} characters typed in {typed_s:.1f} s, "
          f"{sum(e.request for e in events)} requests, embedded SmolLM2-135M, "
          f"{args.threads} llama.cpp threads, max_tokens {args.max_tokens}")
    base = dict(log_level="warning", local_n_threads=args.threads,
                helios_rate_limit_per_second=0, rate_limit_per_ip=0)
    rows, reuse = [], []
    for path in ("/complete", "/infill"):
        for typing_mode in (True, False):
            app = create_app(load_settings(**base, helios_supersede=typing_mode,
                                           helios_cache_entries=1024 if typing_mode else 0))
            try:
                sent, clock = run_session(app, path, typing_mode, events, args.max_tokens)
                rows.append(summarize(f"{path} {'typing' if typing_mode else 'plain'}",
                                      sent, clock))
                if args.show:
                    for s in sent:
                        print(f"{path} {typing_mode:d} {s.status} {s.cache or '-':5} "
                              f"{(s.done - s.sent) * 1000:7.1f} ms  {s.text[-24:]!r} -> "
                              f"{s.answer[:40]!r}{' (shown)' if s.shown else ''}")
                if typing_mode:
                    for e in list(clock.by_rid.values()):
                        if e.get("prompt_ms") is not None:
                            cold = clock.cold_prompt_ms(e["request"])
                            reuse.append((path, e["prompt_ms"], cold, e["prompt_tokens"],
                                          e.get("cached") or 0))
            finally:
                app.extensions["gateway"].close()

    head = (f"{'':18}{'sent':>5}{'cancel':>7}{'429':>5}{'cache':>6}{'shown':>6}"
            f"{'hit p50':>9}{'hit p95':>9}{'run p50':>9}{'run p95':>9}{'all p50':>9}"
            f"{'model s':>9}{'wasted':>8}")
    print(head)
    for r in rows:
        print(f"{r['name']:18}{r['sent']:5}{r['cancelled']:7}{r['refused']:5}{r['cache']:6}"
              f"{r['shown']:6}{ms(r['hit_p50']):>9}{ms(r['hit_p95']):>9}{ms(r['run_p50']):>9}"
              f"{ms(r['run_p95']):>9}{ms(r['all_p50']):>9}{r['model_s']:9.2f}"
              f"{r['wasted']:8.1%}")
    print("times in ms: time to suggestion (request sent -> answer), answers still current only")
    for path in ("/complete", "/infill"):
        rs = [x for x in reuse if x[0] == path and x[2] is not None]
        if not rs:
            continue
        warm_ms = statistics.median(x[1] for x in rs)
        cold_ms = statistics.median(x[2] for x in rs)
        share = sum(x[4] for x in rs) / max(1, sum(x[3] for x in rs))
        saved = sum(x[2] - x[1] for x in rs) / max(1e-9, sum(x[2] for x in rs))
        print(f"prompt reuse {path}: {len(rs)} model runs, {share:.0%} of prompt tokens from the "
              f"KV cache; prompt evaluation p50 {warm_ms:.1f} ms with reuse vs {cold_ms:.1f} ms "
              f"cold ({saved:.0%} of prompt-evaluation time saved)")


if __name__ == "__main__":
    main()
