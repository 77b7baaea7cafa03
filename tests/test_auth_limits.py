"""Sign-in lockout, sign-up limit and hashing slots, over HTTP against real PostgreSQL and Redis.

Clients at other addresses are played through X-Forwarded-For from the test client (127.0.0.1, a trusted peer),
exactly as the console or an ingress passes them on.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.conftest import PASSWORD, Api
from webrana_proxy.envvalues import ConfigError
from webrana_proxy.loginguard import EMAIL_DELAY_MAX_S, email_delay
from webrana_proxy.settings import Settings
from webrana_proxy.state import PASSWORDS

WRONG = "Wrong-pass1"


async def login(api: Api, email: str, password: str, addr: str) -> ClientResponse:
    return await api.client.post("/api/auth/login", json={"email": email, "password": password},
                                 headers={"X-Forwarded-For": addr})


async def register(api: Api, email: str, addr: str) -> ClientResponse:
    return await api.client.post("/api/auth/register", json={"email": email, "password": PASSWORD},
                                 headers={"X-Forwarded-For": addr})


async def code_of(resp: ClientResponse) -> Any:
    return (await resp.json())["error"]["code"]


async def test_a_strangers_failures_lock_the_stranger_not_the_owner(api: Api) -> None:
    await api.register("pemilik@example.com")
    stranger, owner = "203.0.113.9", "198.51.100.20"
    for _ in range(5):
        assert (await login(api, "pemilik@example.com", WRONG, stranger)).status == 401
    resp = await login(api, "pemilik@example.com", WRONG, stranger)
    assert resp.status == 429 and await code_of(resp) == "login_locked"
    assert 1700 <= int(resp.headers["Retry-After"]) <= 1800
    # The owner, from their own address, still signs in (after at most a short delay)...
    resp = await login(api, "pemilik@example.com", PASSWORD, owner)
    assert resp.status == 200, await resp.text()
    # ...and the stranger stays locked, even with the right password.
    resp = await login(api, "pemilik@example.com", PASSWORD, stranger)
    assert resp.status == 429 and await code_of(resp) == "login_locked"


async def test_rotating_addresses_inside_one_ipv6_64_shares_one_sign_in_limit(api: Api) -> None:
    # 20 attempts from one address, whatever the e-mails, lock the address: here 20 addresses of one /64.
    for i in range(20):
        resp = await login(api, f"target{i}@example.com", WRONG, f"2001:db8:1:2::{i + 1:x}")
        assert resp.status == 401, (i, await resp.text())
    resp = await login(api, "target99@example.com", WRONG, "2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert resp.status == 429 and await code_of(resp) == "login_locked"
    # The next /64 is someone else.
    assert (await login(api, "target99@example.com", WRONG, "2001:db8:1:3::1")).status == 401


async def test_one_ipv6_64_locks_its_pair_whichever_address_of_it_asks(api: Api) -> None:
    await api.register("enam@example.com")
    for i in range(5):
        assert (await login(api, "enam@example.com", WRONG, f"2001:db8:7:7::{i + 1}")).status == 401
    resp = await login(api, "enam@example.com", PASSWORD, "2001:db8:7:7:abcd::1")
    assert resp.status == 429 and await code_of(resp) == "login_locked"
    assert (await login(api, "enam@example.com", PASSWORD, "2001:db8:7:8::1")).status == 200


@pytest.mark.parametrize("env_overrides", [{"WEBRANA_IP_RATE_LIMIT": "3"}])
async def test_the_per_address_request_limit_counts_an_ipv6_64_as_one_address(api: Api) -> None:
    for i in range(3):
        resp = await api.client.get("/api/plans", headers={"X-Forwarded-For": f"2001:db8:9:9::{i + 1}"})
        assert resp.status == 200, await resp.text()
    resp = await api.client.get("/api/plans", headers={"X-Forwarded-For": "2001:db8:9:9:1:2:3:4"})
    assert resp.status == 429 and "Retry-After" in resp.headers
    resp = await api.client.get("/api/plans", headers={"X-Forwarded-For": "2001:db8:9:a::1"})
    assert resp.status == 200


@pytest.mark.parametrize("env_overrides", [{"WEBRANA_SIGNUP_LIMIT": "2"}])
async def test_sign_up_has_its_own_per_address_limit(api: Api) -> None:
    assert (await register(api, "a1@example.com", "2001:db8:5:6::1")).status == 201
    assert (await register(api, "a2@example.com", "2001:db8:5:6::2")).status == 201
    resp = await register(api, "a3@example.com", "2001:db8:5:6::3")
    assert resp.status == 429 and await code_of(resp) == "signup_limit_exceeded"
    assert 1 <= int(resp.headers["Retry-After"]) <= 3600
    # Asking about a taken e-mail counts too (no free enumeration), and the limit is per address.
    assert (await register(api, "a1@example.com", "2001:db8:5:6::4")).status == 429
    assert (await register(api, "a3@example.com", "198.51.100.3")).status == 201
    # Signing in is not signing up: the same /64 still signs in.
    assert (await login(api, "a1@example.com", PASSWORD, "2001:db8:5:6::3")).status == 200


@pytest.mark.parametrize("env_overrides", [{"WEBRANA_PASSWORD_HASH_CONCURRENCY": "1",
                                            "WEBRANA_PASSWORD_HASH_WAIT": "0.2"}])
async def test_no_free_hashing_slot_is_503_with_retry_after_but_a_taken_email_needs_none(api: Api) -> None:
    await api.register("ada@example.com")
    passwords = api.client.app[PASSWORDS]
    async with passwords.slot():  # the process's only slot is busy
        resp = await register(api, "baru@example.com", "198.51.100.1")
        assert resp.status == 503, await resp.text()
        assert resp.headers["Retry-After"] == "1"
        assert await code_of(resp) == "password_hashing_busy"
        # A taken e-mail is answered without hashing: no slot needed.
        resp = await register(api, "ADA@example.com", "198.51.100.1")
        assert resp.status == 400 and await code_of(resp) == "email_taken"
        # Sign-ins that could not be checked are no guesses: they do not count towards the lockout.
        busy = [await login(api, "ada@example.com", WRONG, "198.51.100.1") for _ in range(8)]
        assert [r.status for r in busy] == [503] * 8
    assert (await login(api, "ada@example.com", PASSWORD, "198.51.100.1")).status == 200
    assert (await register(api, "baru@example.com", "198.51.100.1")).status == 201


def test_the_per_email_delay_grows_but_stays_short() -> None:
    delays = [email_delay(n) for n in range(40)]
    assert delays[:5] == [0.0] * 5  # a person's own few mistakes cost nothing
    assert delays[5] > 0 and all(a <= b for a, b in itertools.pairwise(delays))
    assert max(delays) == EMAIL_DELAY_MAX_S <= 2.0


def test_hashing_and_sign_up_settings_default_safely_and_refuse_nonsense(base_env: dict[str, str]) -> None:
    s = Settings.from_env({k: v for k, v in base_env.items() if k != "WEBRANA_SIGNUP_LIMIT"})
    assert (s.password_hash_concurrency, s.password_hash_wait, s.signup_limit) == (2, 2.0, 20)
    for name, value in (("WEBRANA_PASSWORD_HASH_CONCURRENCY", "0"), ("WEBRANA_PASSWORD_HASH_WAIT", "0"),
                        ("WEBRANA_SIGNUP_LIMIT", "0"), ("WEBRANA_SIGNUP_LIMIT", "many")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**base_env, name: value})
