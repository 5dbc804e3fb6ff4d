"""The client address behind trusted proxies: X-Forwarded-For read from the right."""

from __future__ import annotations

import pytest

from service.proxies import TrustedProxies, parse_networks

NGINX = TrustedProxies(parse_networks("127.0.0.1, 10.0.0.0/8"))


@pytest.mark.parametrize("peer,header,client", [
    ("127.0.0.1", None, "127.0.0.1"),                         # no header: the peer
    ("127.0.0.1", "203.0.113.7", "203.0.113.7"),              # nginx names the client
    ("127.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),     # a forged entry before it
    ("127.0.0.1", "203.0.113.7, 10.1.2.3", "203.0.113.7"),    # a chain of trusted proxies
    ("127.0.0.1", "10.1.2.3", "10.1.2.3"),                    # all trusted: the leftmost
    ("127.0.0.1", "203.0.113.7, junk", "127.0.0.1"),          # garbage: stop at the proxy
    ("127.0.0.1", "[2001:db8::1]", "2001:db8::1"),
    ("192.0.2.5", "203.0.113.7", "192.0.2.5"),                # untrusted peer: ignored
])
def test_client_address(peer, header, client):
    assert NGINX.client(peer, header) == client


def test_star_trusts_any_peer_and_empty_trusts_none():
    assert parse_networks("*") is None
    assert TrustedProxies(None).client("192.0.2.5", "203.0.113.7") == "203.0.113.7"
    assert TrustedProxies(parse_networks("")).client("127.0.0.1", "203.0.113.7") == "127.0.0.1"
    with pytest.raises(ValueError, match="'nginx'"):
        parse_networks("127.0.0.1,nginx")
