"""Ollama fill-in-the-middle as Continue and Twinny use it: /api/generate with ``suffix`` and
``raw``, through the official ``ollama`` client, on the embedded model."""

from __future__ import annotations

import ollama

MODEL = "smollm2-135m-instruct"
PREFIX = "def factorial(n):\n    if n == 0:\n        return 1\n    else:\n        "
SUFFIX = "\n\n\nprint(factorial(5))\n"
# Continue's autocomplete options (num_predict, temperature, its stop strings).
OPTIONS = {"num_predict": 24, "temperature": 0, "seed": 7, "stop": ["\n\n", "\ndef "]}


def test_continue_style_fim_streams_only_the_middle(local_url):
    c = ollama.Client(host=local_url)
    parts = list(c.generate(model=MODEL, prompt=PREFIX, suffix=SUFFIX, raw=True, stream=True,
                            options=OPTIONS, keep_alive="30m"))
    middle = "".join(p.response for p in parts)
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    assert all(not p.done for p in parts[:-1])
    assert middle.strip(), parts
    assert not middle.startswith(PREFIX.strip()) and "print(factorial(5))" not in middle
    assert parts[-1].prompt_eval_count > 0 and parts[-1].eval_count > 0

    whole = c.generate(model=MODEL, prompt=PREFIX, suffix=SUFFIX, raw=True, stream=False,
                       options=OPTIONS)
    assert whole.done and whole.response == middle  # same middle, streamed or not


def test_suffix_without_raw_is_fim_too(local_url):
    # Ollama applies FIM whenever a suffix is given (Twinny sends it without raw).
    c = ollama.Client(host=local_url)
    r = c.generate(model=MODEL, prompt=PREFIX, suffix=SUFFIX, stream=False, options=OPTIONS)
    assert r.done and r.response.strip() and "<|im_start|>" not in r.response
