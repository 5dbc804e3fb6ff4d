"""INTERNAL_COMPLETIONS_URL (seed 000): completions go there, chat skips it."""

from __future__ import annotations

import openai
import pytest

from service import create_app
from tests.conftest import make_settings, serve


@pytest.fixture
def internal_gateway(upstream):
    app = create_app(make_settings(internal_completions_url=upstream.url + "/v1/completions"))
    with serve(app) as url:
        yield url, upstream


def test_seed_example_goes_to_internal_api(internal_gateway):
    url, up = internal_gateway
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    r = c.completions.create(model="text-bison@001", prompt="Say hello to Roo Code",
                             max_tokens=64, temperature=0.3)
    assert r.choices[0].text == "echo: Say hello to Roo Code"
    assert up.state.bodies[-1]["model"] == "text-bison@001"

    chunks = list(c.completions.create(model="text-bison@001", prompt="a b c", stream=True))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == "echo: a b c"


def test_chat_is_served_by_the_next_provider(internal_gateway):
    url, up = internal_gateway
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    r = c.chat.completions.create(model="anything", max_tokens=2,
                                  messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content is not None
    assert not any("messages" in b for b in up.state.bodies)  # never sent to the internal API


def test_a_truncated_internal_stream_is_an_error(internal_gateway):
    """The internal API's stream closes after three chunks without finish or [DONE]."""
    url, _ = internal_gateway
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    got = []
    with pytest.raises(openai.APIError, match="before the answer was complete"):
        for ch in c.completions.create(model="truncated", prompt="a", stream=True):
            got.append(ch.choices[0].text)
            assert ch.choices[0].finish_reason is None
    assert "".join(got) == "one two three"
