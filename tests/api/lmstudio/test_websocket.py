"""LM Studio's SDK WebSockets under gunicorn gthread, from Python: bad frames, unknown
endpoints, clients that leave mid-handshake or never answer, the connection cap and the
idle timeout. Every refusal is the protocol's error form (or a JSON HTTP error before the
upgrade), never a 500, and every connection gives its threads and its slot back."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
import requests
from simple_websocket import Client, ConnectionClosed
from simple_websocket.errors import ConnectionError as WsConnectionError

from tests.support.procs import gunicorn

IDLE = 1.0
CAP = 2
UPGRADE = ("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.fixture(scope="module")
def gw(models_file):
    env = {"MODELS_FILE": str(models_file), "GUNICORN_THREADS": "32",
           "LMSTUDIO_WS_IDLE_SECONDS": str(IDLE), "LMSTUDIO_WS_MAX_CONNECTIONS": str(CAP)}
    with gunicorn(env, workers=1) as (url, log, proc):
        yield url, log, proc


def _connect(url: str, path: str, auth: bool = True) -> Client:
    """An SDK-like client; a 503 is retried briefly: a connection just closed by the
    client may still hold its slot for a moment on the server."""
    deadline = time.monotonic() + 5
    while True:
        try:
            ws = Client.connect(url.replace("http://", "ws://") + path)
            break
        except WsConnectionError as exc:
            if exc.status_code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    if auth:
        ws.send(json.dumps({"authVersion": 1, "clientIdentifier": "t", "clientPasskey": "p"}))
        assert json.loads(ws.receive(5)) == {"success": True}
    return ws


def _ask(ws: Client, packet) -> dict:
    ws.send(packet if isinstance(packet, (str, bytes)) else json.dumps(packet))
    raw = ws.receive(5)
    assert raw is not None, f"no answer to {packet!r}"
    return json.loads(raw)


def _closed(ws: Client, within: float = 10) -> ConnectionClosed:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            ws.receive(0.2)
        except ConnectionClosed as exc:
            return exc
    raise AssertionError("the server did not close the WebSocket")


def _worker_threads(proc) -> int:
    children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
    assert len(children) == 1
    return len(os.listdir(f"/proc/{children[0]}/task"))


def _settle(proc, baseline: int, within: float = 15) -> int:
    deadline = time.monotonic() + within
    while (n := _worker_threads(proc)) > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
    return n


def _clean(log) -> None:
    text = log.read_text()
    assert "Traceback" not in text and '"status":500' not in text, text[-3000:]


def test_every_packet_is_answered_in_the_protocols_form(gw):
    url, log, _ = gw
    llm = _connect(url, "/llm")
    try:
        assert _ask(llm, {"type": "keepAlive"}) == {"type": "keepAliveAck"}
        unknown = _ask(llm, {"type": "rpcCall", "endpoint": "unloadModel", "callId": 7,
                             "parameter": {"identifier": "coder"}})
        assert unknown["type"] == "rpcError" and unknown["callId"] == 7
        assert "unloadModel" in unknown["error"]["title"]
        assert "/v1" in unknown["error"]["suggestion"]
        channel = _ask(llm, {"type": "channelCreate", "endpoint": "predict", "channelId": 8,
                             "creationParameter": {}})
        assert channel["type"] == "channelError" and channel["channelId"] == 8
        signal = _ask(llm, {"type": "signalSubscribe", "endpoint": "x", "subscribeId": 1,
                            "creationParameter": None})
        assert signal["type"] == "signalError" and signal["subscribeId"] == 1
        writable = _ask(llm, {"type": "writableSignalSubscribe", "endpoint": "x",
                              "subscribeId": 2, "creationParameter": None})
        assert writable["type"] == "writableSignalError"
        for bad in ("not json", "[1, 2]", '{"type": "rpcCall", "callId": "9", "endpoint": "x"}',
                    '{"type": "launchMissiles"}', '{"type": "channelAck", "channelId": 1}',
                    b"\xff\xfe binary"):
            assert _ask(llm, bad)["type"] == "communicationWarning", bad
        stale = _ask(llm, {"type": "channelSend", "channelId": 8, "message": {}})
        assert stale["type"] == "communicationWarning"
        # getModelInfo: found, not found (undefined or error as asked), malformed specifier
        info = _ask(llm, {"type": "rpcCall", "endpoint": "getModelInfo", "callId": 9, "parameter": {
            "specifier": {"type": "instanceReference", "instanceReference": "coder"},
            "throwIfNotFound": False}})
        assert info["result"]["contextLength"] == 32768
        none = _ask(llm, {"type": "rpcCall", "endpoint": "getModelInfo", "callId": 10, "parameter": {
            "specifier": {"type": "query", "query": {"identifier": "nope"}},
            "throwIfNotFound": False}})
        assert none == {"type": "rpcResult", "callId": 10}
        thrown = _ask(llm, {"type": "rpcCall", "endpoint": "getModelInfo", "callId": 11,
                            "parameter": {"specifier": {"type": "query", "query": {}},
                                          "throwIfNotFound": True}})
        assert thrown["type"] == "rpcResult" and thrown["result"]["modelKey"] == "coder"
        bad_spec = _ask(llm, {"type": "rpcCall", "endpoint": "getModelInfo", "callId": 12,
                              "parameter": {"specifier": 5}})
        assert bad_spec["type"] == "rpcError" and bad_spec["callId"] == 12
        bad_load = _ask(llm, {"type": "channelCreate", "endpoint": "getOrLoad", "channelId": 13})
        assert bad_load["type"] == "channelError" and bad_load["channelId"] == 13
        # the connection still serves after all that
        listed = _ask(llm, {"type": "rpcCall", "endpoint": "listLoaded", "callId": 14})
        assert [m["modelKey"] for m in listed["result"]] == ["coder", "team/vision-8k", "nocontext"]
    finally:
        llm.close()
    system = _connect(url, "/system")
    try:
        listed = _ask(system, {"type": "rpcCall", "endpoint": "listDownloadedModels", "callId": 0})
        assert [m["type"] for m in listed["result"]] == ["llm", "llm", "llm", "embedding"]
        assert listed["result"][-1]["maxContextLength"] == 512
        wrong_ns = _ask(system, {"type": "rpcCall", "endpoint": "listLoaded", "callId": 1})
        assert wrong_ns["type"] == "rpcError" and "/system" in wrong_ns["error"]["title"]
    finally:
        system.close()
    _clean(log)


@pytest.mark.parametrize("first", [
    "hello", "{}", '{"authVersion": 2, "clientIdentifier": "a", "clientPasskey": "b"}',
    '{"authVersion": 1, "clientIdentifier": 5, "clientPasskey": "b"}',
])
def test_a_bad_authentication_packet_is_refused_then_closed(gw, first):
    url, log, _ = gw
    ws = _connect(url, "/llm", auth=False)
    answer = _ask(ws, first)
    assert answer["success"] is False and answer["error"]
    assert _closed(ws).reason == 1008
    _clean(log)


def test_an_idle_connection_is_closed(gw):
    url, log, _ = gw
    ws = _connect(url, "/system")
    started = time.monotonic()
    closed = _closed(ws)
    assert closed.reason == 1000 and "idle" in closed.message
    assert IDLE * 0.8 <= time.monotonic() - started
    silent = _connect(url, "/system", auth=False)  # no authentication packet either
    assert _closed(silent).reason == 1008


def test_bad_requests_get_json_errors_before_the_upgrade(gw):
    url, log, _ = gw
    plain = requests.get(url + "/llm", timeout=5)
    assert plain.status_code == 426 and plain.json()["error"]["code"] == "upgrade_required"
    no_key = requests.get(url + "/llm", timeout=5, headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"})
    assert no_key.status_code == 400 and "handshake" in no_key.json()["error"]["message"]
    other = requests.get(url + "/embedding", timeout=5, headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert other.status_code == 404 and other.json()["error"]["message"]
    _clean(log)


def _raw(url: str, path: str = "/llm") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10)
    s.sendall(UPGRADE.format(path=path).encode())
    return s


def _upgraded(url: str) -> socket.socket:
    """A raw socket past the 101 (a 503 from a slot not yet given back is retried)."""
    deadline = time.monotonic() + 5
    while True:
        s = _raw(url)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        if got.startswith(b"HTTP/1.1 101"):
            return s
        s.close()
        assert got.startswith(b"HTTP/1.1 503") and time.monotonic() < deadline, got
        time.sleep(0.05)


def _leave_in_every_way(url: str) -> None:
    for _ in range(3):
        _raw(url).close()  # gone before the 101 is read
        s = _upgraded(url)
        s.close()  # gone before the authentication packet
        s = _upgraded(url)
        s.sendall(b"\x81\xfe\x00\x40\x00\x00\x00\x00{")  # half a masked frame, then gone
        s.close()
        s = _upgraded(url)
        s.shutdown(socket.SHUT_WR)  # half-closed: EOF while the server waits
        s.close()
    # Clients that keep their sockets open and never answer the server's close frame:
    # the server closes them after IDLE, then shuts the sockets down.
    return [_upgraded(url) for _ in range(CAP)]


def test_clients_that_leave_give_back_threads_and_slots(gw):
    url, log, proc = gw
    for s in _leave_in_every_way(url):  # the worker's thread pool grows to what it needs
        s.close()
    time.sleep(1)  # for their reader threads to see the EOF
    baseline = _worker_threads(proc)
    mute = _leave_in_every_way(url)
    try:
        # A leak keeps at least the mute clients' reader threads (CAP of them) while they
        # hold their sockets; the pool itself may grow by one if the timing differs.
        assert _settle(proc, baseline + 1) <= baseline + 1, "reader threads were left behind"
    finally:
        for s in mute:
            s.close()

    held = [_connect(url, "/llm") for _ in range(CAP)]  # every slot came back
    try:
        listed = _ask(held[0], {"type": "rpcCall", "endpoint": "listLoaded", "callId": 0})
        assert len(listed["result"]) == 3
    finally:
        for ws in held:
            ws.close()
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
    _clean(log)


def test_the_cap_refuses_with_503_and_other_routes_still_answer(gw):
    url, log, _ = gw
    held = [_connect(url, "/llm") for _ in range(CAP)]
    try:
        refused = requests.get(url + "/system", timeout=5, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        assert "LMSTUDIO_WS_MAX_CONNECTIONS" in refused.json()["error"]["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        assert requests.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
        assert requests.get(url + "/v1/models", timeout=5).status_code == 200
        chat = requests.post(url + "/v1/chat/completions", timeout=10, json={
            "model": "coder", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200, chat.text
    finally:
        for ws in held:
            ws.close()
    again = _connect(url, "/system")
    again.close()
    _clean(log)
