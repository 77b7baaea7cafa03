"""GET /api/plans: the plans, prices before and after PPN, for the console and the public (no sign-in)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from webrana_proxy.billing.money import ppn_amount
from webrana_proxy.billing.plans import PLANS, Plan
from webrana_proxy.jsonio import json_response
from webrana_proxy.state import SETTINGS

routes = web.RouteTableDef()


def plan_offer(plan: Plan, ppn_percent: int) -> dict[str, Any]:
    ppn = ppn_amount(plan.price_idr, ppn_percent)
    return {**plan.public(), "ppn_idr": ppn, "total_idr": plan.price_idr + ppn}


@routes.get("/api/plans")
async def list_plans(request: web.Request) -> web.Response:
    ppn_percent = request.app[SETTINGS].ppn_percent
    return json_response({"currency": "IDR", "ppn_percent": ppn_percent,
                          "data": [plan_offer(p, ppn_percent) for p in PLANS]},
                         headers={"Cache-Control": "public, max-age=300"})
