"""The client's address behind trusted reverse proxies (``FORWARDED_ALLOW_IPS``).

Per-IP limits, the Helios per-client limit and the logs use
``request.remote_addr``. Behind nginx that is nginx for everyone, so this WSGI
middleware replaces ``REMOTE_ADDR`` with the client named in
``X-Forwarded-For`` -- but only when the connection comes from a configured
proxy address, and only as far as the chain of trusted proxies goes: the
header is read from the right (each proxy appends the address it saw), trusted
addresses are skipped, and the first untrusted one is the client. A client
sending its own ``X-Forwarded-For`` therefore changes nothing: nginx appends
the real peer after it, and a direct caller is not trusted at all.

Trust is by address, as gunicorn's ``forwarded_allow_ips`` (same variable,
same syntax: addresses or networks, comma-separated, ``*`` for any), rather
than werkzeug's ``ProxyFix`` hop count, which believes any caller that reaches
the gateway directly.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> Optional[list[Network]]:
    """``FORWARDED_ALLOW_IPS`` as networks; None for ``*`` (trust every peer).

    Raises ValueError naming the entry that is not an address or network.
    """
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if "*" in entries:
        return None
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return out


def _address(text: str):
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6] or [v6]:port
        text = text[1:text.index("]")]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    def __init__(self, networks: Optional[list[Network]]):
        self.networks = networks  # None: every peer is trusted

    def trusts(self, addr) -> bool:
        if addr is None:
            return False
        if self.networks is None:
            return True
        return any(addr in net for net in self.networks)

    def client(self, peer: Optional[str], forwarded_for: Optional[str]) -> Optional[str]:
        """The client's address: ``peer``, or what trusted proxies say it is."""
        if not forwarded_for or not self.trusts(_address(peer or "")):
            return peer
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            addr = _address(hop)
            if addr is None:  # garbage where a trusted proxy's entry should be: stop there
                break
            client = str(addr)
            if not self.trusts(addr):
                break
        return client


class ForwardedFor:
    """WSGI middleware: ``REMOTE_ADDR`` becomes the client trusted proxies name.

    The peer's own address is kept in ``environ["gateway.proxy_addr"]``.
    """

    def __init__(self, app, proxies: TrustedProxies):
        self.app = app
        self.proxies = proxies

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR")
        client = self.proxies.client(peer, environ.get("HTTP_X_FORWARDED_FOR"))
        if client != peer:
            environ["gateway.proxy_addr"] = peer
            environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)
