"""The overview: this month against the plan's quota, 30 days of traffic, first steps, the SDK snippet."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web

from webrana_dashboard import formatting
from webrana_dashboard.charts import bar_chart
from webrana_dashboard.pages import api, creds, render, require_user, t_of
from webrana_dashboard.quota import quota_bar
from webrana_dashboard.snippets import curl_snippet, python_snippet
from webrana_dashboard.state import SETTINGS
from webrana_dashboard.usage_view import day_bars, sum_days

routes = web.RouteTableDef()
CHART_DAYS = 30


@routes.get("/overview")
async def overview(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    client, c = api(request), creds(request)
    today = formatting.jakarta_today()
    month_start = today.replace(day=1)
    chart_start = today - timedelta(days=CHART_DAYS - 1)
    first = min(month_start, chart_start)
    me, summary, plans, provider_keys, proxy_keys = await asyncio.gather(
        client.me(c), client.usage_summary(c, first.isoformat(), today.isoformat()), client.plans(c),
        client.provider_keys(c), client.proxy_keys(c))
    if session.user != me:
        session.user = me
        session.changed = True
    month = sum_days(summary["by_day"], month_start)
    plan = next((p for p in plans["data"] if p["id"] == me["plan"]), None)
    quota = int(plan["monthly_requests"]) if plan else 0
    last_30 = [d for d in summary["by_day"] if d["date"] >= chart_start.isoformat()]
    chart = bar_chart(day_bars(last_30, "requests", t, "unit.requests"), chart_id="chart-overview",
                      title=t("overview.chart_title"), description=t("overview.chart_desc"),
                      y_label=t("unit.requests"), value_format=formatting.number, empty_text=t("chart.empty"))
    made_call = month["requests"] > 0 or any(int(k.get("request_count") or 0) > 0 for k in proxy_keys)
    steps = [
        {"done": bool(provider_keys), "text": t("overview.step_provider"), "href": "/provider-keys"},
        {"done": bool(proxy_keys), "text": t("overview.step_proxy"), "href": "/proxy-keys"},
        {"done": made_call, "text": t("overview.step_call"), "href": "#snippet"},
    ]
    public_api = request.app[SETTINGS].public_api_url
    return await render(request, "overview.html", {
        "nav": "overview", "me": me, "plan": plan, "month": month, "quota": quota,
        "quota_bar": quota_bar(month["requests"], quota, t), "chart": chart, "steps": steps,
        "all_done": all(s["done"] for s in steps), "python_snippet": python_snippet(public_api),
        "curl_snippet": curl_snippet(public_api), "base_url": public_api + "/v1",
    })
