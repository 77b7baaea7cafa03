"""The one address guard for URLs that users or admins give us to call (webhooks; the admin-defined upstreams of
the reach issue): which schemes, hosts and addresses may be reached, checked after DNS resolution.

``resolve_target(url, policy)`` checks the URL's form, resolves its host (literal IPs need no lookup), checks
EVERY address it resolves to, and returns them. The caller then connects only to those addresses
(``PinnedResolver`` for aiohttp), so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot send the request elsewhere. Call it at send time, not only when the URL is saved.

What is refused unless a policy allows it:

* anything that is not ``https`` (``http`` only when ``allow_http_loopback`` and every address is loopback: dev);
* user info in the URL (``https://user:pass@host``), fragments, hosts that are not names or IP literals;
* addresses that are not globally routable: loopback (127/8, ::1), private (10/8, 172.16/12, 192.168/16,
  fc00::/7), link-local (169.254/16 with the cloud metadata address, fe80::/10), CGNAT 100.64/10, unspecified,
  multicast, reserved and documentation ranges. IPv4 carried inside IPv6 (::ffff:a.b.c.d, 64:ff9b::/96 NAT64,
  2002::/16 6to4) is judged by the IPv4 address it carries.

``allow_loopback`` and ``allow_private`` open those two classes (dev mode; an admin's upstream on a private
network). Link-local, multicast, unspecified and reserved addresses are never allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, as text. The default asks the system resolver off the loop.
Resolve = Callable[[str, int], Awaitable[list[str]]]
MAX_URL_CHARS = 2048
NAT64 = ipaddress.ip_network("64:ff9b::/96")
PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))  # RFC 1918, CGNAT, ULA


class AddressRefused(Exception):
    """The URL may not be called: the message says why, in words a user can act on."""


@dataclass(frozen=True, slots=True)
class Policy:
    allow_loopback: bool = False  # dev mode: a receiver on this machine
    allow_private: bool = False  # an admin's upstream on the private network
    allow_http_loopback: bool = False  # http:// (no TLS) only to loopback: dev mode


STRICT = Policy()


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: connect only to ``addresses`` (each was allowed), with ``host`` for TLS and the Host header."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def address_class(ip: IPAddress) -> str:
    """``global``, ``loopback``, ``private``, ``link-local`` or ``forbidden`` (multicast, reserved, unspecified,
    documentation...). Link-local and forbidden addresses are never allowed."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return address_class(inner)
    if ip.is_link_local or (isinstance(ip, ipaddress.IPv6Address) and ip.scope_id):  # a zone id names a link
        return "link-local"
    if ip.is_loopback:
        return "loopback"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "forbidden"
    if ip.is_global:
        return "global"
    if any(ip in net for net in PRIVATE):
        return "private"
    return "forbidden"  # documentation, benchmarking and other special-purpose ranges


def allowed(ip: IPAddress, policy: Policy) -> bool:
    kind = address_class(ip)
    return (kind == "global" or (kind == "loopback" and policy.allow_loopback)
            or (kind == "private" and policy.allow_private))


def check_form(url: str, policy: Policy = STRICT) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL of the right form, else ``AddressRefused``. No DNS here: also what an API
    checks when a URL is saved, before ``resolve_target``."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise AddressRefused(f"the URL must be 1 to {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise AddressRefused("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"the URL is not valid ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or (scheme == "http" and not policy.allow_http_loopback):
        raise AddressRefused("the URL must start with https://")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("the URL must not carry a user name or password")
    if parts.fragment:
        raise AddressRefused("the URL must not have a #fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise AddressRefused("the URL has no host")
    if not _literal(host) and not _hostname(host):
        raise AddressRefused(f"{host!r} is not a valid host name")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _hostname(host: str) -> bool:
    labels = host.split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63 and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        and not label.startswith("-") and not label.endswith("-") for label in labels)


async def resolve_target(url: str, policy: Policy = STRICT, resolve: Resolve = system_resolve) -> Target:
    """The URL checked, its host resolved and every address checked: ``AddressRefused`` when any is not allowed
    (one bad address refuses the host: the connection could go to any of them)."""
    scheme, host, port = check_form(url, policy)
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            found = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise AddressRefused(f"cannot resolve {host} ({exc})") from None
        addresses = []
        for text in dict.fromkeys(found):  # unique, in the resolver's order
            try:
                addresses.append(ipaddress.ip_address(text))
            except ValueError:
                raise AddressRefused(f"{host} resolved to something that is not an address: {text!r}") from None
        if not addresses:
            raise AddressRefused(f"{host} has no address")
    for ip in addresses:
        if not allowed(ip, policy):
            where = host if literal is None else "the URL"
            raise AddressRefused(f"{where} points to {ip}, a {address_class(ip)} address, which may not be called"
                                 if address_class(ip) != "global" else f"{ip} may not be called")
    if scheme == "http" and not all(address_class(ip) == "loopback" for ip in addresses):
        raise AddressRefused("http:// is allowed only to this machine (dev mode); use https://")
    return Target(url, scheme, host, port, tuple(addresses))


class PinnedResolver(AbstractResolver):
    """An aiohttp resolver that answers only with a checked target's addresses: the connection goes where the
    check looked, whatever DNS says a moment later. Use with ``TCPConnector(resolver=..., use_dns_cache=False)``.
    (aiohttp does not ask a resolver for IP literals; ``resolve_target`` checked those already.)"""

    def __init__(self, target: Target) -> None:
        self._target = target

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
        if host.rstrip(".").lower() != self._target.host.lower():
            raise OSError(f"{host} is not the checked host")
        return [{"hostname": host, "host": str(ip), "port": port,
                 "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST} for ip in self._target.addresses]

    async def close(self) -> None:
        return None


def describe(target: Target) -> dict[str, Any]:
    """For logs: the host and the addresses connected to."""
    return {"host": target.host, "addresses": [str(ip) for ip in target.addresses]}
