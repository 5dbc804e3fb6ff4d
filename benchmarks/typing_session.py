"""A typing session against ``/complete`` and ``/infill`` on the embedded model (issue 17).

A file is typed character by character into the middle of an existing one
(8–12 characters per second; after every word a pause of 100–350 ms, and the
editor sends a completion request at each pause, as editors debounce; one
word in ten gets a typo that is noticed, deleted and retyped, after a pause
of its own). Requests run concurrently with the typing, as in an editor.

Each API runs the same session twice, side by side on two gateways in this
process: **typing** (completion cache on; ``/complete`` supersedes the older
request of the same file on the server and ends suggestions at the typing
pace's deadline, and for ``/infill`` the client drops the stale request's
connection, as llama.vim does) and **plain** (cache, supersession and pace
off, nothing cancelled: every request runs to its end). ``--no-pace`` runs
the typing sessions without the pace deadline.
``--repeat N`` runs each session N times and reports medians.

Per session it prints: requests sent, cancelled, refused (429), served from
the cache, shown, ended by the pace deadline (``X-Finish-Reason: pace``),
"right" (characters of the shown suggestions that the typist then typed: a
rough measure of how useful they were), time to suggestion p50/p95 for cache
hits and for model runs (only answers that were still current when they
arrived: the editor discards the rest), the model time (how long requests held
the local model's lock, measured by :mod:`benchmarks.model_clock`) and the
share of it that was wasted: spent on requests whose answer was never shown
(cut short by a newer request, or answered after it). Then the issue's goals
next to the medians, and where the model time of the typing sessions went: per
fate (shown, late, cut in prompt evaluation, cut in generation, never ran),
split into prompt evaluation and generation, how soon a superseded run gave
the model back, and how much of an undelivered run's prompt evaluation the
next run reused from the KV cache (reported, but still counted as wasted).

Prompt reuse: every model run's prompt is replayed afterwards with
``cache_prompt=False`` and its prompt-evaluation time compared with the time
measured in the session (llama.cpp's KV cache kept the common prefix there).

The issue calls this script ``benchmarks/typing.py``; a script is run with its
own directory first on ``sys.path``, so a ``benchmarks/typing.py`` would be
imported as the standard library's ``typing`` by every script in this
directory (this one included) and break them.

    python benchmarks/typing_session.py [--threads N] [--seed 1] [--max-tokens 32]
                                        [--repeat 3] [--api complete|infill|both] [--show]
                                        [--no-reuse] [--no-pace]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
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

from benchmarks.model_clock import Entry, ModelClock, pct  # noqa: E402
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
    finish: Optional[str] = None           # X-Finish-Reason: why a model run's suggestion ended
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
            s.finish = resp.getheader("X-Finish-Reason") or data.get("stop_type")
        except OSError:
            s.status = None  # dropped by the client
        finally:
            s.done = self.now()
            conn.close()

    def join(self) -> None:
        for th in self._threads:
            th.join(180)


# ---- one run --------------------------------------------------------------------------------
def run_session(app, path: str, typing_mode: bool, events: list[Event], max_tokens: int):
    clock = ModelClock(app.extensions["gateway"].router.by_name("local"))
    body_for = complete_body if path == "/complete" else infill_body
    with serve(app) as url:
        # Warm-up: load the model and evaluate the file's head once (not measured).
        warm = Editor(url, path, False)
        warm.request(body_for("", max_tokens))
        warm.join()
        clock.clear()
        editor = Editor(url, path, client_cancels=typing_mode and path == "/infill")
        for ev in events:
            delay = ev.at - editor.now()
            if delay > 0:
                time.sleep(delay)
            if ev.request:
                editor.request(body_for(ev.text, max_tokens), ev.text)
        editor.join()
        time.sleep(0.3)  # let the server finish closing cancelled runs
    return editor, clock


#: Where a request's model time went, in the order printed.
FATES = {
    "shown": "answered in time (shown)",
    "late": "answered after a newer request",
    "gen": "cut during generation",
    "prompt": "cut during prompt evaluation",
    "queue": "left the queue, never ran",
    "early": "cancelled before the model",
    "cache": "served from the cache",
}


def fate(s: Sent, e: Optional[Entry]) -> str:
    if s.cache in ("exact", "typed"):
        return "cache"
    if s.shown:
        return "shown"
    if e is None:
        return "early"
    if not e.held:
        return "queue"
    if s.status == 200:
        return "late"
    return "gen" if e.sampled else "prompt"


def summarize(name: str, editor: Editor, clock: ModelClock) -> dict:
    """One session's figures. Model time is the time a request held the model (the local
    provider's lock); "wasted" is the share of it spent on requests whose answer was never
    shown, whatever the reason (cut short, left queued, or answered too late)."""
    sent = editor.sent
    shown = [s for s in sent if s.shown]
    hits = [s.done - s.sent for s in shown if s.cache in ("exact", "typed")]
    runs = [s.done - s.sent for s in shown if s.cache not in ("exact", "typed")]
    held = sorted((e for e in clock.entries.values() if e.held), key=lambda e: e.order)
    total = sum(e.held_s for e in held)
    fates: dict[str, list] = {k: [0, 0.0, 0.0, 0.0] for k in FATES}
    reused = 0.0     # prompt evaluation of undelivered runs that the next run found cached
    freed = []       # supersession -> the older run gave the model back
    next_of = {e.rid: n for e, n in zip(held, held[1:])}
    for s in sent:
        e = clock.entries.get(s.rid)
        f = fates[fate(s, e)]
        f[0] += 1
        if e is None or not e.held:
            continue
        f[1] += e.held_s
        f[2] += e.prompt_s
        f[3] += e.gen_s
        if s.shown:
            continue
        n = next_of.get(e.rid)
        if n is not None and n.first_past is not None and e.span and e.prompt_evaluated:
            kept = max(0, min(n.first_past, e.span[1]) - e.span[0])
            reused += e.prompt_s * min(1.0, kept / e.prompt_evaluated)
        if s.superseded_at is not None and e.freed is not None:
            at = editor.t0 + s.superseded_at
            if e.took is not None and e.took < at < e.freed:
                freed.append(e.freed - at)
    wasted = sum(f[1] for k, f in fates.items() if k not in ("shown", "cache"))
    right = 0  # suggested characters that the typist then typed (all shown answers)
    for s in shown:
        if TYPED.startswith(s.text):
            ahead = TYPED[len(s.text):]
            right += len(os.path.commonprefix([s.answer, ahead]))
    return {
        "name": name, "sent": len(sent),
        "cancelled": sum(1 for s in sent if s.status == 499 or s.cancelled_by_client),
        "refused": sum(1 for s in sent if s.status == 429),
        "cache": sum(1 for s in sent if s.cache in ("exact", "typed")),
        "shown": len(shown),
        "paced": sum(1 for s in sent if s.finish == "pace"),
        "right": right,
        "hit_p50": pct(hits, 50), "hit_p95": pct(hits, 95),
        "run_p50": pct(runs, 50), "run_p95": pct(runs, 95),
        "all_p50": pct(hits + runs, 50),
        "model_s": total, "wasted": wasted / total if total else 0.0,
        "fates": fates, "reused_s": reused, "freed": freed,
    }


def prompt_reuse(clock: ModelClock, path: str) -> list[tuple]:
    """Every model run's prompt replayed with ``cache_prompt=False`` (one token, never
    cancelled): (path, prompt ms in the session, prompt ms cold, prompt tokens, cached)."""
    out = []
    for e in list(clock.entries.values()):
        u = e.usage
        if u is None or u.prompt_ms is None:
            continue
        stream = clock.unwrapped_stream(dataclasses.replace(
            e.request, cache_prompt=False, max_tokens=1, cancel=None))
        try:
            for _ in stream:
                pass
        finally:
            stream.close()
        cold = stream.spent().prompt_ms
        if cold is not None:
            out.append((path, u.prompt_ms, cold, u.prompt_tokens, u.cached_tokens or 0))
    return out


# ---- printing -------------------------------------------------------------------------------
def ms(x: Optional[float]) -> str:
    return "-" if x is None else f"{x * 1000:.1f}"


COLUMNS = (f"{'':18}{'sent':>5}{'cancel':>7}{'429':>5}{'cache':>6}{'shown':>6}{'paced':>6}"
           f"{'right':>6}"
           f"{'hit p50':>9}{'hit p95':>9}{'run p50':>9}{'run p95':>9}{'all p50':>9}"
           f"{'model s':>9}{'wasted':>8}")


def row(r: dict) -> str:
    return (f"{r['name']:18}{r['sent']:5}{r['cancelled']:7}{r['refused']:5}{r['cache']:6}"
            f"{r['shown']:6}{r['paced']:6}{r['right']:6}"
            f"{ms(r['hit_p50']):>9}{ms(r['hit_p95']):>9}{ms(r['run_p50']):>9}"
            f"{ms(r['run_p95']):>9}{ms(r['all_p50']):>9}{r['model_s']:9.2f}{r['wasted']:8.1%}")


def median_row(runs: list[dict]) -> dict:
    """Each figure's median over repeated runs of one session (None when a run had none)."""
    out = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            values = [r[k] for r in runs if r[k] is not None]
            out[k] = statistics.median(values) if values else None
    return out


#: The issue's goals: (label, figure, limit, unit).
GOALS = (("time to suggestion p50", "all_p50", 0.200, "ms"),
         ("wasted model time", "wasted", 0.10, "%"),
         ("cache hit p50", "hit_p50", 0.005, "ms"))


def goal_lines(medians: dict[str, dict], paths: list[str]) -> list[str]:
    def fmt(v: Optional[float], unit: str) -> str:
        if v is None:
            return "-"
        return f"{v:.1%}" if unit == "%" else f"{v * 1000:.1f} ms"

    lines = [f"{'goal':24}{'limit':>9}" + "".join(
        f"{p + ' typing':>22}{'plain':>10}" for p in paths)]
    for label, key, limit, unit in GOALS:
        cells = []
        for p in paths:
            t, b = medians[f"{p} typing"][key], medians[f"{p} plain"][key]
            verdict = "-" if t is None else ("met" if t <= limit else "NOT met")
            cells.append(f"{fmt(t, unit):>13} {verdict:>8}{fmt(b, unit):>10}")
        lines.append(f"{label:24}{'≤ ' + fmt(limit, unit):>9}" + "".join(cells))
    return lines


def breakdown_lines(path: str, runs: list[dict]) -> list[str]:
    """Where the model time of the typing sessions went, added up over the runs."""
    total = sum(r["model_s"] for r in runs)
    lines = [f"  {path} typing, {len(runs)} run(s), {total:.2f} model s:",
             f"    {'':34}{'requests':>9}{'model s':>9}{'share':>7}{'prompt s':>10}{'gen s':>8}"]
    for k, label in FATES.items():
        n, held, prompt, gen = (sum(r["fates"][k][i] for r in runs) for i in range(4))
        if not n:
            continue
        share = f"{held / total:.1%}" if total and k not in ("early", "cache") else ""
        lines.append(f"    {label:34}{n:9}{held:9.2f}{share:>7}{prompt:10.2f}{gen:8.2f}")
    freed = [x for r in runs for x in r["freed"]]
    if freed:
        lines.append(f"    model given back after a newer request was sent: p50 "
                     f"{ms(pct(freed, 50))} ms, max {ms(max(freed))} ms ({len(freed)} runs)")
    reused = sum(r["reused_s"] for r in runs)
    if total:
        lines.append(f"    prompt evaluation of undelivered runs that the next run reused "
                     f"from the KV cache: {reused:.2f} s ({reused / total:.1%} of model time; "
                     f"still counted as wasted)")
    return lines


def show_line(s: Sent, e: Optional[Entry]) -> str:
    """One request: its fate, time to answer, text, answer and model time."""
    line = (f"  {fate(s, e):6} {s.status} {s.cache or s.finish or '-':5} "
            f"{(s.done - s.sent) * 1000:7.1f} ms"
            f"  {s.text[-20:]!r} -> {s.answer[:30]!r}")
    if e is not None and e.held:
        line += (f"  [held {ms(e.held_s)} ms: prompt {e.prompt_evaluated} tok from "
                 f"{e.first_past} in {ms(e.prompt_s)} ms, {e.sampled} tok in {ms(e.gen_s)} ms]")
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None,
                    help="llama.cpp threads (default: the gateway's LOCAL_N_THREADS default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every session this many times and report medians")
    ap.add_argument("--api", choices=("complete", "infill", "both"), default="both")
    ap.add_argument("--no-reuse", action="store_true",
                    help="skip the cold replay of every prompt (prompt reuse figures)")
    ap.add_argument("--show", action="store_true", help="print every answer")
    ap.add_argument("--no-pace", action="store_true",
                    help="typing sessions without the typing-pace deadline (HELIOS_TYPING_PACE)")
    args = ap.parse_args()
    if args.threads is None:
        args.threads = load_settings().local_n_threads
    events = session(args.seed)
    paths = ["/complete", "/infill"] if args.api == "both" else [f"/{args.api}"]
    print(f"session: {len(TYPED)} characters typed in {events[-1].at:.1f} s, "
          f"{sum(e.request for e in events)} requests, embedded SmolLM2-135M, "
          f"{args.threads} llama.cpp threads, max_tokens {args.max_tokens}, "
          f"{args.repeat} run(s) of each session")
    base = dict(log_level="warning", local_n_threads=args.threads,
                helios_rate_limit_per_second=0, rate_limit_per_ip=0)
    results: dict[str, list[dict]] = {}
    reuse: list[tuple] = []
    print(COLUMNS + f"{'load':>6}")
    for rep in range(args.repeat):
        for path in paths:
            for typing_mode in (True, False):
                name = f"{path} {'typing' if typing_mode else 'plain'}"
                app = create_app(load_settings(**base, helios_supersede=typing_mode,
                                               helios_typing_pace=typing_mode and not args.no_pace,
                                               helios_cache_entries=1024 if typing_mode else 0))
                try:
                    editor, clock = run_session(app, path, typing_mode, events, args.max_tokens)
                    r = summarize(name, editor, clock)
                    results.setdefault(name, []).append(r)
                    print(row(r) + f"{os.getloadavg()[0]:6.1f}", flush=True)
                    if args.show:
                        for s in editor.sent:
                            print(show_line(s, clock.entries.get(s.rid)))
                    if typing_mode and rep == 0 and not args.no_reuse:
                        reuse += prompt_reuse(clock, path)
                finally:
                    app.extensions["gateway"].close()

    medians = {name: median_row(runs) for name, runs in results.items()}
    if args.repeat > 1:
        print(f"\nmedians of {args.repeat} runs:")
        print(COLUMNS)
        for name in results:
            print(row(medians[name]))
    print("times in ms: time to suggestion (request sent -> answer), answers still current only; "
          "model s: time requests held the model; wasted: its share spent on answers never shown")
    print("\nthe issue's goals (typing: cache and cancellation on; plain: neither)")
    for line in goal_lines(medians, paths):
        print(line)
    print("\nwhere the model time went")
    for path in paths:
        for line in breakdown_lines(path, results[f"{path} typing"]):
            print(line)
    for path in paths:
        rs = [x for x in reuse if x[0] == path]
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
