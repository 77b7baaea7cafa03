"""A team's usage: 7/30/90 days or a custom range; totals, a chart per day, a chart and a table per member,
per key, per model and per provider, the request log (paged with the API's cursor; managers may filter it by
member with ``?member=``) and the CSV export relayed as the API streams it. Managers and the owner see every
member; a member sees only their own calls (the API binds the answers: ``scope`` is ``team`` or ``own``).
The page costs 3 API calls: the team, the summary and a page of the log, asked together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup

from webrana_dashboard import formatting
from webrana_dashboard.charts import Bar, bar_chart
from webrana_dashboard.client import ApiError, Json
from webrana_dashboard.csv_relay import export_days, relay_csv
from webrana_dashboard.i18n import Translator
from webrana_dashboard.pages import field_errors, render, require_user, t_of
from webrana_dashboard.usage_view import PRESETS, choose_range, day_bars
from webrana_dashboard.views.usage import MAX_CURSOR_CHARS, PAGE_SIZE
from webrana_dashboard.workspaces import team_api, team_of

routes = web.RouteTableDef()
LABEL_CHARS = 14  # a member's bar is labelled with the start of their address; the tooltip has all of it
MAX_MEMBER_BARS = 30  # the busiest members get a bar; the table lists everyone
MEMBER_ID_CHARS = 36  # a member filter is a user id (a UUID); the API checks it


def member_bars(by_member: Sequence[dict[str, Any]], t: Translator) -> list[Bar]:
    """One bar per member (requests), busiest first, as the API sorts them."""
    bars = []
    for m in by_member[:MAX_MEMBER_BARS]:
        email = str(m.get("email") or m.get("user_id") or "")
        local = email.split("@", 1)[0]
        label = local if len(local) <= LABEL_CHARS else local[:LABEL_CHARS - 1] + "…"
        value = int(m.get("requests", 0))
        bars.append(Bar(label, value, f"{email}: {formatting.number(value)} {t('unit.requests')}, "
                                      f"{formatting.rupiah_micro(int(m.get('cost_idr_micro', 0)))}"))
    return bars


async def _both(first: Awaitable[Json], second: Awaitable[Json]) -> tuple[Json, Json]:
    a, b = await asyncio.gather(first, second)
    return a, b


@routes.get("/teams/{org_id}/usage")
async def usage(request: web.Request) -> web.Response:
    require_user(request)
    t = t_of(request)
    rng, error_keys = choose_range(request.query, formatting.jakarta_today())
    errors = {field: t(key) for field, key in error_keys.items()}
    cursor = request.query.get("cursor", "")[:MAX_CURSOR_CHARS]
    member = request.query.get("member", "").strip()[:MEMBER_ID_CHARS]
    params = {**rng.query, "limit": str(PAGE_SIZE)}
    if cursor:
        params["cursor"] = cursor
    if member:
        params["member"] = member
    bound = team_api(request)
    # The team and the page's answers together; a range or cursor the API refuses (400) still shows the team's page
    # (with the team already asked: no fourth call). The team's own error wins, so a 404 reaches ``team_of``.
    team, answers = await asyncio.gather(
        team_of(request), _both(bound.usage_summary(*rng.query.values()), bound.usage_requests(params)),
        return_exceptions=True)
    if isinstance(team, BaseException):
        raise team
    summary: Json | None
    calls: Json
    if isinstance(answers, ApiError) and answers.status == 400:
        summary, calls = None, {"data": [], "next_cursor": None}
        errors = field_errors(t, answers, ("from", "to", "cursor"))  # a refused member filter: above the form
    elif isinstance(answers, BaseException):
        raise answers
    else:
        summary, calls = answers
    charts: list[Markup] = []
    if summary is not None:
        description = t("usage.chart_desc", first=rng.first.isoformat(), last=rng.last.isoformat())
        charts.append(bar_chart(day_bars(summary["by_day"], "requests", t, "unit.requests"),
                                chart_id="chart-team-requests", title=t("usage.chart_requests"),
                                description=description, y_label=t("unit.requests"),
                                value_format=formatting.number, empty_text=t("chart.empty")))
        if summary.get("scope") == "team":
            charts.append(bar_chart(member_bars(summary.get("by_member") or [], t), chart_id="chart-team-members",
                                    title=t("team_usage.chart_members"), description=description,
                                    y_label=t("unit.requests"), value_format=formatting.number,
                                    empty_text=t("chart.empty")))
    base = f"{team.base}/usage"
    range_query = {"range": str(rng.preset)} if rng.preset else {"range": "custom", **rng.query}
    log_query = {**range_query, **({"member": member} if member else {})}
    next_url = (base + "?" + urlencode({**log_query, "cursor": calls["next_cursor"]})
                if calls.get("next_cursor") else None)
    return await render(request, "team_usage.html", {
        "nav": "team_usage", "team": team.context(), "rng": rng, "presets": PRESETS, "errors": errors,
        "summary": summary, "charts": charts, "base": base, "calls": calls["data"], "next_url": next_url,
        "paged": bool(cursor), "first_url": base + "?" + urlencode(log_query), "member": member,
        "range_query": range_query,
        "custom_from": request.query.get("from", rng.first.isoformat()),
        "custom_to": request.query.get("to", rng.last.isoformat()),
        "export_url": f"{base}/export.csv?" + urlencode(rng.query)}, status=422 if errors else 200)


@routes.get("/teams/{org_id}/usage/export.csv")
async def export(request: web.Request) -> web.StreamResponse:
    """The team's CSV export: every member's rows for the owner and managers, a member's own (the API decides)."""
    first, last = export_days(request.query)
    return await relay_csv(request, team_api(request).usage_export(first, last),
                           f"webrana-team-usage-{first}-{last}.csv")
