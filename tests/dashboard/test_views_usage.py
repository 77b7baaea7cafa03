"""Overview and usage pages after real calls through the gateway (fake provider upstream)."""

from __future__ import annotations

import csv
import io
import re

from tests.dashboard.conftest import Console, Stack
from tests.dashboard.flows import chat, user_with_keys, wait_for


def _calls(html: str) -> int:
    """Rows in the latest-calls table."""
    return html.split('id="calls"', 1)[1].split("</table>", 1)[0].count("<code>gpt-4o-mini</code>")


async def test_new_user_overview_shows_first_steps_and_snippet(console: Console, stack: Stack) -> None:
    await console.signup("new@example.co.id")
    html = await console.get("/overview")
    assert "Langkah pertama" in html and html.count('class="todo"') == 3
    assert 'id="stat-requests">0<' in html
    assert f"{stack.api_url}/v1" in html and "from openai import OpenAI" in html
    assert 'aria-valuenow="0"' in html and "quota-ok" in html
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="chart-overview"' in html
    assert html.count('<rect class="bar"') == 30
    assert "Belum ada data" in html


async def test_a_gateway_call_shows_on_overview_usage_chart_and_csv(console: Console, stack: Stack) -> None:
    key = await user_with_keys(console, "caller@example.co.id")
    replies = await chat(stack, key, n=2)
    html = await wait_for(console, "/overview", r'id="stat-requests">2<')
    assert "Langkah pertama" not in html  # every step done
    assert re.search(r'<rect class="bar"[^>]*data-value="2"', html)
    tokens = sum(r.usage.total_tokens for r in replies)
    assert f'id="stat-tokens">{tokens}<' in html
    usage = await console.get("/usage?range=7")
    assert 'id="usage-requests">2<' in usage
    assert "gpt-4o-mini" in usage and "OpenAI" in usage
    assert usage.count("<tr>") >= 2 and re.search(r'<rect class="bar"[^>]*data-value="2"', usage)
    assert 'id="chart-usage-cost_idr"' in usage
    export = re.search(r'href="(/usage/export\.csv\?[^"]+)"', usage)
    assert export
    resp = await console.client.get(export.group(1).replace("&amp;", "&"))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0][0] == "request_id" and len(rows) == 3
    assert {r[rows[0].index("model")] for r in rows[1:]} == {"gpt-4o-mini"}


async def test_quota_bar_warns_at_eighty_percent(console: Console, stack: Stack) -> None:
    key = await user_with_keys(console, "quota@example.co.id")
    await chat(stack, key)
    await wait_for(console, "/overview", r'id="stat-requests">1<')
    # Pretend 800 of the Free plan's 1,000 requests are used: the roll-up the summary reads.
    import asyncpg

    conn = await asyncpg.connect(stack.db_url)
    try:
        await conn.execute("UPDATE usage_daily SET requests = 800")
    finally:
        await conn.close()
    html = await console.get("/overview")
    assert 'aria-valuenow="80"' in html and "quota-warn" in html
    assert "80% atau lebih" in html


async def test_request_log_pages_with_the_api_cursor(console: Console, stack: Stack) -> None:
    key = await user_with_keys(console, "pages@example.co.id")
    await chat(stack, key, n=27)
    html = await wait_for(console, "/usage", r'id="usage-requests">27<')
    assert _calls(html) == 25
    older = re.search(r'href="(/usage\?[^"]*cursor=[^"]+)" rel="next"', html)
    assert older
    page2 = await console.get(older.group(1).replace("&amp;", "&"))
    assert _calls(page2) == 2
    assert 'rel="next"' not in page2 and "Terbaru" in page2


async def test_custom_range_errors_are_next_to_the_dates(console: Console) -> None:
    await console.signup("range@example.co.id")
    html = await console.get("/usage?range=custom&from=2025-03-10&to=2025-03-01", status=422)
    assert 'id="from-error"' in html
    html = await console.get("/usage?range=custom&from=2024-01-01&to=2025-06-01", status=422)
    assert 'id="to-error">Rentang maksimal satu tahun' in html
    html = await console.get("/usage?range=custom&from=2025-03-01&to=2025-03-10")
    assert "1 Mar 2025" in html and html.count('<rect class="bar"') == 20  # 10 days x 2 charts
