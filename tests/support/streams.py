"""Whole responses read with ``requests``, for tests that wait on request-done hooks."""

from __future__ import annotations

import requests

CHAT = [{"role": "user", "content": "a b"}]


def read_stream(url, key, **body) -> str:
    """A whole SSE chat stream. Read to its last byte with requests: the dev server skips
    closing a response (and so its request-done hooks) when a client resets the socket
    early, as httpx does after ``[DONE]``."""
    r = requests.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "echo-1", "messages": CHAT, "stream": True, **body})
    assert r.status_code == 200
    return r.text
