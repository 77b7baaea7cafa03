"""The overview: this month against the plan's quota, 30 days of traffic, first steps, the SDK snippet."""

from __future__ import annotations

from aiohttp import web

from webrana_dashboard import formatting
from webrana_dashboard.charts import bar_chart
from webrana_dashboard.pages import api, creds, render, require_user, t_of
from webrana_dashboard.quota import quota_bar
from webrana_dashboard.snippets import curl_snippet, python_snippet
from webrana_dashboard.state import SETTINGS, SHARED
from webrana_dashboard.usage_view import day_bars

routes = web.RouteTableDef()


@routes.get("/overview")
async def overview(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    ov = await api(request).overview(creds(request))  # one call: the page's whole share of the address's limit
    me = ov["user"]
    if session.user != me:
        session.user = me
        session.changed = True
    request.app[SHARED].saw_demo(bool(ov["demo"]))
    month = ov["month"]
    quota = int(ov["monthly_requests"])
    chart = bar_chart(day_bars(ov["by_day"], "requests", t, "unit.requests"), chart_id="chart-overview",
                      title=t("overview.chart_title"), description=t("overview.chart_desc"),
                      y_label=t("unit.requests"), value_format=formatting.number, empty_text=t("chart.empty"))
    steps = [
        {"done": ov["provider_keys"] > 0, "text": t("overview.step_provider"), "href": "/provider-keys"},
        {"done": ov["proxy_keys"] > 0, "text": t("overview.step_proxy"), "href": "/proxy-keys"},
        {"done": bool(ov["made_call"]), "text": t("overview.step_call"), "href": "#snippet"},
    ]
    public_api = request.app[SETTINGS].public_api_url
    return await render(request, "overview.html", {
        "nav": "overview", "me": me, "plan": ov["plan"], "month": month, "quota": quota, "demo": ov["demo"],
        "quota_bar": quota_bar(month["requests"], quota, t), "chart": chart, "steps": steps,
        "all_done": all(s["done"] for s in steps), "python_snippet": python_snippet(public_api),
        "curl_snippet": curl_snippet(public_api), "base_url": public_api + "/v1",
    })
