"""The official ``anthropic`` SDK against the embedded model (SmolLM2-135M), few tokens each:
whole and streamed answers, system blocks, stop sequences, max_tokens, count_tokens and a
two-turn tool round trip through grammar-constrained calls."""

from __future__ import annotations

import anthropic
import pytest

MODEL = "smollm2-135m-instruct"
WEATHER = {"name": "get_weather", "description": "Weather of a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


@pytest.fixture(scope="module")
def client(local_url):
    return anthropic.Anthropic(base_url=local_url, api_key="unused", max_retries=0)


def test_whole_answer_with_system_blocks_sampling_and_metadata(client):
    m = client.messages.create(
        model=MODEL, max_tokens=8, extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 20},
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        metadata={"user_id": "u-1"}, cache_control={"type": "ephemeral"},
        messages=[{"role": "user", "content": [{"type": "text", "text": "Say hello",
                                                "cache_control": {"type": "ephemeral"}}]}])
    assert m.type == "message" and m.role == "assistant" and m.model == MODEL
    assert m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"] and m.content[0].text
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.usage.input_tokens > 0 and 0 < m.usage.output_tokens <= 8


def test_thinking_is_accepted_and_ignored_by_a_model_that_does_not_reason(client):
    m = client.messages.create(model=MODEL, max_tokens=8,  # budget below max_tokens, as asked
                               thinking={"type": "enabled", "budget_tokens": 4},
                               messages=[{"role": "user", "content": "Say hi in one word"}])
    assert all(b.type == "text" for b in m.content)


def test_max_tokens_is_the_stop_reason_when_it_cuts(client):
    m = client.messages.create(model=MODEL, max_tokens=2,
                               messages=[{"role": "user", "content": "Write a long story"}])
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 2


def test_stop_sequence_names_the_sequence(client):
    m = client.messages.create(model=MODEL, max_tokens=40, extra_body={"temperature": 0},
                               stop_sequences=["2"],
                               messages=[{"role": "user", "content": "Count: 1, 2, 3, 4, 5. "
                                                                     "Repeat the count."}])
    if m.stop_reason == "stop_sequence":
        assert m.stop_sequence == "2" and "2" not in m.content[0].text
    else:  # the model may not say "2"; then it is not a stop-sequence end
        assert m.stop_sequence is None


def test_streamed_answer_has_anthropics_event_sequence(client):
    with client.messages.stream(model=MODEL, max_tokens=6,
                                messages=[{"role": "user", "content": "Say hello"}]) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert final.content[0].text and final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_count_tokens_counts_with_the_models_tokenizer(client):
    short = client.messages.count_tokens(model=MODEL,
                                         messages=[{"role": "user", "content": "hi"}])
    longer = client.messages.count_tokens(
        model=MODEL, system="You are a careful assistant.", tools=[WEATHER],
        messages=[{"role": "user", "content": "hi there, what is the weather in Paris?"}])
    assert 0 < short.input_tokens < longer.input_tokens
    m = client.messages.create(model=MODEL, max_tokens=1,
                               messages=[{"role": "user", "content": "hi"}])
    assert m.usage.input_tokens == short.input_tokens  # the same prompt, counted the same


@pytest.mark.timeout(400)  # grammar-constrained calls on 2 shared cores
@pytest.mark.parametrize("stream", [False, True])
def test_two_turn_tool_round_trip(client, stream):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    kw = dict(model=MODEL, max_tokens=40, tools=[WEATHER], tool_choice={"type": "any"})
    if stream:
        with client.messages.stream(messages=ask, **kw) as s:
            kinds = [e.type for e in s]
            first = s.get_final_message()
        assert "input_json" in kinds or any(k == "content_block_delta" for k in kinds)
    else:
        first = client.messages.create(messages=ask, **kw)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input.get("city"), str)
    assert call.id.startswith("call_")
    follow = ask + [{"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                      for b in first.content]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                  "content": [{"type": "text",
                                                               "text": "18 C and sunny"}]}]}]
    second = client.messages.create(model=MODEL, max_tokens=6, tools=[WEATHER],
                                    tool_choice={"type": "none"}, messages=follow)
    assert second.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in second.content] == ["text"]


@pytest.mark.timeout(400)
def test_named_tool_choice_calls_that_tool(client):
    other = dict(WEATHER, name="get_time", description="Time in a city.")
    m = client.messages.create(model=MODEL, max_tokens=40, tools=[WEATHER, other],
                               tool_choice={"type": "tool", "name": "get_time",
                                            "disable_parallel_tool_use": True},
                               messages=[{"role": "user", "content": "Time in Oslo?"}])
    calls = [b for b in m.content if b.type == "tool_use"]
    assert [c.name for c in calls] == ["get_time"]


def test_images_to_a_text_only_model_are_a_400_in_anthropics_format(client):
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}},
            {"type": "text", "text": "What is this?"}]}])
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == "invalid_request_error"
    assert "images" in exc.value.body["error"]["message"]
