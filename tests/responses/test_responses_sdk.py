"""The Responses API driven by the official ``openai`` SDK's Responses client.

Against the loopback OpenAI-compatible stand-in, which records what it receives
(so each test checks what the gateway sent on, not only what came back), each
case streamed and not.
"""

from __future__ import annotations

import json
import time

import openai
import pytest
import requests
from sqlalchemy import select, text

from service import create_app
from service.db import usage
from tests.conftest import make_settings, serve
from tests.support.rawhttp import open_sse
from tests.support.services import db_settings, postgres_url  # noqa: F401 - fixtures

KEY_A = "sk-responses-a-0123456789abcdefghijklmnopq"
KEY_B = "sk-responses-b-0123456789abcdefghijklmnopq"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
         "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def gw(up, tmp_path_factory):
    """The gateway (two static keys) over the module's stand-in; yields (url, stand-in, app)."""
    app = create_app(make_settings(lm_studio_base_url=up.url, models_cache_seconds=0,
                                   api_keys=f"{KEY_A},{KEY_B}", usage_flush_seconds=0.05,
                                   data_dir=tmp_path_factory.mktemp("responses-db")))
    with serve(app) as url:
        yield url, up, app


def client(url: str, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def sent(up) -> dict:
    """The last body the stand-in received."""
    return up.state.bodies[-1]


def run(c: openai.OpenAI, stream: bool, **kw):
    """One response, streamed through the SDK's stream helper or not; (response, events)."""
    if not stream:
        return c.responses.create(**kw), []
    with c.responses.stream(**kw) as s:
        events = list(s)
        return s.get_final_response(), events


# ---- text, settings, input shapes ------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_text_with_instructions_and_settings(gw, stream):
    url, up, _ = gw
    r, events = run(client(url), stream, model="echo-1", input="tell me a b",
                    instructions="Be brief.", max_output_tokens=20, temperature=0.3,
                    top_p=0.9, parallel_tool_calls=False, user="u-1",
                    reasoning={"effort": "low"}, metadata={"ticket": "T-1"})
    assert r.status == "completed" and r.output_text == "echo: tell me a b"
    assert r.id.startswith("resp_") and r.model == "echo-1" and r.metadata == {"ticket": "T-1"}
    assert r.instructions == "Be brief." and r.max_output_tokens == 20
    assert r.usage.input_tokens == 5 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    body = sent(up)
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "tell me a b"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (20, 0.3, 0.9)
    assert body["parallel_tool_calls"] is False and body["user"] == "u-1"
    assert body["stream"] is stream and "reasoning" not in body and "metadata" not in body
    if stream:
        kinds = [e.type for e in events]
        assert kinds[:4] == ["response.created", "response.in_progress",
                             "response.output_item.added", "response.content_part.added"]
        assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                              "response.output_item.done", "response.completed"]
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == \
            "echo: tell me a b"


@pytest.mark.parametrize("stream", [False, True])
def test_message_items_parts_and_roles(gw, stream):
    url, up, _ = gw
    items = [
        {"role": "developer", "content": "Answer in English."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is"}, {"type": "input_image", "image_url": PIXEL}]},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "a pixel", "annotations": []}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "user", "content": [{"type": "input_text", "text": "and now"}]},
    ]
    r, _ = run(client(url), stream, model="echo-1", input=items)
    assert r.output_text == "echo: and now"
    assert sent(up)["messages"] == [
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": [{"type": "text", "text": "what is"},
                                     {"type": "image_url", "image_url": {"url": PIXEL}}]},
        {"role": "assistant", "content": "a pixel"},
        {"role": "user", "content": "and now"}]


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_format_and_tool_choice(gw, stream):
    url, up, _ = gw
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    run(client(url), stream, model="echo-1", input="x", tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema,
                         "strict": True}})
    body = sent(up)
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": schema, "strict": True}}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": WEATHER["parameters"]}}]
    run(client(url), stream, model="echo-1", input="x", text={"format": {"type": "json_object"}},
        tools=[WEATHER], tool_choice="required")
    assert sent(up)["response_format"] == {"type": "json_object"}
    assert sent(up)["tool_choice"] == "required"


# ---- tool round trips -------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_two_turn_tool_round_trip_with_previous_response_id(gw, stream):
    url, up, _ = gw
    c = client(url)
    first, events = run(c, stream, model="tools", input="weather in Paris?", tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call" and call.call_id == "call_abc"
    assert call.name == "get_weather" and json.loads(call.arguments)["city"] == "Paris"
    if stream:
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
        assert kinds[-1] == "response.completed"
    second, _ = run(c, stream, model="tools", previous_response_id=first.id, tools=[WEATHER],
                    input=[{"type": "function_call_output", "call_id": call.call_id,
                            "output": "sunny, 21 C"}])
    assert second.output_text == "echo: sunny, 21 C" and second.previous_response_id == first.id
    assert sent(up)["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "get_weather", "arguments": call.arguments}}]},
        {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_abc"}]
    items = c.responses.input_items.list(second.id, order="asc")
    assert [i.type for i in items.data] == ["message", "function_call", "function_call_output"]


@pytest.mark.parametrize("stream", [False, True])
def test_two_turn_tool_round_trip_stateless(gw, stream):
    """Codex CLI's way: store=false, and every item (the call included) sent again."""
    url, up, _ = gw
    c = client(url)
    history = [{"role": "user", "content": "weather in Paris?"}]
    first, _ = run(c, stream, model="tools", input=history, tools=[WEATHER], store=False)
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": "call_abc", "output": "rain"})
    second, _ = run(c, stream, model="tools", input=history, tools=[WEATHER], store=False)
    assert second.output_text == "echo: rain"
    assert sent(up)["messages"][1]["tool_calls"][0]["id"] == "call_abc"
    assert sent(up)["messages"][2] == {"role": "tool", "content": "rain",
                                       "tool_call_id": "call_abc"}
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(first.id)  # store=false: nothing kept


def test_namespace_tools_reach_the_backend_flattened(gw):
    """Codex CLI groups some function tools in a ``namespace`` tool; a call made to one
    comes back split into name and namespace, and goes out joined again."""
    url, up, _ = gw
    ns = {"type": "namespace", "name": "agents", "description": "sub-agents",
          "tools": [{"type": "function", "name": "spawn", "parameters": {"type": "object"}}]}
    items = [{"role": "user", "content": "go"},
             {"type": "function_call", "call_id": "call_ns", "name": "spawn",
              "namespace": "agents", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "call_ns", "output": "spawned"}]
    r = client(url).responses.create(model="echo-1", input=items, tools=[WEATHER, ns])
    assert r.tools[1].type == "namespace"
    body = sent(up)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "agents__spawn"]
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == "agents__spawn"


# ---- stored responses ---------------------------------------------------------------------------
def test_store_retrieve_input_items_delete(gw):
    url, _, _ = gw
    c = client(url)
    r = c.responses.create(model="echo-1", input="keep me", metadata={"k": "v"})
    got = c.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == "echo: keep me" and got.metadata == {"k": "v"}
    items = c.responses.input_items.list(r.id)
    assert [i.content[0].text for i in items.data] == ["keep me"]
    c.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as exc:
        c.responses.retrieve(r.id)
    assert exc.value.body["code"] == "not_found"
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(r.id)


def test_streamed_response_is_stored(gw):
    url, _, _ = gw
    c = client(url)
    with c.responses.stream(model="echo-1", input="streamed") as s:
        final = s.get_final_response()
    assert c.responses.retrieve(final.id).output_text == "echo: streamed"


def test_stored_responses_are_scoped_to_their_key(gw):
    url, _, _ = gw
    a, b = client(url, KEY_A), client(url, KEY_B)
    r = a.responses.create(model="echo-1", input="mine")
    for attempt in (lambda: b.responses.retrieve(r.id), lambda: b.responses.delete(r.id),
                    lambda: b.responses.input_items.list(r.id),
                    lambda: b.responses.create(model="echo-1", input="x",
                                               previous_response_id=r.id)):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert a.responses.retrieve(r.id).output_text == "echo: mine"  # untouched by B's delete
    with pytest.raises(openai.AuthenticationError):
        client(url, "sk-nobody").responses.retrieve(r.id)


def test_unknown_previous_response_id_is_404(gw):
    url, up, _ = gw
    before = len(up.state.bodies)
    with pytest.raises(openai.NotFoundError) as exc:
        client(url).responses.create(model="echo-1", input="x", previous_response_id="resp_nope")
    assert exc.value.body["param"] == "response_id"
    assert len(up.state.bodies) == before  # nothing generated


def test_store_on_each_database_with_retention(up, db_settings):
    """The store on SQLite and PostgreSQL: chaining, scoping, and rows past their retention
    (RESPONSES_RETENTION_HOURS) gone; a second app on the same database reads them."""
    settings = make_settings(lm_studio_base_url=up.url, models_cache_seconds=0,
                             api_keys=f"{KEY_A},{KEY_B}", responses_retention_hours=0.0005,
                             **db_settings)  # 1.8 s
    app = create_app(settings)
    with serve(app) as url:
        c = client(url)
        first = c.responses.create(model="tools", input="weather?", tools=[WEATHER])
        second = c.responses.create(model="tools", tools=[WEATHER], previous_response_id=first.id,
                                    input=[{"type": "function_call_output",
                                            "call_id": "call_abc", "output": "hail"}])
        assert second.output_text == "echo: hail"
        with pytest.raises(openai.NotFoundError):
            client(url, KEY_B).responses.retrieve(second.id)
        other_app = create_app(settings)  # another instance, same database
        with serve(other_app) as other:
            assert client(other).responses.retrieve(second.id).output_text == "echo: hail"
        other_app.extensions["usage"].close()
        time.sleep(2.0)
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(second.id)
        with pytest.raises(openai.NotFoundError):
            c.responses.create(model="echo-1", input="x", previous_response_id=second.id)
    app.extensions["usage"].close()  # before the fixture drops the database


def test_retention_zero_stores_nothing(up, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=up.url, data_dir=tmp_path,
                                   responses_retention_hours=0))
    with serve(app) as url:
        r = client(url).responses.create(model="echo-1", input="x")
        with pytest.raises(openai.NotFoundError):
            client(url).responses.retrieve(r.id)


def test_a_store_that_fails_is_never_a_success(up, tmp_path):
    """store=true but the database refuses the row: a 503, or mid-stream an error and
    response.failed, never response.completed."""
    app = create_app(make_settings(lm_studio_base_url=up.url, data_dir=tmp_path))
    with app.extensions["db"].engine.begin() as conn:
        conn.execute(text("DROP TABLE stored_responses"))
    with serve(app) as url:
        c = client(url)
        with pytest.raises(openai.InternalServerError) as exc:
            c.responses.create(model="echo-1", input="x")
        assert exc.value.status_code == 503 and "could not store" in exc.value.message
        kinds = [e.type for e in c.responses.create(model="echo-1", input="x", stream=True)]
        assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds
        assert c.responses.create(model="echo-1", input="x", store=False).output_text == "echo: x"


def test_usage_rows_name_the_responses_family(gw):
    url, _, app = gw
    raw = client(url).responses.with_raw_response.create(model="echo-1", input="count me")
    r = raw.parse()
    query = select(usage).where(usage.c.request_id == raw.headers["X-Request-ID"])
    row, deadline = None, time.monotonic() + 20
    while row is None and time.monotonic() < deadline:  # queued when the response closed
        app.extensions["usage"].flush(timeout=1)
        with app.extensions["db"].engine.connect() as conn:
            row = conn.execute(query).mappings().first()
    assert row["family"] == "responses" and row["model"] == "echo-1" and row["status"] == 200
    assert row["prompt_tokens"] == r.usage.input_tokens
    assert row["completion_tokens"] == r.usage.output_tokens and row["key_id"]


# ---- broken upstreams and leaving clients -------------------------------------------------------
@pytest.mark.parametrize("model", ["cut", "stream-error", "badevent"])
def test_broken_stream_ends_failed_never_completed(gw, model):
    url, _, _ = gw
    events = list(client(url).responses.create(model=model, input="a b c d", stream=True))
    kinds = [e.type for e in events]
    assert "response.completed" not in kinds and "response.output_item.done" not in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.message == events[-2].message
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with pytest.raises(RuntimeError, match="response.completed"):
        with client(url).responses.stream(model=model, input="a b c d") as s:
            list(s)
            s.get_final_response()
    with pytest.raises(openai.NotFoundError):  # a failed response is not stored
        client(url).responses.retrieve(failed.id)


def test_upstream_refusal_before_the_stream_is_an_http_error(gw):
    url, _, _ = gw
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as exc:
            client(url).responses.create(model="always-500", input="x", stream=stream)
        assert exc.value.status_code == 502 and exc.value.body["type"] == "upstream_error"


def test_client_leaving_mid_stream_stops_the_upstream(gw):
    url, up, _ = gw
    before = len(up.state.disconnects)
    s = open_sse(url, "/v1/responses", {"model": "endless", "input": "go", "stream": True},
                 events=6, headers={"Authorization": f"Bearer {KEY_A}"})
    s.close()
    deadline = time.monotonic() + 10
    while len(up.state.disconnects) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(up.state.disconnects) > before


# ---- hostile input -------------------------------------------------------------------------------
BAD = [
    ({"model": "echo-1", "input": 123}, "input"),
    ({"model": "echo-1", "input": [{"type": "bogus"}]}, "input[0]"),
    ({"model": "echo-1", "input": [{"type": "message", "content": "no role"}]}, "input[0]"),
    ({"model": "echo-1", "input": [{"role": "wizard", "content": "x"}]}, "input[0]"),
    ({"model": "echo-1", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[0]"),
    ({"model": "echo-1", "input": [{"role": "user", "content": "x"},
                                   {"type": "function_call_output", "call_id": "call_x",
                                    "output": "y"}]}, "input[1]"),
    ({"model": "echo-1", "input": []}, "input"),
    ({"model": "echo-1", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
    ({"model": "echo-1", "input": [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-1"}]}]}, "input[0].content"),
    ({"model": "echo-1", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file-1"}]}]}, "input[0].content"),
    ({"model": "echo-1", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "echo-1", "input": "x", "tools": [WEATHER, {"type": "file_search",
                                                          "vector_store_ids": ["vs"]}]},
     "tools[1].type"),
    ({"model": "echo-1", "input": "x", "tools": [{"type": "computer_use_preview"}]},
     "tools[0].type"),
    ({"model": "echo-1", "input": "x", "tools": [{"type": "function"}]}, "tools[0]"),
    ({"model": "echo-1", "input": "x", "tools": [dict(WEATHER, name="bad name!")]}, "tools[0]"),
    ({"model": "echo-1", "input": "x", "tools": "all"}, "tools"),
    ({"model": "echo-1", "input": "x", "tool_choice": {"type": "web_search_preview"}},
     "tool_choice"),
    ({"model": "echo-1", "input": "x", "tool_choice": {"type": "function", "name": "nope"}},
     "tool_choice"),
    ({"model": "echo-1", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "echo-1", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "echo-1", "input": "x", "stream": "yes please"}, "stream"),
    ({"model": "echo-1", "input": "x", "text": {"format": {"type": "json_schema"}}},
     "text.format.schema"),
    ({"model": "echo-1", "input": "x", "text": {"format": {"type": "yaml"}}}, "text"),
    ({"model": "echo-1", "input": "x", "background": True}, "background"),
    ({"model": "echo-1", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "echo-1", "input": "x", "metadata": {"k": 1}}, "metadata"),
]


@pytest.mark.parametrize("body,param", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_bodies_are_400_in_openai_format(gw, body, param):
    url, up, _ = gw
    before = len(up.state.bodies)
    r = requests.post(url + "/v1/responses", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {KEY_A}"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    assert (err["param"] or "").startswith(param), err
    assert "Traceback" not in r.text
    assert len(up.state.bodies) == before  # refused before any backend call


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"input": ' * 200])
def test_unparseable_bodies_are_400(gw, raw):
    url, _, _ = gw
    r = requests.post(url + "/v1/responses", data=raw, timeout=10,
                      headers={"Authorization": f"Bearer {KEY_A}",
                               "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_unsupported_tool_is_a_clear_sdk_error(gw):
    url, _, _ = gw
    with pytest.raises(openai.BadRequestError) as exc:
        client(url).responses.create(model="echo-1", input="x",
                                     tools=[WEATHER, {"type": "web_search"}])
    assert exc.value.body["code"] == "unsupported_feature"
    assert "web_search" in exc.value.body["message"]


def test_input_items_paging_and_bad_queries(gw):
    url, _, _ = gw
    c = client(url)
    r = c.responses.create(model="echo-1", input=[{"role": "user", "content": str(i)}
                                                  for i in range(5)])
    page = c.responses.input_items.list(r.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["0", "1"] and page.has_more
    rest = c.responses.input_items.list(r.id, limit=10, order="asc", after=page.data[-1].id)
    assert [i.content[0].text for i in rest.data] == ["2", "3", "4"] and not rest.has_more
    h = {"Authorization": f"Bearer {KEY_A}"}
    for q in ("limit=0", "limit=x", "order=sideways", "after=msg_nope"):
        got = requests.get(f"{url}/v1/responses/{r.id}/input_items?{q}", headers=h, timeout=10)
        assert got.status_code == 400 and got.json()["error"]["param"], q
    assert requests.put(f"{url}/v1/responses/{r.id}", headers=h, timeout=10).status_code == 405
