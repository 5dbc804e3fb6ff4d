"""Request validation and error envelopes under /v1 (no backend call needed)."""

from __future__ import annotations

import openai
import pytest
import requests


@pytest.mark.parametrize("body,param", [
    ({"messages": []}, "messages"),
    ({"model": "m"}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "top_p": "high"}, "top_p"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
    ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
     "tools[0].function"),
])
def test_invalid_chat_bodies_name_the_param(local_url, body, param):
    r = requests.post(local_url + "/v1/chat/completions", json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param, err
    assert set(err) == {"message", "type", "param", "code"}


def test_not_json_and_not_object(local_url):
    for data in (b"{nope", b"[1, 2]", b""):
        r = requests.post(local_url + "/v1/chat/completions", data=data,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.headers["Content-Type"] == "application/json"
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_unknown_route_and_method(local_url):
    r = requests.get(local_url + "/v1/nothing-here")
    assert r.status_code == 404 and "error" in r.json()
    r = requests.delete(local_url + "/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_body_too_large(local_url):
    big = b'{"messages":[{"role":"user","content":"' + b"x" * (21 * 1024 * 1024) + b'"}]}'
    r = requests.post(local_url + "/v1/chat/completions", data=big,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_request_id_round_trip_and_generated(local_url):
    r = requests.get(local_url + "/v1/models", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = requests.get(local_url + "/v1/models", headers={"X-Request-ID": "bad id\twith junk"})
    assert r.headers["X-Request-ID"] != "bad id\twith junk" and len(r.headers["X-Request-ID"]) == 32
    r = requests.post(local_url + "/v1/chat/completions", data=b"{")
    assert len(r.headers["X-Request-ID"]) == 32  # errors carry it too


def test_sdk_raises_bad_request(local_url):
    c = openai.OpenAI(base_url=local_url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="smollm2-135m-instruct",
                                  messages=[{"role": "user", "content": "x"}], temperature=5)


def test_images_to_text_only_local_model_is_400(local_url):
    r = requests.post(local_url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]})
    assert r.status_code == 400 and "does not accept images" in r.json()["error"]["message"]


def test_healthz(local_url):
    r = requests.get(local_url + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
