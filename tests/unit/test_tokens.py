"""Token sources: a real subprocess standing in for `helix`, and google-auth ADC."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from service.providers.tokens import (
    AdcTokenSource, HelixTokenSource, TokenUnavailable, helix_argv,
)
from tests.support import fake_helix
from tests.support.vertex_standin import start_vertex_standin


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def helix(tmp_path):
    path = fake_helix.install(tmp_path / "bin")
    return path.parent


def source(helix_dir, clock=None, **kw) -> HelixTokenSource:
    argv = helix_argv(f"{helix_dir / 'helix'} auth access-token print -a", kw.pop("profile", None))
    opts = {"ttl": 600, "margin": 60, "timeout": 10}
    opts.update(kw)
    return HelixTokenSource(argv, clock=clock or Clock(), **opts)


def test_argv_is_split_without_a_shell_and_profile_appended():
    assert helix_argv("helix auth access-token print -a", None) == [
        "helix", "auth", "access-token", "print", "-a"]
    assert helix_argv("'/opt/my tools/helix' auth access-token print -a; rm -rf /", "team dev") == [
        "/opt/my tools/helix", "auth", "access-token", "print", "-a;", "rm", "-rf", "/",
        "--profile", "team dev"]


def test_profile_reaches_the_command(helix):
    assert source(helix, profile="prod-eu").token() == "tok-1"
    assert fake_helix.calls(helix) == ["auth access-token print -a --profile prod-eu"]


def test_fifty_threads_cause_one_invocation(helix):
    (helix / "delay").write_text("0.3")  # the CLI is slow: every thread arrives during it
    src = source(helix)
    barrier = threading.Barrier(50)
    results, failures = [], []

    def ask():
        barrier.wait()
        try:
            results.append(src.token())
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures
    assert results == ["tok-1"] * 50
    assert len(fake_helix.calls(helix)) == 1


def test_ttl_and_refresh_margin_follow_the_clock(helix):
    clock = Clock()
    src = source(helix, clock, ttl=600, margin=60)
    assert src.token() == "tok-1"
    clock.now += 539  # 1 s before the refresh margin starts
    assert src.token() == "tok-1"
    assert len(fake_helix.calls(helix)) == 1
    clock.now += 2  # inside the margin: refreshed early
    assert src.token() == "tok-2"
    clock.now += 539
    assert src.token() == "tok-2"
    assert len(fake_helix.calls(helix)) == 2


def test_early_refresh_does_not_block_other_requests(helix):
    clock = Clock()
    src = source(helix, clock)
    assert src.token() == "tok-1"
    clock.now += 550
    (helix / "delay").write_text("1")
    leader = threading.Thread(target=src.token)
    leader.start()
    started = threading.Event()
    while not started.wait(0.01):  # until the CLI has been started by the leader
        if len(fake_helix.calls(helix)) == 2:
            started.set()
    assert src.token() == "tok-1"  # still valid: answered without waiting for the CLI
    leader.join(15)
    assert src.token() == "tok-2"


def test_expired_token_is_never_served(helix):
    clock = Clock()
    src = source(helix, clock, ttl=600, margin=0)
    assert src.token() == "tok-1"
    clock.now += 600
    assert src.token() == "tok-2"


def test_failure_gives_clear_error_and_is_not_cached(helix, caplog):
    caplog.set_level(logging.DEBUG)
    src = source(helix)
    (helix / "fail").write_text("Error: session expired; run `helix auth login`\n")
    with pytest.raises(TokenUnavailable) as exc:
        src.token()
    assert exc.value.status == 503
    assert exc.value.message == ("could not obtain an access token: Error: session expired; "
                                 "run `helix auth login`")
    (helix / "fail").unlink()
    assert src.token() == "tok-2"  # the next call ran the command again
    assert len(fake_helix.calls(helix)) == 2
    assert "tok-2" not in caplog.text


def test_waiters_share_a_failed_refresh(helix):
    (helix / "fail").write_text("denied")
    (helix / "delay").write_text("0.3")
    src = source(helix)
    barrier = threading.Barrier(10)
    errors = []

    def ask():
        barrier.wait()
        try:
            src.token()
        except TokenUnavailable as exc:
            errors.append(exc.message)

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == ["could not obtain an access token: denied"] * 10
    assert len(fake_helix.calls(helix)) == 1


def test_missing_command_and_timeout(helix, tmp_path):
    src = HelixTokenSource([str(tmp_path / "nowhere" / "helix")], ttl=600, margin=60, timeout=5)
    with pytest.raises(TokenUnavailable, match="command not found: .*nowhere/helix"):
        src.token()
    (helix / "delay").write_text("10")
    with pytest.raises(TokenUnavailable, match="did not finish in 0.3 s"):
        source(helix, timeout=0.3).token()


def test_silent_command_is_an_error(tmp_path):
    src = HelixTokenSource(["true"], ttl=600, margin=60, timeout=5)
    with pytest.raises(TokenUnavailable, match="printed no token"):
        src.token()


def test_invalidate_forces_a_refresh(helix):
    src = source(helix)
    assert src.token() == "tok-1"
    src.invalidate("some-other-token")
    assert src.token() == "tok-1"
    src.invalidate("tok-1")
    assert src.token() == "tok-2"


# ---- Google ADC --------------------------------------------------------------------------
@pytest.fixture
def service_account(tmp_path, monkeypatch):
    """A service-account key whose token endpoint is the loopback stand-in."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    server = start_vertex_standin()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "proj", "private_key_id": "k1",
            "private_key": pem, "client_email": "gw@proj.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": f"{server.url}/token"}
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    yield server
    server.shutdown()
    server.server_close()


def test_adc_gets_caches_and_refreshes_single_flight(service_account):
    src = AdcTokenSource()
    assert src.token() == "adc-token-1"
    assert src.token() == "adc-token-1"
    assert service_account.state.tokens_issued == 1
    src.invalidate("adc-token-1")
    barrier = threading.Barrier(20)
    got = []

    def ask():
        barrier.wait()
        got.append(src.token())

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got == ["adc-token-2"] * 20 and service_account.state.tokens_issued == 2


def test_adc_without_credentials_is_a_clear_error_and_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    src = AdcTokenSource()
    with pytest.raises(TokenUnavailable, match="could not obtain an access token: .*missing.json"):
        src.token()
    with pytest.raises(TokenUnavailable):
        src.token()  # not cached: google.auth.default is asked again
