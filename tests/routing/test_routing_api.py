"""MODELS_FILE end to end: three loopback stand-in upstreams behind one gateway."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import ollama
import openai
import pytest
import requests

from service import create_app
from service.api.context import on_request_done
from tests.conftest import make_settings, serve
from tests.support import metrics as prom
from tests.support.upstream import start_upstream

FILE = """
[router]
allowed_fails = 1
cooldown_seconds = {cooldown}

[backends.vllm-a]
kind = "openai"
base_url = "{a}"
max_retries = 0
[backends.vllm-b]
kind = "openai"
base_url = "{b}"
max_retries = 0
[backends.spare]
kind = "openai"
base_url = "{c}"

[models.coder]
deployments = [{{ backend = "vllm-a", model = "echo-a" }}, {{ backend = "vllm-b", model = "echo-b" }}]
aliases = ["gpt-4o"]
context_length = 32768
capabilities = ["tools"]
fallbacks = ["spare"]

[models.spare]
deployments = [{{ backend = "spare", model = "echo-spare" }}]
context_length = 8192

[models.small]
deployments = [{{ backend = "vllm-a", model = "ctx-20" }}]
context_length = 16
context_window_fallbacks = ["big"]

[models.big]
deployments = [{{ backend = "vllm-b", model = "echo-big" }}]
context_length = 131072
capabilities = ["tools", "vision"]
"""


@pytest.fixture
def three():
    servers = [start_upstream() for _ in range(3)]
    yield servers
    for s in servers:
        s.shutdown()
        s.server_close()


def _gateway(tmp_path, servers, cooldown=30, **settings):
    a, b, c = servers
    path = tmp_path / "models.toml"
    path.write_text(FILE.format(a=a.url, b=b.url, c=c.url, cooldown=cooldown))
    return create_app(make_settings(models_file=path, retry_backoff_seconds=0, **settings))


def _chat(url, model, text="hi", stream=False):
    return requests.post(f"{url}/v1/chat/completions", timeout=30, stream=stream, json={
        "model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})


def _served_by(server):
    return sum(server.state.calls.values())


def test_alias_rewrites_the_upstream_name_and_answers_with_the_name_sent(three, tmp_path):
    with serve(_gateway(tmp_path, three)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x")
        reply = client.chat.completions.create(model="gpt-4o",
                                               messages=[{"role": "user", "content": "hi"}])
        assert reply.model == "gpt-4o"  # the name the client sent, not the entry's
        sent = [b["model"] for s in three[:2] for b in s.state.bodies]
        assert sent in (["echo-a"], ["echo-b"])
        chunks = list(client.chat.completions.create(
            model="coder", stream=True, messages=[{"role": "user", "content": "hi there"}]))
        assert {c.model for c in chunks} == {"coder"}
        streamed = list(client.chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "hi"}]))
        assert {c.model for c in streamed} == {"gpt-4o"}


def test_two_deployments_share_the_load(three, tmp_path):
    with serve(_gateway(tmp_path, three)) as url:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: _chat(url, "coder").status_code, range(200)))
    assert codes == [200] * 200
    a, b = _served_by(three[0]), _served_by(three[1])
    assert a + b == 200 and abs(a - b) <= 20, (a, b)  # within ±10 % of an even split


def test_killing_one_upstream_mid_traffic_loses_no_request(three, tmp_path):
    a = three[0]
    port = a.server_address[1]
    with serve(_gateway(tmp_path, three, cooldown=3)) as url:
        results, stop = [], threading.Event()

        def client(i):
            out = []
            while not stop.is_set():
                stream = bool(i % 2)
                r = _chat(url, "coder", "ping pong", stream=stream)
                ok = "[DONE]" in r.text if stream else r.json()["model"] == "coder"
                out.append((r.status_code, ok and "pong" in r.text))
            results.extend(out)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        a.shutdown()
        a.server_close()  # connection refused from now on
        time.sleep(0.5)
        cooling = requests.get(url + "/readyz", timeout=10).json().get("cooldowns", {})
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert len(results) > 20
        assert all(r == (200, True) for r in results), [r for r in results if r != (200, True)]
        assert "vllm-a/echo-a" in cooling
        samples = prom.scrape(url)
        assert prom.value(samples, "gateway_deployment_cooldowns_total", backend="vllm-a") >= 1
        assert prom.value(samples, "gateway_fallbacks_total", model="coder",
                          backend="vllm-a") >= 1
        # Back on the same port after the cool-down: the deployment is tried again.
        revived = start_upstream(port)
        try:
            time.sleep(3.5)
            for _ in range(6):
                assert _chat(url, "coder").status_code == 200
            assert _served_by(revived) > 0
        finally:
            revived.shutdown()
            revived.server_close()
        assert "vllm-a/echo-a" not in requests.get(url + "/readyz", timeout=10).json().get(
            "cooldowns", {})


def test_every_deployment_down_falls_back_to_the_fallback_model(three, tmp_path):
    for s in three[:2]:
        s.shutdown()
        s.server_close()
    with serve(_gateway(tmp_path, three)) as url:
        r = _chat(url, "coder", "still here")
        assert r.status_code == 200 and r.json()["model"] == "coder"
        assert [b["model"] for b in three[2].state.bodies] == ["echo-spare"]


def test_context_overflow_falls_back_to_the_larger_model(three, tmp_path):
    with serve(_gateway(tmp_path, three)) as url:
        short = _chat(url, "small", "tiny")
        assert short.status_code == 200 and short.json()["model"] == "small"
        long = _chat(url, "small", "a prompt far longer than twenty characters")
        assert long.status_code == 200, long.text
        assert long.json()["model"] == "small"
        assert three[1].state.bodies[-1]["model"] == "echo-big"


def test_unknown_name_is_404_in_all_three_families(three, tmp_path):
    with serve(_gateway(tmp_path, three)) as url:
        r = _chat(url, "gpt-5-ultra")
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["code"] == "model_not_found" and "does not exist" in err["message"]
        with pytest.raises(openai.NotFoundError):
            openai.OpenAI(base_url=url + "/v1", api_key="x").models.retrieve("gpt-5-ultra")
        r = requests.post(url + "/api/chat", timeout=10, json={
            "model": "gpt-5-ultra", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 404 and "does not exist" in r.json()["error"]
        with pytest.raises(ollama.ResponseError) as exc:
            ollama.Client(host=url).generate(model="gpt-5-ultra", prompt="x")
        assert exc.value.status_code == 404
    assert not any(s.state.bodies for s in three)
    with serve(_gateway(tmp_path, three, helios_model="gpt-5-ultra")) as url:
        r = requests.post(url + "/complete", timeout=10, json={
            "code": "def f(", "language": "python", "filename": "a.py", "position": {"line": 0, "character": 6}})
        assert r.status_code == 404, r.text


def test_clients_list_exactly_the_public_names(three, tmp_path):
    with serve(_gateway(tmp_path, three)) as url:
        listed = openai.OpenAI(base_url=url + "/v1", api_key="x").models.list().data
        assert [m.id for m in listed] == ["coder", "spare", "small", "big"]
        raw = {m["id"]: m for m in requests.get(url + "/v1/models", timeout=10).json()["data"]}
        assert raw["coder"]["context_length"] == 32768
        assert raw["big"]["capabilities"] == ["tools", "vision"]
        tags = ollama.Client(host=url).list().models
        assert [m.model for m in tags] == ["coder", "spare", "small", "big"]
        show = ollama.Client(host=url).show("big")
        assert "vision" in show.capabilities and "tools" in show.capabilities


def test_two_openai_upstreams_side_by_side_are_told_apart(three, tmp_path):
    app = _gateway(tmp_path, three)
    rows = []
    on_request_done(app, lambda rec: rows.append((rec.model, rec.provider, rec.upstream_model)))
    with serve(app) as url:
        before = prom.scrape(url)  # the registry is per process: compare counts
        for _ in range(4):
            assert _chat(url, "coder").status_code == 200
        checks = requests.get(url + "/readyz", timeout=10).json()["checks"]
        assert {"provider:vllm-a", "provider:vllm-b", "provider:spare"} <= set(checks)
        samples = prom.scrape(url)
    assert sorted({r for r in rows if r[0]}) == [("coder", "vllm-a", "echo-a"), ("coder", "vllm-b", "echo-b")]
    for backend in ("vllm-a", "vllm-b"):
        labels = {"model": "coder", "provider": backend}
        assert prom.value(samples, "gateway_requests_total", **labels) - \
            prom.value(before, "gateway_requests_total", **labels) == 2
