"""``/admin``: keys and usage over HTTP, behind ADMIN_API_KEY."""

from __future__ import annotations

import threading

import openai
import requests

from service import create_app
from service.api.context import on_request_done
from tests.conftest import make_settings, serve

ADMIN = {"Authorization": "Bearer admin-secret-for-tests"}


def test_admin_keys_lifecycle_and_usage(upstream, tmp_path):
    app = create_app(make_settings(lm_studio_base_url=upstream.url, data_dir=tmp_path,
                                   admin_api_key="admin-secret-for-tests"))
    with serve(app) as url:
        assert requests.get(url + "/admin/keys").status_code == 401
        r = requests.get(url + "/admin/keys", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"

        r = requests.post(url + "/admin/keys", headers=ADMIN, json={
            "name": "ci", "owner_email": "ci@example.com", "tier": "team",
            "requests_per_minute": 50, "tokens_per_minute": 10000, "allowed_models": ["echo-1"],
            "expires_at": "2099-01-01T00:00:00Z"})
        assert r.status_code == 201
        created = r.json()
        secret, key_id = created.pop("key"), created["id"]
        assert secret.startswith("sk-") and created["tier"] == "team"
        assert created["expires_at"].startswith("2099-01-01") and created["request_count"] == 0

        bad = requests.post(url + "/admin/keys", headers=ADMIN, json={"requests_per_minute": -5})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "requests_per_minute"
        assert requests.post(url + "/admin/keys", headers=ADMIN, data="{").status_code == 400
        assert requests.post(url + "/admin/keys", headers=ADMIN,
                             json={"expires_at": "2099-01-01T00:00:00"}).status_code == 400

        finished = threading.Semaphore(0)
        on_request_done(app, lambda record: finished.release())
        c = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        for _ in range(2):
            c.chat.completions.create(model="echo-1", messages=[{"role": "user", "content": "x"}])
            assert finished.acquire(timeout=10)
        listed = requests.get(url + "/admin/keys", headers=ADMIN).json()["data"]
        assert [k["id"] for k in listed] == [key_id]
        assert secret not in str(listed) and listed[0]["key_hint"] == f"sk-…{secret[-4:]}"

        assert app.extensions["usage"].flush()
        shown = requests.get(url + f"/admin/keys/{key_id}", headers=ADMIN).json()
        assert shown["request_count"] == 2 and shown["completion_tokens"] == 6
        usage = requests.get(url + "/admin/usage", headers=ADMIN,
                             params={"key": key_id, "since": "2020-01-01"}).json()["data"]
        assert len(usage) == 1
        assert usage[0] | {"day": None} == {
            "key_id": key_id, "model": "echo-1", "day": None, "requests": 2, "prompt_tokens": 10,
            "completion_tokens": 6, "total_tokens": 16, "errors": 0}
        assert requests.get(url + "/admin/usage", headers=ADMIN,
                            params={"since": "2999-01-01"}).json()["data"] == []
        r = requests.get(url + "/admin/usage", headers=ADMIN, params={"since": "yesterday"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "since"

        revoked = requests.delete(url + f"/admin/keys/{key_id}", headers=ADMIN).json()
        assert revoked["revoked"] is True and revoked["revoked_at"]
        assert requests.post(url + "/admin/keys/key_nope/revoke", headers=ADMIN).status_code == 404
        active = requests.get(url + "/admin/keys", headers=ADMIN,
                              params={"include_revoked": "false"}).json()["data"]
        assert active == []


def test_admin_api_is_off_without_admin_key(tmp_path):
    app = create_app(make_settings(data_dir=tmp_path, local_preload=False))
    with serve(app) as url:
        r = requests.get(url + "/admin/keys", headers={"Authorization": "Bearer "})
        assert r.status_code == 404 and "ADMIN_API_KEY" in r.json()["error"]["message"]
