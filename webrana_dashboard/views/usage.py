"""Usage: 7/30/90-day presets or a custom range; totals, by provider and model, a chart, the latest calls
(paginated with the API's cursor) and the CSV export, relayed through the console as it streams."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from aiohttp import web

from webrana_dashboard import formatting
from webrana_dashboard.charts import bar_chart
from webrana_dashboard.client import ApiError
from webrana_dashboard.csv_relay import export_days, relay_csv
from webrana_dashboard.pages import api, creds, field_errors, render, require_user, t_of
from webrana_dashboard.usage_view import PRESETS, choose_range, day_bars

routes = web.RouteTableDef()
PAGE_SIZE = 25  # calls per page of the request log
MAX_CURSOR_CHARS = 512  # the API's cursors are ~60 characters


@routes.get("/usage")
async def usage(request: web.Request) -> web.Response:
    require_user(request)
    t = t_of(request)
    rng, error_keys = choose_range(request.query, formatting.jakarta_today())
    errors = {field: t(key) for field, key in error_keys.items()}
    cursor = request.query.get("cursor", "")[:MAX_CURSOR_CHARS]
    params = {**rng.query, "limit": str(PAGE_SIZE)}
    if cursor:
        params["cursor"] = cursor
    client, c = api(request), creds(request)
    try:
        summary, calls = await asyncio.gather(client.usage_summary(c, *rng.query.values()),
                                              client.usage_requests(c, params))
    except ApiError as err:
        if err.status != 400:
            raise
        errors = field_errors(t, err, ("from", "to", "cursor"))
        summary, calls = None, {"data": [], "next_cursor": None}
    range_query = {"range": str(rng.preset)} if rng.preset else {"range": "custom", **rng.query}
    charts = []
    if summary is not None:
        # Cost bars are micro-rupiah (a day of small calls is well below one rupiah, and still shows).
        for metric, field, unit, fmt in (("requests", "requests", "unit.requests", formatting.number),
                                         ("cost_idr", "cost_idr_micro", "unit.rupiah", formatting.rupiah_micro)):
            charts.append(bar_chart(
                day_bars(summary["by_day"], field, t, unit), chart_id=f"chart-usage-{metric}",
                title=t(f"usage.chart_{metric}"), description=t("usage.chart_desc", first=rng.first.isoformat(),
                                                                last=rng.last.isoformat()),
                y_label=t(unit), value_format=fmt, empty_text=t("chart.empty")))
    next_url = ("/usage?" + urlencode({**range_query, "cursor": calls["next_cursor"]})
                if calls.get("next_cursor") else None)
    return await render(request, "usage.html", {
        "nav": "usage", "rng": rng, "presets": PRESETS, "errors": errors, "summary": summary,
        "calls": calls["data"], "next_url": next_url, "paged": bool(cursor),
        "first_url": "/usage?" + urlencode(range_query), "charts": charts,
        "custom_from": request.query.get("from", rng.first.isoformat()),
        "custom_to": request.query.get("to", rng.last.isoformat()),
        "export_url": "/usage/export.csv?" + urlencode(rng.query)},
        status=422 if errors else 200)


@routes.get("/usage/export.csv")
async def export(request: web.Request) -> web.StreamResponse:
    require_user(request)
    first, last = export_days(request.query)
    return await relay_csv(request, api(request).usage_export(creds(request), first, last),
                           f"webrana-usage-{first}-{last}.csv")
