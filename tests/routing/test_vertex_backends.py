"""Two Vertex backends side by side keep apart in the upstream metrics (issue 13)."""

from __future__ import annotations

import requests

from service import create_app
from tests.conftest import make_settings, serve
from tests.support import fake_helix
from tests.support.metrics import scrape, value
from tests.support.vertex_standin import start_vertex_standin

FILE = """
[backends.vertex-eu]
kind = "vertex"
project = "proj-eu"
location = "europe-west4"
base_url = "{url}/eu"
[backends.vertex-us]
kind = "vertex"
project = "proj-us"
location = "us-central1"
base_url = "{url}/us"

[models.gemini-eu]
deployments = [{{ backend = "vertex-eu", model = "gemini-2.5-flash" }}]
[models.gemini-us]
deployments = [{{ backend = "vertex-us", model = "gemini-2.5-pro" }}]
"""


def test_each_vertex_backend_has_its_own_upstream_label(tmp_path):
    standin = start_vertex_standin()
    helix = fake_helix.install(tmp_path / "bin").parent
    path = tmp_path / "models.toml"
    path.write_text(FILE.format(url=standin.url))
    app = create_app(make_settings(
        models_file=path, vertex_auth="helix",
        helix_access_token_cmd=f"{helix / 'helix'} auth access-token print -a"))
    try:
        with serve(app) as url:
            before = scrape(url)  # the registry is per process: count this test's calls
            for model, n in (("gemini-eu", 2), ("gemini-us", 1)):
                for _ in range(n):
                    r = requests.post(url + "/v1/chat/completions", timeout=10, json={
                        "model": model, "messages": [{"role": "user", "content": "hi"}]})
                    assert r.status_code == 200, r.text
                    assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
            metrics = scrape(url)
    finally:
        app.extensions["gateway"].close()
        standin.shutdown()
        standin.server_close()
    def calls(upstream):
        count = "gateway_upstream_request_duration_seconds_count"
        return (value(metrics, count, upstream=upstream, outcome="ok")
                - value(before, count, upstream=upstream, outcome="ok"))

    assert (calls("vertex-eu"), calls("vertex-us"), calls("vertex")) == (2, 1, 0)
