"""Provider keys are printable ASCII (no spaces or control characters) for every provider, checked when stored;
a bad key stored before that check is a clean provider-key error on /v1 and in the key test, never a 500."""

from __future__ import annotations

import logging
import uuid

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes.scenario import FakeState
from tests.gateway.conftest import MODELS, PROVIDER_KEYS, Account, make_account
from webrana_proxy.crypto import mask_key
from webrana_proxy.state import KEYCACHE, KEYRING

# Each would pass a prefix-and-length check; none can travel in an HTTP header as it is.
NOT_PRINTABLE_ASCII = {
    "cyrillic": "\u043a\u043b\u044e\u0447",  # not Latin-1: UnicodeEncodeError in the upstream client
    "emoji": "\U0001f511",
    "latin-1 letter": "\u00e9",
    "no-break space": "\u00a0",
    "zero-width space": "\u200b",
    "space": " ",
    "tab": "\t",
    "DEL": "\x7f",
}


@pytest.mark.parametrize("provider", sorted(PROVIDER_KEYS))
@pytest.mark.parametrize("what", sorted(NOT_PRINTABLE_ASCII))
async def test_keys_outside_printable_ascii_are_refused_when_stored(
        gw: TestClient[web.Request, web.Application], account: Account, provider: str, what: str) -> None:
    good = PROVIDER_KEYS[provider]
    bad = good[:-5] + NOT_PRINTABLE_ASCII[what] + good[-4:]  # same length as the good key
    resp = await gw.post("/api/provider-keys", headers=account.headers,
                         json={"provider": provider, "name": "bad", "key": bad})
    assert resp.status == 400, (provider, what, await resp.text())
    error = (await resp.json())["error"]
    assert (error["code"], error["param"]) == ("invalid_key_format", "key")
    assert "printable ASCII" in error["message"], error["message"]


@pytest.mark.parametrize("provider", sorted(PROVIDER_KEYS))
async def test_every_printable_ascii_character_is_accepted_in_a_key(
        gw: TestClient[web.Request, web.Application], account: Account, provider: str) -> None:
    if provider == "google":  # Gemini's keys have a fixed alphabet of their own (letters, digits, - and _)
        key = "AIza" + "-_09azAZ" * 4 + "abc"
    elif provider == "mistral":  # Mistral's are 32 letters and digits
        key = "09azAZ" * 5 + "mM"
    else:
        key = PROVIDER_KEYS[provider] + "".join(map(chr, range(0x21, 0x7F)))
    resp = await gw.post("/api/provider-keys", headers=account.headers,
                         json={"provider": provider, "name": "ascii", "key": key})
    assert resp.status == 201, await resp.text()


async def _store_unchecked(gw: TestClient[web.Request, web.Application], db_url: str, user_id: str,
                           provider: str, key: str, name: str) -> uuid.UUID:
    """A key as it could have been stored before the check: sealed with the app's keyring, inserted directly."""
    key_id = uuid.uuid4()
    sealed = gw.app[KEYRING].seal(key, uuid.UUID(user_id), key_id)
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            """INSERT INTO api_keys (id, user_id, provider, name, ciphertext, nonce, key_version, masked_hint)
               VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8)""",
            key_id, user_id, provider, name, sealed.ciphertext, sealed.nonce, sealed.key_version, mask_key(key))
    finally:
        await conn.close()
    return key_id


@pytest.mark.parametrize("provider", sorted(PROVIDER_KEYS))
async def test_a_stored_key_that_cannot_be_sent_is_a_clean_error_not_a_500(
        gw: TestClient[web.Request, web.Application], migrated: str, fake: FakeState, provider: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    account = await make_account(gw, migrated, providers=())
    good = PROVIDER_KEYS[provider]
    bad_id = await _store_unchecked(gw, migrated, account.user_id, provider, good[:-5] + "\u043a" + good[-4:],
                                    "old")
    proxy = {"Authorization": f"Bearer {account.proxy_key}"}
    chat = {"model": MODELS[provider], "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        resp = await gw.post("/v1/chat/completions", headers=proxy, json={**chat, "stream": stream})
        assert resp.status == 400, await resp.text()
        error = (await resp.json())["error"]
        assert error["code"] == "provider_key_invalid", error
        assert str(bad_id) in error["message"] and "Provider keys" in error["message"], error
    assert not fake.requests, "nothing was sent upstream with the unsendable key"

    # the key check in the console says what is wrong instead of failing
    resp = await gw.post(f"/api/provider-keys/{bad_id}/test", headers=account.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "invalid_key"

    # with a good key beside it, calls fail over to the good one, whatever the round-robin order
    await _store_unchecked(gw, migrated, account.user_id, provider, good, "new")
    await gw.app[KEYCACHE].invalidate_user(uuid.UUID(account.user_id))
    for _ in range(3):
        resp = await gw.post("/v1/chat/completions", headers=proxy, json=chat)
        assert resp.status == 200, await resp.text()
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]
