"""OpenAI-compatible provider against `responses`-mocked upstream payloads."""

from __future__ import annotations

import json

import pytest
import responses

from service.core import errors
from service.core.types import GenerationRequest, Message
from service.providers.config import HttpConfig, InternalConfig, OpenAIConfig
from service.providers.http_client import HttpClient
from service.providers.internal import InternalProvider
from service.providers.openai_compat import OpenAICompatProvider

BASE = "http://upstream.test"


@pytest.fixture
def provider():
    return OpenAICompatProvider(OpenAIConfig(base_url=BASE, api_key="sk-up",
                                             models_cache_seconds=60),
                                HttpClient(HttpConfig(retry_backoff_seconds=0)))


def chat(**kw) -> GenerationRequest:
    return GenerationRequest(kind="chat", model="m", messages=[Message(role="user", content="hi")], **kw)


@responses.activate
def test_generate_sends_auth_and_parses(provider):
    responses.post(f"{BASE}/v1/chat/completions", json={
        "id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "reasoning_content": "thinking",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}})
    gen = provider.generate(chat(temperature=0.2, stop=["\n"]))
    sent = json.loads(responses.calls[0].request.body)
    assert responses.calls[0].request.headers["Authorization"] == "Bearer sk-up"
    assert sent["temperature"] == 0.2 and sent["stop"] == ["\n"] and sent["stream"] is False
    c = gen.choices[0]
    assert c.finish_reason == "tool_calls" and c.reasoning == "thinking"
    assert json.loads(c.tool_calls[0].arguments) == {"a": 1}  # object arguments normalised
    assert gen.usage.total_tokens == 9


@responses.activate
def test_stream_decodes_sse(provider):
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
    ]) + ": keep-alive comment\n\ndata: [DONE]\n\n"
    responses.post(f"{BASE}/v1/chat/completions", body=body, content_type="text/event-stream")
    with provider.stream(chat(stream=True)) as s:
        chunks = list(s)
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[1].finish_reason == "stop" and chunks[-1].usage.completion_tokens == 2


@responses.activate
@pytest.mark.parametrize("status,exc,fragment", [
    (400, errors.InvalidRequest, "bad param"),
    (401, errors.UpstreamError, "upstream authentication failed"),
    (404, errors.ModelNotFound, "bad param"),
    (422, errors.InvalidRequest, "bad param"),
    (501, errors.UpstreamError, "HTTP 501"),
])
def test_status_mapping(provider, status, exc, fragment):
    responses.post(f"{BASE}/v1/chat/completions", status=status,
                   json={"error": {"message": "bad param"}})
    with pytest.raises(exc) as e:
        provider.generate(chat())
    assert fragment in e.value.message


@responses.activate
def test_models_cached(provider):
    responses.get(f"{BASE}/v1/models", json={"data": [{"id": "a", "owned_by": "me"}, {"bad": 1}]})
    assert [m.id for m in provider.list_models()] == ["a"]
    assert provider.owns("a") and not provider.owns("b")
    assert len(responses.calls) == 1


@responses.activate
def test_models_listing_failure_is_not_fatal(provider):
    responses.get(f"{BASE}/v1/models", status=404, json={"error": "nope"})
    assert provider.list_models() == []


@responses.activate
def test_internal_provider_posts_completions_to_its_url():
    p = InternalProvider(InternalConfig(url="http://internal.test/complete"),
                         HttpClient(HttpConfig()))
    responses.post("http://internal.test/complete", json={
        "choices": [{"index": 0, "text": "world", "finish_reason": "stop"}]})
    gen = p.generate(GenerationRequest(kind="completion", model="text-bison@001", prompt="hello",
                                       max_tokens=4))
    assert gen.choices[0].text == "world" and not p.supports_chat
    assert json.loads(responses.calls[0].request.body)["prompt"] == "hello"


@responses.activate
def test_embed_builds_body_decodes_base64_and_checks_count(provider):
    import base64
    import struct

    from service.core.types import EmbeddingRequest

    packed = base64.b64encode(struct.pack("<3f", 0.5, -1.0, 2.0)).decode()
    responses.post(f"{BASE}/v1/embeddings", json={
        "model": "e", "usage": {"prompt_tokens": 4, "total_tokens": 4},
        "data": [{"index": 1, "embedding": [1, 2, 3]}, {"index": 0, "embedding": packed}]})
    emb = provider.embed(EmbeddingRequest(model="e", inputs=["a", "b"], dimensions=3))
    sent = json.loads(responses.calls[0].request.body)
    assert sent == {"input": ["a", "b"], "dimensions": 3, "model": "e", "encoding_format": "float"}
    assert emb.vectors == [[0.5, -1.0, 2.0], [1.0, 2.0, 3.0]] and emb.prompt_tokens == 4

    responses.post(f"{BASE}/v1/embeddings", json={"data": [{"index": 0, "embedding": [1]}]})
    with pytest.raises(errors.UpstreamError):
        provider.embed(EmbeddingRequest(model="e", inputs=["a", "b"]))
