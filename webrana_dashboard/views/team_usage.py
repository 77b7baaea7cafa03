"""A team's usage: 7/30/90 days or a custom range; totals, a chart per day, a chart and a table per member,
per key and per model. Managers and the owner see every member; a member sees only their own calls (the API
binds the answer: ``scope`` is ``team`` or ``own``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from markupsafe import Markup

from webrana_dashboard import formatting
from webrana_dashboard.charts import Bar, bar_chart
from webrana_dashboard.client import ApiError
from webrana_dashboard.i18n import Translator
from webrana_dashboard.pages import field_errors, render, require_user, t_of
from webrana_dashboard.usage_view import PRESETS, choose_range, day_bars
from webrana_dashboard.workspaces import team_api, team_of, team_with

routes = web.RouteTableDef()
LABEL_CHARS = 14  # a member's bar is labelled with the start of their address; the tooltip has all of it
MAX_MEMBER_BARS = 30  # the busiest members get a bar; the table lists everyone


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


@routes.get("/teams/{org_id}/usage")
async def usage(request: web.Request) -> web.Response:
    require_user(request)
    t = t_of(request)
    rng, error_keys = choose_range(request.query, formatting.jakarta_today())
    errors = {field: t(key) for field, key in error_keys.items()}
    try:
        team, summary = await team_with(request, team_api(request).usage_summary(*rng.query.values()))
    except ApiError as err:
        if err.status != 400:
            raise
        team, summary = await team_of(request), None
        errors = field_errors(t, err, ("from", "to"))
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
    return await render(request, "team_usage.html", {
        "nav": "team_usage", "team": team.context(), "rng": rng, "presets": PRESETS, "errors": errors,
        "summary": summary, "charts": charts, "base": base,
        "custom_from": request.query.get("from", rng.first.isoformat()),
        "custom_to": request.query.get("to", rng.last.isoformat())}, status=422 if errors else 200)
