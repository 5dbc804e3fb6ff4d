"""Helios response side: the continuation kept from raw output, and its confidence."""

from __future__ import annotations

import math

import pytest

from service.api.helios.prompting import locate
from service.api.helios.suggestions import (
    FALLBACK_CONFIDENCE, SuggestionBuilder, extract, geometric_mean_probability,
)
from service.api.helios.protocol import error_body, error_code, CompletionFailed
from service.core import errors

FACT = "def factorial(n):\n    if n == 0:\n        return 1\n    else:\n        "
FACT_CURSOR = locate(FACT, 4, 8)


def suggest(raw: str, cursor=FACT_CURSOR, truncated=False) -> str:
    b = SuggestionBuilder(cursor)
    for piece in raw:  # one character at a time: the streamed case
        if b.feed(piece):
            break
    return b.result(truncated)[0]


@pytest.mark.parametrize("raw,expected", [
    (" return n * factorial(n - 1)\n\nprint(factorial(5))", "return n * factorial(n - 1)"),
    ("return n * f(n - 1)\n    x = 1\n", "return n * f(n - 1)"),                    # dedent ends
    ("```python\nreturn n * f(n-1)\n```\nThis works", "return n * f(n-1)"),          # fences
    ("Sure! Here is the completion:\nreturn n * f(n-1)\n", "return n * f(n-1)"),      # preamble
    ("Here's the completed code:\nreturn 1\n", "return 1"),
    ("sure = n > 1\n        return sure\n\n", "sure = n > 1\n        return sure"),  # not prose
    (FACT + "return n * f(n-1)\n", "return n * f(n-1)"),                            # echoed prefix
    ("\n        r = n\n        return r\n\n", "r = n\n        return r"),            # new line
    ("\n            r = n\n            return r\n        x", "r = n\n        return r"),  # deeper
])
def test_continuation_only(raw, expected):
    assert suggest(raw) == expected


def test_stops_early_so_generation_can_stop():
    b = SuggestionBuilder(FACT_CURSOR)
    assert not b.feed("return n * f(n-1)\n")
    assert b.feed("    def other():")  # dedent seen before the line is even finished


def test_truncated_multiline_drops_the_unfinished_line():
    assert suggest("a = 1\n        for i in ra", truncated=True) == "a = 1"
    assert suggest("return n * factor", truncated=True) == "return n * factor"


def test_cursor_after_block_opener_keeps_the_closing_bracket():
    code = "function f(a) {\n    if (a) {"
    raw = "\n        g(a);\n    }\n    return a;\n}"
    assert suggest(raw, locate(code, 1, 12)) == "\n        g(a);\n    }"


def test_mid_line_cursor_is_one_line_and_drops_the_rewritten_tail():
    code = "total = sum(values)\n"
    cursor = locate(code, 0, 12)  # inside "sum(|values)"
    assert cursor.line_after == "values)"
    assert suggest("values) + 1\nprint(total)", cursor) == ""
    cursor = locate("print()", 0, 6)
    assert suggest('"hi")\nx = 2', cursor) == '"hi"'


def test_stops_before_the_code_after_the_cursor():
    code = "def f(x):\n    \n    return y\n"
    raw = "y = x * 2\n    return y\n"
    assert suggest(raw, locate(code, 1, 4)) == "y = x * 2"


def test_line_echo_is_removed_but_short_prefixes_are_kept():
    cursor = locate("    return fib", 0, 14)
    assert suggest("return fibonacci(n - 1)\n\n", cursor) == "onacci(n - 1)"
    cursor = locate("x = x", 0, 5)
    assert suggest(" + 1\n", cursor) == " + 1"


def test_confidence_is_the_geometric_mean_of_kept_tokens():
    b = SuggestionBuilder(FACT_CURSOR)
    b.feed(" return", [math.log(0.9)])
    b.feed(" n", [math.log(0.4)])
    b.feed("\n", [math.log(0.01)])  # the blank line ends it: not part of the suggestion
    b.feed("\n", [math.log(0.01)])
    text, confidence = b.result(truncated=False)
    assert text == "return n"
    assert confidence == pytest.approx(math.sqrt(0.9 * 0.4))


def test_confidence_fallback_and_empty():
    b = SuggestionBuilder(FACT_CURSOR)
    b.feed("return 1", None)  # a backend without token probabilities
    assert b.result(False) == ("return 1", FALLBACK_CONFIDENCE)
    b = SuggestionBuilder(FACT_CURSOR)
    b.feed("\n\n", [-0.1])
    assert b.result(False) == ("", 0.0)
    assert geometric_mean_probability([float("-inf")]) is None
    assert geometric_mean_probability([0.0, 0.0]) == 1.0


def test_extract_marks_done_only_when_certain():
    span = extract("return 1\n", FACT_CURSOR)
    assert not span.done and span.start == 0


@pytest.mark.parametrize("exc,status,code", [
    (errors.InvalidRequest("x"), 400, "INVALID_REQUEST"),
    (errors.AuthenticationFailed("x"), 401, "UNAUTHORIZED"),
    (errors.PermissionDenied("x"), 403, "FORBIDDEN"),
    (errors.PayloadTooLarge("x"), 413, "INVALID_REQUEST"),
    (errors.RateLimited("x"), 429, "SERVER_OVERLOADED"),
    (errors.ModelNotLoaded("x"), 503, "MODEL_NOT_LOADED"),
    (CompletionFailed("x"), 500, "COMPLETION_FAILED"),
    (errors.InternalError("x"), 500, "INTERNAL_ERROR"),
])
def test_error_codes(exc, status, code):
    assert exc.status == status and error_code(exc) == code
    body = error_body(exc)
    assert list(body) == ["detail", "error_code", "timestamp"] and body["detail"] == "x"
