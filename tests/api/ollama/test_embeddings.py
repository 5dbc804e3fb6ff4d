"""``/api/embed`` and ``/api/embeddings`` over the Provider protocol.

Two small providers stand in for backends: one that embeds (letter
frequencies, computed per input) and one that only chats. They are put in
front of a gateway whose local model is never loaded.
"""

from __future__ import annotations

import ollama
import pytest
import requests

from service import create_app
from service.core import errors
from service.core.routing import Router
from service.core.types import EmbeddingRequest, Embeddings, ModelInfo
from service.providers.base import Provider
from tests.conftest import make_settings, serve

LETTERS = "aeiou"


def letter_vector(text: str) -> list[float]:
    return [text.count(ch) / max(len(text), 1) for ch in LETTERS]


class _Fake(Provider):
    model = ""

    def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id=self.model, provider=self.name,
                          supports_embeddings=self.supports_embeddings)]

    def generate(self, request, disconnected=None):
        raise errors.NotSupported(f"{self.name} does not generate")

    def stream(self, request):
        raise errors.NotSupported(f"{self.name} does not generate")


class LetterEmbedder(_Fake):
    name = "letters"
    model = "letter-embed"
    supports_embeddings = True

    def __init__(self):
        self.requests: list[EmbeddingRequest] = []

    def embed(self, request: EmbeddingRequest) -> Embeddings:
        self.requests.append(request)
        return Embeddings(model=request.model, vectors=[letter_vector(t) for t in request.inputs],
                          prompt_tokens=sum(len(t.split()) for t in request.inputs),
                          provider=self.name)


class ChatOnly(_Fake):
    name = "chat-only"
    model = "chatter"


def gateway_with(*providers):
    app = create_app(make_settings(local_preload=False))
    gw = app.extensions["gateway"]
    gw.router = Router(list(providers))
    return serve(app)


@pytest.fixture(scope="module")
def embedder():
    e = LetterEmbedder()
    with gateway_with(e, ChatOnly()) as url:
        yield url, e


def test_embed_batch_and_single(embedder):
    url, e = embedder
    c = ollama.Client(host=url)
    r = c.embed(model="letter-embed", input=["banana", "kiwi fruit"], dimensions=5)
    assert r.embeddings == [letter_vector("banana"), letter_vector("kiwi fruit")]
    assert r.prompt_eval_count == 3 and r.total_duration > 0
    assert e.requests[-1].dimensions == 5 and e.requests[-1].inputs == ["banana", "kiwi fruit"]
    assert c.embed(model="letter-embed:latest", input="queue").embeddings == [
        letter_vector("queue")]


def test_legacy_embeddings(embedder):
    url, _ = embedder
    c = ollama.Client(host=url)
    assert list(c.embeddings(model="letter-embed", prompt="audio").embedding) == \
        letter_vector("audio")
    assert list(c.embeddings(model="letter-embed", prompt="").embedding) == []


def test_show_lists_the_embedding_capability(embedder):
    url, _ = embedder
    assert "embedding" in ollama.Client(host=url).show("letter-embed").capabilities


def test_a_chat_only_model_is_refused(embedder):
    url, _ = embedder
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=url).embed(model="chatter", input="x")
    assert err.value.status_code == 400 and "embedding" in err.value.error


def test_501_when_no_backend_embeds():
    with gateway_with(ChatOnly()) as url:
        c = ollama.Client(host=url)
        for call in (lambda: c.embed(model="anything", input="x"),
                     lambda: c.embeddings(model="anything", prompt="x")):
            with pytest.raises(ollama.ResponseError) as err:
                call()
            assert err.value.status_code == 501
            assert err.value.error == "no configured backend offers embeddings"


def test_embed_validation(embedder):
    url, _ = embedder
    r = requests.post(url + "/api/embed", json={"model": "letter-embed", "input": [1, 2]})
    assert r.status_code == 400 and "'input" in r.json()["error"]
    r = requests.post(url + "/api/embed", json={"input": "x"})
    assert r.status_code == 400 and r.json() == {"error": "'model' is required"}
