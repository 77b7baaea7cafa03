"""Provider keys and proxy keys through the console's pages."""

from __future__ import annotations

import re
from html import unescape

from tests.dashboard.conftest import Console, Stack
from tests.gateway.conftest import PROVIDER_KEYS


async def test_add_test_and_delete_a_provider_key(console: Console, stack: Stack) -> None:
    await console.signup("keys@example.co.id")
    await console.get("/provider-keys")
    resp = await console.post("/provider-keys", {"provider": "anthropic", "name": "main", "key": "sk-proj-wrong"})
    assert resp.status == 422
    html = await resp.text()
    assert re.search(r'id="key-error">[^<]*format', html) or 'id="key-error">Format kunci' in html
    assert "sk-proj-wrong" not in html  # the secret is never echoed back
    resp = await console.post("/provider-keys", {"provider": "openai", "name": "", "key": ""})
    html = await resp.text()
    assert 'id="name-error"' in html and 'id="key-error"' in html
    full_key = PROVIDER_KEYS["openai"]
    resp = await console.post("/provider-keys", {"provider": "openai", "name": "main", "key": full_key})
    assert resp.status == 303 and resp.headers["Location"] == "/provider-keys"
    html = await console.get("/provider-keys")
    assert full_key not in html
    assert re.search(r'<code class="masked">[^<]*\u2026?[^<]*</code>', html)
    assert "tersimpan" in html  # the flash message
    key_id = re.search(r'action="/provider-keys/([0-9a-f-]{36})/test"', html)
    assert key_id
    resp = await console.post(f"/provider-keys/{key_id.group(1)}/test")
    assert resp.status == 303
    assert "Berhasil" in await console.get("/provider-keys")  # the fake OpenAI accepted the key
    resp = await console.post(f"/provider-keys/{key_id.group(1)}/delete")
    assert resp.status == 303
    html = await console.get("/provider-keys")
    assert "Kunci provider dihapus" in html and "/test" not in html


async def test_proxy_key_is_shown_once_then_only_its_prefix(console: Console, stack: Stack) -> None:
    await console.signup("proxy@example.co.id")
    await console.get("/proxy-keys")
    resp = await console.post("/proxy-keys", {"name": ""})
    assert resp.status == 422 and 'id="name-error"' in await resp.text()
    resp = await console.post("/proxy-keys", {"name": "laptop"})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    html = await resp.text()
    key = re.search(r'<pre id="new-key"><code>(wbr_[A-Za-z0-9_-]+)</code></pre>', html)
    assert key, html
    assert 'data-copy="new-key"' in html
    text = unescape(html)
    assert f'api_key="{key.group(1)}"' in text and f'base_url="{stack.api_url}/v1"' in text
    listing = await console.get("/proxy-keys")
    assert key.group(1) not in listing and "laptop" in listing
    key_id = re.search(r'href="/proxy-keys/([0-9a-f-]{36})/revoke"', listing)
    assert key_id
    # Revoking asks first; the GET changes nothing.
    confirm = await console.get(f"/proxy-keys/{key_id.group(1)}/revoke")
    assert "tidak bisa dibatalkan" in confirm
    assert "laptop" in await console.get("/proxy-keys")
    resp = await console.post(f"/proxy-keys/{key_id.group(1)}/revoke")
    assert resp.status == 303
    html = await console.get("/proxy-keys")
    assert "Kunci dicabut" in html and "Belum ada kunci Webrana" in html
    # The revoked key no longer works on the gateway.
    r = await stack.proxy.get("/v1/models", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert r.status == 401


async def test_plan_limit_error_is_shown_on_the_form(console: Console) -> None:
    await console.signup("limit@example.co.id")
    await console.get("/proxy-keys")
    assert (await console.post("/proxy-keys", {"name": "one"})).status == 200
    await console.get("/proxy-keys")
    resp = await console.post("/proxy-keys", {"name": "two"})
    assert resp.status == 422
    assert "Paket Anda membatasi" in await resp.text()


async def test_someone_elses_key_ids_do_nothing(console: Console, stack: Stack) -> None:
    owner = await stack.register()
    h = {"Authorization": f"Bearer {owner['access_token']}"}
    created = await (await stack.proxy.post("/api/proxy-keys", headers=h, json={"name": "theirs"})).json()
    await console.signup("nosy@example.co.id")
    assert (await console.client.get(f"/proxy-keys/{created['id']}/revoke")).status == 404
    await console.get("/proxy-keys")
    resp = await console.post(f"/proxy-keys/{created['id']}/revoke")
    assert resp.status == 303
    listing = await (await stack.proxy.get("/api/proxy-keys", headers=h)).json()
    assert [k["name"] for k in listing["data"]] == ["theirs"]
    resp = await console.post("/provider-keys/..%2F..%2Fadmin/delete")
    assert resp.status in (303, 404)
