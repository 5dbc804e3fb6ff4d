"""Hypothesis strategies for hostile request bodies, route by route.

Each route's body starts from its valid shape; every field is then kept valid,
replaced by junk (wrong types, nulls, huge or negative numbers, unicode with
lone surrogates and NUL, empty strings, lists for objects, values nested up
to 40 levels) or left out, and unknown fields are added. Some bodies are not
objects at all, or not JSON (invalid UTF-8, NaN).

``local=True`` keeps what costs generation time tiny (``max_tokens``,
``num_predict``, ``n``, prompt lists) so the embedded model answers fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import quote_from_bytes, urlencode

from hypothesis import strategies as st

MISSING = object()  # no body at all
MAX_DEPTH = 140  # past the gateway's bound of 128 levels: those bodies must be a 400

# ---- junk values -----------------------------------------------------------------

# Valid strings: any code point but lone surrogates (NUL, controls, emoji, RTL marks...).
texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "a\x00b", "😃💡", "\u202e", "<tool_call>", "[DONE]",
                     "data: x\n\n", "{", "null", "x" * 2000]),
)
# Junk strings add lone surrogates: sent as \\ud800 escapes or, encoded with
# surrogatepass, as invalid UTF-8.
_any_char = st.characters(codec=None, categories=None, exclude_categories=[])
junk_texts = st.one_of(st.text(_any_char, min_size=1, max_size=10),
                       st.sampled_from(["\ud800", "\udfff", "a\udc80b"]))
ints = st.one_of(st.integers(-3, 3), st.integers(-2**70, 2**70),
                 st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, -2**63 - 1, 10**30]))
floats = st.one_of(st.floats(), st.sampled_from([1e308, -1e308, 5e-324, 0.5]))
leaves = st.one_of(st.none(), st.booleans(), ints, floats, texts, junk_texts)
json_values = st.recursive(
    leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4),
    max_leaves=10)


def _nest(value: Any, depth: int, as_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


deep = st.builds(_nest, json_values, st.integers(1, MAX_DEPTH), st.booleans())
junk = st.one_of(json_values, deep)


def obj(fields: dict[str, st.SearchStrategy], required: tuple[str, ...] = ()) -> st.SearchStrategy:
    """A valid object of ``fields`` (optional ones present or not), then usually left
    alone, sometimes given one or two faults: a field set to junk, a required field
    dropped, an unknown field added. (Faulting each field independently would make
    nearly every body a 400 at the first check, never reaching the code behind it.)"""

    @st.composite
    def build(draw) -> dict:
        out = {k: draw(v) for k, v in fields.items() if k in required or draw(st.booleans())}
        for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2]))):
            fault = draw(st.sampled_from(["junk", "junk", "drop", "extra"]))
            if fault == "junk" and fields:
                out[draw(st.sampled_from(sorted(fields)))] = draw(junk)
            elif fault == "drop" and required:
                out.pop(draw(st.sampled_from(required)), None)
            elif fault == "extra":
                out[draw(texts)] = draw(json_values)
        return out

    return build()


def lists(of: st.SearchStrategy, min_size: int = 0, max_size: int = 3) -> st.SearchStrategy:
    return st.lists(of, min_size=min_size, max_size=max_size)


# ---- shared valid parts ------------------------------------------------------------

# Mostly valid function names, so bodies get past validation to the backends.
_names = st.one_of(st.sampled_from(["get_weather", "f", "read_file", "a" * 64]),
                   st.sampled_from(["a" * 65, "a b", ""]), texts)
_prop_types = st.sampled_from(["string", "integer", "number", "boolean", "null"])


@st.composite
def schemas(draw, depth: int = 2) -> dict:
    """A JSON Schema of the right shape (object of typed, maybe nested, properties)."""
    props = {}
    for name in draw(st.lists(st.text("abcxyz_", min_size=1, max_size=6), max_size=3,
                              unique=True)):
        kind = draw(st.sampled_from(["plain", "enum", "range", "array", "object"] if depth
                                    else ["plain", "enum", "range"]))
        if kind == "plain":
            props[name] = {"type": draw(_prop_types)}
        elif kind == "enum":
            props[name] = {"type": "string", "enum": draw(st.lists(texts, min_size=1, max_size=3))}
        elif kind == "range":
            lo = draw(st.integers(-5, 5))
            props[name] = {"type": "integer", "minimum": lo, "maximum": lo + draw(st.integers(0, 9))}
        elif kind == "array":
            props[name] = {"type": "array", "items": {"type": draw(_prop_types)}}
        else:
            props[name] = draw(schemas(depth - 1))
    out = {"type": "object", "properties": props}
    if props and draw(st.booleans()):
        out["required"] = sorted(props)
        out["additionalProperties"] = False
    return out


def tool_schemas(local: bool) -> st.SearchStrategy:
    # Wrong-shape schemas ("properties": [] / "oops" / {"p": 7}) are a 400 on the local
    # model too (checked against the meta-schema before the grammar builder).
    return st.one_of(schemas(), junk)


def tools(local: bool) -> st.SearchStrategy:
    function = obj({"name": _names, "description": texts, "parameters": tool_schemas(local),
                    "strict": st.booleans()}, required=("name",))
    return lists(obj({"type": st.just("function"), "function": function},
                     required=("type", "function")), max_size=2)


def stops() -> st.SearchStrategy:
    return st.one_of(texts, lists(texts, max_size=16))


def tiny_tokens(local: bool) -> st.SearchStrategy:
    return st.integers(1, 3) if local else st.integers(1, 50)


# ---- requests ----------------------------------------------------------------------


@dataclass
class Call:
    """One request: method, path, query, body (an object to encode, or raw bytes)."""

    method: str
    path: str
    body: Any = MISSING
    query: dict = field(default_factory=dict)
    ascii_json: bool = True

    def data(self) -> Optional[bytes]:
        if self.body is MISSING:
            return None
        if isinstance(self.body, bytes):
            return self.body
        text = json.dumps(self.body, ensure_ascii=self.ascii_json)
        return text.encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8

    def url(self) -> str:
        """The path and query, lone surrogates sent as invalid UTF-8 (percent-encoded)."""
        if not self.query:
            return self.path
        raw = {k.encode("utf-8", "surrogatepass"): v.encode("utf-8", "surrogatepass")
               for k, v in self.query.items()}
        return f"{self.path}?{urlencode(raw)}"

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"Call({self.method} {self.path} query={self.query!r} body={self.body!r})"


raw_bodies = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"{", b'{"model": NaN}', b"\xff\xfe", b'{"a": 1e999}', b"[]",
                     b'{"model": "x", "model": 3}', b'"\\ud800"', b"\x00"]),
)


def body_of(valid_object: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the route's (mutated) object; sometimes junk or not JSON at all."""
    return st.integers(0, 9).flatmap(
        lambda i: valid_object if i < 7 else junk if i < 9 else raw_bodies)


def post(path: str, valid_object: st.SearchStrategy, local: bool = False) -> st.SearchStrategy:
    bodies = body_of(valid_object)
    if local:
        bodies = bodies.map(lambda body: _pin_local(path, body))
    return st.builds(Call, st.just("POST"), st.just(path), bodies, st.just({}), st.booleans())


def _tiny(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 3


def _pin_local(path: str, body: Any) -> Any:
    """On the local model every generating body carries tiny token and choice counts: a
    default (512 tokens), or junk pydantic coerces (``1e9``, ``"100"``), is seconds each."""
    if not isinstance(body, dict):
        return body
    if path in ("/api/chat", "/api/generate"):
        options = body.get("options")
        options = {} if options is None else options
        if isinstance(options, dict) and not _tiny(options.get("num_predict")):
            options = {**options, "num_predict": 1}
        return {**body, "options": options}
    if path == "/v1/responses":
        return body if _tiny(body.get("max_output_tokens")) else {**body, "max_output_tokens": 2}
    if path == "/infill":
        return body if _tiny(body.get("n_predict")) else {**body, "n_predict": 2}
    pinned = {k: 1 for k in ("max_completion_tokens", "n", "best_of")
              if k in body and not _tiny(body[k])}
    if not _tiny(body.get("max_tokens")):
        pinned["max_tokens"] = 2
    return {**body, **pinned}


def get(path: str, query: Optional[st.SearchStrategy] = None) -> st.SearchStrategy:
    return st.builds(Call, st.just("GET"), st.just(path), st.just(MISSING),
                     query if query is not None else st.dictionaries(texts, texts, max_size=2))


def path_segment() -> st.SearchStrategy:
    """A URL path segment: any text, lone surrogates becoming invalid UTF-8 bytes."""
    return st.one_of(texts, st.text("abc-_.", max_size=8)).map(
        lambda s: quote_from_bytes(s.encode("utf-8", "surrogatepass"), safe="") or "x")


# ---- OpenAI ------------------------------------------------------------------------

def _openai_message(local: bool) -> st.SearchStrategy:
    part = st.one_of(
        obj({"type": st.just("text"), "text": texts}, required=("type", "text")),
        obj({"type": st.just("image_url"),
             "image_url": st.one_of(texts, obj({"url": texts, "detail": texts}))},
            required=("type",)))
    call = obj({"id": texts, "type": st.just("function"),
                "function": obj({"name": _names,
                                 "arguments": st.one_of(texts, st.dictionaries(texts, leaves))})})
    return obj({"role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
                "content": st.one_of(texts, lists(part), st.none()), "name": texts,
                "tool_calls": lists(call, max_size=2), "tool_call_id": texts},
               required=("role",))


def _sampling(local: bool, models: st.SearchStrategy) -> dict:
    return {"model": models, "temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
            "top_k": st.integers(0, 50), "n": st.integers(1, 2 if local else 4),
            "stop": stops(), "max_tokens": tiny_tokens(local), "seed": ints,
            "presence_penalty": st.floats(-2, 2), "frequency_penalty": st.floats(-2, 2),
            "repeat_penalty": st.floats(0.01, 2), "user": texts, "stream": st.booleans(),
            "stream_options": obj({"include_usage": st.booleans()})}


def openai_chat(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    tool_choice = st.one_of(st.sampled_from(["none", "auto", "required"]),
                            obj({"type": st.just("function"), "function": obj({"name": _names})}))
    fmt = obj({"type": st.sampled_from(["text", "json_object", "json_schema"]),
               "json_schema": obj({"name": texts, "schema": tool_schemas(local),
                                   "strict": st.booleans()})}, required=("type",))
    fields = _sampling(local, models) | {
        "messages": lists(_openai_message(local), min_size=1, max_size=3),
        "max_completion_tokens": tiny_tokens(local), "tools": tools(local),
        "tool_choice": tool_choice, "parallel_tool_calls": st.booleans(),
        "response_format": fmt, "logprobs": st.booleans(), "top_logprobs": st.integers(0, 20)}
    return post("/v1/chat/completions", obj(fields, required=("messages",)), local)


def _token_lists(local: bool) -> st.SearchStrategy:
    ids = st.integers(0, 60000) if not local else st.integers(-5, 60000)
    return st.one_of(lists(ids, min_size=1, max_size=4),
                     lists(lists(ids, min_size=1, max_size=3), min_size=1, max_size=2))


def openai_completions(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    prompt = st.one_of(texts, lists(texts, max_size=3), _token_lists(local))
    fields = _sampling(local, models) | {
        "prompt": prompt, "suffix": texts, "echo": st.booleans(),
        "logprobs": st.integers(0, 5), "best_of": st.integers(1, 2)}
    return post("/v1/completions", obj(fields, required=("prompt",)), local)


def _embed_texts(local: bool) -> st.SearchStrategy:
    # On the local model an input with no ordinary token ("\\x1d" tokenizes to nothing) is a
    # 400; "\\x1d" is among the texts, so the fuzz reaches that path.
    return st.one_of(st.just("\x1d"), texts)


def openai_embeddings(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    inputs = st.one_of(_embed_texts(local), lists(_embed_texts(local), min_size=1),
                       _token_lists(local))
    fields = {"model": models, "input": inputs,
              "encoding_format": st.sampled_from(["float", "base64"]),
              "dimensions": st.integers(1, 20), "user": texts}
    return post("/v1/embeddings", obj(fields, required=("input",)))


def openai_responses(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    """``POST /v1/responses``: items of every kind (and unknown ones), function, namespace
    and hosted tools, chained or not."""
    part = obj({"type": st.sampled_from(["input_text", "output_text", "refusal", "input_image",
                                         "input_file", "bogus"]),
                "text": texts, "image_url": texts, "file_id": texts, "detail": texts},
               required=("type",))
    call_ids = st.one_of(st.sampled_from(["call_1", "call_abc"]), texts)
    item = st.one_of(
        obj({"type": st.just("message"),
             "role": st.sampled_from(["user", "system", "developer", "assistant", "tool"]),
             "content": st.one_of(texts, lists(part))}, required=("role", "content")),
        obj({"type": st.just("function_call"), "call_id": call_ids, "name": _names,
             "arguments": texts, "namespace": texts}, required=("type", "call_id", "name")),
        obj({"type": st.just("function_call_output"), "call_id": call_ids,
             "output": st.one_of(texts, lists(part))}, required=("type", "call_id", "output")),
        obj({"type": st.sampled_from(["reasoning", "item_reference", "web_search_call", "x"]),
             "id": texts, "summary": lists(json_values)}, required=("type",)))
    function = obj({"type": st.just("function"), "name": _names, "description": texts,
                    "parameters": tool_schemas(local), "strict": st.booleans()},
                   required=("type", "name"))
    tool = st.one_of(function, obj({"type": st.just("namespace"), "name": _names,
                                     "tools": lists(function, max_size=2)},
                                    required=("type", "name", "tools")),
                     obj({"type": st.sampled_from(["web_search", "file_search", "mcp", "custom"])},
                         required=("type",)))
    fmt = obj({"type": st.sampled_from(["text", "json_object", "json_schema"]), "name": texts,
               "schema": tool_schemas(local), "strict": st.booleans()}, required=("type",))
    choice = st.one_of(st.sampled_from(["none", "auto", "required"]),
                       obj({"type": st.sampled_from(["function", "web_search"]), "name": _names}))
    fields = {"model": models, "input": st.one_of(texts, lists(item, min_size=1, max_size=4)),
              "instructions": texts, "tools": lists(tool, max_size=2), "tool_choice": choice,
              "max_output_tokens": tiny_tokens(local), "temperature": st.floats(0, 2),
              "top_p": st.floats(0, 1), "parallel_tool_calls": st.booleans(),
              "text": obj({"format": fmt}), "reasoning": obj({"effort": texts}),
              "stream": st.booleans(), "store": st.booleans(),
              "previous_response_id": st.one_of(st.just("resp_nope"), texts),
              "metadata": st.dictionaries(texts, texts, max_size=2), "user": texts}
    return post("/v1/responses", obj(fields, required=("input",)), local)


# ---- Ollama ------------------------------------------------------------------------

def _ollama_options(local: bool) -> st.SearchStrategy:
    fields = {"temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
              "top_k": st.integers(0, 50), "num_predict": tiny_tokens(local),
              "num_ctx": st.integers(1, 4096), "stop": stops(), "seed": ints,
              "repeat_penalty": st.floats(0.01, 2), "mirostat": junk}
    return obj(fields)


def _ollama_common(local: bool, models: st.SearchStrategy) -> dict:
    return {"model": models, "options": _ollama_options(local), "stream": st.booleans(),
            "format": st.one_of(st.sampled_from(["", "json"]), tool_schemas(local)),
            "keep_alive": st.one_of(texts, floats), "think": st.booleans()}


def _ollama_message() -> st.SearchStrategy:
    call = obj({"id": texts, "function": obj({"name": _names, "arguments": st.one_of(
        texts, st.dictionaries(texts, leaves))}, required=("name",))}, required=("function",))
    return obj({"role": st.sampled_from(["system", "user", "assistant", "tool"]),
                "content": texts, "images": lists(texts, max_size=1),
                "tool_calls": lists(call, max_size=2), "tool_name": texts, "thinking": texts},
               required=("role",))


def ollama_chat(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    fields = _ollama_common(local, models) | {"messages": lists(_ollama_message(), max_size=3),
                                              "tools": tools(local)}
    required = ("model",)
    return post("/api/chat", obj(fields, required=required), local)


def ollama_generate(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    fields = _ollama_common(local, models) | {
        "prompt": texts, "suffix": texts, "system": texts, "template": texts,
        "raw": st.booleans(), "images": lists(texts, max_size=1),
        "context": lists(ints, max_size=3)}
    required = ("model",)
    return post("/api/generate", obj(fields, required=required), local)


def ollama_embed(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    fields = {"model": models, "input": st.one_of(_embed_texts(local),
                                                  lists(_embed_texts(local), min_size=1)),
              "truncate": st.booleans(), "dimensions": st.integers(1, 20),
              "options": st.dictionaries(texts, leaves, max_size=2),
              "keep_alive": st.one_of(texts, floats)}
    return post("/api/embed", obj(fields, required=("model",)))


def ollama_embeddings(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    fields = {"model": models, "prompt": _embed_texts(local),
              "options": st.dictionaries(texts, leaves, max_size=2)}
    return post("/api/embeddings", obj(fields, required=("model",)))


def ollama_show(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    return post("/api/show", obj({"model": models, "name": models, "verbose": st.booleans()}))


# ---- llama.cpp /infill ------------------------------------------------------------

def llamacpp_infill(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    extra = obj({"filename": texts, "text": texts})
    fields = {"input_prefix": texts, "input_suffix": texts, "prompt": texts,
              "input_extra": lists(extra, max_size=2), "model": models,
              "n_predict": tiny_tokens(local), "t_max_predict_ms": st.integers(-1, 500),
              "n_indent": st.integers(0, 8), "cache_prompt": st.booleans(),
              "stream": st.booleans(), "temperature": st.floats(0, 2), "top_k": st.integers(0, 50),
              "top_p": st.floats(0, 1), "seed": ints, "stop": stops(),
              "samplers": lists(texts), "response_fields": lists(texts)}
    return post("/infill", obj(fields), local)


# ---- Anthropic ---------------------------------------------------------------------

def _anthropic_fields(local: bool, models: st.SearchStrategy) -> dict:
    block = st.one_of(
        obj({"type": st.just("text"), "text": texts}, required=("type", "text")),
        obj({"type": st.just("tool_use"), "id": texts, "name": _names,
             "input": st.dictionaries(texts, leaves, max_size=2)},
            required=("type", "id", "name", "input")),
        obj({"type": st.just("tool_result"), "tool_use_id": texts,
             "content": st.one_of(texts, st.none()), "is_error": st.booleans()},
            required=("type", "tool_use_id")),
        obj({"type": st.just("thinking"), "thinking": texts, "signature": texts},
            required=("type", "thinking")),
        obj({"type": st.just("image"), "source": obj({
            "type": st.sampled_from(["base64", "url"]), "media_type": texts, "data": texts,
            "url": texts})}, required=("type", "source")))
    message = obj({"role": st.sampled_from(["user", "assistant"]),
                   "content": st.one_of(texts, lists(block, min_size=1))},
                  required=("role", "content"))
    tool = obj({"name": _names, "description": texts, "input_schema": tool_schemas(local)},
               required=("name",))
    choice = obj({"type": st.sampled_from(["auto", "any", "tool", "none"]), "name": _names,
                  "disable_parallel_tool_use": st.booleans()}, required=("type",))
    return {"model": models, "messages": lists(message, min_size=1), "tools": lists(tool),
            "system": st.one_of(texts, lists(obj({"type": st.just("text"), "text": texts}))),
            "tool_choice": choice, "thinking": obj({
                "type": st.sampled_from(["enabled", "disabled", "adaptive"]),
                "budget_tokens": st.integers(0, 64)}, required=("type",))}


def anthropic_messages(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    fields = _anthropic_fields(local, models) | {
        "max_tokens": tiny_tokens(local), "stop_sequences": lists(texts, max_size=17),
        "temperature": st.floats(0, 1), "top_p": st.floats(0, 1), "top_k": st.integers(0, 50),
        "metadata": obj({"user_id": texts}), "stream": st.booleans()}
    return post("/v1/messages", obj(fields, required=("model", "messages", "max_tokens")),
                local)


def anthropic_count_tokens(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    return post("/v1/messages/count_tokens",
                obj(_anthropic_fields(local, models), required=("model", "messages")))


# ---- Helios ------------------------------------------------------------------------

@st.composite
def _helios_source(draw) -> dict:
    """Code and a cursor inside it (line and UTF-16 column), as the editor sends them."""
    code = draw(st.one_of(texts, st.sampled_from(["def f(x):\n    ", "a\nb\nc", "\r\n\r\n",
                                                  "x = '😃'\n"])))
    lines = code.split("\n")
    line = draw(st.integers(0, len(lines) - 1))
    width = len(lines[line].encode("utf-16-le")) // 2
    return {"code": code, "position": {"line": line, "character": draw(st.integers(0, width))}}


def helios_complete(local: bool, models: st.SearchStrategy) -> st.SearchStrategy:
    fields = {"language": st.sampled_from(["python", "javascript", "rust", "html", "Python"]),
              "filename": st.one_of(st.sampled_from(["a.py", "x.js", ".", "", "a b/c.rs"]), texts),
              "max_tokens": st.integers(1, 3) if local else st.integers(1, 512),
              "temperature": st.floats(0, 1)}
    required = ("code", "language", "position", "filename")

    @st.composite
    def build(draw) -> dict:
        source = draw(_helios_source())
        body = draw(obj({"code": st.just(source["code"]), "language": fields["language"],
                         "position": st.just(source["position"]),
                         "filename": fields["filename"], "max_tokens": fields["max_tokens"],
                         "temperature": fields["temperature"]}, required=required))
        if isinstance(body.get("position"), dict) and draw(st.integers(0, 5)) == 0:
            body["position"] = draw(obj({"line": ints, "character": ints}))  # off the code
        return body

    return post("/complete", build(), local)


# ---- admin -------------------------------------------------------------------------

def _key_fields() -> dict:
    dates = st.one_of(st.sampled_from(["2030-01-01T00:00:00Z", "2030-01-01T00:00:00",
                                       "1970-01-01T00:00:00+00:00", "9999-12-31T23:59:59Z"]),
                      texts)
    return {"name": texts, "owner_email": st.one_of(st.just("a@b.c"), texts),
            "tier": texts, "expires_at": dates,
            "requests_per_minute": st.integers(0, 1_000_000),
            "tokens_per_minute": st.integers(0, 10**9), "allowed_models": lists(texts, max_size=3)}


def admin_create_key() -> st.SearchStrategy:
    return post("/admin/keys", obj(_key_fields()))


def admin_update_key(key_id: str) -> st.SearchStrategy:
    """``PATCH /admin/keys/<id>``: mostly of a key that exists, sometimes of junk ids."""
    fields = {k: v for k, v in _key_fields().items() if k not in ("name", "owner_email")}
    ids = st.one_of(st.just(key_id), st.just(key_id), path_segment())
    return st.builds(Call, st.just("PATCH"), ids.map(lambda k: f"/admin/keys/{k}"),
                     body_of(obj(fields)))


def admin_usage_query() -> st.SearchStrategy:
    days = st.one_of(st.sampled_from(["2024-01-01", "2024-13-40", "0000-00-00", ""]), texts)
    return st.fixed_dictionaries({}, optional={"key": texts, "since": days, "until": days})
