"""deploy/compose.yaml read as Compose would: the file, ``${VAR…}`` interpolation, services."""

from __future__ import annotations

import re

import yaml

from tests.support.procs import ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"
GATEWAYS = ("gateway-1", "gateway-2")
#: What the tests give the variables the file requires (``${VAR:?…}``).
SECRETS = {"ADMIN_API_KEY": "admin-secret", "POSTGRES_PASSWORD": "pg-secret"}
_SUBST = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` (KeyError if unset)."""
    def one(m: re.Match) -> str:
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""
    return _SUBST.sub(one, str(value))


def referenced(value) -> set[str]:
    """The variables ``value`` interpolates."""
    return {m.group(1) for m in _SUBST.finditer(str(value))}


def env_of(compose: dict, service: str) -> dict[str, str]:
    """A service's ``environment`` mapping, values as strings, not interpolated."""
    env = compose["services"][service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def published(compose: dict, service: str) -> list[tuple[int, int]]:
    """(host port, container port) of a service's short-syntax ``ports``."""
    out = []
    for entry in compose["services"][service].get("ports", []):
        host, _, container = str(entry).rpartition(":")
        out.append((int(host.rpartition(":")[2]), int(container.split("/")[0])))
    return out
