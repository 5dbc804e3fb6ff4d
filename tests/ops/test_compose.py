"""deploy/compose.yaml is the scale-out docs/operations.md describes, and says only true things.

No Docker engine runs here, so the stack is not started: the file is parsed (PyYAML) and
checked against the gateway's settings (names and values), its own services (database,
Redis, nginx's upstream and port), deploy/nginx.conf and the documentation; ``docker
compose config`` (the plugin, or Debian's docker-compose) checks it too when present.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from service.auth import check_exposure
from service.proxies import parse_networks
from service.settings import Settings, load_settings
from tests.support.compose import (
    COMPOSE, GATEWAYS, SECRETS, env_of, interpolate, load, published, referenced,
)
from tests.support.procs import ROOT

DEPLOY = ROOT / "deploy"
#: Variables gunicorn.conf.py reads itself (not gateway settings).
GUNICORN_VARS = set(re.findall(r"\b(?:GUNICORN_[A-Z_]+|PROMETHEUS_MULTIPROC_DIR)\b",
                               (ROOT / "gunicorn.conf.py").read_text()))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load()


def section(page: str, heading: str) -> str:
    text = (ROOT / page).read_text()
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_services(compose):
    services = compose["services"]
    assert set(services) == {*GATEWAYS, "nginx", "postgres", "redis"}
    for name in GATEWAYS:
        svc = services[name]
        assert (COMPOSE.parent / svc["build"]["context"] / "Dockerfile").is_file()
        assert {"postgres", "redis"} <= set(svc["depends_on"])
        assert "ports" not in svc, f"{name}: only nginx is published"
    assert set(services["nginx"]["depends_on"]) == set(GATEWAYS)
    assert "ports" not in services["postgres"] and "ports" not in services["redis"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
        for gw in GATEWAYS:
            assert services[gw]["depends_on"][name]["condition"] == "service_healthy"


def test_gateway_environment_is_settings_that_validate(compose):
    for name in GATEWAYS:
        env = env_of(compose, name)
        unknown = [k for k in env if k.lower() not in Settings.model_fields
                   and k not in GUNICORN_VARS]
        assert not unknown, f"{name}: not a setting nor a gunicorn.conf.py variable: {unknown}"
        values = {k.lower(): interpolate(v, SECRETS) for k, v in env.items()
                  if k.lower() in Settings.model_fields}
        settings = load_settings(**values)  # the real validators: URLs, schemes, networks
        # beyond loopback inside the container, so keys must be on from the start
        check_exposure(settings, keys_exist=False)
        assert int(env["GUNICORN_WORKERS"]) >= 1
        assert "PROMETHEUS_MULTIPROC_DIR" not in env  # each instance its own (the default)
    assert env_of(compose, GATEWAYS[0]) == env_of(compose, GATEWAYS[1])


def test_shared_state_points_at_the_services(compose):
    env = env_of(compose, GATEWAYS[0])
    db = urlsplit(interpolate(env["DATABASE_URL"], SECRETS))
    pg = env_of(compose, "postgres")
    assert db.scheme == "postgresql" and db.hostname == "postgres" and db.port == 5432
    assert db.username == pg["POSTGRES_USER"] and db.path == "/" + pg["POSTGRES_DB"]
    assert referenced(env["DATABASE_URL"]) >= referenced(pg["POSTGRES_PASSWORD"]) == \
        {"POSTGRES_PASSWORD"}
    limits = urlsplit(env["RATELIMIT_STORAGE_URI"])
    assert limits.scheme == "redis" and limits.hostname == "redis" and limits.port == 6379


def test_forwarded_allow_ips_trusts_exactly_nginx(compose):
    env = env_of(compose, GATEWAYS[0])
    nginx_ip = ipaddress.ip_address(
        compose["services"]["nginx"]["networks"]["gateway"]["ipv4_address"])
    subnet = ipaddress.ip_network(compose["networks"]["gateway"]["ipam"]["config"][0]["subnet"])
    assert nginx_ip in subnet
    trusted = parse_networks(env["FORWARDED_ALLOW_IPS"])
    assert trusted is not None and all(n.num_addresses == 1 for n in trusted)
    assert any(nginx_ip in n for n in trusted)


def _upstream_servers(conf: str) -> list[str]:
    block = re.search(r"upstream helios_gateway \{(.*?)\}", conf, re.S).group(1)
    return re.findall(r"^\s*server\s+(\S+)", block, re.M)


def test_nginx_upstream_and_port_match_the_services(compose):
    nginx = compose["services"]["nginx"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nginx["volumes"]}
    conf_file = (COMPOSE.parent / mounts["/etc/nginx/conf.d/default.conf"]).resolve()
    assert conf_file == DEPLOY / "nginx.compose.conf"
    conf = conf_file.read_text()
    servers = _upstream_servers(conf)
    assert sorted(s.split(":")[0] for s in servers) == sorted(GATEWAYS)
    for server in servers:
        host, port = server.split(":")
        assert port == env_of(compose, host)["HELIOS_PORT"]
    listen = int(re.search(r"^\s*listen (\d+);", conf, re.M).group(1))
    assert published(compose, "nginx") == [(8080, listen)]


def _without_comments_and_servers(text: str) -> list[str]:
    lines = [line.split("#", 1)[0].rstrip() for line in text.splitlines()]
    return [line for line in lines if line.strip() and not re.match(r"\s*server\s+\S+:\d+", line)]


def test_compose_nginx_is_deploy_nginx_but_for_the_upstream():
    assert _without_comments_and_servers((DEPLOY / "nginx.compose.conf").read_text()) == \
        _without_comments_and_servers((DEPLOY / "nginx.conf").read_text())


def test_the_docs_say_what_the_file_does(compose):
    host_port = published(compose, "nginx")[0][0]
    docs = section("docs/operations.md", "Docker Compose")
    urls = set(re.findall(r"http://localhost:(\d+)", docs))
    assert urls == {str(host_port)}, urls
    assert f"http://localhost:{host_port}" in (ROOT / "README.md").read_text()
    env = env_of(compose, GATEWAYS[0])
    # the scale-out section's shared services, with the schemes it names
    for name, scheme in re.findall(r"`([A-Z_]+)=(\w+)://",
                                   section("docs/operations.md", "Scaling out")):
        assert interpolate(env[name], SECRETS).startswith(scheme + "://"), name
    # every variable the Compose section names is real: a setting, gunicorn's, or the file's own
    own = {v for svc in compose["services"].values()
           for v in referenced(svc.get("environment", {}))} | set(env_of(compose, "postgres"))
    for name in set(re.findall(r"`([A-Z][A-Z0-9_]{3,})[`=]", docs)):
        assert name.lower() in Settings.model_fields or name in GUNICORN_VARS or name in own, name
    for name, value in env.items():
        if name in ("HELIOS_PORT", "FORWARDED_ALLOW_IPS", "REQUIRE_AUTH"):
            assert value in docs, f"docs/operations.md does not give {name}'s value {value}"
    nginx_ip = compose["services"]["nginx"]["networks"]["gateway"]["ipv4_address"]
    assert nginx_ip in docs


def _compose_command() -> list[str] | None:
    """Docker's Compose plugin, else Debian's ``docker-compose`` (1.29, which validates the
    file against the Compose schema too); neither needs a running Docker engine for
    ``config``."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_it():
    command = _compose_command()
    if command is None:
        pytest.skip("neither Docker's Compose plugin nor docker-compose is installed here: "
                    "`docker compose config` not run (the other tests of this module check "
                    "the file)")
    run = [*command, "-f", str(COMPOSE), "config"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60,
                         env={**os.environ, **SECRETS})
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert set(resolved["services"]) == {*GATEWAYS, "nginx", "postgres", "redis"}
    env = resolved["services"]["gateway-1"]["environment"]
    assert env["DATABASE_URL"] == "postgresql://gateway:pg-secret@postgres:5432/gateway"
    # the secrets are required: without them Compose refuses the file
    bare = {k: v for k, v in os.environ.items() if k not in SECRETS}
    out = subprocess.run(run, capture_output=True, text=True, timeout=60, env=bare)
    assert out.returncode != 0 and "POSTGRES_PASSWORD" in out.stderr + out.stdout
