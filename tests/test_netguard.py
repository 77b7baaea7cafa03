"""The address guard (``webrana_proxy.netguard``) with an injected resolver: no network, every case named."""

from __future__ import annotations

import ipaddress

import pytest

from webrana_proxy.netguard import STRICT, AddressRefused, PinnedResolver, Policy, address_class, resolve_target

DEV = Policy(allow_loopback=True, allow_private=True, allow_http_loopback=True)
PRIVATE_OK = Policy(allow_private=True)  # an admin's upstream on the private network (issue 16)


def resolver(answers: dict[str, list[str]], asked: list[str] | None = None):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if asked is not None:
            asked.append(host)
        if host not in answers:
            raise OSError(f"no such host {host}")
        return answers[host]
    return resolve


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1",
                                     "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",  # noqa: S104
                                     "192.0.2.1", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "::",
                                     "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1",
                                     "2002:7f00:1::1", "ff02::1"])
async def test_not_global_addresses_are_refused_outside_dev(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(AddressRefused):
        await resolve_target(f"https://{host}/hook", STRICT, resolver({}))
    with pytest.raises(AddressRefused):  # also behind a name
        await resolve_target("https://hook.example.com/x", STRICT, resolver({"hook.example.com": [address]}))


async def test_public_addresses_pass_and_are_the_ones_returned() -> None:
    target = await resolve_target("https://hook.example.com:8443/x?y=1", STRICT,
                                  resolver({"hook.example.com": ["93.184.216.34", "2606:2800:220:1::1"]}))
    assert (target.host, target.port) == ("hook.example.com", 8443)
    assert target.addresses == (ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:2800:220:1::1"))


async def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.5"):
        await resolve_target("https://mixed.example.com/", STRICT,
                             resolver({"mixed.example.com": ["93.184.216.34", "10.0.0.5"]}))


@pytest.mark.parametrize(("url", "why"), [
    ("http://hook.example.com/", "https://"), ("ftp://hook.example.com/", "https://"),
    ("https://user:pw@hook.example.com/", "user name"), ("https://hook.example.com/#frag", "fragment"),
    ("https:///nohost", "no host"), ("https://exa mple.com/", "spaces"), ("https://bad_host!.com/", "host name"),
    ("https://hook.example.com:99999/", "not valid"), ("https://" + "a" * 2050 + ".com/", "characters"),
])
async def test_urls_of_the_wrong_form_are_refused_before_any_lookup(url: str, why: str) -> None:
    asked: list[str] = []
    with pytest.raises(AddressRefused, match=why):
        await resolve_target(url, STRICT, resolver({"hook.example.com": ["93.184.216.34"]}, asked))
    assert asked == []


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(AddressRefused, match="cannot resolve"):
        await resolve_target("https://nowhere.example/", STRICT, resolver({}))


async def test_dev_mode_allows_loopback_and_http_only_to_loopback() -> None:
    local = resolver({"localhost": ["127.0.0.1", "::1"], "lan.example": ["192.168.1.9"]})
    assert (await resolve_target("http://localhost:8080/h", DEV, local)).port == 8080
    assert (await resolve_target("https://lan.example/h", DEV, local)).addresses[0].is_private
    with pytest.raises(AddressRefused, match="http:// is allowed only"):
        await resolve_target("http://lan.example/h", DEV, local)
    with pytest.raises(AddressRefused):  # link-local (cloud metadata) stays refused even in dev
        await resolve_target("https://169.254.169.254/latest/meta-data", DEV, local)
    with pytest.raises(AddressRefused):
        await resolve_target("https://[fe80::1]/", DEV, local)


async def test_the_private_setting_for_admin_upstreams_opens_private_ranges_only() -> None:
    assert (await resolve_target("https://10.1.2.3/v1", PRIVATE_OK, resolver({}))).port == 443
    assert (await resolve_target("https://[fd00::5]/v1", PRIVATE_OK, resolver({}))).port == 443
    for refused in ("https://127.0.0.1/v1", "https://169.254.169.254/", "http://10.1.2.3/v1"):
        with pytest.raises(AddressRefused):
            await resolve_target(refused, PRIVATE_OK, resolver({}))


def test_address_classes() -> None:
    assert [address_class(ipaddress.ip_address(a)) for a in
            ("8.8.8.8", "127.0.0.1", "10.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", "2001:db8::1")] == [
        "global", "loopback", "private", "link-local", "private", "forbidden"]


async def test_the_pinned_resolver_answers_only_the_checked_addresses_for_the_checked_host() -> None:
    """DNS rebinding: whatever the name resolves to later, the connection goes to what was checked."""
    target = await resolve_target("https://hook.example.com/", STRICT,
                                  resolver({"hook.example.com": ["93.184.216.34"]}))
    pinned = PinnedResolver(target)
    assert [r["host"] for r in await pinned.resolve("hook.example.com", 443)] == ["93.184.216.34"]
    with pytest.raises(OSError):
        await pinned.resolve("other.example.com", 443)
