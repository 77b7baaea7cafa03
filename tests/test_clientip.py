"""The client address cannot be spoofed from outside the trusted proxies."""

from __future__ import annotations

import ipaddress

from webrana_proxy.clientip import client_ip

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
