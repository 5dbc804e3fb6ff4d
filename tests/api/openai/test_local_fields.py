"""The embedded model computes the fields OpenAI sends: logprobs with alternatives,
``system_fingerprint``, ``prompt_tokens_details.cached_tokens`` (openai SDK, SmolLM2)."""

from __future__ import annotations

import math

import pytest

from tests.api.openai.test_upstream_relay import client

MODEL = "smollm2-135m-instruct"
MSGS = [{"role": "user", "content": "Say hello"}]


def _sane(entry, top_n):
    assert isinstance(entry.token, str) and entry.logprob <= 0 and math.isfinite(entry.logprob)
    assert bytes(entry.bytes).decode("utf-8", errors="replace") == entry.token
    tops = entry.top_logprobs
    assert len(tops) == top_n
    assert [t.logprob for t in tops] == sorted((t.logprob for t in tops), reverse=True)
    # the most likely alternative is at least as likely as the token sampled
    assert tops[0].logprob >= entry.logprob - 1e-6


@pytest.mark.parametrize("stream", [False, True])
def test_chat_logprobs_with_top_alternatives(local_url, stream):
    c = client(local_url)
    kw = dict(model=MODEL, messages=MSGS, max_tokens=6, logprobs=True, top_logprobs=2,
              temperature=0, seed=1)
    if stream:
        chunks = list(c.chat.completions.create(stream=True, **kw))
        entries = [e for ch in chunks if ch.choices and ch.choices[0].logprobs
                   for e in ch.choices[0].logprobs.content]
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert {ch.system_fingerprint for ch in chunks} == {chunks[0].system_fingerprint}
        assert chunks[0].system_fingerprint.startswith("fp_")
    else:
        r = c.chat.completions.create(**kw)
        entries = r.choices[0].logprobs.content
        text = r.choices[0].message.content
        assert r.system_fingerprint.startswith("fp_")
    assert 1 <= len(entries) <= 6
    for e in entries:
        _sane(e, 2)
    # greedy: the sampled token is the top alternative, and the tokens' bytes spell the
    # answer (a character split over tokens, e.g. an emoji, is whole only in the bytes)
    assert all(e.top_logprobs[0].bytes == e.bytes for e in entries)
    spelled = bytes(b for e in entries for b in e.bytes).decode("utf-8", errors="ignore")
    assert text and spelled.startswith(text)


def test_chat_logprobs_true_without_top(local_url):
    r = client(local_url).chat.completions.create(model=MODEL, messages=MSGS, max_tokens=3,
                                                  logprobs=True, temperature=0)
    entries = r.choices[0].logprobs.content
    assert entries and all(e.top_logprobs == [] for e in entries)
    no = client(local_url).chat.completions.create(model=MODEL, messages=MSGS, max_tokens=3)
    assert no.choices[0].logprobs is None


@pytest.mark.parametrize("stream", [False, True])
def test_completion_logprobs_lists(local_url, stream):
    c = client(local_url)
    kw = dict(model=MODEL, prompt="def add(a, b):", max_tokens=5, logprobs=3, temperature=0,
              echo=True)
    if stream:
        chunks = list(c.completions.create(stream=True, **kw))
        lps = [ch.choices[0].logprobs for ch in chunks
               if ch.choices and ch.choices[0].logprobs]
        text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    else:
        r = c.completions.create(**kw)
        lps, text = [r.choices[0].logprobs], r.choices[0].text
    tokens = [t for lp in lps for t in lp.tokens]
    offsets = [t for lp in lps for t in lp.text_offset]
    tops = [t for lp in lps for t in lp.top_logprobs]
    assert len(tokens) == len(offsets) == len(tops) == len(
        [t for lp in lps for t in lp.token_logprobs]) >= 1
    # offsets count from the start of the choice's text, which echoes the prompt
    assert offsets[0] == len("def add(a, b):")
    assert offsets == [offsets[0] + sum(map(len, tokens[:k])) for k in range(len(tokens))]
    for k, tok in enumerate(tokens):
        assert text[offsets[k]:offsets[k] + len(tok)] == tok or k == len(tokens) - 1
    assert all(len(t) <= 3 and t for t in tops)


def test_usage_details_carry_the_kv_cache_reuse(local_url):
    c = client(local_url)
    msgs = [{"role": "system", "content": "You are terse. " * 20}, *MSGS]
    c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=1)
    again = c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=1)
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert 0 < cached < again.usage.prompt_tokens
    chunks = list(c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=1,
                                            stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens > 0
    assert all(ch.usage is None and "usage" in ch.model_fields_set for ch in chunks[:-1])
