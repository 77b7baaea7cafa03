"""The client address cannot be spoofed from outside the trusted proxies."""

from __future__ import annotations

import ipaddress

from webrana_proxy.clientip import client_ip, limit_key

TRUSTED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8"))


def test_untrusted_peer_is_the_client_whatever_the_header_says() -> None:
    assert client_ip("203.0.113.7", "1.2.3.4", TRUSTED) == "203.0.113.7"


def test_trusted_peer_passes_on_the_last_untrusted_hop() -> None:
    # browser -> spoofed hop -> ingress (10.x) -> console (127.x) -> proxy
    assert client_ip("127.0.0.1", "6.6.6.6, 198.51.100.20, 10.1.2.3", TRUSTED) == "198.51.100.20"


def test_garbage_or_missing_header_falls_back_to_the_peer() -> None:
    assert client_ip("127.0.0.1", "not-an-ip", TRUSTED) == "127.0.0.1"
    assert client_ip("127.0.0.1", None, TRUSTED) == "127.0.0.1"


def test_all_hops_trusted_gives_the_first() -> None:
    assert client_ip("127.0.0.1", "10.0.0.5, 127.0.0.2", TRUSTED) == "10.0.0.5"


def test_limit_key_is_an_ipv4_address_itself() -> None:
    assert limit_key("203.0.113.7") == "203.0.113.7"
    assert limit_key("::ffff:203.0.113.7") == "203.0.113.7"  # IPv4-mapped: the same client as plain IPv4


def test_limit_key_of_ipv6_is_its_64() -> None:
    same = {limit_key(a) for a in ("2001:db8:1:2::1", "2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2:a:b:c:d")}
    assert len(same) == 1
    assert same.pop() == limit_key("2001:0db8:0001:0002::")
    assert limit_key("2001:db8:1:3::1") != limit_key("2001:db8:1:2::1")
    assert limit_key("fe80::1%eth0") == limit_key("fe80::2")


def test_limit_key_leaves_what_is_not_an_address_alone() -> None:
    assert limit_key("unknown") == "unknown"
    assert limit_key("not:an:address") == "not:an:address"


def test_ipv6_hops_of_the_header_are_read_like_ipv4_ones() -> None:
    trusted = (*TRUSTED, ipaddress.ip_network("fd00::/8"))
    assert client_ip("127.0.0.1", "2001:db8::7, fd00::1", trusted) == "2001:db8::7"
