"""The client's address: the TCP peer, or the last untrusted hop of X-Forwarded-For when the peer is a trusted
proxy (the console, an ingress). Nobody outside the trusted ranges can choose their own address."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(addr: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    peer = peer or "unknown"
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # garbage in the header: fall back to what we know
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer
