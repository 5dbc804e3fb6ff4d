"""Internal model <-> Gemini JSON, both directions, streaming included (pure functions)."""

from __future__ import annotations

import json

import pytest

from service.core import errors
from service.core.types import GenerationRequest, ImagePart, Message, TextPart, Tool, ToolCall
from service.providers.vertex import convert as vc

MODEL = "gemini-2.5-flash"
SIG = "CiQBjz1rX+sig/with+base64=="

# Roo Code's tool shape: strict mode, additionalProperties, nullable via type lists.
READ_FILE = Tool(name="read_file", description="Read a file", strict=True, parameters={
    "type": "object", "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#",
    "properties": {
        "path": {"type": "string", "description": "file path", "format": "uri-reference"},
        "line_range": {"type": ["string", "null"], "pattern": "^[0-9]+-[0-9]+$"},
        "mode": {"const": "text"},
        "count": {"type": "integer", "enum": [1, 2]},
        "opts": {"type": "object", "properties": {}, "additionalProperties": True},
        "when": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string", "default": "x"}},
    },
    "required": ["path", "line_range", "ghost"],
})


def chat(messages, **kw) -> GenerationRequest:
    return GenerationRequest(kind="chat", model=MODEL, messages=messages, **kw)


def encode(r, model=MODEL, **kw):
    return vc.encode_request(r, model, **kw)


def test_roles_system_text_and_images():
    body = encode(chat([
        Message(role="system", content="Be brief."),
        Message(role="developer", content="Use Python."),
        Message(role="user", content=[
            TextPart(text="What is in these?"),
            ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
            ImagePart(url="https://example.com/cat.webp?x=1")]),
        Message(role="assistant", content="A cat."),
        Message(role="user", content="Thanks"),
    ]))
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Use Python."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [
            {"text": "What is in these?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?x=1"}}]},
        {"role": "model", "parts": [{"text": "A cat."}]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]
    assert "generationConfig" not in body and "tools" not in body


def test_tool_history_signature_names_and_call_order():
    signed = vc.new_tool_call_id(SIG)
    other = vc.new_tool_call_id()
    body = encode(chat([
        Message(role="user", content="Weather in Paris and Rome?"),
        Message(role="assistant", content="Checking.", tool_calls=[
            ToolCall(id=signed, name="get_weather", arguments='{"city": "Paris"}'),
            ToolCall(id=other, name="get_time", arguments='{"city": "Rome"}')]),
        # answered out of order; the second one is not JSON
        Message(role="tool", tool_call_id=other, content="14:05"),
        Message(role="tool", tool_call_id=signed, content='{"temp": 21}'),
        Message(role="user", content="And tomorrow?"),
    ]))
    model_turn, results = body["contents"][1], body["contents"][2]
    assert model_turn == {"role": "model", "parts": [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
        {"functionCall": {"name": "get_time", "args": {"city": "Rome"}}}]}
    assert results == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}}]}
    assert body["contents"][3] == {"role": "user", "parts": [{"text": "And tomorrow?"}]}


def test_tool_result_for_unknown_call_is_a_400_naming_it():
    with pytest.raises(errors.InvalidRequest) as exc:
        encode(chat([Message(role="user", content="hi"),
                     Message(role="tool", tool_call_id="call_nope", content="x")]))
    assert exc.value.param == "messages[1].tool_call_id" and "call_nope" in exc.value.message


def test_gemini3_history_without_signature_gets_the_documented_bypass():
    msgs = [Message(role="user", content="go"),
            Message(role="assistant", tool_calls=[ToolCall(id="toolu_1", name="a", arguments="{}"),
                                                  ToolCall(id="toolu_2", name="b", arguments="{}")]),
            Message(role="tool", tool_call_id="toolu_1", content="ok"),
            Message(role="tool", tool_call_id="toolu_2", content="ok")]
    parts = encode(chat(msgs), model="gemini-3-pro-preview")["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == vc.SKIP_SIGNATURE and "thoughtSignature" not in parts[1]
    assert "thoughtSignature" not in encode(chat(msgs))["contents"][1]["parts"][0]


def test_signature_id_round_trip_and_foreign_ids():
    cid = vc.new_tool_call_id(SIG)
    assert cid.startswith("call_") and all(c.isalnum() or c in "_-" for c in cid)
    assert vc.signature_from_id(cid) == SIG
    for foreign in ("call_abc", "toolu_01A", "call_0123456789abcdef01234567", None, ""):
        assert vc.signature_from_id(foreign) is None


def test_tools_schema_sanitised_and_tool_choice():
    empty = Tool(name="list_files", description=None,
                 parameters={"type": "object", "properties": {}, "required": []})
    body = encode(chat([Message(role="user", content="hi")], tools=[READ_FILE, empty],
                       tool_choice="required"))
    decl, decl_empty = body["tools"][0]["functionDeclarations"]
    assert decl_empty == {"name": "list_files"}
    assert decl["name"] == "read_file" and decl["description"] == "Read a file"
    assert decl["parameters"] == {
        "type": "OBJECT",
        "properties": {
            "path": {"type": "STRING", "description": "file path"},
            "line_range": {"nullable": True, "type": "STRING", "pattern": "^[0-9]+-[0-9]+$"},
            "mode": {"enum": ["text"], "type": "STRING"},
            "count": {"type": "INTEGER"},
            "opts": {"type": "OBJECT"},
            "when": {"type": "STRING", "format": "date-time"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
        "required": ["path", "line_range"],
    }
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize("choice,config", [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "read_file"}},
     {"mode": "ANY", "allowedFunctionNames": ["read_file"]}),
])
def test_tool_choice(choice, config):
    body = encode(chat([Message(role="user", content="hi")], tools=[READ_FILE], tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_generation_config_and_response_format():
    r = chat([Message(role="user", content="hi")], temperature=0.3, top_p=0.9, top_k=40,
             max_tokens=64, stop=["\n\n", "END"], n=2, seed=7, presence_penalty=0.5,
             frequency_penalty=-0.5, logprobs=3,
             response_format={"type": "json_schema", "json_schema": {"name": "x", "strict": True,
                                                                      "schema": {"type": "object",
                                                                                 "properties": {"a": {"type": "number"}},
                                                                                 "additionalProperties": False}}})
    assert encode(r)["generationConfig"] == {
        "temperature": 0.3, "topP": 0.9, "topK": 40, "maxOutputTokens": 64, "seed": 7,
        "presencePenalty": 0.5, "frequencyPenalty": -0.5, "stopSequences": ["\n\n", "END"],
        "candidateCount": 2, "responseLogprobs": True, "logprobs": 3,
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "NUMBER"}}}}
    r.response_format = {"type": "json_object"}
    assert encode(r)["generationConfig"]["responseMimeType"] == "application/json"
    assert "responseSchema" not in encode(r)["generationConfig"]
    r.response_format = {"type": "text"}
    assert "responseMimeType" not in encode(r)["generationConfig"]


def test_completion_prompt_and_fill_in_the_middle():
    r = GenerationRequest(kind="completion", model=MODEL, prompt="Say hello to Roo Code",
                          max_tokens=64, temperature=0.3)
    body = encode(r)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hello to Roo Code"}]}]
    assert "systemInstruction" not in body
    # code completion on 2.5 Flash: thinking off so max_tokens goes to the answer
    assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 64,
                                        "thinkingConfig": {"thinkingBudget": 0}}
    r.suffix = "\n    return total\n"
    r.prompt = "def add(a, b):\n"
    body = encode(r, model="gemini-2.5-pro")
    assert body["systemInstruction"] == {"parts": [{"text": vc.FIM_INSTRUCTION}]}
    assert body["contents"][0]["parts"][0]["text"] == (
        "<prefix>def add(a, b):\n</prefix><suffix>\n    return total\n</suffix>")
    assert "thinkingConfig" not in body["generationConfig"]
    assert encode(r, thinking_budget=512)["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 512}
    assert "thinkingConfig" not in encode(chat([Message(role="user", content="x")])).get(
        "generationConfig", {})


# ---- responses ----------------------------------------------------------------------------
GEMINI_TOOL_ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "Let me think about the city.", "thought": True},
        {"text": "I'll check."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 2}},
         "thoughtSignature": SIG},
        {"functionCall": {"name": "get_time", "args": {}}}]},
        "finishReason": "STOP", "avgLogprobs": -0.3}],
    "usageMetadata": {"promptTokenCount": 31, "candidatesTokenCount": 12, "totalTokenCount": 83,
                      "thoughtsTokenCount": 40, "trafficType": "ON_DEMAND"},
    "modelVersion": "gemini-2.5-flash-001", "createTime": "2026-11-21T10:00:00Z",
    "responseId": "abc"}


def test_decode_text_thoughts_tool_calls_and_usage():
    gen = vc.decode_response(GEMINI_TOOL_ANSWER, chat([]), MODEL)
    c = gen.choices[0]
    assert gen.model == "gemini-2.5-flash-001"
    assert c.text == "I'll check." and c.reasoning == "Let me think about the city."
    assert c.finish_reason == "tool_calls"
    assert [(t.name, json.loads(t.arguments)) for t in c.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": 2}), ("get_time", {})]
    assert vc.signature_from_id(c.tool_calls[0].id) == SIG
    assert vc.signature_from_id(c.tool_calls[1].id) is None
    assert (gen.usage.prompt_tokens, gen.usage.completion_tokens) == (31, 52)
    # the calls go back to Gemini with their signature
    back = encode(chat([Message(role="user", content="hi"),
                        Message(role="assistant", tool_calls=c.tool_calls)]))
    assert back["contents"][1]["parts"][0]["thoughtSignature"] == SIG


@pytest.mark.parametrize("raw,calls,expected", [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"),
    ("SPII", False, "content_filter"), ("MODEL_ARMOR", False, "content_filter"),
    ("LANGUAGE", False, "content_filter"), ("IMAGE_SAFETY", False, "content_filter"),
    ("MALFORMED_FUNCTION_CALL", False, "malformed_function_call"), ("OTHER", False, "other"),
    (None, False, None), ("FINISH_REASON_UNSPECIFIED", False, None),
])
def test_finish_reason_mapping(raw, calls, expected):
    assert vc.finish_reason(raw, calls) == expected


def test_completion_echo_candidates_and_logprobs():
    body = {"candidates": [
        {"index": 0, "content": {"role": "model", "parts": [{"text": " world"}]},
         "finishReason": "MAX_TOKENS",
         "logprobsResult": {"chosenCandidates": [{"token": " world", "logProbability": -0.25}]}},
        {"index": 1, "content": {"role": "model", "parts": [{"text": " there"}]},
         "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2}}
    r = GenerationRequest(kind="completion", model=MODEL, prompt="Hello", echo=True, n=2)
    gen = vc.decode_response(body, r, MODEL)
    assert [(c.index, c.text, c.finish_reason) for c in gen.choices] == [
        (0, "Hello world", "length"), (1, "Hello there", "stop")]
    assert gen.choices[0].token_logprobs == [-0.25] and gen.model == MODEL


def test_blocked_prompt_is_a_content_filter_error():
    body = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT",
                               "blockReasonMessage": "The prompt was blocked."},
            "usageMetadata": {"promptTokenCount": 5}}
    with pytest.raises(errors.InvalidRequest) as exc:
        vc.decode_response(body, chat([]), MODEL)
    assert exc.value.code == "content_filter" and "PROHIBITED_CONTENT" in exc.value.message
    with pytest.raises(errors.UpstreamError, match="without candidates"):
        vc.decode_response({"usageMetadata": {}}, chat([]), MODEL)


# ---- streams -------------------------------------------------------------------------------
def sse(*events) -> list[bytes]:
    """Lines as Vertex sends them (CRLF event separators stripped by the reader)."""
    lines = []
    for e in events:
        lines += [b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()), b""]
    return lines


def ev(parts, finish=None, usage=None):
    cand = {"content": {"role": "model", "parts": parts}}
    if finish:
        cand["finishReason"] = finish
    out = {"candidates": [cand], "modelVersion": "gemini-2.5-flash"}
    out["usageMetadata"] = usage or {"promptTokenCount": 9, "trafficType": "ON_DEMAND"}
    return out


def test_stream_text_thoughts_and_usage_at_the_end():
    chunks = list(vc.decode_stream(sse(
        ev([{"text": "Planning.", "thought": True}]),
        ev([{"text": "Hello"}]),
        ev([{"text": " there"}], "STOP", {"promptTokenCount": 9, "candidatesTokenCount": 2,
                                          "thoughtsTokenCount": 3, "totalTokenCount": 14})),
        chat([], stream=True)))
    assert chunks[0].role == "assistant" and chunks[0].reasoning == "Planning."
    assert "".join(c.text for c in chunks) == "Hello there"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].index == -1 and (chunks[-1].usage.prompt_tokens,
                                       chunks[-1].usage.completion_tokens) == (9, 5)
    assert sum(1 for c in chunks if c.usage) == 1


def test_stream_function_calls_become_indexed_deltas_with_ids():
    chunks = list(vc.decode_stream(sse(
        ev([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": SIG}]),
        ev([{"functionCall": {"name": "get_time", "args": {"tz": "CET"}}}], "STOP",
           {"promptTokenCount": 9, "candidatesTokenCount": 8})),
        chat([], stream=True)))
    deltas = [d for c in chunks for d in c.tool_calls]
    assert [(d.index, d.name, json.loads(d.arguments)) for d in deltas] == [
        (0, "get_weather", {"city": "Paris"}), (1, "get_time", {"tz": "CET"})]
    assert vc.signature_from_id(deltas[0].id) == SIG and deltas[1].id.startswith("call_")
    assert chunks[-2].finish_reason == "tool_calls"


def test_stream_error_event_raises_after_the_text_before_it():
    it = vc.decode_stream(sse(ev([{"text": "Hi"}]),
                              {"error": {"code": 429, "message": "Resource exhausted.",
                                         "status": "RESOURCE_EXHAUSTED"}}),
                          chat([], stream=True))
    assert next(it).text == "Hi"
    with pytest.raises(errors.RateLimited, match="vertex failed mid-stream: Resource exhausted."):
        next(it)
    it = vc.decode_stream(sse({"error": {"code": 500, "message": "Internal error.",
                                         "status": "INTERNAL"}}), chat([]))
    with pytest.raises(errors.UpstreamError, match="Internal error."):
        list(it)
    with pytest.raises(errors.UpstreamError, match="non-JSON"):
        list(vc.decode_stream(sse(b"<html>"), chat([])))


def test_stream_without_finish_reason_is_incomplete():
    it = vc.decode_stream(sse(ev([{"text": "Hi"}]), ev([{"text": " there"}])), chat([]))
    assert next(it).text == "Hi" and next(it).text == " there"
    with pytest.raises(errors.UpstreamError, match="no finishReason") as exc:
        next(it)
    assert exc.value.code == "upstream_incomplete"
    with pytest.raises(errors.UpstreamError) as exc:  # no event at all
        list(vc.decode_stream([b": keep-alive", b""], chat([])))
    assert exc.value.code == "upstream_not_sse"


def test_non_streamed_answer_without_finish_reason_keeps_none():
    gen = vc.decode_response(ev([{"text": "Hi"}]), chat([]), MODEL)
    assert gen.choices[0].finish_reason is None


def test_stream_blocked_prompt_and_completion_echo():
    with pytest.raises(errors.InvalidRequest, match="SAFETY"):
        list(vc.decode_stream(sse({"promptFeedback": {"blockReason": "SAFETY"}}), chat([])))
    r = GenerationRequest(kind="completion", model=MODEL, prompt="def f(", echo=True, stream=True)
    chunks = list(vc.decode_stream(sse(ev([{"text": "x):"}], "STOP")), r))
    assert chunks[0].text == "def f(x):" and chunks[0].finish_reason == "stop"


def test_embeddings_round_trip():
    body = vc.encode_embeddings(["a b", "c"], 256)
    assert body == {"instances": [{"content": "a b"}, {"content": "c"}],
                    "parameters": {"outputDimensionality": 256}}
    answer = {"predictions": [
        {"embeddings": {"values": [0.1, 0.2], "statistics": {"token_count": 2, "truncated": False}}},
        {"embeddings": {"values": [0.3, 0.4], "statistics": {"token_count": 1.0, "truncated": False}}}]}
    assert vc.decode_embeddings(answer, 2) == ([[0.1, 0.2], [0.3, 0.4]], 3)
    with pytest.raises(errors.UpstreamError, match="1 embeddings for 2 inputs"):
        vc.decode_embeddings({"predictions": answer["predictions"][:1]}, 2)
