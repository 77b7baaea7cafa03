"""The admin price page: current models with price and context window, the admins' overrides; add (tiers as the
API takes them), change, delete, each audited; errors next to their field; invisible to other users."""

from __future__ import annotations

import html
import re

import asyncpg

from tests.dashboard.conftest import Console, Stack
from webrana_proxy.providers.base import Usage
from webrana_proxy.state import PRICES

USAGE = Usage(prompt_tokens=300_000, completion_tokens=1_000_000, total_tokens=1_300_000)


async def _admin(console: Console, stack: Stack, email: str = "harga@example.co.id") -> None:
    await console.signup(email)
    await stack.make_admin(email)
    await console.post("/logout")
    await console.login(email)


async def _audit_actions(db_url: str) -> list[str]:
    conn = await asyncpg.connect(db_url)
    try:
        return [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE action LIKE 'price.%' ORDER BY created_at")]
    finally:
        await conn.close()


async def test_the_price_page_is_only_for_admins(console: Console) -> None:
    await console.signup("biasa@example.co.id")
    await console.get("/admin/prices", status=404)
    await console.get("/admin/prices/00000000-0000-0000-0000-000000000000/edit", status=404)
    for action in ("/admin/prices", "/admin/prices/00000000-0000-0000-0000-000000000000",
                   "/admin/prices/00000000-0000-0000-0000-000000000000/delete"):
        assert (await console.post(action, {"provider": "openai", "model_pattern": "x", "price_input": "1"})
                ).status == 404


async def test_an_admin_lists_adds_changes_and_deletes_an_override(console: Console, stack: Stack) -> None:
    await _admin(console, stack)
    page = await console.get("/admin/prices")
    # current models with their price and window; retired ones are gone
    luna = re.search(r'<tr data-model="gpt-6-luna">(.*?)</tr>', page, re.S)
    assert luna and "0.1" in luna.group(1) and "1.050.000" in luna.group(1)
    assert 'data-model="claude-sonnet-5-5"' in page and 'data-model="gpt-4o"' not in page
    assert 'data-model="claude-sonnet-4-5"' not in page
    assert "genai-prices" in page and 'id="price-overrides"' not in page  # no overrides yet

    # A model released this morning, with a prompt-size tier on its output, written as the API takes it.
    resp = await console.post("/admin/prices", {
        "provider": "openai", "model_pattern": "gpt-7*", "valid_from": "", "price_input": "3",
        "price_cache_read": "0,3", "price_output": '{"base": "12", "tiers": [[200000, "18"]]}',
        "context_window": "2000000", "source": "https://openai.com/api/pricing", "note": "launched today"})
    assert resp.status == 303 and resp.headers["Location"] == "/admin/prices", await resp.text()
    page = await console.get("/admin/prices")
    assert "Koreksi untuk OpenAI gpt-7* disimpan" in page
    row = re.search(r'<tr data-pattern="gpt-7\*">(.*?)</tr>', page, re.S)
    assert row, page
    cells = html.unescape(row.group(1))
    assert "Input: 3" in cells and "Input dari cache: 0.3" in cells and "Output: 12 · >200.000: 18" in cells
    assert "2.000.000" in cells and "https://openai.com/api/pricing" in cells and "launched today" in cells
    # in force in the proxy at once: 300,000 x $3 + 1,000,000 x $18 (above 200k) = $18.9
    book = stack.proxy.app[PRICES]
    priced, _ = book.price("openai", "gpt-7-preview", USAGE, 16_500)
    assert (priced.source, priced.cost_usd_nano) == ("override", 18_900_000_000)

    edit_url = re.search(r'href="(/admin/prices/[0-9a-f-]{36}/edit)"', page)
    assert edit_url
    form = await console.get(edit_url.group(1))
    assert 'value="gpt-7*"' in form and '{"base":"12","tiers":[[200000,"18"]]}' in html.unescape(form)
    valid_from = re.search(r'name="valid_from" type="datetime-local" step="1" value="([^"]+)"', form)
    assert valid_from
    action = edit_url.group(1).removesuffix("/edit")
    resp = await console.post(action, {
        "provider": "openai", "model_pattern": "gpt-7*", "valid_from": valid_from.group(1), "price_input": "2",
        "price_output": "8", "context_window": "", "source": "contract 2026-12", "note": ""})
    assert resp.status == 303, await resp.text()
    assert "Koreksi untuk OpenAI gpt-7* diubah" in await console.get("/admin/prices")
    # 300,000 x $2 + 1,000,000 x $8 = $8.6
    assert book.price("openai", "gpt-7-preview", USAGE, 16_500)[0].cost_usd_nano == 8_600_000_000

    resp = await console.post(f"{action}/delete")
    assert resp.status == 303
    page = await console.get("/admin/prices")
    assert "Koreksi dihapus" in page and 'id="price-overrides"' not in page
    assert book.price("openai", "gpt-7-preview", USAGE, 16_500)[0].source == "fallback"
    assert await _audit_actions(stack.db_url) == [
        "price.override.create", "price.override.update", "price.override.delete"]
    audit = await console.get("/admin/audit")
    assert "<code>price.override.create</code>" in audit


async def test_bad_overrides_show_their_error_next_to_the_field(console: Console, stack: Stack) -> None:
    await _admin(console, stack, "salah@example.co.id")
    await console.get("/admin/prices")
    cases = [
        ({"price_output": '{"base": "12", tiers}'}, "price_output-error", "JSON tidak sah"),
        ({"price_input": "", "price_output": ""}, "prices-error", "setidaknya harga input atau output"),
        ({"price_input": "-1"}, "prices-error", "prices"),  # the API's own words for a negative price
        ({"model_pattern": "a*b"}, "model_pattern-error", "model_pattern"),
        ({"valid_from": "besok"}, "valid_from-error", "valid_from"),
        ({"context_window": "banyak"}, "context_window-error", "Bilangan bulat"),
    ]
    for change, error_id, text in cases:
        form = {"provider": "openai", "model_pattern": "gpt-7*", "price_input": "3", "price_output": "12",
                **change}
        resp = await console.post("/admin/prices", form)
        body = await resp.text()
        assert resp.status == 422, (change, body[:500])
        error = re.search(rf'<p class="field-error" id="{error_id}">([^<]*)</p>', body)
        assert error and text in html.unescape(error.group(1)), (change, error_id)
        assert f'value="{form["model_pattern"]}"' in html.unescape(body)  # what was typed stays
    assert await _audit_actions(stack.db_url) == []


async def test_the_price_page_in_english(console: Console, stack: Stack) -> None:
    await _admin(console, stack, "en@example.co.id")
    await console.get("/admin/prices")
    await console.post("/lang", {"lang": "en", "next": "/admin/prices"})
    page = await console.get("/admin/prices")
    assert "Price overrides" in page and "Current models" in page and "Add override" in page
    assert "Koreksi" not in page
