"""GET /api/overview: everything the console's overview page shows, in one call.

The console is counted against its visitor's per-address limit (100 a minute by default), so its busiest page
must not cost five calls. One answer: the user, their plan with its price, the monthly quota and what this
month used of it (Asia/Jakarta days, from the daily roll-up), requests per day over the last 30 days, how
many provider and proxy keys they have, whether they ever made a call, and whether the providers are the
local demo fakes (``WEBRANA_DEMO``). Three statements: the user row, the key counts, the daily sums.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web

from webrana_proxy.api.identity import current_user
from webrana_proxy.api.plans import plan_offer
from webrana_proxy.api.usage import METRICS, SUMMARY_SQL, DayRange, build_summary, idr, jakarta_today
from webrana_proxy.billing.plans import get_plan
from webrana_proxy.jsonio import json_response
from webrana_proxy.state import POOL, SETTINGS

routes = web.RouteTableDef()
CHART_DAYS = 30  # the overview's traffic chart: the last 30 days, today included

# Active keys of each kind, and whether any proxy key (revoked ones too) ever carried a call.
KEY_COUNTS_SQL = """
SELECT (SELECT count(*) FROM api_keys WHERE user_id = $1 AND org_id IS NULL) AS provider_keys,
       (SELECT count(*) FROM proxy_api_keys WHERE user_id = $1 AND org_id IS NULL AND revoked_at IS NULL) AS proxy_keys,
       EXISTS (SELECT 1 FROM proxy_api_keys WHERE user_id = $1 AND request_count > 0) AS made_call
"""


@routes.get("/api/overview")
async def overview(request: web.Request) -> web.Response:
    user = await current_user(request)
    pool = request.app[POOL]
    today = jakarta_today()
    month_start = today.replace(day=1)
    chart_start = today - timedelta(days=CHART_DAYS - 1)
    rng = DayRange(min(month_start, chart_start), today)
    counts, rows = await asyncio.gather(pool.fetchrow(KEY_COUNTS_SQL, user.id),
                                        pool.fetch(SUMMARY_SQL, user.id, rng.first, rng.last))
    assert counts is not None  # an aggregate without GROUP BY always has its one row
    by_day = build_summary(rng, rows)["by_day"]
    month = _sums(d for d in by_day if d["date"] >= month_start.isoformat())
    settings = request.app[SETTINGS]
    plan = get_plan(user.plan)
    quota = (user.monthly_requests_override if user.monthly_requests_override is not None
             else plan.monthly_requests)
    return json_response({
        "user": user.public(),
        "plan": plan_offer(plan, settings.ppn_percent),
        "monthly_requests": quota,
        "month": {"from": month_start.isoformat(), "to": today.isoformat(), **month},
        "by_day": [d for d in by_day if d["date"] >= chart_start.isoformat()],
        "provider_keys": int(counts["provider_keys"]),
        "proxy_keys": int(counts["proxy_keys"]),
        "made_call": bool(counts["made_call"]) or month["requests"] > 0,
        "demo": settings.demo,
    })


def _sums(days: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = dict.fromkeys(METRICS, 0)
    for day in days:
        for metric in METRICS:
            totals[metric] += int(day[metric])
    totals["cost_idr"] = idr(totals["cost_idr_micro"])
    return totals
