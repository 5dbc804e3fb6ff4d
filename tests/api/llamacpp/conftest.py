"""Fixtures for /infill tests: the Helios tests' module-wide upstream stand-in."""

from tests.api.helios.conftest import up  # noqa: F401 - a fixture, used by name
