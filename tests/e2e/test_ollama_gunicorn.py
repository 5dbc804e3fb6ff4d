"""The Ollama API under gunicorn gthread workers: NDJSON streams and access-log counts."""

from __future__ import annotations

import json
import time

import ollama

from tests.support.procs import gunicorn
from tests.support.rawhttp import open_post, read_lines


def test_ollama_stream_under_gunicorn(upstream):
    with gunicorn({"LM_STUDIO_BASE_URL": upstream.url}, workers=1) as (url, log, _):
        c = ollama.Client(host=url, headers={"X-Request-ID": "ollama-7"})
        parts = list(c.chat(model="echo-1", messages=[{"role": "user", "content": "a b"}],
                            stream=True))
        assert "".join(p.message.content for p in parts) == "echo: a b" and parts[-1].done
        # gunicorn writes each line as it comes: a slow upstream's lines arrive apart
        s = open_post(url, "/api/chat", {"model": "endless",
                                         "messages": [{"role": "user", "content": "go"}]})
        head, lines = read_lines(s, limit=6)
        s.close()
        assert b"X-Accel-Buffering: no" in head
        assert lines[-1][0] - lines[2][0] >= 0.1
        time.sleep(0.3)  # let the access line of the closed stream be written
    access = [json.loads(ln) for ln in log.read_text().splitlines()
              if ln.startswith("{") and '"service.access"' in ln]
    line = next(a for a in access if a.get("request_id") == "ollama-7")
    assert line["path"] == "/api/chat" and line["stream"] is True
    assert line["completion_tokens"] == 3 and line["provider"] == "openai"
