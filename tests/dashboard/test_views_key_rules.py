"""Key rules and spend caps in the console: set on the create form and on a key's rules page, shown in the key
list; the account's cap on the settings page; an admin's cap for any user. Calls refused through the gateway."""

from __future__ import annotations

import re

import asyncpg
import openai
import pytest

from tests.dashboard.conftest import Console, Stack
from tests.dashboard.flows import chat, user_with_keys

BIG = [{"role": "user", "content": "halo " * 2000}]  # about Rp 25 of gpt-4o-mini at the fakes' word counts


async def on_pro(stack: Stack, email: str) -> None:
    """The free plan allows one key; these tests make a second."""
    conn = await asyncpg.connect(stack.db_url)
    try:
        await conn.execute("UPDATE users SET plan = 'pro' WHERE lower(email) = lower($1)", email)
    finally:
        await conn.close()


def key_ids(html: str) -> list[str]:
    return re.findall(r'href="/proxy-keys/([0-9a-f-]{36})/edit"', html)


async def test_a_key_made_with_rules_lists_them_and_its_model_rule_holds(console: Console, stack: Stack) -> None:
    await user_with_keys(console, "rules@example.co.id")
    await on_pro(stack, "rules@example.co.id")
    await console.get("/proxy-keys")
    resp = await console.post("/proxy-keys", {
        "name": "skrip", "spend_cap_idr": "Rp 150.000", "rpm_limit": "30", "allowed_models": "gpt-4o*, o3",
        "allowed_providers": "google", "expires_at": "2031-01-31T23:59", "note": "untuk CI"})
    assert resp.status == 200, await resp.text()
    key = re.search(r'<pre id="new-key"><code>(wbr_[A-Za-z0-9_-]+)</code>', await resp.text())
    assert key
    html = await console.get("/proxy-keys")
    assert "Rp 0 dari Rp 150.000 bulan ini" in html and "30/menit" in html and "gpt-4o*, o3, google" in html
    assert "untuk CI" in html and "31 Jan 2031" in html
    await chat(stack, key.group(1), model="gpt-4o-mini")
    with pytest.raises(openai.PermissionDeniedError):
        await chat(stack, key.group(1), model="claude-sonnet-4-5")


async def test_a_keys_rules_page_changes_them_and_refuses_bad_input(console: Console, stack: Stack) -> None:
    key = await user_with_keys(console, "edit@example.co.id")
    key_id = key_ids(await console.get("/proxy-keys"))[0]
    page = await console.get(f"/proxy-keys/{key_id}/edit")
    assert 'id="key-rules"' in page
    resp = await console.post(f"/proxy-keys/{key_id}/edit", {"name": "sdk", "spend_cap_idr": "sepuluh"})
    assert resp.status == 422 and "bilangan bulat" in await resp.text()
    resp = await console.post(f"/proxy-keys/{key_id}/edit", {"name": "sdk", "allowed_providers": "openai",
                                                             "rpm_limit": "", "spend_cap_idr": "10"})
    assert resp.status == 303, await resp.text()
    html = await console.get("/proxy-keys")
    assert "Rp 0 dari Rp 10 bulan ini" in html and "hanya <code>openai</code>" in html
    await chat(stack, key, model="gpt-4o-mini")
    with pytest.raises(openai.PermissionDeniedError):
        await chat(stack, key, model="claude-sonnet-4-5")
    # Cleared again: every field empty means no rule (the call now gets as far as the missing Anthropic key).
    resp = await console.post(f"/proxy-keys/{key_id}/edit", {"name": "sdk"})
    assert resp.status == 303
    with pytest.raises(openai.BadRequestError):
        await chat(stack, key, model="claude-sonnet-4-5")


async def test_the_settings_page_sets_the_accounts_cap_and_calls_stop_at_it(console: Console,
                                                                             stack: Stack) -> None:
    key = await user_with_keys(console, "cap@example.co.id")
    html = await console.get("/settings")
    assert 'id="spend-cap"' in html and "Biaya " in html
    resp = await console.post("/settings/spend-cap", {"spend_cap_idr": "10", "hard": "1"})
    assert resp.status == 303
    html = await console.get("/settings")
    assert 'value="10"' in html and "0% dari Rp 10" in html
    client = openai.AsyncOpenAI(base_url=stack.api_url + "/v1", api_key=key, max_retries=0, timeout=20)
    await client.chat.completions.create(model="gpt-4o-mini", messages=BIG)  # type: ignore[arg-type]
    for _ in range(100):
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        except openai.RateLimitError as exc:
            assert exc.response.headers["x-should-retry"] == "false"
            break
    else:
        raise AssertionError("the account's hard cap never stopped the calls")
    assert re.search(r"\d+% dari Rp 10", await console.get("/settings"))


async def test_an_admin_sets_a_users_cap_from_the_users_page(console: Console, stack: Stack) -> None:
    await console.signup("boss@example.co.id")
    await stack.make_admin("boss@example.co.id")
    await console.login("boss@example.co.id")
    other = await stack.register("someone@example.co.id")
    await console.get("/admin/users")
    resp = await console.post(f"/admin/users/{other['user']['id']}/spend-cap",
                              {"spend_cap_idr": "250.000", "hard": "1", "next": "/admin/users"})
    assert resp.status == 303
    html = await console.get("/admin/users")
    assert "Batas biaya diatur: Rp 250.000." in html
    assert f'id="cap-{other["user"]["id"]}" name="spend_cap_idr" inputmode="numeric" size="10" value="250000"' in html
