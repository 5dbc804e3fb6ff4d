"""OpenAI wire <-> internal conversion."""

from service.api.openai import convert
from service.api.openai.protocol import ChatCompletionRequest, parse
from service.core.types import Choice, Chunk, Generation, ToolCallDelta, Usage
from service.providers.openai_compat import encode_request


ROO_BODY = {
    "model": "m", "temperature": 0, "stream": True, "stream_options": {"include_usage": True},
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "file body"},
    ],
    "tools": [{"type": "function", "function": {"name": "read_file", "strict": True,
                                                "parameters": {"type": "object"}}}],
    "tool_choice": "auto", "parallel_tool_calls": True, "max_completion_tokens": 99,
}


def test_roo_body_converts():
    r = convert.chat_request(parse(ChatCompletionRequest, ROO_BODY), ROO_BODY)
    assert r.max_tokens == 99 and r.include_usage and r.has_images()
    assert r.messages[0].text() == "sys"
    assert r.messages[2].tool_calls[0].name == "read_file"
    assert r.messages[3].tool_call_id == "c1"
    assert r.tools[0].strict is True and r.tool_choice == "auto"


def test_raw_body_relayed_with_usage_forced():
    r = convert.chat_request(parse(ChatCompletionRequest, ROO_BODY), ROO_BODY)
    body = encode_request(r, stream=True)
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["stream_options"] == {"include_usage": True}


def test_encoded_from_internal_when_not_openai():
    r = convert.chat_request(parse(ChatCompletionRequest, ROO_BODY), ROO_BODY)
    r.raw, r.raw_family = None, None
    body = encode_request(r, stream=False)
    assert body["max_tokens"] == 99 and "stream_options" not in body
    assert body["messages"][1]["content"][1]["image_url"]["url"].startswith("data:")
    assert body["tools"][0]["function"]["name"] == "read_file"


def test_stream_encoder_role_tool_calls_and_usage():
    enc = convert.StreamEncoder("chat", "gen-abc", 1, "m", include_usage=True)
    [first] = enc.encode(Chunk(index=0, tool_calls=[ToolCallDelta(index=0, id="c", name="f")]))
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["choices"][0]["delta"]["tool_calls"][0]["id"] == "c"
    assert enc.encode(Chunk(index=-1, usage=Usage(3, 4))) == []
    tail = enc.closing()
    # The backend gave no finish reason: none is invented, only the usage chunk follows.
    assert len(tail) == 1
    assert tail[-1]["choices"] == [] and tail[-1]["usage"]["total_tokens"] == 7


def test_answers_without_a_finish_reason_keep_it_null():
    gen = Generation(model="m", choices=[Choice(text="hi")])
    assert convert.chat_response(gen)["choices"][0]["finish_reason"] is None
    assert convert.completion_response([gen])["choices"][0]["finish_reason"] is None
    gen.choices[0].finish_reason = "length"
    assert convert.chat_response(gen)["choices"][0]["finish_reason"] == "length"
