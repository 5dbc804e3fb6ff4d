"""POST /v1/embeddings: the embedded model (llama.cpp embedding mode) and the upstream pass-through."""

from __future__ import annotations

import math

import openai
import pytest
import requests

MODEL = "smollm2-135m-instruct"
DIM = 576  # SmolLM2-135M's embedding width


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


def test_local_embeddings_shape_and_determinism(local_url):
    # The SDK asks for base64 by default and decodes it: both encodings are exercised here.
    texts = ["def add(a, b): return a + b", "The cat sat on the mat.",
             "def add(a, b): return a + b"]
    r = client(local_url).embeddings.create(model=MODEL, input=texts)
    vecs = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2] and r.model == MODEL
    assert all(len(v) == DIM for v in vecs)
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3) for v in vecs)
    assert vecs[0] == vecs[2]
    assert vecs[0] != vecs[1]
    assert r.usage.prompt_tokens > 10 and r.usage.total_tokens == r.usage.prompt_tokens

    floats = requests.post(local_url + "/v1/embeddings", json={
        "model": MODEL, "input": texts[0], "encoding_format": "float"}, timeout=30).json()
    assert floats["object"] == "list" and floats["data"][0]["object"] == "embedding"
    assert floats["data"][0]["embedding"] == pytest.approx(vecs[0], abs=1e-6)


def test_local_embeddings_of_token_arrays(local_url):
    from service import create_app
    from tests.conftest import make_settings

    llama = create_app(make_settings()).extensions["gateway"].router.by_name("local")._ensure_loaded()
    ids = llama.tokenize(b"hello world", add_bos=False)
    by_ids = client(local_url).embeddings.create(model=MODEL, input=[ids],
                                                 encoding_format="float").data[0].embedding
    by_text = client(local_url).embeddings.create(model=MODEL, input="hello world",
                                                  encoding_format="float").data[0].embedding
    assert by_ids == pytest.approx(by_text, abs=1e-6)


@pytest.mark.parametrize("body, param", [
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": ["ok", ""]}, "input"),
    ({"input": [[10 ** 9]]}, "input"),
    ({"input": "x", "dimensions": 64}, "dimensions"),
    ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({}, "input"),
])
def test_local_embeddings_bad_input_is_a_400(local_url, body, param):
    r = requests.post(local_url + "/v1/embeddings", json={"model": MODEL, **body}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_upstream_embeddings_pass_through(upstream_gateway):
    url, up = upstream_gateway
    r = client(url).embeddings.create(model="echo-1", input=["a", "b"], dimensions=4,
                                      extra_body={"custom_field": 1})
    assert [len(d.embedding) for d in r.data] == [4, 4]
    assert r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens == 6
    sent = up.state.bodies[-1]
    assert sent["input"] == ["a", "b"] and sent["dimensions"] == 4 and sent["custom_field"] == 1
    assert sent["encoding_format"] == "float"  # the gateway re-encodes for its client
    again = client(url).embeddings.create(model="echo-1", input="a", dimensions=4,
                                          encoding_format="float")
    assert again.data[0].embedding == pytest.approx(r.data[0].embedding, abs=1e-6)
