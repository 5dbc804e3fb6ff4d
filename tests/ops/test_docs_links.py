"""Every relative link in README.md and docs/*.md resolves: the file exists and, for a
``#fragment`` into a Markdown page, that page has a heading with that anchor.

Markdown is parsed with markdown-it-py (CommonMark), so links inside code blocks and
code spans are not links; anchors are GitHub's (lower-cased heading text, punctuation
dropped, spaces to hyphens, ``-1``, ``-2``… for repeats).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt

from tests.support.procs import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_md = MarkdownIt("commonmark").enable("table")


def slug(text: str) -> str:
    """GitHub's heading anchor for ``text`` (the heading's rendered text)."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    tokens = _md.parse(page.read_text())
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open":
            continue
        text = "".join(c.content for c in tokens[i + 1].children
                       if c.type in ("text", "code_inline"))
        base = slug(text)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def links(page: Path) -> list[str]:
    """Every link and image target of ``page``, in order."""
    out = []
    stack = list(_md.parse(page.read_text()))
    while stack:
        tok = stack.pop(0)
        if tok.children:
            stack[:0] = tok.children
        if tok.type == "link_open":
            out.append(tok.attrs["href"])
        elif tok.type == "image":
            out.append(tok.attrs["src"])
    return out


def problems(page: Path) -> list[str]:
    """What does not resolve among ``page``'s relative links."""
    found = []
    for href in links(page):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:
            continue  # absolute URLs are not checked (no network here)
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        name = f"{page.relative_to(ROOT)}: {href}"
        if not target.exists():
            found.append(f"{name}: no such file")
        elif parts.fragment and target.suffix == ".md" \
                and unquote(parts.fragment) not in anchors(target):
            found.append(f"{name}: no heading with anchor #{parts.fragment} in "
                         f"{target.relative_to(ROOT)}")
    return found


def test_slugs_are_githubs():
    assert slug("Without MODELS_FILE: the seed variables") == "without-models_file-the-seed-variables"
    assert slug("llama.cpp /infill") == "llamacpp-infill"
    assert slug("Ollama fill-in-the-middle (Continue, Twinny)") == \
        "ollama-fill-in-the-middle-continue-twinny"


def test_the_checker_sees_a_broken_link(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n\n[ok](#a-section) [bad](#nowhere) "
                    "[gone](missing.md) `[code](missing.md)`\n\n```\n[fenced](missing.md)\n```\n")
    monkeypatch.setattr("tests.ops.test_docs_links.ROOT", tmp_path)
    assert problems(page) == ["page.md: #nowhere: no heading with anchor #nowhere in page.md",
                              "page.md: missing.md: no such file"]


def test_every_relative_link_and_anchor_resolves():
    broken = list(dict.fromkeys(p for page in PAGES for p in problems(page)))
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_links_every_docs_page():
    linked = {(ROOT / urlsplit(h).path).resolve() for h in links(ROOT / "README.md")
              if not urlsplit(h).scheme}
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"
