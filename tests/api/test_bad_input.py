"""Bad input found by fuzzing: each is a 4xx in the caller's API format, never a 500."""

from __future__ import annotations

import pytest
import requests

MODEL = "smollm2-135m-instruct"
CHAT = [{"role": "user", "content": "hi"}]
BAD_SCHEMAS = [
    {"type": "object", "properties": []},
    {"type": "object", "properties": "oops"},
    {"type": "object", "properties": {"p": 7}},
    {"type": "object", "properties": {"p": True}},  # valid JSON Schema the grammar cannot take
]


def _openai_error(r: requests.Response, status: int = 400) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["type"]
    return err


def _ollama_error(r: requests.Response, status: int = 400) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err, str)
    return err


@pytest.mark.parametrize("schema", BAD_SCHEMAS)
def test_wrong_shape_tool_schema_is_a_400(local_url, schema):
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    r = requests.post(local_url + "/v1/chat/completions", json={
        "model": MODEL, "messages": CHAT, "tools": [tool], "tool_choice": "required",
        "max_tokens": 4}, timeout=60)
    err = _openai_error(r)
    assert err["param"] == "tools[0]" and "schema" in err["message"]

    r = requests.post(local_url + "/api/chat", json={
        "model": MODEL, "messages": CHAT, "stream": False, "tools": [tool],
        "options": {"num_predict": 4}}, timeout=60)
    # Ollama's tools are offered, not forced: the schema is checked all the same.
    assert "schema" in _ollama_error(r)


@pytest.mark.parametrize("schema", BAD_SCHEMAS)
def test_wrong_shape_response_schema_is_a_400(local_url, schema):
    r = requests.post(local_url + "/v1/chat/completions", json={
        "model": MODEL, "messages": CHAT, "max_tokens": 4, "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}, timeout=60)
    err = _openai_error(r)
    assert err["param"] == "response_format.json_schema" and "schema" in err["message"]

    r = requests.post(local_url + "/api/generate", json={
        "model": MODEL, "prompt": "hi", "stream": False, "format": schema,
        "options": {"num_predict": 4}}, timeout=60)
    assert "schema" in _ollama_error(r)


def test_a_wrong_schema_names_where_it_is_wrong(local_url):
    r = requests.post(local_url + "/v1/chat/completions", json={
        "model": MODEL, "messages": CHAT, "max_tokens": 4, "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "properties": {"a": {"type": "object",
                                                       "properties": {"b": 7}}}}}}},
        timeout=60)
    assert "properties.a.properties.b" in _openai_error(r)["message"]


@pytest.mark.parametrize("inp", [[0], [1, 2], [[0, 0]], "\x1d", ["fine", "\x1d"]])
def test_embedding_input_without_text_is_a_400(local_url, inp):
    r = requests.post(local_url + "/v1/embeddings", json={"model": MODEL, "input": inp},
                      timeout=60)
    err = _openai_error(r)
    assert err["param"] == "input" and "no text the model can read" in err["message"]
    r = requests.post(local_url + "/api/embed", json={"model": MODEL, "input": "\x1d"},
                      timeout=60)
    assert "no text the model can read" in _ollama_error(r)


def _nested(depth: int):
    value: object = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("path, body, family", [
    ("/v1/chat/completions", {"model": "echo-1", "messages": CHAT}, "openai"),
    ("/v1/completions", {"model": "echo-1", "prompt": "hi"}, "openai"),
    ("/v1/embeddings", {"model": "echo-1", "input": "hi"}, "openai"),
    ("/v1/responses", {"model": "echo-1", "input": "hi"}, "openai"),
    ("/api/chat", {"model": "echo-1", "messages": CHAT, "stream": False}, "ollama"),
    ("/api/generate", {"model": "echo-1", "prompt": "hi", "stream": False}, "ollama"),
    ("/complete", {"code": "x = ", "language": "python", "position": {"line": 0, "character": 4}},
     "helios"),
])
def test_deep_json_is_a_400_in_every_family(upstream_gateway, path, body, family):
    url, _ = upstream_gateway
    r = requests.post(url + path, json={**body, "metadata": _nested(300)}, timeout=30)
    assert r.status_code == 400, r.text
    if family == "openai":
        err = r.json()["error"]
        assert "128 levels" in err["message"] and err["type"] == "invalid_request_error"
    elif family == "ollama":
        assert "128 levels" in r.json()["error"]
    else:
        assert "128 levels" in r.json()["detail"] and r.json()["error_code"]
    # Nesting within the bound still passes through to the upstream.
    if path == "/v1/chat/completions":
        ok = requests.post(url + path, json={**body, "metadata": _nested(100)}, timeout=30)
        assert ok.status_code == 200, ok.text


def test_prompt_list_is_one_upstream_call(upstream_gateway):
    url, upstream = upstream_gateway
    prompts = [f"p{i}" for i in range(50)]
    before = upstream.state.calls["echo-1"]
    r = requests.post(url + "/v1/completions", json={
        "model": "echo-1", "prompt": prompts, "max_tokens": 3, "user": "u1"}, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert upstream.state.calls["echo-1"] - before == 1
    sent = upstream.state.bodies[-1]
    assert sent["prompt"] == prompts and sent["user"] == "u1"  # the client's body, as sent
    assert [c["index"] for c in out["choices"]] == list(range(50))
    assert [c["text"] for c in out["choices"]] == [f"echo: p{i}" for i in range(50)]
    assert out["usage"] == {"prompt_tokens": 250, "completion_tokens": 150, "total_tokens": 400}


def test_prompt_list_is_bounded(upstream_gateway):
    url, upstream = upstream_gateway
    before = sum(upstream.state.calls.values())
    r = requests.post(url + "/v1/completions", json={
        "model": "echo-1", "prompt": ["x"] * 129}, timeout=30)
    err = _openai_error(r)
    assert err["param"] == "prompt" and "at most 128" in err["message"]
    assert sum(upstream.state.calls.values()) == before


def test_prompt_list_on_the_local_model_still_answers_each(local_url):
    r = requests.post(local_url + "/v1/completions", json={
        "model": MODEL, "prompt": ["1, 2, 3,", "a, b, c,"], "max_tokens": 2,
        "temperature": 0}, timeout=60)
    assert r.status_code == 200, r.text
    assert [c["index"] for c in r.json()["choices"]] == [0, 1]


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/v1/chat/completions", {"POST"}),
    ("DELETE", "/v1/models", {"GET"}),
    ("GET", "/api/chat", {"POST"}),
    ("PUT", "/api/tags", {"GET"}),
    ("GET", "/complete", {"POST"}),
])
def test_405_carries_allow(upstream_gateway, method, path, allowed):
    url, _ = upstream_gateway
    r = requests.request(method, url + path, timeout=10)
    assert r.status_code == 405
    got = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed <= got and method not in got
    assert "error" in r.json() or "detail" in r.json()
