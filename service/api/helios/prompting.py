"""From an editor's buffer to a completion prompt: language, cursor, prefix/suffix, stops.

``position`` is zero-based and counts characters in UTF-16 code units, as the
Language Server Protocol and VS Code do; lines end at ``\\n``, ``\\r\\n`` or
``\\r``. A ``character`` past the end of its line means the end of the line
(LSP's rule); a ``line`` past the end of ``code`` is a 400.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Optional

from ...core import errors

#: The seed's supported languages, by canonical name.
LANGUAGES = ("python", "javascript", "typescript", "java", "cpp", "c", "go", "rust",
             "html", "css", "json")

#: File extensions (also accepted as language aliases: ``py``, ``js``, ``ts``…).
EXTENSIONS = {
    "py": "python", "pyi": "python", "pyw": "python",
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "javascript",
    "ts": "typescript", "tsx": "typescript", "mts": "typescript", "cts": "typescript",
    "java": "java",
    "cpp": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp", "hh": "cpp", "hxx": "cpp",
    "c": "c", "h": "c",
    "go": "go", "rs": "rust",
    "html": "html", "htm": "html", "css": "css", "json": "json",
}

#: Other names editors use (VS Code language ids, common spellings).
ALIASES = {
    "c++": "cpp", "cplusplus": "cpp", "python3": "python", "golang": "go", "node": "javascript",
    "javascriptreact": "javascript", "typescriptreact": "typescript", "jsonc": "json",
}

# A one-line file header in the language's comment syntax: a filename hint
# noticeably improves small models (JSON has no comments, so no header).
_HEADER = {
    "python": "# {}", "javascript": "// {}", "typescript": "// {}", "java": "// {}",
    "cpp": "// {}", "c": "// {}", "go": "// {}", "rust": "// {}",
    "html": "<!-- {} -->", "css": "/* {} */",
}

# Besides a blank line: where a new top-level block starts (OpenAI-style
# backends accept at most four stop sequences).
_TOP_LEVEL = {
    "python": ["\ndef ", "\nclass ", "\nif __name__"],
    "javascript": ["\nfunction ", "\nclass ", "\nexport "],
    "typescript": ["\nfunction ", "\nclass ", "\nexport "],
    "java": ["\npublic ", "\nclass ", "\nimport "],
    "cpp": ["\n#include", "\nint main", "\nnamespace "],
    "c": ["\n#include", "\nint main", "\nstatic "],
    "go": ["\nfunc ", "\ntype ", "\npackage "],
    "rust": ["\nfn ", "\nimpl ", "\npub fn "],
}

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def resolve_language(language: str, filename: str) -> str:
    """The canonical language for a request, or a 400 naming the unsupported one.

    A canonical name (any case) is taken as is. An alias (``py``, ``js``,
    ``ts``, ``c++``…) or an empty field is resolved by the filename's
    extension when it has a supported one, else by the alias table.
    """
    name = language.strip().lower()
    if name in LANGUAGES:
        return name
    alias = EXTENSIONS.get(name) or ALIASES.get(name)
    if alias or not name:
        resolved = EXTENSIONS.get(_extension(filename)) or alias
        if resolved:
            return resolved
    supported = ", ".join(LANGUAGES)
    if not name:
        raise errors.InvalidRequest(
            f"language: empty, and filename {filename!r} has no supported extension; "
            f"supported: {supported}", param="language")
    raise errors.InvalidRequest(f"language: unsupported language {language!r}; supported: {supported}",
                                param="language")


def _extension(filename: str) -> str:
    base = posixpath.basename(filename.replace("\\", "/"))
    return base.rpartition(".")[2].lower() if "." in base else ""


@dataclass(frozen=True, slots=True)
class Cursor:
    """The buffer split at the cursor."""

    prefix: str       # everything before the cursor
    suffix: str       # everything after it
    line_before: str  # the cursor's line, before the cursor
    line_after: str   # the cursor's line, after the cursor

    @property
    def indent(self) -> int:
        """Indentation width of the cursor's line (tabs count 4)."""
        return indent_width(self.line_before)

    @property
    def in_indentation(self) -> bool:
        """True when only whitespace precedes the cursor on its line."""
        return not self.line_before.strip()

    @property
    def next_line(self) -> str:
        """The first non-blank line after the cursor's line, stripped ('' if none)."""
        for line in _LINE_BREAK.split(self.suffix)[1:]:
            if line.strip():
                return line.strip()
        return ""


def indent_width(line: str) -> int:
    lead = line[: len(line) - len(line.lstrip(" \t"))]
    return len(lead.expandtabs(4))


def locate(code: str, line: int, character: int) -> Cursor:
    """Split ``code`` at the zero-based (line, UTF-16 character) position."""
    starts = [0] + [m.end() for m in _LINE_BREAK.finditer(code)]
    if line >= len(starts):
        raise errors.InvalidRequest(
            f"position.line: line {line} is past the end of code, which has {len(starts)} "
            f"line(s) counted from 0", param="position.line")
    start = starts[line]
    brk = _LINE_BREAK.search(code, start)
    text = code[start: brk.start() if brk else len(code)]
    col = _utf16_index(text, character)
    offset = start + col
    return Cursor(prefix=code[:offset], suffix=code[offset:], line_before=text[:col],
                  line_after=text[col:])


def _utf16_index(text: str, units: int) -> int:
    """The str index ``units`` UTF-16 code units into ``text`` (clamped to its end)."""
    if text.isascii():
        return min(units, len(text))
    count = 0
    for i, ch in enumerate(text):
        if count >= units:
            return i
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def build_prompt(cursor: Cursor, language: str, filename: str, max_chars: int) -> str:
    """The text the model continues: a filename header comment, then the prefix.

    Only the last ``max_chars`` of the prefix are kept, from a line start, so a
    whole file sent by the editor still fits the model's context.
    """
    prefix = tail(cursor.prefix, max_chars)
    template = _HEADER.get(language)
    name = " ".join(filename.split())[:200]
    if template is None or not name:
        return prefix
    return template.format(name) + "\n" + prefix


def suffix_for(cursor: Cursor, max_chars: int) -> Optional[str]:
    """The text after the cursor for fill-in-the-middle (its first ``max_chars``,
    to a line end), or None when there is none."""
    if not cursor.suffix.strip():
        return None
    return head(cursor.suffix, max_chars)


def head(text: str, max_chars: int) -> str:
    """The first ``max_chars`` of ``text``, to a line end when one is in reach."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    brk = max(cut.rfind("\n"), cut.rfind("\r"))
    return cut[: brk + 1] if brk > 0 else cut


def tail(text: str, max_chars: int) -> str:
    """The end of ``text``, at most ``max_chars``, from a line start when one is in reach.

    The cut moves in steps of a quarter of ``max_chars`` (counted from the start of
    ``text``), so while the user types at the end it stays put for about that many
    characters and the model can reuse the prompt it evaluated (its KV cache).
    """
    if len(text) <= max_chars:
        return text
    step = max(1, max_chars // 4)
    start = -(-(len(text) - max_chars) // step) * step  # rounded up to a step
    kept = text[start:]
    brk = _LINE_BREAK.search(kept)
    return kept[brk.end():] if brk and brk.end() < len(kept) else kept


def stop_sequences(language: str) -> list[str]:
    """Stops for a single-block suggestion: a blank line, or a new top-level block."""
    return ["\n\n"] + _TOP_LEVEL.get(language, [])
