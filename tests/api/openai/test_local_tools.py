"""Tool calls, JSON output and fill-in-the-middle on the real embedded model (SmolLM2-135M)."""

from __future__ import annotations

import ast
import json

import jsonschema
import openai
import pytest
import requests

from service import create_app
from tests.conftest import make_settings, serve

MODEL = "smollm2-135m-instruct"


def _fn(name, description, properties):
    """A Roo-style strict tool: every property required, no others allowed."""
    return {"type": "function", "function": {
        "name": name, "description": description, "strict": True,
        "parameters": {"type": "object", "properties": properties,
                       "required": list(properties), "additionalProperties": False}}}


ROO_TOOLS = [
    _fn("read_file", "Read the contents of a file.",
        {"path": {"type": "string", "description": "Path of the file to read"}}),
    _fn("execute_command", "Run a shell command.",
        {"command": {"type": "string", "description": "The command"},
         "cwd": {"type": ["string", "null"], "description": "Working directory or null"}}),
    _fn("list_files", "List files in a directory.",
        {"path": {"type": "string"}, "recursive": {"type": "boolean"}}),
    _fn("ask_followup_question", "Ask the user a question.",
        {"question": {"type": "string"},
         "follow_up": {"type": "array", "items": {"type": "string"}, "maxItems": 3}}),
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in ROO_TOOLS}
SYSTEM = ("You are Roo, a highly skilled software engineer. You accomplish tasks step by step "
          "and you must use exactly one tool in every response.")
TASKS = ["Show me what is in src/main.py", "Run the test suite with pytest",
         "List the files in the docs folder", "Read the README.md file",
         "Open setup.cfg", "Execute `make build`"]


# Room for a whole call: after earlier turns the reused prompt prefix can tip the greedy
# path into a longer path string (seen: "Execute `make build`" ran past 96 tokens on one
# machine and took 58 tokens on another); a call cut by the limit is dropped, not malformed.
# Sampled (default-temperature) calls vary in length from run to run as well.
ROOM = 200


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


def roo_request(task: str, **kw) -> dict:
    body = {"model": MODEL, "messages": [{"role": "system", "content": SYSTEM},
                                         {"role": "user", "content": [{"type": "text",
                                                                       "text": task}]}],
            "tools": ROO_TOOLS, "tool_choice": "auto", "parallel_tool_calls": True,
            "max_completion_tokens": ROOM}
    body.update(kw)
    return body


def assert_valid_calls(calls) -> None:
    assert calls, "no tool call"
    for call in calls:
        assert call.id.startswith("call_") and call.type == "function"
        args = json.loads(call.function.arguments)
        jsonschema.validate(args, SCHEMAS[call.function.name])


def streamed_calls(chunks) -> tuple[list, str, str]:
    """Rebuild tool calls from SSE chunks the way Roo does (grouped by index)."""
    calls: dict[int, dict] = {}
    text, finish = "", None
    for c in chunks:
        if not c.choices:
            continue
        d = c.choices[0].delta
        text += d.content or ""
        for t in d.tool_calls or ():
            if t.index not in calls:
                assert t.id and t.function.name, "first fragment of a call must carry id and name"
                calls[t.index] = {"id": t.id, "name": t.function.name, "arguments": ""}
            calls[t.index]["arguments"] += t.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    objs = [openai.types.chat.ChatCompletionMessageToolCall(
        id=v["id"], type="function", function={"name": v["name"], "arguments": v["arguments"]})
        for _, v in sorted(calls.items())]
    return objs, text, finish


# One llama.cpp thread: on a loaded 2-core machine two spinning threads can stall for minutes.
@pytest.fixture(scope="module")
def local_url():
    """The embedded model with the default "auto" (the model may answer in text)."""
    with serve(create_app(make_settings(local_n_threads=1))) as url:
        yield url


@pytest.fixture(scope="module")
def agent_url():
    """A gateway where tool_choice "auto" must call (LOCAL_AUTO_TOOL_CHOICE=required)."""
    with serve(create_app(make_settings(local_auto_tool_choice="required",
                                        local_n_threads=1))) as url:
        yield url


def test_model_lists_tools_capability(local_url):
    app = create_app(make_settings())
    info = app.extensions["gateway"].router.find_model(MODEL)
    assert info.supports_tools and info.supports_embeddings


def test_required_tool_call_plain_and_streamed(local_url):
    c = client(local_url)
    r = c.chat.completions.create(**roo_request(TASKS[0], tool_choice="required", seed=0))
    assert r.choices[0].finish_reason == "tool_calls"
    assert_valid_calls(r.choices[0].message.tool_calls)
    chunks = list(c.chat.completions.create(**roo_request(
        TASKS[1], tool_choice="required", temperature=0, stream=True,
        stream_options={"include_usage": True})))
    calls, text, finish = streamed_calls(chunks)
    assert finish == "tool_calls" and text == ""
    assert_valid_calls(calls)
    assert chunks[-1].usage.completion_tokens > 5


@pytest.mark.timeout(400)  # 20 real generations; a shared CPU can be slow
def test_twenty_roo_turns_in_a_row_never_malformed(agent_url):
    """Roo's own shapes: streamed at temperature 0, plain with the default temperature."""
    c = client(agent_url)
    for i in range(20):
        task = TASKS[i % len(TASKS)] + ("" if i < len(TASKS) else f" (attempt {i})")
        if i % 2:
            calls, _, finish = streamed_calls(c.chat.completions.create(
                **roo_request(task, temperature=0, stream=True,
                              stream_options={"include_usage": True})))
        else:
            r = c.chat.completions.create(**roo_request(task, seed=i))
            calls, finish = r.choices[0].message.tool_calls, r.choices[0].finish_reason
        assert finish == "tool_calls", (i, task)
        assert_valid_calls(calls)


def test_auto_lets_the_model_answer_in_text_or_call(local_url):
    """Default "auto": whatever the model chooses, a call is never malformed."""
    c = client(local_url)
    for i, task in enumerate(TASKS[:4]):
        r = c.chat.completions.create(**roo_request(task, seed=i, max_completion_tokens=48))
        msg = r.choices[0].message
        if msg.tool_calls:
            assert r.choices[0].finish_reason == "tool_calls"
            assert_valid_calls(msg.tool_calls)
        else:
            assert msg.content and not msg.content.lstrip().startswith("<")


def test_named_tool_choice_and_single_call(local_url):
    r = client(local_url).chat.completions.create(**roo_request(
        "What is in the project?", temperature=0, parallel_tool_calls=False,
        tool_choice={"type": "function", "function": {"name": "list_files"}}))
    calls = r.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "list_files"
    assert_valid_calls(calls)


def test_tool_choice_none_answers_in_text(local_url):
    r = client(local_url).chat.completions.create(**roo_request(
        TASKS[0], tool_choice="none", temperature=0, max_completion_tokens=8))
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.content


def test_tool_result_turn_continues(local_url):
    """A history with an assistant call and its result renders and gets a new call."""
    first = client(local_url).chat.completions.create(**roo_request(
        TASKS[3], tool_choice="required", temperature=0))
    call = first.choices[0].message.tool_calls[0]
    body = roo_request("", tool_choice="required", temperature=0)
    body["messages"] = body["messages"][:2] + [
        {"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "# Demo\nRun `make test`."}]
    body["messages"][1]["content"] = TASKS[3]
    r = client(local_url).chat.completions.create(**body)
    assert_valid_calls(r.choices[0].message.tool_calls)


def test_bad_tool_schema_is_a_400(local_url):
    bad = _fn("broken", "x", {"a": {"$ref": "#/$defs/missing"}})
    r = requests.post(local_url + "/v1/chat/completions", json=roo_request(
        TASKS[0], tools=[bad], tool_choice="required"), timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("tools")


PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "languages": {"type": "array", "items": {"enum": ["python", "go", "rust"]}, "maxItems": 2}},
    "required": ["name", "age", "languages"], "additionalProperties": False}


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_output_validates(local_url, stream):
    c = client(local_url)
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "strict": True,
                                                  "schema": PERSON}}
    for seed in range(3):
        kw = dict(model=MODEL, messages=[{"role": "user", "content": "Describe a programmer."}],
                  response_format=fmt, max_tokens=60, seed=seed)
        if stream:
            text = "".join(ch.choices[0].delta.content or "" for ch in
                           c.chat.completions.create(stream=True, **kw) if ch.choices)
        else:
            text = c.chat.completions.create(**kw).choices[0].message.content
        jsonschema.validate(json.loads(text), PERSON)


def test_json_object_output_parses(local_url):
    r = client(local_url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Give me a JSON object about cats."}],
        response_format={"type": "json_object"}, max_tokens=40, temperature=0)
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\n\nprint(add(1, 2))\n"


@pytest.mark.parametrize("stream", [False, True])
def test_fim_fallback_fits_between_prefix_and_suffix(local_url, stream):
    c = client(local_url)
    kw = dict(model=MODEL, prompt=PREFIX, suffix=SUFFIX, max_tokens=24, temperature=0)
    if stream:
        middle = "".join(ch.choices[0].text for ch in c.completions.create(stream=True, **kw))
    else:
        middle = c.completions.create(**kw).choices[0].text
    assert middle.strip()
    assert "print(add(1, 2))" not in middle and not middle.startswith(PREFIX.strip())
    assert not middle.endswith("\n")  # the suffix's leading newlines are not repeated
    ast.parse(PREFIX + middle + SUFFIX)  # the filled file is valid Python


def test_smollm2_has_no_fim_tokens(local_url):
    """So the fallback is what runs on the default model (the FIM-token path needs another GGUF)."""
    from service.providers import fim

    app = create_app(make_settings())
    llama = app.extensions["gateway"].router.by_name("local")._ensure_loaded()
    assert fim.fim_tokens(llama) is None
