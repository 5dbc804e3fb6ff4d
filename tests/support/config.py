"""Assertions about configuration errors."""

from __future__ import annotations

import pytest

from service.settings import ConfigError, load_settings


def assert_rejected(monkeypatch, env: dict[str, str], name: str) -> ConfigError:
    """Loading settings with ``env`` fails with a message naming ``name``."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert name in str(exc.value)
    return exc.value
