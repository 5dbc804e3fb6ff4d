"""From raw model output to a suggestion: the continuation only, and its confidence.

:class:`SuggestionBuilder` is fed the generated text piece by piece and says
when the suggestion is complete, so the caller can stop generation early. It
keeps a single block at the cursor:

- drops a chat preamble ("Here is the code:"), an opening markdown fence, an
  echo of the prefix or of the cursor's line, and leading whitespace when the
  cursor already sits in the line's indentation;
- ends at a closing fence, a blank line, a line indented less than the
  cursor's line (a dedent ends the block), after the closing bracket of a
  block the cursor's line opened, before a line repeating the code after the cursor,
  and at the end of the line when the cursor's line continues after it;
- when generation ran out of tokens mid-line, drops that unfinished line.

Confidence is the geometric mean of the chosen tokens' probabilities,
``exp(mean(log p))``, over the tokens that produced the kept text, when the
backend reports them (the local model and OpenAI-compatible upstreams that
honour ``logprobs`` do). Otherwise it is :data:`FALLBACK_CONFIDENCE`; an
empty suggestion has confidence 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

from .prompting import Cursor, indent_width

#: Confidence reported when the backend gives no token probabilities.
FALLBACK_CONFIDENCE = 0.5

# Chat-tuned models may open with prose: "Sure! …" or "Here is the completed code:".
_PREAMBLE = re.compile(
    r"[ \t]*(?:(?:sure|certainly|of course)[!,.][^\n]*|(?:here(?:'s| is| are)|below is)\b[^\n]*:)"
    r"[ \t]*\r?\n", re.IGNORECASE)
_FENCE_OPEN = re.compile(r"[ \t]*```[\w+#.-]*[ \t]*\r?\n")
_LEADING_BLANK = re.compile(r"[ \t]*(?:\r?\n[ \t]*)*")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")
_CLOSERS = (")", "]", "}")
_MIN_ECHO = 4  # shorter line echoes are too likely to be a real continuation


@dataclass(slots=True)
class Span:
    """Where ``extract`` found the suggestion in the raw output."""

    start: int
    end: int
    done: bool
    shift: int = 0  # columns the model indented its block beyond the cursor


def extract(raw: str, cursor: Cursor, *, final: bool = False, truncated: bool = False) -> Span:
    """Locate the suggestion in ``raw`` (model output so far).

    ``done`` says the suggestion cannot grow any more; ``final`` marks the end of
    generation, and ``truncated`` that it ended by running out of tokens.
    """
    if not final and cursor.prefix.startswith(raw):  # maybe an echo of the prefix: wait
        return Span(0, 0, False)
    pos, shift = _skip_preamble(raw, cursor)
    base = cursor.indent + shift
    end, done = len(raw), False
    line_no = 0
    next_line = cursor.next_line
    for m in _LINE.finditer(raw, pos):
        if m.start() == m.end():
            break
        text = m.group().rstrip("\r\n")
        complete = m.group() != text
        fence = text.find("```")
        if fence >= 0:
            if line_no == 0 and not complete and not text[:fence].strip():
                break  # an opening fence still arriving; skipped once its line ends
            end, done = m.start() + fence, True
            break
        if line_no == 0:
            if cursor.line_after.strip() and complete:  # mid-line cursor: one line only
                end, done = m.start() + len(text), True
                break
        elif not text.strip():
            if complete:
                end, done = m.start(), True
                break
        elif indent_width(text) < base:
            end, done = m.start(), True
            break
        elif complete and next_line and text.strip() == next_line:
            end, done = m.start(), True
            break
        elif (complete and not cursor.in_indentation and text.strip().startswith(_CLOSERS)
              and indent_width(text) == base):  # closes the block the cursor's line opened
            end, done = m.start() + len(text), True
            break
        line_no += 1
    if final and truncated and not done:
        last = max(raw.rfind("\n", pos, end), raw.rfind("\r", pos, end))
        if last >= pos:  # drop the unfinished last line of a multi-line suggestion
            end = last
    if (final or done) and cursor.line_after.strip():
        tail, kept = cursor.line_after.strip(), raw[pos:end].rstrip()
        if kept.endswith(tail):  # the model also wrote the rest of the line
            end = pos + len(kept) - len(tail)
        elif kept.lstrip().startswith(tail):  # it rewrote the rest of the line: nothing to add
            end = pos
    return Span(pos, max(pos, end), done, shift)


def _skip_preamble(raw: str, cursor: Cursor) -> tuple[int, int]:
    """Where the continuation starts in ``raw``, and the block's extra indentation."""
    pos = 0
    for pattern in (_PREAMBLE, _FENCE_OPEN):
        m = pattern.match(raw, pos)
        if m:
            pos = m.end()
    if cursor.prefix and raw.startswith(cursor.prefix, pos):
        pos += len(cursor.prefix)
    else:
        line = cursor.line_before.strip()
        lead = len(raw) - len(raw[pos:].lstrip(" \t")) - pos
        if len(line) >= _MIN_ECHO and raw.startswith(line, pos + lead):
            pos += lead + len(line)
    shift = 0
    if cursor.in_indentation:
        skipped = raw[pos: _LEADING_BLANK.match(raw, pos).end()]
        pos += len(skipped)
        last_line = re.split(r"\r\n|\r|\n", skipped)
        column = (indent_width(last_line[-1]) if len(last_line) > 1
                  else cursor.indent + indent_width(skipped))
        shift = max(0, column - cursor.indent)
    return pos, shift


def _dedent(text: str, shift: int) -> str:
    """Remove up to ``shift`` leading spaces from every line after the first."""
    if shift <= 0:
        return text
    first, *rest = text.split("\n")
    return "\n".join([first] + [line[min(shift, len(line) - len(line.lstrip(" "))):]
                                 for line in rest])


@dataclass(slots=True)
class SuggestionBuilder:
    """Collects streamed output for one cursor; ``feed`` returns True once complete."""

    cursor: Cursor
    raw: str = ""
    pieces: int = 0
    _spans: list[tuple[int, int, list[float]]] = field(default_factory=list)

    def feed(self, text: str, logprobs: Optional[list[float]] = None) -> bool:
        start = len(self.raw)
        self.raw += text
        if text:
            self.pieces += 1
        if logprobs:
            self._spans.append((start, len(self.raw), logprobs))
        return extract(self.raw, self.cursor).done

    def result(self, truncated: bool) -> tuple[str, float]:
        """The suggestion and its confidence in [0, 1]."""
        span = extract(self.raw, self.cursor, final=True, truncated=truncated)
        text = self.raw[span.start: span.end].rstrip()
        if not text:
            return "", 0.0
        end = span.start + len(text)
        used = [lp for s, e, lps in self._spans for lp in lps
                if (s < end and e > span.start) or (s == e and span.start <= s < end)]
        confidence = geometric_mean_probability(used)
        return (_dedent(text, span.shift),
                FALLBACK_CONFIDENCE if confidence is None else confidence)


def geometric_mean_probability(logprobs: list[float]) -> Optional[float]:
    """exp(mean(log p)) over the finite log-probabilities; None when there are none."""
    finite = [x for x in logprobs if math.isfinite(x)]
    if not finite:
        return None
    return min(1.0, max(0.0, math.exp(sum(finite) / len(finite))))
