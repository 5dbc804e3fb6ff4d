"""The real deployment shape: gunicorn gthread workers, real clients, JSON logs."""

from __future__ import annotations

import json
import time

import openai
import requests

from tests.support.procs import gunicorn


def _log_lines(path):
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_gunicorn_fronting_upstream_with_json_logs(upstream):
    with gunicorn({"LM_STUDIO_BASE_URL": upstream.url, "UPSTREAM_API_KEY": "sk-secret-upstream"}) \
            as (url, log, _):
        c = openai.OpenAI(base_url=url + "/v1", api_key="sk-client-secret", max_retries=0)
        chunks = list(c.chat.completions.create(
            model="echo-1", messages=[{"role": "user", "content": "a b"}], stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Request-ID": "trace-42"}))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "echo: a b"
        r = c.chat.completions.with_raw_response.create(
            model="echo-1", messages=[{"role": "user", "content": "x"}])
        assert len(r.headers["x-request-id"]) == 32
        # the upstream got the gateway's key, never the client's
        assert upstream.state.headers[-1]["Authorization"] == "Bearer sk-secret-upstream"
        time.sleep(0.3)
    lines = _log_lines(log)
    access = [l for l in lines if l.get("logger") == "service.access"]
    streamed = [l for l in access if l.get("request_id") == "trace-42"]
    assert streamed and streamed[0]["status"] == 200 and streamed[0]["stream"] is True
    assert streamed[0]["completion_tokens"] == 3 and streamed[0]["provider"] == "openai"
    assert streamed[0]["model"] == "echo-1" and "duration_ms" in streamed[0] and "ttft_ms" in streamed[0]
    text = log.read_text()
    assert "sk-client-secret" not in text and "sk-secret-upstream" not in text


def test_gunicorn_local_model_default():
    with gunicorn({}, workers=1) as (url, log, _):
        models = requests.get(url + "/v1/models").json()["data"]
        assert models[0]["id"] == "smollm2-135m-instruct"
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        r = c.completions.create(model="smollm2-135m-instruct", prompt="Hello", max_tokens=3)
        assert r.usage.completion_tokens >= 1
