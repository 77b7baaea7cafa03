"""A team's billing, its owner's alone (``/teams/{org_id}/billing``): the team's plan and period, changing plan
through Midtrans Snap and back to the team's result page, cancelling at the period's end, the team's invoices.

The Team subscription moved to the team when its buyer created it; the API's ``/api/orgs/{org_id}/billing`` routes
answer the owner only (a manager or member gets 403). The personal billing pages' templates serve here with the
team set. A plan (or Free, after a cancel) with fewer seats than the team uses is not offered, and the API's
refusal (``seats_in_use``) is said with the numbers: how many must leave or have their invitations revoked.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from webrana_dashboard import formatting
from webrana_dashboard.client import ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.i18n import Translator
from webrana_dashboard.pages import error_text, plans, redirect, render, require_user, t_of
from webrana_dashboard.state import SETTINGS, USES_SNAP
from webrana_dashboard.views.billing import (
    ORDER_ID_RE,
    PENDING_REFRESH_SECONDS,
    idempotency_key,
    seat_plan,
    to_payment,
    wants_json,
)
from webrana_dashboard.workspaces import Team, org_id_of, team_api, team_of, team_with

routes = web.RouteTableDef()
A = TypeVar("A")
B = TypeVar("B")
FREE_SEATS = 1  # what a cancelled team falls to at the period's end: Free, the owner alone


async def _both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    a, b = await asyncio.gather(first, second)
    return a, b


def _used(team: Team) -> int:
    return int(team.seats.get("used") or 0)


def _shortfall(team: Team, offers: dict[str, Any]) -> dict[str, int]:
    """Per plan, how many seats the team would have to give up before moving to it (plans that fit are absent)."""
    used = _used(team)
    return {str(p["id"]): used - int(p.get("team_seats") or 1) for p in offers["data"]
            if used > int(p.get("team_seats") or 1)}


async def _seats_refusal(request: web.Request, t: Translator, err: ApiError, plan_id: str | None) -> str:
    """The API's ``seats_in_use`` in the visitor's words, with the numbers (the team as the API counts it now)."""
    team = await team_of(request)
    offers = await plans(request)
    plan = next((p for p in offers["data"] if p["id"] == plan_id), None) if plan_id else None
    seats = int(plan.get("team_seats") or 1) if plan else FREE_SEATS
    leave = _used(team) - seats
    if leave <= 0:
        return error_text(t, err)
    if plan is None:
        return t("team_billing.cancel_seats", used=formatting.number(_used(team)), leave=formatting.number(leave))
    return t("team_billing.seats_short", plan=plan["name"], seats=formatting.number(seats),
             used=formatting.number(_used(team)), leave=formatting.number(leave))


@routes.get("/teams/{org_id}/billing")
async def billing(request: web.Request) -> web.Response:
    require_user(request)
    bound = team_api(request)
    team, (sub, invoices) = await team_with(request, _both(bound.subscription(), bound.invoices()))
    offers = await plans(request)
    request[USES_SNAP] = request.app[SETTINGS].snap_enabled
    return await render(request, "billing.html", {
        "nav": "team_billing", "team": team.context(), "sub": sub, "subscription": sub.get("subscription"),
        "plans": offers, "current": next((p for p in offers["data"] if p["id"] == sub["plan"]), None),
        "invoices": invoices, "idempotency_key": secrets.token_urlsafe(24), "team_plan": seat_plan(offers),
        "shortfall": _shortfall(team, offers), "owned_team": None})


@routes.post("/teams/{org_id}/billing/subscribe")
async def subscribe(request: web.Request) -> web.StreamResponse:
    session = require_user(request)
    t = t_of(request)
    base = f"/teams/{org_id_of(request)}/billing"
    form = await request.post()
    plan = form_text(form, "plan", 20)
    try:
        checkout = await team_api(request).subscribe(plan, idempotency_key(form_text(form, "idempotency_key", 100)))
    except ApiError as err:
        if err.status not in (400, 403, 409, 422):
            raise
        text = await _seats_refusal(request, t, err, plan) if err.code == "seats_in_use" else error_text(t, err)
        if wants_json(request):
            return web.json_response({"error": text}, status=err.status)
        session.flash("error", text)
        return redirect(base)
    return to_payment(request, checkout, base + "/result")


@routes.get("/teams/{org_id}/billing/result")
async def result(request: web.Request) -> web.Response:
    """Where Midtrans Snap sends the owner back after paying for the team (``?order_id=``)."""
    require_user(request)
    order_id = request.query.get("order_id", "")
    if not ORDER_ID_RE.fullmatch(order_id):
        raise web.HTTPNotFound
    bound = team_api(request)
    team, invoice = await team_with(request, bound.order(order_id))
    pending = invoice["status"] == "pending"
    sub = await bound.subscription() if invoice["status"] == "paid" else {}  # while pending: one call a reload
    return await render(request, "billing_result.html", {
        "nav": "team_billing", "team": team.context(), "invoice": invoice, "sub": sub,
        "subscription": sub.get("subscription"), "refresh_seconds": PENDING_REFRESH_SECONDS if pending else None})


@routes.get("/teams/{org_id}/billing/cancel")
async def confirm_cancel(request: web.Request) -> web.Response:
    require_user(request)
    team, sub = await team_with(request, team_api(request).subscription())
    if not sub.get("subscription"):
        return redirect(f"{team.base}/billing")
    return await render(request, "billing_cancel.html", {
        "nav": "team_billing", "team": team.context(), "subscription": sub["subscription"],
        "leave": max(0, _used(team) - FREE_SEATS)})


@routes.post("/teams/{org_id}/billing/cancel")
async def cancel(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    try:
        answer = await team_api(request).cancel()
    except ApiError as err:
        if err.status not in (403, 404) or (err.status == 403 and err.code != "seats_in_use"):
            raise
        text = await _seats_refusal(request, t, err, None) if err.code == "seats_in_use" else error_text(t, err)
        session.flash("error", text)
    else:
        sub = answer.get("subscription") or {}
        session.flash("ok", t("team_billing.cancelled", plan=sub.get("plan_name", ""),
                              end=formatting.format_date(sub.get("current_period_end"), t.month_names())))
    return redirect(f"/teams/{org_id_of(request)}/billing")


@routes.get("/teams/{org_id}/billing/invoices/{id}")
async def invoice(request: web.Request) -> web.Response:
    require_user(request)
    team, doc = await team_with(request, team_api(request).invoice(request.match_info["id"]))
    return await render(request, "invoice.html", {"nav": "team_billing", "team": team.context(), "invoice": doc})
