"""VertexProvider against `responses`-mocked Vertex: URLs, headers, errors, 401 refresh, embeddings."""

from __future__ import annotations

import json
import logging

import pytest
import responses

from service.core import errors
from service.core.types import EmbeddingRequest, GenerationRequest, Message
from service.providers.config import HttpConfig, VertexConfig
from service.providers.http_client import HttpClient
from service.providers.tokens import TokenSource, TokenUnavailable
from service.providers.vertex import VertexProvider, models_url
from tests.conftest import make_settings

BASE = "https://us-central1-aiplatform.googleapis.com/v1/projects/proj/locations/us-central1/publishers/google/models"
ANSWER = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello, Roo Code!"}]},
                          "finishReason": "STOP"}],
          "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 4, "totalTokenCount": 10},
          "modelVersion": "gemini-2.5-flash"}


class ListTokens(TokenSource):
    """Hands out t1, t2, … (or raises), counting refreshes."""

    def __init__(self, fail: errors.GatewayError | None = None):
        super().__init__()
        self.fetches = 0
        self.fail = fail

    def _fetch(self):
        if self.fail:
            raise self.fail
        self.fetches += 1
        now = self._clock()
        return f"t{self.fetches}", now + 600, now + 540


def provider(tokens=None, **overrides) -> VertexProvider:
    opts = {"vertex_project": "proj", "custom_user_id": "alice", "retry_backoff_seconds": 0,
            "vertex_auth": "adc"}
    opts.update(overrides)
    s = make_settings(**opts)
    return VertexProvider(VertexConfig.from_settings(s), HttpClient(HttpConfig.from_settings(s)),
                          tokens or ListTokens())


def chat(model="gemini-2.5-flash", **kw) -> GenerationRequest:
    return GenerationRequest(kind="chat", model=model,
                             messages=[Message(role="user", content="hi")], **kw)


@pytest.mark.parametrize("overrides,url", [
    ({}, BASE),
    ({"vertex_location": "europe-west4"},
     "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4/publishers/google/models"),
    ({"vertex_location": "global"},
     "https://aiplatform.googleapis.com/v1/projects/proj/locations/global/publishers/google/models"),
    ({"vertex_base_url": "https://url.net/vertex/"},
     "https://url.net/vertex/v1/projects/proj/locations/us-central1/publishers/google/models"),
    ({"vertex_base_url": "http://gw.corp:8080/ai/v1beta1", "vertex_location": "global"},
     "http://gw.corp:8080/ai/v1beta1/projects/proj/locations/global/publishers/google/models"),
])
def test_models_url(overrides, url):
    s = make_settings(vertex_project="proj", vertex_auth="adc", **overrides)
    assert models_url(VertexConfig.from_settings(s)) == url


@responses.activate
def test_generate_sends_token_user_header_and_ca_bundle(tmp_path):
    bundle = tmp_path / "CAChain_PROD.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    responses.post(f"{BASE}/gemini-2.5-flash:generateContent", json=ANSWER)
    p = provider(ssl_cert_file=str(bundle), custom_header_name="x-corp-user")
    gen = p.generate(chat(temperature=0.2))
    call = responses.calls[0]
    assert call.request.headers["Authorization"] == "Bearer t1"
    assert call.request.headers["x-corp-user"] == "alice"
    assert call.request.req_kwargs["verify"] == str(bundle.resolve())
    assert json.loads(call.request.body)["generationConfig"] == {"temperature": 0.2}
    assert gen.choices[0].text == "Hello, Roo Code!" and gen.provider == "vertex"
    assert gen.usage.total_tokens == 10


@responses.activate
def test_default_tls_verification_without_bundle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no CAChain_PROD.pem here
    responses.post(f"{BASE}/gemini-2.5-flash:generateContent", json=ANSWER)
    provider().generate(chat())
    assert responses.calls[0].request.req_kwargs["verify"] is True


@responses.activate
def test_palm_names_go_to_the_configured_gemini_model_with_one_warning(caplog):
    caplog.set_level(logging.WARNING, "service.providers.vertex")
    responses.post(f"{BASE}/gemini-2.5-pro:generateContent", json=ANSWER)
    p = provider(vertex_model="gemini-2.5-pro")
    for name in ("text-bison@001", "text-bison@001", "code-gecko"):
        assert p.owns(name)
        p.generate(GenerationRequest(kind="completion", model=name, prompt="Say hello"))
    assert len(responses.calls) == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "text-bison@001" in warnings[0] and "gemini-2.5-pro" in warnings[0]


def test_palm_vertex_model_from_an_old_deployment_is_replaced(caplog):
    caplog.set_level(logging.WARNING)
    p = provider(vertex_model="text-bison@001")
    assert p.model == "gemini-2.5-flash" and "retired PaLM" in caplog.text
    assert p.resolve_model("text-bison@001") == "gemini-2.5-flash"


def test_models_owned_for_routing():
    p = provider()
    assert [m.id for m in p.list_models()] == ["gemini-2.5-flash", "text-embedding-005"]
    for name in ("gemini-2.5-flash", "gemini-3-pro-preview", "google/gemini-2.5-pro",
                 "chat-bison@002", "code-bison-32k", "text-embedding-005", "gemini-embedding-001"):
        assert p.owns(name), name
    for name in ("gpt-4o", "smollm2-135m-instruct", "llama3"):
        assert not p.owns(name), name
    assert p.model_info("gemini-2.5-pro").supports_tools
    assert p.model_info("text-embedding-005").supports_embeddings
    assert p.model_info("gpt-4o") is None


@responses.activate
def test_stream_uses_alt_sse_and_yields_chunks():
    body = (b'data: {"candidates": [{"content": {"role": "model","parts": [{"text": "Hel"}]}}],'
            b'"usageMetadata": {"promptTokenCount": 3},"modelVersion": "gemini-2.5-flash"}\r\n\r\n'
            b'data: {"candidates": [{"content": {"role": "model","parts": [{"text": "lo"}]},'
            b'"finishReason": "STOP"}],"usageMetadata": {"promptTokenCount": 3,'
            b'"candidatesTokenCount": 2,"totalTokenCount": 5},"modelVersion": "gemini-2.5-flash"}\r\n\r\n')
    responses.post(f"{BASE}/gemini-2.5-flash:streamGenerateContent", body=body,
                   content_type="text/event-stream",
                   match=[responses.matchers.query_param_matcher({"alt": "sse"})])
    with provider().stream(chat(stream=True)) as s:
        chunks = list(s)
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[1].finish_reason == "stop" and chunks[-1].usage.total_tokens == 5


def _vertex_error(code, status, message):
    return {"error": {"code": code, "message": message, "status": status}}


@pytest.mark.parametrize("code,status,exc,gw_status,fragment", [
    (400, "INVALID_ARGUMENT", errors.InvalidRequest, 400, "Unable to submit request"),
    (403, "PERMISSION_DENIED", errors.UpstreamError, 502, "upstream authentication failed"),
    (404, "NOT_FOUND", errors.ModelNotFound, 404, "Publisher Model"),
    (429, "RESOURCE_EXHAUSTED", errors.RateLimited, 429, "Quota exceeded"),
    (500, "INTERNAL", errors.UpstreamError, 502, "Internal error"),
    (503, "UNAVAILABLE", errors.UpstreamUnavailable, 503, "overloaded"),
    (504, "DEADLINE_EXCEEDED", errors.UpstreamTimeout, 504, "Deadline"),
])
@responses.activate
def test_vertex_errors_map_with_message_kept(code, status, exc, gw_status, fragment):
    messages = {400: "Unable to submit request because it has an empty text parameter.",
                403: "Permission 'aiplatform.endpoints.predict' denied.",
                404: "Publisher Model `gemini-9` was not found.",
                429: "Quota exceeded for aiplatform.googleapis.com/generate_content_requests.",
                500: "Internal error encountered.", 503: "The model is overloaded.",
                504: "Deadline exceeded."}
    responses.post(f"{BASE}/gemini-2.5-flash:generateContent",
                   json=_vertex_error(code, status, messages[code]), status=code,
                   headers={"Retry-After": "7"} if code == 429 else None)
    tokens = ListTokens()
    with pytest.raises(exc) as info:
        provider(tokens).generate(chat())
    assert info.value.status == gw_status and fragment in info.value.message
    if code == 429:
        assert info.value.retry_after == 7
    assert tokens.fetches == 1  # only a 401 refreshes the token


@responses.activate
def test_401_refreshes_the_token_once_and_retries():
    url = f"{BASE}/gemini-2.5-flash:generateContent"
    responses.post(url, json=_vertex_error(401, "UNAUTHENTICATED", "Request had invalid "
                                           "authentication credentials."), status=401)
    responses.post(url, json=ANSWER)
    tokens = ListTokens()
    gen = provider(tokens).generate(chat())
    assert gen.choices[0].text == "Hello, Roo Code!"
    assert [c.request.headers["Authorization"] for c in responses.calls] == ["Bearer t1", "Bearer t2"]


@responses.activate
def test_401_twice_is_an_authentication_failure():
    url = f"{BASE}/gemini-2.5-flash:streamGenerateContent"
    responses.post(url, json=_vertex_error(401, "UNAUTHENTICATED", "invalid credentials"),
                   status=401)
    tokens = ListTokens()
    with pytest.raises(errors.UpstreamError) as info:
        provider(tokens).stream(chat(stream=True))
    assert info.value.status == 502 and "upstream authentication failed" in info.value.message
    assert len(responses.calls) == 2 and tokens.fetches == 2


@responses.activate
def test_no_token_means_no_call_and_a_clear_503():
    tokens = ListTokens(fail=TokenUnavailable("could not obtain an access token: not logged in"))
    with pytest.raises(TokenUnavailable) as info:
        provider(tokens).generate(chat())
    assert info.value.status == 503 and len(responses.calls) == 0


# ---- embeddings ------------------------------------------------------------------------------
def _predict_callback(request):
    body = json.loads(request.body)
    preds = [{"embeddings": {"values": [float(len(i["content"])), 1.0],
                             "statistics": {"token_count": 1, "truncated": False}}}
             for i in body["instances"]]
    return 200, {}, json.dumps({"predictions": preds})


@responses.activate
def test_embed_text_embedding_model_in_one_call():
    responses.add_callback(responses.POST, f"{BASE}/text-embedding-005:predict",
                           callback=_predict_callback, content_type="application/json")
    out = provider().embed(EmbeddingRequest(model="text-embedding-005", inputs=["a", "bbb"],
                                            dimensions=2))
    assert out.vectors == [[1.0, 1.0], [3.0, 1.0]] and out.prompt_tokens == 2
    assert out.model == "text-embedding-005" and out.provider == "vertex"
    sent = json.loads(responses.calls[0].request.body)
    assert sent == {"instances": [{"content": "a"}, {"content": "bbb"}],
                    "parameters": {"outputDimensionality": 2}}
    assert responses.calls[0].request.headers["Authorization"] == "Bearer t1"


@responses.activate
def test_embed_gemini_embedding_one_input_per_call_in_order():
    responses.add_callback(responses.POST, f"{BASE}/gemini-embedding-001:predict",
                           callback=_predict_callback, content_type="application/json")
    out = provider().embed(EmbeddingRequest(model="gemini-embedding-001", inputs=["a", "bb", "ccc"]))
    assert [v[0] for v in out.vectors] == [1.0, 2.0, 3.0] and len(responses.calls) == 3


def test_embed_rejects_chat_models_and_token_ids():
    p = provider()
    with pytest.raises(errors.InvalidRequest) as info:
        p.embed(EmbeddingRequest(model="gemini-2.5-flash", inputs=["a"]))
    assert info.value.param == "model" and "text-embedding-005" in info.value.message
    with pytest.raises(errors.InvalidRequest) as info:
        p.embed(EmbeddingRequest(model="text-embedding-005", inputs=[[1, 2, 3]]))
    assert info.value.param == "input"
