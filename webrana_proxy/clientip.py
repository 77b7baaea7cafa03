"""The client's address: the TCP peer, or the last untrusted hop of X-Forwarded-For when the peer is a trusted
proxy (the console, an ingress). Nobody outside the trusted ranges can choose their own address.

``limit_key``: what per-address limits and the sign-in lockout count by. An IPv4 address is itself; an IPv6
address is its /64, because one subscriber is routed a whole /64 (often more) and can rotate through it freely.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPV6_PREFIX = 64  # the smallest block one subscriber is routed (RFC 6177); rotating inside it is free
_V4_MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:a.b.c.d


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


def limit_key(addr: str) -> str:
    """The address limits count by: IPv4 as it is, IPv6 as its /64 (``2001:0db8:0001:0002::/64``), an IPv4-mapped
    IPv6 address as the IPv4 address. Computed once per request (middleware), never per limit call."""
    if ":" not in addr:
        return addr  # IPv4 (or "unknown"): the common case costs one scan of a short string
    try:
        packed = socket.inet_pton(socket.AF_INET6, addr.partition("%")[0])  # a zone (fe80::1%eth0) is local
    except OSError:
        return addr
    if packed[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    prefix = packed[:IPV6_PREFIX // 8].hex()
    return ":".join(prefix[i:i + 4] for i in range(0, len(prefix), 4)) + f"::/{IPV6_PREFIX}"
