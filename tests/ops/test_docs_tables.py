"""The reference tables in docs/ name what the code has: every metric, every route."""

from __future__ import annotations

import re

from prometheus_client import Counter
from prometheus_client.metrics import MetricWrapperBase

import service.metrics
from service import create_app
from service.settings import Settings
from tests.support.procs import ROOT


def _docs() -> str:
    """README and docs/ with every path parameter spelled ``{}`` (``{id}``, ``<key_id>``)."""
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    return re.sub(r"\{\w*\}|<\w+>", "{}", text)


def test_every_metric_is_in_the_operations_table():
    page = (ROOT / "docs" / "operations.md").read_text()
    metrics = [m for m in vars(service.metrics).values() if isinstance(m, MetricWrapperBase)]
    assert len(metrics) > 10
    missing = []
    for metric in metrics:
        name = metric._name + ("_total" if isinstance(metric, Counter) else "")
        if f"`{name}`" not in page:
            missing.append(name)
    assert not missing, f"metrics docs/operations.md does not list: {missing}"


def test_every_route_is_documented(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, lm_studio_base_url="http://127.0.0.1:9"))
    docs = _docs()
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "console" in rule.endpoint:
            continue  # the console's own files are documented as /console/
        path = re.sub(r"<(?:\w+:)?\w+>", "{}", rule.rule)
        # named in backticks, with or without its method: `/v1/models`, `GET /v1/models`
        if not re.search(rf"`(?:[A-Z]+ )?{re.escape(path)}", docs):
            missing.append(rule.rule)
    assert not missing, f"routes no page of docs/ names: {missing}"
