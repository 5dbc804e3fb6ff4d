"""Bad bodies, wrong types, keys in both headers, and clients that leave: every answer is
Anthropic's error shape with its status, never a 500 or an invented success."""

from __future__ import annotations

import time

import anthropic
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve
from tests.support.rawhttp import open_sse

OK = {"model": "gpt-echo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def _error(r: requests.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    return body["error"]["message"]


@pytest.mark.parametrize("data,fragment", [
    (b"", "empty"), (b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"),
])
def test_unparseable_bodies(gw, data, fragment):
    r = requests.post(gw[0] + "/v1/messages", data=data,
                      headers={"Content-Type": "application/json"})
    assert fragment in _error(r, 400, "invalid_request_error")


@pytest.mark.parametrize("change,param", [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": "lots"}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"messages": None}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": 5}]}, "content"),
    ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "content"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "text/html", "data": "x"}}]}]}, "media_type"),
    ({"temperature": 1.5}, "temperature"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"tools": [{"name": "f"}]}, "input_schema"),
    ({"tools": [{"name": "web_search", "type": "web_search_20250305"}]}, "tools[0].type"),
    ({"tool_choice": {"type": "tool", "name": "absent"}}, "tool_choice"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"thinking": {"type": "enabled"}}, "budget_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "max_tokens"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "content[0]"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_result",
                                                       "tool_use_id": "x"}]}]}, "content[0]"),
    ({"model": 7}, "model"),
])
def test_bad_fields_are_400s_naming_the_field(gw, change, param):
    body = {**OK, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = requests.post(gw[0] + "/v1/messages", json=body)
    msg = _error(r, 400, "invalid_request_error")
    assert param.split(".")[-1].split("[")[0] in msg or param in msg, msg


def test_missing_max_tokens_through_the_sdk_is_a_bad_request(gw):
    c = anthropic.Anthropic(base_url=gw[0], api_key="x", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        c.post("/v1/messages", cast_to=object,  # the SDK's own check would stop it first
               body={"model": "gpt-echo", "messages": OK["messages"]})


def test_unknown_model_route_and_method(gw):
    url = gw[0]
    assert "does not exist" in _error(requests.post(url + "/v1/messages",
                                                    json={**OK, "model": "nope"}), 404,
                                      "not_found_error")
    _error(requests.post(url + "/v1/messages/batches", json=OK), 404, "not_found_error")
    _error(requests.get(url + "/v1/messages"), 405, "invalid_request_error")
    _error(requests.post(url + "/v1/messages/count_tokens", json={"model": "gpt-echo"}), 400,
           "invalid_request_error")


def test_key_in_x_api_key_or_bearer(tmp_path):
    app = create_app(make_settings(api_keys="sk-gw-1", local_preload=False))
    with serve(app) as url:
        body = {"model": "smollm2-135m-instruct", "max_tokens": 1,
                "messages": [{"role": "user", "content": "hi"}]}
        _error(requests.post(url + "/v1/messages", json=body), 401, "authentication_error")
        _error(requests.post(url + "/v1/messages", json=body, headers={"x-api-key": "wrong"}),
               401, "authentication_error")
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.count_tokens(
                model=body["model"], messages=body["messages"])
        ok = anthropic.Anthropic(base_url=url, api_key="sk-gw-1", max_retries=0)
        assert ok.messages.count_tokens(model=body["model"],
                                        messages=body["messages"]).input_tokens > 0
        bearer = anthropic.Anthropic(base_url=url, auth_token="sk-gw-1", max_retries=0)
        assert bearer.messages.count_tokens(model=body["model"],
                                            messages=body["messages"]).input_tokens > 0


@pytest.mark.parametrize("model", ["claude-endless", "gpt-endless"])
def test_client_leaving_mid_stream_closes_the_upstream(gw, model):
    url, standin, up = gw
    server = standin if model.startswith("claude") else up
    before = len(server.state.disconnects)
    s = open_sse(url, "/v1/messages", {**OK, "model": model, "stream": True}, events=4)
    s.close()
    deadline = time.monotonic() + 10
    while len(server.state.disconnects) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.state.disconnects) > before, "the upstream kept streaming"
