"""The Responses API under gunicorn gthread workers: streams, a chain of stored responses
across two workers' requests, and the access log's family and token counts."""

from __future__ import annotations

import json
import time

import openai

from tests.support.procs import gunicorn

KEY = "sk-responses-gunicorn-0123456789abcdefghij"


def test_responses_under_gunicorn(upstream, tmp_path):
    env = {"LM_STUDIO_BASE_URL": upstream.url, "API_KEYS": KEY, "DATA_DIR": str(tmp_path)}
    with gunicorn(env, workers=2) as (url, log, _):
        c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        with c.responses.stream(model="tools", input="weather?", extra_headers={
                "X-Request-ID": "resp-7"}, tools=[{"type": "function", "name": "get_weather",
                                                   "parameters": {"type": "object"}}]) as s:
            first = s.get_final_response()
        # Each request may land on either worker: the chain lives in the shared database.
        for i in range(4):
            nxt = c.responses.create(model="tools", previous_response_id=first.id,
                                     input=[{"type": "function_call_output",
                                             "call_id": "call_abc", "output": f"sun {i}"}])
            assert nxt.output_text == f"echo: sun {i}"
            assert c.responses.retrieve(nxt.id).output_text == f"echo: sun {i}"
        time.sleep(0.3)  # the access line of the last request
    access = [json.loads(ln) for ln in log.read_text().splitlines()
              if ln.startswith("{") and '"service.access"' in ln]
    line = next(a for a in access if a.get("request_id") == "resp-7")
    assert line["family"] == "responses" and line["stream"] is True and line["status"] == 200
    assert (line["prompt_tokens"], line["completion_tokens"]) == (20, 10)
    assert line["model"] == "tools" and line["provider"] == "openai"
