"""Provider keys and proxy keys through the API: encryption at rest, masking, plan limits, isolation."""

from __future__ import annotations

import asyncpg

from tests.conftest import Api

OPENAI_KEY = "sk-proj-TESTKEY0123456789abcdefXYZ"
ANTHROPIC_KEY = "sk-ant-api03-TESTKEY0123456789abcdef"


async def test_provider_key_is_stored_encrypted_and_listed_masked(api: Api, migrated: str) -> None:
    c = api.client
    tokens = await api.register()
    resp = await c.post("/api/provider-keys", headers=api.auth(tokens),
                        json={"provider": "openai", "name": "main", "key": OPENAI_KEY})
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["masked_key"] == "sk-...fXYZ"
    assert OPENAI_KEY not in await resp.text()
    listed = await (await c.get("/api/provider-keys", headers=api.auth(tokens))).json()
    assert [k["masked_key"] for k in listed["data"]] == ["sk-...fXYZ"]
    conn = await asyncpg.connect(migrated)
    row = await conn.fetchrow("SELECT ciphertext, nonce, key_version FROM api_keys")
    await conn.close()
    assert OPENAI_KEY.encode() not in row["ciphertext"] and len(row["nonce"]) == 12


async def test_provider_key_format_and_provider_are_checked(api: Api) -> None:
    c = api.client
    h = api.auth(await api.register())
    cases = [
        ({"provider": "openai", "name": "x", "key": "not-a-key-at-all"}, "invalid_key_format", "key"),
        ({"provider": "anthropic", "name": "x", "key": OPENAI_KEY}, "invalid_key_format", "key"),
        ({"provider": "google", "name": "x", "key": "sk-abcdefghijk"}, "invalid_key_format", "key"),
        ({"provider": "acme", "name": "x", "key": OPENAI_KEY}, "unknown_provider", "provider"),
        ({"provider": "gemini", "name": "x", "key": OPENAI_KEY}, "unknown_provider", "provider"),  # an alias
        ({"provider": "openai", "key": OPENAI_KEY}, "missing_field", "name"),
    ]
    for body, code, param in cases:
        resp = await c.post("/api/provider-keys", headers=h, json=body)
        assert resp.status == 400, body
        err = (await resp.json())["error"]
        assert (err["code"], err["param"]) == (code, param), err


async def test_free_plan_allows_one_provider_and_one_proxy_key(api: Api, migrated: str) -> None:
    c = api.client
    h = api.auth(await api.register())
    assert (await c.post("/api/provider-keys", headers=h,
                         json={"provider": "openai", "name": "a", "key": OPENAI_KEY})).status == 201
    # A second key for the same provider is fine; a second provider is not.
    assert (await c.post("/api/provider-keys", headers=h,
                         json={"provider": "openai", "name": "b", "key": OPENAI_KEY + "2"})).status == 201
    resp = await c.post("/api/provider-keys", headers=h,
                        json={"provider": "anthropic", "name": "c", "key": ANTHROPIC_KEY})
    assert resp.status == 403
    err = (await resp.json())["error"]
    assert err["code"] == "provider_limit" and "Starter" in err["message"]

    assert (await c.post("/api/proxy-keys", headers=h, json={"name": "one"})).status == 201
    resp = await c.post("/api/proxy-keys", headers=h, json={"name": "two"})
    assert resp.status == 403
    assert "Starter" in (await resp.json())["error"]["message"]


async def test_proxy_key_shown_once_and_stored_as_hash(api: Api, migrated: str) -> None:
    c = api.client
    h = api.auth(await api.register())
    resp = await c.post("/api/proxy-keys", headers=h, json={"name": "laptop"})
    created = await resp.json()
    assert {"id", "key", "prefix", "name", "created_at"} <= set(created)
    assert created["spend_cap_idr"] is None and created["allowed_models"] is None
    key = created["key"]
    assert key.startswith("wbr_") and len(key) == 4 + 43 and created["prefix"] == key[:12]
    listed = await (await c.get("/api/proxy-keys", headers=h)).json()
    assert key not in str(listed)
    assert listed["data"][0]["request_count"] == 0 and listed["data"][0]["last_used_at"] is None
    conn = await asyncpg.connect(migrated)
    stored = await conn.fetchval("SELECT key_hash FROM proxy_api_keys")
    await conn.close()
    import hashlib

    assert stored == hashlib.sha256(key.encode()).digest()
    resp = await c.delete(f"/api/proxy-keys/{created['id']}", headers=h)
    assert resp.status == 200
    assert (await (await c.get("/api/proxy-keys", headers=h)).json())["data"] == []
    assert (await c.delete(f"/api/proxy-keys/{created['id']}", headers=h)).status == 404


async def test_other_users_keys_are_invisible(api: Api) -> None:
    c = api.client
    alice = api.auth(await api.register())
    bob = api.auth(await api.register())
    pk = await (await c.post("/api/provider-keys", headers=alice,
                             json={"provider": "openai", "name": "a", "key": OPENAI_KEY})).json()
    xk = await (await c.post("/api/proxy-keys", headers=alice, json={"name": "a"})).json()
    assert (await (await c.get("/api/provider-keys", headers=bob)).json())["data"] == []
    assert (await (await c.get("/api/proxy-keys", headers=bob)).json())["data"] == []
    for method, path in [("DELETE", f"/api/provider-keys/{pk['id']}"),
                         ("POST", f"/api/provider-keys/{pk['id']}/test"),
                         ("DELETE", f"/api/proxy-keys/{xk['id']}")]:
        resp = await c.request(method, path, headers=bob)
        assert resp.status == 404, (method, path)
    # Alice's keys are untouched by Bob's attempts.
    assert len((await (await c.get("/api/provider-keys", headers=alice)).json())["data"]) == 1
    assert len((await (await c.get("/api/proxy-keys", headers=alice)).json())["data"]) == 1


async def test_malformed_ids_are_404_not_500(api: Api) -> None:
    h = api.auth(await api.register())
    for path in ("/api/provider-keys/not-a-uuid", "/api/proxy-keys/123"):
        resp = await api.client.delete(path, headers=h)
        assert resp.status == 404
