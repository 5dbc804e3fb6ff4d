"""Read a gateway's ``/metrics`` with prometheus-client's own parser."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, **kw) -> dict[str, list]:
    """``{sample name: [(labels, value), ...]}`` from ``url/metrics``."""
    resp = requests.get(url + "/metrics", timeout=10, **kw)
    resp.raise_for_status()
    assert resp.headers["Content-Type"].startswith("text/plain")
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: dict, name: str, **labels) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for lab, v in samples.get(name, [])
               if all(lab.get(k) == str(w) for k, w in labels.items()))
