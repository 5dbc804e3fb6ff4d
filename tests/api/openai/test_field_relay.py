"""Every field of OpenAI's responses survives the trip through the gateway (openai SDK).

The stand-in's ``full`` model answers with everything OpenAI sends: logprobs
(chat entries, completions' parallel lists), ``system_fingerprint`` and usage
details; ``strict`` rejects what OpenAI rejects (nulls it does not take, tool
calls without answers). The SDK's ``model_fields_set`` tells a field sent as
``null`` from one left out.
"""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.api.openai.test_upstream_relay import client

MSGS = [{"role": "user", "content": "hi"}]
USAGE_DETAILS = ({"cached_tokens": 4, "audio_tokens": 0},
                 {"reasoning_tokens": 1, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                  "rejected_prediction_tokens": 0})


def _check_chat_entries(content):
    assert [e.token for e in content] == ["Hi", " there"]
    assert [e.logprob for e in content] == [-0.25, -0.5]
    assert content[0].bytes == list(b"Hi")
    assert [(t.token, t.logprob, t.bytes) for t in content[1].top_logprobs] == [
        (" there", -0.5, list(b" there")), ("!", -2.0, list(b"!"))]


def test_chat_logprobs_fingerprint_and_usage_details(upstream_gateway):
    url, _ = upstream_gateway
    r = client(url).chat.completions.create(model="full", messages=MSGS, logprobs=True,
                                            top_logprobs=2)
    _check_chat_entries(r.choices[0].logprobs.content)
    assert r.system_fingerprint == "fp_up123"
    assert r.usage.prompt_tokens_details.model_dump(exclude_unset=True) == USAGE_DETAILS[0]
    assert r.usage.completion_tokens_details.model_dump(exclude_unset=True) == USAGE_DETAILS[1]
    msg = r.choices[0].message
    assert "refusal" in msg.model_fields_set and msg.refusal is None  # required by the spec


def test_chat_stream_logprobs_fingerprint_usage(upstream_gateway):
    url, _ = upstream_gateway
    chunks = list(client(url).chat.completions.create(
        model="full", messages=MSGS, logprobs=True, top_logprobs=2, stream=True,
        stream_options={"include_usage": True}))
    content = [e for c in chunks if c.choices and c.choices[0].logprobs
               for e in c.choices[0].logprobs.content]
    _check_chat_entries(content)
    assert {c.system_fingerprint for c in chunks} == {"fp_up123"}
    # include_usage: every chunk before the last carries "usage": null
    assert all("usage" in c.model_fields_set and c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens_details.reasoning_tokens == 1
    assert last.usage.prompt_tokens_details.cached_tokens == 4


@pytest.mark.parametrize("stream", [False, True])
def test_completion_logprobs_keep_every_list(upstream_gateway, stream):
    url, _ = upstream_gateway
    c = client(url)
    if stream:
        chunks = list(c.completions.create(model="full", prompt="x", logprobs=2, stream=True))
        lps = [ch.choices[0].logprobs for ch in chunks if ch.choices and ch.choices[0].text]
        assert {ch.system_fingerprint for ch in chunks} == {"fp_up123"}
    else:
        r = c.completions.create(model="full", prompt="x", logprobs=2)
        lps = [r.choices[0].logprobs]
        assert r.system_fingerprint == "fp_up123"
        assert r.usage.prompt_tokens_details.cached_tokens == 4
    assert [t for lp in lps for t in lp.tokens] == ["Hi", " there"]
    assert [t for lp in lps for t in lp.token_logprobs] == [-0.25, -0.5]
    assert [t for lp in lps for t in lp.top_logprobs] == [{"Hi": -0.25, "Hello": -1.5},
                                                          {" there": -0.5, "!": -2.0}]
    assert [t for lp in lps for t in lp.text_offset] == [0, 2]


def test_stream_without_include_usage_has_no_usage_key(upstream_gateway):
    url, _ = upstream_gateway
    chunks = list(client(url).chat.completions.create(model="full", messages=MSGS,
                                                      stream=True))
    assert chunks and all("usage" not in c.model_fields_set for c in chunks)


def test_nullable_fields_accept_null_and_strict_upstreams_never_see_it(upstream_gateway):
    """The SDK sends ``None`` as JSON null; OpenAI's spec marks these nullable."""
    url, up = upstream_gateway
    c = client(url)
    r = c.chat.completions.create(model="strict", messages=MSGS, n=None, stream=None,
                                  temperature=None, top_p=None, stop=None, seed=None,
                                  max_completion_tokens=None, logprobs=None,
                                  top_logprobs=None, presence_penalty=None,
                                  frequency_penalty=None, stream_options=None)
    assert r.choices[0].message.content == "echo: hi"
    assert not any(v is None for v in up.state.bodies[-1].values())
    r = c.completions.create(model="strict", prompt="p", n=None, stream=None, echo=None,
                             suffix=None, logprobs=None, best_of=None, max_tokens=None)
    assert r.choices[0].text == "echo: p"
    assert not any(v is None for v in up.state.bodies[-1].values())
    # and the null still means the default: a stream: null request is not streamed
    raw = requests.post(url + "/v1/chat/completions",
                        json={"model": "strict", "messages": MSGS, "stream": None, "n": None})
    assert raw.status_code == 200 and raw.json()["object"] == "chat.completion"


@pytest.mark.parametrize("body,param", [
    ({"n": "two"}, "n"), ({"stream": [1]}, "stream"), ({"n": 0}, "n"),
])
def test_wrong_types_are_still_400(upstream_gateway, body, param):
    url, _ = upstream_gateway
    r = requests.post(url + "/v1/chat/completions",
                      json={"model": "strict", "messages": MSGS, **body})
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_upstream_logprobs_of_the_wrong_shape_are_dropped_not_500(upstream_gateway):
    """A broken upstream's logprobs never become a traceback (decoded defensively)."""
    from service.providers.openai_compat import _logprobs

    assert _logprobs({"logprobs": {"content": [{"token": "a"}, "x", {"logprob": "no"}]}}) \
        == ([], [])
    assert _logprobs({"logprobs": {"tokens": "ab", "token_logprobs": [-1]}}) == ([-1], None)
    values, entries = _logprobs({"logprobs": {"tokens": ["a"], "token_logprobs": [None],
                                              "top_logprobs": [None], "text_offset": ["0"]}})
    assert values == [] and entries[0].token == "a" and entries[0].text_offset is None
    assert json.dumps(_logprobs({"logprobs": "garbage"})) == "[null, null]"
