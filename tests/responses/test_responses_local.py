"""The Responses API on the real embedded model (SmolLM2-135M), through the openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

MODEL = "smollm2-135m-instruct"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False}}


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("stream", [False, True])
def test_token_limit_is_incomplete(local_url, stream):
    c = client(local_url)
    kw = dict(model=MODEL, input="Write a long story about a dragon.", max_output_tokens=4,
              instructions="You are a storyteller.")
    if stream:
        events = list(c.responses.create(stream=True, **kw))
        assert events[-1].type == "response.incomplete"
        assert "response.completed" not in [e.type for e in events]
        r = events[-1].response
        assert r.output_text == "".join(e.delta for e in events
                                        if e.type == "response.output_text.delta")
    else:
        r = c.responses.create(**kw)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text and r.usage.output_tokens == 4 and r.usage.input_tokens > 10


@pytest.mark.timeout(400)  # four real generations; a shared CPU can be slow
@pytest.mark.parametrize("stream", [False, True])
def test_two_turn_tool_round_trip(local_url, stream):
    """A grammar-constrained call from the local model, its call_id sent back with the
    result (previous_response_id), and a text answer."""
    c = client(local_url)
    kw = dict(model=MODEL, input="What is the weather in Paris?", tools=[WEATHER],
              tool_choice={"type": "function", "name": "get_weather"}, max_output_tokens=32)
    if stream:
        with c.responses.stream(**kw) as s:
            first = s.get_final_response()
    else:
        first = c.responses.create(**kw)
    [call] = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    assert isinstance(json.loads(call.arguments)["city"], str)
    second = c.responses.create(model=MODEL, previous_response_id=first.id, tools=[WEATHER],
                                tool_choice="none", max_output_tokens=6,
                                input=[{"type": "function_call_output",
                                        "call_id": call.call_id, "output": "Sunny, 21 C"}])
    assert second.output_text and second.status in ("completed", "incomplete")
    assert second.usage.input_tokens > 0
    items = c.responses.input_items.list(second.id, order="asc").data
    assert [i.type for i in items][-2:] == ["function_call", "function_call_output"]
    assert items[-1].call_id == items[-2].call_id == call.call_id
