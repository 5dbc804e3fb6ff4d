"""Helios /complete, /health and /status on the real embedded model (SmolLM2-135M)."""

from __future__ import annotations

import ast
import time

import pytest
import requests

from tests.support.helios import SEED_JAVASCRIPT, SEED_PYTHON


def _check_shape(body: dict) -> None:
    assert list(body) == ["suggestion", "confidence", "processing_time"]
    assert isinstance(body["suggestion"], str)
    assert isinstance(body["confidence"], float) and 0.0 <= body["confidence"] <= 1.0
    assert isinstance(body["processing_time"], float) and body["processing_time"] > 0


def _brackets_balanced(text: str) -> bool:
    depth = {"(": 0, "[": 0, "{": 0}
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in text:
        if ch in depth:
            depth[ch] += 1
        elif ch in pairs:
            depth[pairs[ch]] -= 1
            if depth[pairs[ch]] < 0:
                return False
    return not any(depth.values())


def test_seed_python_example(local_url):
    r = requests.post(local_url + "/complete", json=SEED_PYTHON, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    _check_shape(body)
    s = body["suggestion"]
    assert s.strip() and s == s.strip(), body
    assert "def factorial" not in s and "if n == 0" not in s and "```" not in s
    assert 0 < body["confidence"] < 1  # a real figure from token probabilities
    # Inserted at the cursor, the suggestion gives valid Python.
    ast.parse(SEED_PYTHON["code"] + s + "\n")


def test_seed_javascript_example(local_url):
    r = requests.post(local_url + "/complete", json=SEED_JAVASCRIPT, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    _check_shape(body)
    s = body["suggestion"]
    assert s.strip() and s == s.strip(), body
    assert "function calculateSum" not in s and "let total = 0" not in s and "```" not in s
    assert 0 < body["confidence"] < 1
    # JavaScript statements at the cursor: brackets balance and lines end like statements.
    assert _brackets_balanced(s), s
    assert all(line.rstrip().endswith((";", "{", "}")) for line in s.splitlines() if line.strip()), s


def test_empty_file(local_url):
    """A new, empty file (empty code and file name: an empty prompt) gets a suggestion,
    not a 500 (found by the fuzz test)."""
    r = requests.post(local_url + "/complete", timeout=60, json={
        "code": "", "language": "python", "position": {"line": 0, "character": 0},
        "filename": "", "max_tokens": 2})
    assert r.status_code == 200, r.text
    _check_shape(r.json())


def test_short_budget_and_temperature_zero_is_deterministic(local_url):
    body = dict(SEED_PYTHON, max_tokens=3, temperature=0)
    first = requests.post(local_url + "/complete", json=body, timeout=60).json()
    second = requests.post(local_url + "/complete", json=body, timeout=60).json()
    assert first["suggestion"] == second["suggestion"] and first["suggestion"]
    assert len(first["suggestion"]) < 30  # three tokens
    # (llama.cpp reuses the cached prompt, so the last digits of logits may differ)
    assert first["confidence"] == pytest.approx(second["confidence"], abs=0.05)


def test_code_after_the_cursor_is_not_repeated(local_url):
    # The editor sends the whole buffer; the cursor is inside the function body.
    code = "def area(width, height):\n    \n\nprint(area(2, 3))\n"
    body = {"code": code, "language": "python", "position": {"line": 1, "character": 4},
            "filename": "geometry.py", "max_tokens": 12, "temperature": 0}
    r = requests.post(local_url + "/complete", json=body, timeout=60)
    assert r.status_code == 200, r.text
    s = r.json()["suggestion"]
    assert "print(area(2, 3))" not in s and "def area" not in s


def test_health_and_status(local_url):
    r = requests.get(local_url + "/health", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["status", "model_loaded", "server_version", "uptime"]
    assert body["status"] == "healthy" and body["model_loaded"] is True
    assert body["server_version"] == "0.1.0" and isinstance(body["uptime"], float)

    r = requests.get(local_url + "/status", timeout=10)
    assert r.status_code == 200
    st = r.json()
    assert list(st) == ["server_status", "model_loaded", "model_name", "uptime", "config"]
    assert st["server_status"] == "running" and st["model_loaded"] is True
    assert st["model_name"] == "smollm2-135m-instruct"
    assert st["config"] == {"max_tokens": 100, "temperature": 0.1, "host": "127.0.0.1",
                            "port": 8000}
    time.sleep(0.02)  # uptime is a clock reading, not a counter
    assert requests.get(local_url + "/status", timeout=10).json()["uptime"] >= st["uptime"]


@pytest.mark.parametrize("method,path", [("post", "/health"), ("get", "/complete"),
                                         ("get", "/restart")])
def test_wrong_method_uses_the_helios_error_body(local_url, method, path):
    r = requests.request(method, local_url + path, timeout=10)
    assert r.status_code == 405
    assert list(r.json()) == ["detail", "error_code", "timestamp"]
    assert r.json()["error_code"] == "METHOD_NOT_ALLOWED"
