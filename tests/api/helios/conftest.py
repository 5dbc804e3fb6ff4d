"""Fixtures shared by the Helios API tests."""

from __future__ import annotations

import pytest

from tests.support.upstream import start_upstream


@pytest.fixture(scope="module")
def up():
    """One OpenAI-compatible stand-in per test module (Helios apps front it by model name)."""
    server = start_upstream()
    yield server
    server.shutdown()
    server.server_close()
