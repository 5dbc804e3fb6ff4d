"""/complete request validation and what reaches the backend (an upstream stand-in)."""

from __future__ import annotations

import pytest
import requests

from tests.support.helios import SEED_PYTHON, assert_helios_error, helios_app
from tests.support.upstream import start_upstream


@pytest.fixture(scope="module")
def gw():
    """(url, upstream): HELIOS_MODEL on the stand-in upstream, no rate limit."""
    up = start_upstream()
    try:
        with helios_app(lm_studio_base_url=up.url, helios_model="echo-1",
                        helios_rate_limit_per_second=0, helios_max_tokens_limit=256) as (url, _):
            yield url, up
    finally:
        up.shutdown()
        up.server_close()


def body(**changes) -> dict:
    out = {k: v for k, v in SEED_PYTHON.items()}
    for key, value in changes.items():
        if value is ...:
            out.pop(key)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("payload,field", [
    (body(code=...), "code"),
    (body(code=42), "code"),
    (body(language=...), "language"),
    (body(language=None), "language"),
    (body(position=...), "position"),
    (body(position={"line": 1}), "position.character"),
    (body(position={"line": -1, "character": 0}), "position.line"),
    (body(position={"line": "4", "character": 8}), "position.line"),
    (body(position={"line": 4.5, "character": 8}), "position.line"),
    (body(position={"line": 4, "character": -2}), "position.character"),
    (body(position=[4, 8]), "position"),
    (body(filename=...), "filename"),
    (body(filename=7), "filename"),
    (body(max_tokens=0), "max_tokens"),
    (body(max_tokens="many"), "max_tokens"),
    (body(max_tokens=True), "max_tokens"),
    (body(max_tokens=257), "max_tokens"),
    (body(temperature=1.5), "temperature"),
    (body(temperature=-0.1), "temperature"),
    (body(temperature="hot"), "temperature"),
    (body(position={"line": 9, "character": 0}), "position.line"),
    (body(language="cobol"), "language"),
])
def test_invalid_fields_are_400_naming_the_field(gw, payload, field):
    url, up = gw
    calls = sum(up.state.calls.values())
    r = requests.post(url + "/complete", json=payload, timeout=10)
    err = assert_helios_error(r, 400, "INVALID_REQUEST")
    assert err["detail"].startswith(field + ":"), err
    assert sum(up.state.calls.values()) == calls  # nothing reached the backend


def test_every_problem_is_named(gw):
    r = requests.post(gw[0] + "/complete", json={"code": 1, "position": {}}, timeout=10)
    detail = assert_helios_error(r, 400, "INVALID_REQUEST")["detail"]
    for field in ("code", "language", "position.line", "position.character", "filename"):
        assert field + ":" in detail, detail


@pytest.mark.parametrize("data", [b"", b"{nope", b"[1, 2]", b'"text"'])
def test_body_must_be_a_json_object(gw, data):
    r = requests.post(gw[0] + "/complete", data=data,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert_helios_error(r, 400, "INVALID_REQUEST")


def test_body_too_large(gw):
    big = b'{"code": "' + b"x" * (21 * 1024 * 1024) + b'"}'
    r = requests.post(gw[0] + "/complete", data=big, headers={"Content-Type": "application/json"},
                      timeout=30)
    assert_helios_error(r, 413, "INVALID_REQUEST")


def test_what_the_backend_receives(gw):
    url, up = gw
    code = "def area(w, h):\n    \n\nprint(area(2, 3))\n"
    r = requests.post(url + "/complete", timeout=10, json={
        "code": code, "language": "Python", "position": {"line": 1, "character": 4},
        "filename": "src/geometry.py", "max_tokens": 16, "temperature": 0.3,
        "editor": "extra fields are ignored"})
    assert r.status_code == 200, r.text
    sent = up.state.bodies[-1]
    assert sent["model"] == "echo-1" and sent["stream"] is True
    assert sent["prompt"] == "# src/geometry.py\ndef area(w, h):\n    "
    assert sent["suffix"] == "\n\nprint(area(2, 3))\n"  # for fill-in-the-middle
    assert sent["max_tokens"] == 16 and sent["temperature"] == 0.3 and sent["logprobs"] == 1
    assert sent["stop"] == ["\n\n", "\ndef ", "\nclass ", "\nif __name__"]


def test_defaults_and_fallback_confidence(gw):
    url, up = gw
    r = requests.post(url + "/complete", json=SEED_PYTHON, timeout=10)
    assert r.status_code == 200, r.text
    sent = up.state.bodies[-1]
    assert sent["max_tokens"] == 100 and sent["temperature"] == 0.1 and "suffix" not in sent
    out = r.json()
    assert list(out) == ["suggestion", "confidence", "processing_time"]
    # The stand-in streams "echo: <prompt>" without token probabilities: the first
    # line is kept (the next one dedents) and confidence is the documented fallback.
    assert out["suggestion"] == "echo: # math_utils.py"
    assert out["confidence"] == 0.5


@pytest.mark.parametrize("language,filename,header", [
    ("PY", "script", "# script"),
    ("c++", "main.cc", "// main.cc"),
    ("js", "view.tsx", "// view.tsx"),
    ("", "lib.rs", "// lib.rs"),
    ("JSON", "package.json", None),
])
def test_language_aliases_and_extensions(gw, language, filename, header):
    url, up = gw
    r = requests.post(url + "/complete", timeout=10, json={
        "code": "x", "language": language, "position": {"line": 0, "character": 1},
        "filename": filename, "max_tokens": 4})
    assert r.status_code == 200, r.text
    prompt = up.state.bodies[-1]["prompt"]
    assert prompt == (f"{header}\nx" if header else "x")


def test_a_whole_large_file_fits(gw):
    url, up = gw
    before = "".join(f"value_{i} = {i}\n" for i in range(5000))  # ~75 KB
    r = requests.post(url + "/complete", timeout=10, json={
        "code": before + "total = \n" + before, "language": "python",
        "position": {"line": 5000, "character": 8}, "filename": "big.py", "max_tokens": 4})
    assert r.status_code == 200, r.text
    sent = up.state.bodies[-1]
    assert sent["prompt"].endswith("value_4999 = 4999\ntotal = ")
    assert len(sent["prompt"]) <= 4000 + len("# big.py\n")  # HELIOS_MAX_PREFIX_CHARS
    assert sent["suffix"].startswith("\nvalue_0 = 0\n") and len(sent["suffix"]) <= 1000
