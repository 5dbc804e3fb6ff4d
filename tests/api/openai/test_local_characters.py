"""Characters on the embedded model: a character cut by the token limit is dropped, never sent
as U+FFFD (issue 11 §1), and a schema's literals (``enum``, ``const``, property names) come
out as the characters they are, emoji and JSON escapes included."""

from __future__ import annotations

import json

import ollama
import openai
import pytest

MODEL = "smollm2-135m-instruct"
EMOJI = "😃💡😃💡"  # each takes several byte tokens with this model's tokenizer
MSGS = [{"role": "user", "content": "Reply with two emoji."}]
FORMAT = {"type": "json_schema", "json_schema": {"name": "e", "schema": {"enum": [EMOJI]}}}
WHOLE = json.dumps(EMOJI, ensure_ascii=False)


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("max_tokens", [2, 3, 5, 6])
def test_a_character_cut_by_max_tokens_is_dropped(local_url, max_tokens):
    c = _client(local_url)
    r = c.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=max_tokens,
                                  temperature=0, logprobs=True, response_format=FORMAT)
    text = r.choices[0].message.content
    sent = bytes(b for e in r.choices[0].logprobs.content for b in e.bytes)
    with pytest.raises(UnicodeDecodeError):
        sent.decode("utf-8")  # the tokens generated end inside a character ...
    assert text == sent.decode("utf-8", "ignore")  # ... which is dropped, not replaced
    assert "\ufffd" not in text and WHOLE.startswith(text)
    assert r.choices[0].finish_reason == "length"

    pieces = [ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model=MODEL, messages=MSGS, max_tokens=max_tokens, temperature=0,
        response_format=FORMAT, stream=True) if ch.choices]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)

    parts = list(ollama.Client(host=local_url).generate(
        model=MODEL, prompt="Reply with two emoji.", format=FORMAT["json_schema"]["schema"],
        options={"num_predict": max_tokens, "temperature": 0}, stream=True))
    assert "".join(p.response for p in parts) == text and parts[-1].done_reason == "length"


def test_schema_literals_are_generated_as_written(local_url):
    """The converter's literals used to reach llama.cpp with JSON's escapes read as the
    grammar's own: an emoji became two UTF-16 surrogates (U+FFFD on the wire) and an
    escaped newline a raw one (invalid JSON)."""
    const = 'é\n\\😃"q'
    schema = {"type": "object", "properties": {"é😃": {"enum": [EMOJI, 3]},
                                               "c": {"const": const}},
              "required": ["é😃", "c"], "additionalProperties": False}
    r = _client(local_url).chat.completions.create(
        model=MODEL, messages=MSGS, max_tokens=60, temperature=0, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    text = r.choices[0].message.content
    assert "\ufffd" not in text and r.choices[0].finish_reason == "stop", text
    assert json.loads(text) in ({"é😃": EMOJI, "c": const}, {"é😃": 3, "c": const})
