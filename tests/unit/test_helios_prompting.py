"""Helios request side: language resolution, cursor location, prompt, stops, rate string."""

from __future__ import annotations

import pytest

from service.api.helios import prompting
from service.api.helios.limits import rate_limit_string
from service.core import errors


@pytest.mark.parametrize("language,filename,expected", [
    ("python", "x.txt", "python"),
    ("Python", "", "python"),
    ("JAVASCRIPT", "a.js", "javascript"),
    ("cpp", "a.cc", "cpp"),
    ("py", "", "python"),
    ("js", "app", "javascript"),
    ("ts", "", "typescript"),
    ("c++", "", "cpp"),
    ("C++", "main.cxx", "cpp"),
    ("golang", "", "go"),
    ("typescriptreact", "view.tsx", "typescript"),
    ("", "main.rs", "rust"),
    ("", "dir.d/Page.HTML", "html"),
    ("js", "component.ts", "typescript"),  # an alias defers to the filename's extension
    ("h", "util.h", "c"),
])
def test_languages_resolve(language, filename, expected):
    assert prompting.resolve_language(language, filename) == expected


@pytest.mark.parametrize("language,filename,named", [
    ("cobol", "a.py", "'cobol'"),
    ("brainfuck", "", "'brainfuck'"),
    ("", "README", "README"),
])
def test_unsupported_language_is_400_naming_it(language, filename, named):
    with pytest.raises(errors.InvalidRequest) as info:
        prompting.resolve_language(language, filename)
    assert info.value.param == "language"
    assert named in info.value.message and "python" in info.value.message


def test_locate_splits_at_the_cursor():
    code = "def f(x):\n    return x\n\nprint(f(1))"
    c = prompting.locate(code, 1, 4)
    assert c.prefix == "def f(x):\n    " and c.suffix == "return x\n\nprint(f(1))"
    assert c.line_before == "    " and c.line_after == "return x"
    assert c.in_indentation and c.indent == 4 and c.next_line == "print(f(1))"


def test_locate_end_of_code_and_line_endings():
    code = "a = 1\r\nb = 2\rc = "
    c = prompting.locate(code, 2, 4)
    assert c.prefix == code and c.suffix == "" and c.line_before == "c = "
    assert prompting.locate(code, 1, 0).prefix == "a = 1\r\n"
    assert prompting.locate("x\n", 1, 0).prefix == "x\n"  # the empty last line exists


def test_locate_counts_utf16_units_and_clamps_character():
    code = "s = '😀' + x"  # the emoji is two UTF-16 code units
    assert prompting.locate(code, 0, 8).prefix == "s = '😀'"
    assert prompting.locate(code, 0, 999).prefix == code  # LSP: past the end = end of line


def test_locate_line_past_the_end_is_400():
    with pytest.raises(errors.InvalidRequest) as info:
        prompting.locate("one\ntwo", 2, 0)
    assert info.value.param == "position.line" and "2 line(s)" in info.value.message


def test_prompt_has_a_filename_header_in_the_languages_comment_syntax():
    c = prompting.locate("x = ", 0, 4)
    assert prompting.build_prompt(c, "python", "src/app.py", 4000) == "# src/app.py\nx = "
    assert prompting.build_prompt(c, "html", "i.html", 4000) == "<!-- i.html -->\nx = "
    assert prompting.build_prompt(c, "json", "a.json", 4000) == "x = "  # JSON has no comments
    assert prompting.build_prompt(c, "python", "", 4000) == "x = "


def test_suffix_and_stops():
    assert prompting.suffix_for(prompting.locate("a\n  \n", 0, 1), 1000) is None
    assert prompting.suffix_for(prompting.locate("f()", 0, 2), 1000) == ")"
    for lang in prompting.LANGUAGES:
        stops = prompting.stop_sequences(lang)
        assert stops[0] == "\n\n" and len(stops) <= 4  # OpenAI accepts at most four


def test_long_buffers_are_trimmed_at_line_boundaries():
    before = "".join(f"line_{i} = {i}\n" for i in range(1000))
    after = "".join(f"tail_{i} = {i}\n" for i in range(1000))
    c = prompting.locate(before + "x = " + "\n" + after, 1000, 4)
    prompt = prompting.build_prompt(c, "python", "big.py", 200)
    assert prompt.startswith("# big.py\nline_") and prompt.endswith("line_999 = 999\nx = ")
    assert len(prompt) <= len("# big.py\n") + 200
    suffix = prompting.suffix_for(c, 100)
    assert suffix.startswith("\ntail_0 = 0\n") and suffix.endswith("\n") and len(suffix) <= 100


@pytest.mark.parametrize("rate,burst,expected", [
    (10, 20, "20 per 2 second"),   # the seed's numbers
    (10, 5, "10 per 1 second"),
    (0.1, 5, "5 per 50 second"),
    (3, 20, "21 per 7 second"),
])
def test_rate_limit_string(rate, burst, expected):
    assert rate_limit_string(rate, burst) == expected


def test_the_prompt_start_stays_put_while_typing_so_the_kv_cache_is_reused():
    before = "".join(f"line_{i} = {i}\n" for i in range(1000))
    before += "#" * ((1 - (len(before) + 1 - 400)) % 100) + "\n"  # just past a cut step
    starts = set()
    for typed in range(0, 48, 3):  # more than a line's worth typed at the end
        prompt = prompting.tail(before + "x" * typed, 400)
        assert len(prompt) <= 400 and prompt.startswith("line_")
        starts.add(prompt.split("\n", 1)[0])
    assert len(starts) == 1, starts
