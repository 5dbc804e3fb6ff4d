"""Custom endpoints (seed 004): served exactly as the TOML says; bad files stop start-up
with a message naming the entry, both in ``create_app`` and in gunicorn's master."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import requests

from service import create_app
from service.settings import ConfigError
from tests.conftest import make_settings, serve
from tests.support.procs import ROOT, free_port

SEED_STYLE = """
[[endpoints]]
method = "GET"
path = "/api/custom"
response = { message = "This is a custom endpoint", status = "active" }

[[endpoints]]
method = "post"
path = "/api/data"
status_code = 201
response = { id = 123, created = true, tags = ["a", "b"], nested = { ratio = 0.5, none = [] } }

[[endpoints]]
method = "DELETE"
path = "/api/data"
status_code = 410
response = "gone"

[[endpoints]]
method = "GET"
path = "/v1/custom/info"
response = [1, 2.5, "three", { when = 2024-01-02T03:04:05Z }]
"""


def _write(tmp_path, text: str):
    path = tmp_path / "endpoints.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_seed_style_endpoints_are_served_exactly(tmp_path):
    app = create_app(make_settings(custom_endpoints_file=_write(tmp_path, SEED_STYLE),
                                   local_preload=False))
    with serve(app) as url:
        r = requests.get(url + "/api/custom")
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        assert r.json() == {"message": "This is a custom endpoint", "status": "active"}
        r = requests.post(url + "/api/data", json={"ignored": True})
        assert r.status_code == 201
        assert r.json() == {"id": 123, "created": True, "tags": ["a", "b"],
                            "nested": {"ratio": 0.5, "none": []}}
        r = requests.delete(url + "/api/data")
        assert (r.status_code, r.json()) == (410, "gone")
        assert requests.get(url + "/v1/custom/info").json() == \
            [1, 2.5, "three", {"when": "2024-01-02T03:04:05+00:00"}]
        # methods the file does not list are refused like any route's
        assert requests.put(url + "/api/data").status_code == 405
        assert requests.get(url + "/api/custom").headers["X-Request-ID"]
        # built-in routes are untouched
        assert requests.get(url + "/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("text, message", [
    ('[[endpoints]]\nmethod = "FETCH"\npath = "/x"\nresponse = 1\n',
     "endpoint #1 (FETCH /x): unknown method 'FETCH'; use one of GET, POST, PUT, DELETE, PATCH"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/a"\nresponse = 1\n'
     '[[endpoints]]\nmethod = "get"\npath = "/a"\nresponse = 2\n',
     "endpoint #2 (get /a): duplicate of endpoint #1 (GET /a)"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/a"\nresponse = 1\nstatus_code = 99\n',
     "endpoint #1 (GET /a): status_code 99 must be an integer from 200 to 599"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/a"\nresponse = 1\nstatus_code = "200"\n',
     "endpoint #1 (GET /a): status_code '200' must be an integer from 200 to 599"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/a"\nresponse = 1\nstatus_code = 204\n',
     "endpoint #1 (GET /a): status_code 204 cannot carry the response body"),
    ('[[endpoints]]\nmethod = "GET"\npath = "a"\nresponse = 1\n',
     "endpoint #1 (GET a): path 'a' must be a literal URL path"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/x/<id>"\nresponse = 1\n',
     "endpoint #1 (GET /x/<id>): path '/x/<id>' must be a literal URL path"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/a"\n',
     "endpoint #1 (GET /a): 'response' is required"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/a"\nresponse = 1\nstatus = 201\n',
     "endpoint #1 (GET /a): unknown key(s) status; allowed: method, path, response, status_code"),
    ('title = "x"\n', "unknown top-level key(s) title"),
    ('endpoints = 3\n', "expected one or more [[endpoints]] tables"),
    ('[[endpoints]\n', "is not valid TOML"),
    # paths the gateway already serves, whatever the method
    ('[[endpoints]]\nmethod = "POST"\npath = "/v1/chat/completions"\nresponse = 1\n',
     "endpoint #1 (POST /v1/chat/completions): the path belongs to a built-in route"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/v1/chat/completions"\nresponse = 1\n',
     "endpoint #1 (GET /v1/chat/completions): the path belongs to a built-in route"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/v1/models/my-model"\nresponse = 1\n',
     "endpoint #1 (GET /v1/models/my-model): the path belongs to a built-in route"),
    ('[[endpoints]]\nmethod = "GET"\npath = "/metrics"\nresponse = 1\n',
     "endpoint #1 (GET /metrics): the path belongs to a built-in route"),
])
def test_invalid_files_are_refused_with_the_entry_named(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        create_app(make_settings(custom_endpoints_file=path, local_preload=False))
    assert info.value.message.startswith(f"CUSTOM_ENDPOINTS_FILE: {path}: ")
    assert message in info.value.message


def test_missing_file_is_refused_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"CUSTOM_ENDPOINTS_FILE: no such file"):
        make_settings(custom_endpoints_file=tmp_path / "nope.toml")


def test_gunicorn_refuses_to_start_with_a_bad_file(tmp_path):
    path = _write(tmp_path, '[[endpoints]]\nmethod = "FETCH"\npath = "/x"\nresponse = 1\n')
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "CUSTOM_ENDPOINTS_FILE": str(path),
             "HELIOS_PORT": str(free_port())},
        capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "configuration error: CUSTOM_ENDPOINTS_FILE:" in proc.stderr
    assert "unknown method 'FETCH'" in proc.stderr


def test_gunicorn_stops_when_the_app_refuses_its_endpoints(tmp_path):
    # a clash is only known once the routes exist, i.e. in the worker: the master must
    # stop (exit 4, "App failed to load") rather than respawn workers forever
    path = _write(tmp_path, '[[endpoints]]\nmethod = "GET"\npath = "/readyz"\nresponse = 1\n')
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "CUSTOM_ENDPOINTS_FILE": str(path), "LOCAL_PRELOAD": "false",
             "GUNICORN_WORKERS": "1", "HELIOS_PORT": str(free_port())},
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "endpoint #1 (GET /readyz): the path belongs to a built-in route" in proc.stderr
