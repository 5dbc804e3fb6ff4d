"""deploy/compose.yaml's stack run without Docker: its two gateways' environment under
gunicorn, the real nginx with deploy/nginx.compose.conf in front, PostgreSQL and Redis.

Only what a container network gives is replaced: service host names by loopback
addresses (a fresh test database, a Redis key prefix), nginx's fixed address by
127.0.0.1, each container's port 8000 by a free port, and the embedded model by the OpenAI-compatible stand-in (the file's
``LM_STUDIO_BASE_URL`` option), so two instances do not load two models on the
test machine. Everything else is the file's: 0.0.0.0 with ``REQUIRE_AUTH``, the
admin key, two workers per instance, nginx's configuration.
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import urlsplit

import openai
import pytest
import requests

from tests.support.compose import COMPOSE, GATEWAYS, SECRETS, env_of, interpolate, load
from tests.support.nginx import nginx, nginx_binary
from tests.support.procs import gunicorn
from tests.support.services import postgres_url, redis_prefix  # noqa: F401 - fixtures

if nginx_binary() is None:
    reason = "nginx is not installed (apt-get install nginx-light; `make test` does it as root)"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def _instance_env(compose: dict, service: str, database: str, redis: tuple[str, str],
                  upstream: str) -> dict[str, str]:
    env = {k: interpolate(v, {**SECRETS, "LM_STUDIO_BASE_URL": upstream})
           for k, v in env_of(compose, service).items()}
    assert urlsplit(env["DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(env["RATELIMIT_STORAGE_URI"]).hostname == "redis"
    nginx_ip = compose["services"]["nginx"]["networks"]["gateway"]["ipv4_address"]
    assert env["FORWARDED_ALLOW_IPS"] == nginx_ip
    # each instance on a free loopback port here (the file's 8000 is per container)
    assert env.pop("HELIOS_PORT") == "8000"
    env.update(DATABASE_URL=database, RATELIMIT_STORAGE_URI=redis[0],
               RATELIMIT_KEY_PREFIX=redis[1], FORWARDED_ALLOW_IPS="127.0.0.1",
               AUTH_CACHE_SECONDS="1")
    return env


def _served(log) -> int:
    """Chat completions an instance's access log recorded."""
    count = 0
    for line in log.read_text().splitlines():
        try:
            count += json.loads(line).get("path") == "/v1/chat/completions"
        except (ValueError, AttributeError):
            pass
    return count


def test_compose_stack_serves_through_nginx_with_shared_state(upstream, postgres_url,  # noqa: F811
                                                              redis_prefix, tmp_path):  # noqa: F811
    compose = load()
    envs = [_instance_env(compose, s, postgres_url, redis_prefix, upstream.url) for s in GATEWAYS]
    assert envs[0]["HELIOS_HOST"] == "0.0.0.0" and envs[0]["REQUIRE_AUTH"] == "true"
    workers = int(envs[0]["GUNICORN_WORKERS"])
    admin = {"Authorization": f"Bearer {SECRETS['ADMIN_API_KEY']}"}
    with gunicorn(envs[0], workers=workers) as (url_1, log_1, _), \
            gunicorn(envs[1], workers=workers) as (url_2, log_2, _), \
            nginx([urlsplit(u).netloc for u in (url_1, url_2)], tmp_path,
                  COMPOSE.parent / "nginx.compose.conf") as front:
        # keys are required from the start, and made through nginx with the admin key
        refused = requests.post(front + "/v1/chat/completions", timeout=30,
                                json={"model": "echo-1", "messages": []})
        assert refused.status_code == 401, refused.text
        made = requests.post(front + "/admin/keys", json={"name": "laptop"}, headers=admin,
                             timeout=30)
        assert made.status_code == 201, made.text
        client = openai.OpenAI(base_url=front + "/v1", api_key=made.json()["key"], max_retries=0)
        for i in range(6):
            reply = client.chat.completions.create(
                model="echo-1", messages=[{"role": "user", "content": f"hello {i}"}])
            assert reply.choices[0].message.content == f"echo: hello {i}"
        time.sleep(0.3)
        assert _served(log_1) >= 1 and _served(log_2) >= 1, "nginx used one instance only"
        # one usage table behind both instances, read through either
        deadline = time.monotonic() + 10
        while True:
            rows = requests.get(url_2 + "/admin/usage", headers=admin, timeout=30).json()
            total = sum(r["requests"] for r in rows["data"] if r["key_id"] == made.json()["id"])
            if total == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert total == 6, rows
        assert requests.get(front + "/console/", timeout=30).status_code == 200
