"""The internal model <-> Gemini's Vertex AI JSON, both directions, streaming included.

Pure functions (no I/O). Facts: ``shared/reference/vertex-gemini.md``.

- Requests: system/developer messages -> ``systemInstruction``; user/assistant
  -> ``user``/``model`` contents (text, images, ``functionCall``); tool results
  -> ``functionResponse`` parts of one ``user`` content per run of tool
  messages, in call order, the function name recovered from the earlier call;
  a text completion becomes one user turn (with ``suffix``: a fill-in-the-middle
  instruction); sampling fields -> ``generationConfig``.
- Gemini's ``functionCall`` has no id, so the gateway makes one; a
  ``thoughtSignature`` on the call is carried inside it
  (``call_<24 hex>_ts_<base64url>``) and put back on the part when the client
  sends the call back, which Gemini 3 requires.
- Responses and SSE events -> :class:`Generation` / :class:`Chunk`.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import re
import uuid
from typing import Any, Iterable, Iterator, Optional

import orjson

from ...core import errors
from ...core.types import (
    Choice, Chunk, Generation, GenerationRequest, ImagePart, Message, TextPart, ToolCall,
    ToolCallDelta, Usage,
)
from ..chat_fim import FIM_INSTRUCTION, fim_user_text
from ..sse import incomplete, sse_objects

log = logging.getLogger(__name__)

#: Retired PaLM model families (shut down 2025-04-09), served by VERTEX_MODEL instead.
PALM_PREFIXES = ("text-bison", "chat-bison", "code-bison", "codechat-bison", "code-gecko")
EMBEDDING_PREFIXES = ("text-embedding-", "text-multilingual-embedding-", "gemini-embedding-",
                      "textembedding-gecko")

CONTENT_FILTER = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                            "MODEL_ARMOR", "LANGUAGE", "IMAGE_SAFETY"})

# Gemini 3 accepts this in place of a lost signature (history from another model).
SKIP_SIGNATURE = "skip_thought_signature_validator"


def is_palm(model: str) -> bool:
    return model.startswith(PALM_PREFIXES)


def is_embedding_model(model: str) -> bool:
    return model.startswith(EMBEDDING_PREFIXES)


# ---- tool call ids ---------------------------------------------------------------
_SIGNED_ID = re.compile(r"^call_[0-9a-f]{24}_ts_([A-Za-z0-9_-]+)$")


def new_tool_call_id(signature: Optional[str] = None) -> str:
    """A ``call_…`` id; a thought signature rides along, base64url-encoded."""
    base = "call_" + uuid.uuid4().hex[:24]
    if not signature:
        return base
    return base + "_ts_" + base64.urlsafe_b64encode(signature.encode()).decode().rstrip("=")


def signature_from_id(call_id: Optional[str]) -> Optional[str]:
    """The thought signature carried by an id made by :func:`new_tool_call_id`."""
    m = _SIGNED_ID.match(call_id or "")
    if not m:
        return None
    data = m.group(1)
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


# ---- schemas ----------------------------------------------------------------------
_SCHEMA_KEYS = {"description", "title", "nullable", "enum", "maxItems", "minItems", "required",
                "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
                "minimum", "maximum", "propertyOrdering"}
_FORMATS = {"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"},
            "NUMBER": {"float", "double"}}


def gemini_schema(schema: Any) -> Any:
    """A JSON Schema reduced to the OpenAPI subset Gemini's ``Schema`` accepts.

    Type lists with ``null`` become ``nullable``; ``const`` becomes a one-value
    enum; keywords Gemini rejects (``additionalProperties``, ``$schema``,
    ``strict``, unknown ``format``s…) are dropped; an object without properties
    loses ``properties``/``required`` (Gemini rejects empty ones).
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) > 1:
            out["anyOf"] = [{"type": k.upper()} for k in kinds if isinstance(k, str)]
        kind = kinds[0] if len(kinds) == 1 else None
    if isinstance(kind, str):
        out["type"] = kind.upper()
    for key, value in schema.items():
        if key in _SCHEMA_KEYS:
            out[key] = value
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = gemini_schema(value)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            out["anyOf"] = [gemini_schema(s) for s in value]
        elif key == "format" and value in _FORMATS.get(out.get("type", ""), ()):
            out[key] = value
    if "const" in schema and "enum" not in out:
        out["enum"] = [schema["const"]]
        if isinstance(schema["const"], str):
            out.setdefault("type", "STRING")
    if "enum" in out and not all(isinstance(v, str) for v in out["enum"]):
        del out["enum"]  # Gemini enums are strings only
    if out.get("type") == "OBJECT" or "properties" in out:
        props = out.get("properties") or {}
        if not props:
            out.pop("properties", None)
            out.pop("required", None)
        elif isinstance(out.get("required"), list):
            out["required"] = [r for r in out["required"] if r in props]
    return out


# ---- internal -> Gemini request ------------------------------------------------------
def _image(p: ImagePart) -> dict:
    if p.url.startswith("data:"):
        header, _, data = p.url.partition(",")
        mime = header[5:].split(";")[0] or "image/png"
        return {"inlineData": {"mimeType": mime, "data": data}}
    mime = mimetypes.guess_type(p.url.split("?")[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": p.url}}


def _user_parts(m: Message) -> list[dict]:
    if not isinstance(m.content, list):
        return [{"text": m.content}] if m.content else []
    parts = []
    for p in m.content:
        if isinstance(p, TextPart):
            if p.text:
                parts.append({"text": p.text})
        elif isinstance(p, ImagePart):
            parts.append(_image(p))
    return parts


def _tool_response(text: str) -> dict:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def encode_contents(messages: list[Message], model: str) -> tuple[list[dict], list[dict]]:
    """Chat messages -> (systemInstruction parts, contents)."""
    system: list[dict] = []
    contents: list[dict] = []
    calls: dict[str, tuple[str, int]] = {}  # tool call id -> (name, position in its message)
    group: Optional[list[tuple[int, dict]]] = None  # the current run of tool results
    needs_signature = model.startswith("gemini-3")
    for i, m in enumerate(messages):
        if m.role != "tool" and group is not None:
            contents[-1]["parts"] = [p for _, p in sorted(group, key=lambda x: x[0])]
            group = None
        if m.role in ("system", "developer"):
            if m.text():
                system.append({"text": m.text()})
        elif m.role == "tool":
            name, pos = calls.get(m.tool_call_id or "", (m.name, 1 << 30))
            if not name:
                raise errors.InvalidRequest(
                    f"messages[{i}] answers tool call '{m.tool_call_id}', which no earlier "
                    f"assistant message made", param=f"messages[{i}].tool_call_id")
            part = (pos, {"functionResponse": {"name": name, "response": _tool_response(m.text())}})
            if group is None:
                group = [part]
                contents.append({"role": "user", "parts": []})
            else:
                group.append(part)
        elif m.role == "assistant":
            parts = [{"text": m.text()}] if m.text() else []
            for pos, c in enumerate(m.tool_calls):
                calls[c.id] = (c.name, pos)
                part: dict[str, Any] = {"functionCall": {"name": c.name,
                                                         "args": c.arguments_wrapped()}}
                signature = signature_from_id(c.id)
                if signature is None and pos == 0 and needs_signature:
                    signature = SKIP_SIGNATURE
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            if parts:
                contents.append({"role": "model", "parts": parts})
        else:
            parts = _user_parts(m)
            if parts:
                contents.append({"role": "user", "parts": parts})
    if group is not None:
        contents[-1]["parts"] = [p for _, p in sorted(group, key=lambda x: x[0])]
    return system, contents


def _tool_config(choice: Any) -> Optional[dict]:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice)
        return {"functionCallingConfig": {"mode": mode}} if mode else None
    name = ((choice or {}).get("function") or {}).get("name")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def _function_declaration(t) -> dict:
    fn: dict[str, Any] = {"name": t.name}
    if t.description:
        fn["description"] = t.description
    params = gemini_schema(t.parameters) if t.parameters else None
    if params and params.get("properties"):  # Gemini rejects an object without properties
        fn["parameters"] = params
    return fn


def _thinking_budget(r: GenerationRequest, model: str, budget: Optional[int]) -> Optional[int]:
    if budget is not None:
        return budget
    if r.thinking_budget is not None:  # the client asked (Anthropic's thinking)
        return r.thinking_budget
    # Code completion wants the answer, not thoughts that eat max_tokens; 2.5 Flash
    # thinks by default and is the one family that allows turning it off.
    if r.kind == "completion" and model.startswith("gemini-2.5-flash"):
        return 0
    return None


def generation_config(r: GenerationRequest, model: str,
                      thinking_budget: Optional[int] = None) -> dict:
    cfg: dict[str, Any] = {}
    for key, value in (("temperature", r.temperature), ("topP", r.top_p), ("topK", r.top_k),
                       ("maxOutputTokens", r.max_tokens), ("seed", r.seed),
                       ("presencePenalty", r.presence_penalty),
                       ("frequencyPenalty", r.frequency_penalty)):
        if value is not None:
            cfg[key] = value
    if r.stop:
        cfg["stopSequences"] = list(r.stop)
    if r.n != 1:
        cfg["candidateCount"] = r.n
    if r.logprobs is not None:
        cfg["responseLogprobs"] = True
        if r.logprobs > 0:
            cfg["logprobs"] = r.logprobs
    fmt = r.response_format or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        cfg["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if fmt["type"] == "json_schema" and schema:
            cfg["responseSchema"] = gemini_schema(schema)
    budget = _thinking_budget(r, model, thinking_budget)
    if budget is not None:
        cfg["thinkingConfig"] = {"thinkingBudget": budget}
    return cfg


def encode_request(r: GenerationRequest, model: str,
                   thinking_budget: Optional[int] = None) -> dict:
    """A ``generateContent`` body for ``r`` sent to ``model``."""
    if r.kind == "completion":
        if r.suffix:
            system = [{"text": FIM_INSTRUCTION}]
            text = fim_user_text(r.prompt, r.suffix)
        else:
            system, text = [], r.prompt
        contents = [{"role": "user", "parts": [{"text": text}]}]
    else:
        system, contents = encode_contents(r.messages, model)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if r.kind == "chat" and r.tools:
        body["tools"] = [{"functionDeclarations": [_function_declaration(t) for t in r.tools]}]
        tool_config = _tool_config(r.tool_choice)
        if tool_config:
            body["toolConfig"] = tool_config
    cfg = generation_config(r, model, thinking_budget)
    if cfg:
        body["generationConfig"] = cfg
    return body


# ---- Gemini response -> internal --------------------------------------------------------
def finish_reason(raw: Optional[str], called_tools: bool) -> Optional[str]:
    if raw is None or raw == "FINISH_REASON_UNSPECIFIED":
        return None
    if raw == "STOP":
        return "tool_calls" if called_tools else "stop"
    if raw == "MAX_TOKENS":
        return "length"
    if raw in CONTENT_FILTER:
        return "content_filter"
    # Any other reason (MALFORMED_FUNCTION_CALL, OTHER, …) is reported as Vertex gave it,
    # lower-cased like OpenAI's: calling it "stop" would claim a normal end.
    return str(raw).lower()[:64]


def usage(meta: Any) -> Optional[Usage]:
    """``usageMetadata`` -> Usage; thinking tokens count as completion tokens (billed so)."""
    if not isinstance(meta, dict):
        return None
    return Usage(prompt_tokens=int(meta.get("promptTokenCount") or 0),
                 completion_tokens=int(meta.get("candidatesTokenCount") or 0)
                 + int(meta.get("thoughtsTokenCount") or 0))


def _check_blocked(body: dict) -> None:
    feedback = body.get("promptFeedback") or {}
    reason = feedback.get("blockReason")
    if reason and not body.get("candidates"):
        detail = feedback.get("blockReasonMessage")
        raise errors.InvalidRequest(
            f"Vertex blocked the prompt ({reason})" + (f": {detail}" if detail else ""),
            code="content_filter")


def _parts(candidate: dict) -> list[dict]:
    parts = (candidate.get("content") or {}).get("parts") or []
    return [p for p in parts if isinstance(p, dict)]


def _tool_call(part: dict) -> ToolCall:
    fc = part["functionCall"]
    return ToolCall(id=new_tool_call_id(part.get("thoughtSignature")), name=fc.get("name") or "",
                    arguments=orjson.dumps(fc.get("args") or {}).decode())


def _logprobs(candidate: dict) -> Optional[list[float]]:
    chosen = (candidate.get("logprobsResult") or {}).get("chosenCandidates")
    if not isinstance(chosen, list):
        return None
    return [float(c.get("logProbability", 0.0)) for c in chosen if isinstance(c, dict)]


def decode_response(body: Any, request: GenerationRequest, model: str) -> Generation:
    """A ``generateContent`` answer -> Generation."""
    if not isinstance(body, dict):
        raise errors.UpstreamError("vertex answered with something other than a JSON object")
    _check_blocked(body)
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise errors.UpstreamError("vertex answered without candidates")
    choices = []
    for i, cand in enumerate(candidates):
        if not isinstance(cand, dict):
            continue
        text, reasoning, calls = [], [], []
        for part in _parts(cand):
            if isinstance(part.get("functionCall"), dict):
                calls.append(_tool_call(part))
            elif isinstance(part.get("text"), str):
                (reasoning if part.get("thought") else text).append(part["text"])
        prefix = request.prompt if request.kind == "completion" and request.echo else ""
        choices.append(Choice(
            index=int(cand.get("index", i)), text=prefix + "".join(text),
            reasoning="".join(reasoning) or None, tool_calls=calls,
            finish_reason=finish_reason(cand.get("finishReason"), bool(calls)),
            token_logprobs=_logprobs(cand)))
    return Generation(model=body.get("modelVersion") or model, choices=choices,
                      usage=usage(body.get("usageMetadata")))


class StreamDecoder:
    """SSE events (GenerateContentResponse objects) -> chunks.

    Vertex repeats ``usageMetadata`` on events and sends the final counts last,
    so usage is emitted once, at the end.
    """

    def __init__(self, request: GenerationRequest):
        self.request = request
        self.usage: Optional[Usage] = None
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # choice -> tool calls so far
        self._finished: set[int] = set()  # candidates that carried a finishReason

    def feed(self, event: dict) -> Iterator[Chunk]:
        _check_blocked(event)
        u = usage(event.get("usageMetadata"))
        if u is not None:
            self.usage = u
        for i, cand in enumerate(event.get("candidates") or ()):
            if not isinstance(cand, dict):
                continue
            idx = int(cand.get("index", i))
            first = idx not in self._started
            self._started.add(idx)
            text, reasoning, deltas = [], [], []
            if first and self.request.kind == "completion" and self.request.echo:
                text.append(self.request.prompt)
            for part in _parts(cand):
                if isinstance(part.get("functionCall"), dict):
                    call = _tool_call(part)
                    n = self._calls.get(idx, 0)
                    self._calls[idx] = n + 1
                    deltas.append(ToolCallDelta(index=n, id=call.id, name=call.name,
                                                arguments=call.arguments))
                elif isinstance(part.get("text"), str):
                    (reasoning if part.get("thought") else text).append(part["text"])
            finish = finish_reason(cand.get("finishReason"), idx in self._calls)
            if finish is not None:
                self._finished.add(idx)
            chunk = Chunk(index=idx, role="assistant" if first else None, text="".join(text),
                          reasoning="".join(reasoning) or None, tool_calls=deltas,
                          finish_reason=finish, token_logprobs=_logprobs(cand))
            if first or chunk.text or chunk.reasoning or deltas or finish:
                yield chunk

    def close(self) -> Iterator[Chunk]:
        """Usage, at the end of a complete stream; a stream that ended before every
        candidate got its ``finishReason`` is an ``upstream_incomplete`` error."""
        if not self._started or self._started - self._finished:
            raise incomplete("vertex", "no finishReason")
        if self.usage is not None:
            yield Chunk(index=-1, usage=self.usage)


_STREAM_ERRORS = {429: errors.RateLimited, 503: errors.UpstreamUnavailable,
                  504: errors.UpstreamTimeout}


def stream_error(err: Any) -> errors.GatewayError:
    """A mid-stream ``{"error": {…}}`` event as the gateway error to report."""
    if isinstance(err, dict):
        code, msg = err.get("code"), err.get("message") or err.get("status") or "unknown error"
    else:
        code, msg = None, str(err)
    cls = _STREAM_ERRORS.get(code, errors.UpstreamError) if isinstance(code, int) else errors.UpstreamError
    return cls(f"vertex failed mid-stream: {msg}")


def decode_stream(lines: Iterable[bytes], request: GenerationRequest) -> Iterator[Chunk]:
    """``alt=sse`` lines -> chunks. Vertex sends no ``[DONE]``: the stream ends at EOF,
    complete only when every candidate got a ``finishReason``."""
    dec = StreamDecoder(request)
    for event in sse_objects(lines, "vertex"):
        if "error" in event:
            raise stream_error(event["error"])
        yield from dec.feed(event)
    yield from dec.close()


# ---- embeddings ----------------------------------------------------------------------------
def encode_embeddings(texts: list[str], dimensions: Optional[int]) -> dict:
    body: dict[str, Any] = {"instances": [{"content": t} for t in texts]}
    if dimensions is not None:
        body["parameters"] = {"outputDimensionality": dimensions}
    return body


def decode_embeddings(body: Any, expected: int) -> tuple[list[list[float]], int]:
    """``:predict`` answer -> (vectors in input order, tokens counted)."""
    preds = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(preds, list) or len(preds) != expected:
        raise errors.UpstreamError(
            f"vertex returned {len(preds) if isinstance(preds, list) else 'no'} embeddings "
            f"for {expected} inputs")
    vectors, tokens = [], 0
    for p in preds:
        emb = (p or {}).get("embeddings") or {}
        values = emb.get("values")
        if not isinstance(values, list):
            raise errors.UpstreamError("vertex returned an embedding without values")
        vectors.append([float(v) for v in values])
        tokens += int((emb.get("statistics") or {}).get("token_count") or 0)
    return vectors, tokens
