"""Helios settings: defaults from the seed, bad values named at start-up."""

from __future__ import annotations

import pytest

from service.settings import load_settings

from tests.support.config import assert_rejected


def test_seed_defaults():
    s = load_settings()
    assert (s.helios_default_max_tokens, s.helios_default_temperature) == (100, 0.1)
    assert (s.helios_rate_limit_per_second, s.helios_rate_limit_burst) == (10, 20)
    assert s.helios_max_concurrent == 5 and 0 < s.helios_queue_wait_seconds < 1


@pytest.mark.parametrize("env,name", [
    ({"HELIOS_MAX_CONCURRENT": "0"}, "HELIOS_MAX_CONCURRENT"),
    ({"HELIOS_QUEUE_WAIT_SECONDS": "soon"}, "HELIOS_QUEUE_WAIT_SECONDS"),
    ({"HELIOS_RATE_LIMIT_PER_SECOND": "-1"}, "HELIOS_RATE_LIMIT_PER_SECOND"),
    ({"HELIOS_RATE_LIMIT_BURST": "0"}, "HELIOS_RATE_LIMIT_BURST"),
    ({"HELIOS_DEFAULT_TEMPERATURE": "1.5"}, "HELIOS_DEFAULT_TEMPERATURE"),
    ({"HELIOS_DEFAULT_MAX_TOKENS": "0"}, "HELIOS_DEFAULT_MAX_TOKENS"),
])
def test_bad_values_name_the_variable(monkeypatch, env, name):
    assert_rejected(monkeypatch, env, name)
