"""Billing: the plan and its period, the plan comparison, subscribe/upgrade through Midtrans Snap and back to
a result page that shows the real state, cancel, invoices and a printable invoice with its PPN lines."""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from webrana_dashboard import formatting
from webrana_dashboard.client import ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import api, creds, error_text, plans, redirect, render, require_user, t_of
from webrana_dashboard.state import SETTINGS, USES_SNAP

routes = web.RouteTableDef()
IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9_-]{16,100}")
ORDER_ID_RE = re.compile(r"[A-Za-z0-9\-_.~]{1,50}")  # Midtrans' order_id alphabet
PENDING_REFRESH_SECONDS = 3  # the result page reloads itself while the payment is still pending


def _saw_plan(request: web.Request, sub: dict[str, object]) -> None:
    """The plan the API just named: the session's copy follows it (the teams page offers a team on Team)."""
    session = require_user(request)
    if session.user is not None and sub.get("plan") and session.user.get("plan") != sub["plan"]:
        session.user = {**session.user, "plan": sub["plan"]}
        session.changed = True


def wants_json(request: web.Request) -> bool:
    """The Snap pop-up (static/app.js) posts the form asking for JSON; a plain form post gets redirects."""
    return request.headers.get("Accept", "").startswith("application/json")


def idempotency_key(form_value: str) -> str:
    """The form's key (one per plan button, so a double submit makes one checkout), or a new one."""
    return form_value if IDEMPOTENCY_KEY_RE.fullmatch(form_value) else secrets.token_urlsafe(24)


def to_payment(request: web.Request, checkout: dict[str, object], result_path: str) -> web.StreamResponse:
    """Off to Midtrans: a redirect to its payment page, or the Snap token and where to come back for the pop-up."""
    target = str(checkout.get("redirect_url") or "")
    if urlsplit(target).scheme not in ("http", "https"):
        raise ApiError(502, "the payment page address from the API is not a web address")
    result_url = result_path + "?" + urlencode({"order_id": checkout["order_id"]})
    if wants_json(request):
        return web.json_response({"token": checkout.get("token"), "redirect_url": target,
                                  "result_url": result_url})
    return redirect(target)


def seat_plan(offers: dict[str, Any]) -> dict[str, Any] | None:
    """The plan with the most seats (Team), whose seat is explained under the table; None without such a plan."""
    team_plan: dict[str, Any] = max(offers["data"], key=lambda p: int(p.get("team_seats") or 1))
    return team_plan if int(team_plan.get("team_seats") or 1) > 1 else None


def owned_team(request: web.Request) -> dict[str, str] | None:
    """The team the user owns, as the switcher remembers it (a pointer only; the team's page asks the API)."""
    session = require_user(request)
    return next((t for t in session.teams or [] if t.get("role") == "owner"), None)


@routes.get("/billing")
async def billing(request: web.Request) -> web.Response:
    require_user(request)
    client, c = api(request), creds(request)
    sub, offers, invoices = await asyncio.gather(client.subscription(c), plans(request), client.invoices(c))
    current = next((p for p in offers["data"] if p["id"] == sub["plan"]), None)
    _saw_plan(request, sub)
    request[USES_SNAP] = request.app[SETTINGS].snap_enabled
    return await render(request, "billing.html", {
        "nav": "billing", "sub": sub, "subscription": sub.get("subscription"), "plans": offers,
        "current": current, "invoices": invoices, "idempotency_key": secrets.token_urlsafe(24),
        # What one seat gives, said once under the table, for the plan with the most seats (Team).
        "team_plan": seat_plan(offers), "owned_team": owned_team(request)})


@routes.post("/billing/subscribe")
async def subscribe(request: web.Request) -> web.StreamResponse:
    session = require_user(request)
    t = t_of(request)
    form = await request.post()
    plan = form_text(form, "plan", 20)
    key = idempotency_key(form_text(form, "idempotency_key", 100))
    try:
        checkout = await api(request).subscribe(creds(request), plan, key)
    except ApiError as err:
        if err.status not in (400, 403, 409, 422):
            raise
        if wants_json(request):
            return web.json_response({"error": error_text(t, err)}, status=err.status)
        session.flash("error", error_text(t, err))
        return redirect("/billing")
    return to_payment(request, checkout, "/billing/result")


@routes.get("/billing/result")
async def result(request: web.Request) -> web.Response:
    require_user(request)
    order_id = request.query.get("order_id", "")
    if not ORDER_ID_RE.fullmatch(order_id):
        raise web.HTTPNotFound
    client, c = api(request), creds(request)
    invoice = await client.order(c, order_id)
    pending = invoice["status"] == "pending"
    # The period is shown once paid; while pending this page reloads itself, one call each time.
    sub = await client.subscription(c) if invoice["status"] == "paid" else {}
    _saw_plan(request, sub)
    return await render(request, "billing_result.html", {
        "nav": "billing", "invoice": invoice, "sub": sub, "subscription": sub.get("subscription"),
        "refresh_seconds": PENDING_REFRESH_SECONDS if pending else None})


@routes.get("/billing/cancel")
async def confirm_cancel(request: web.Request) -> web.Response:
    require_user(request)
    sub = await api(request).subscription(creds(request))
    if not sub.get("subscription"):
        return redirect("/billing")
    return await render(request, "billing_cancel.html", {"nav": "billing", "subscription": sub["subscription"]})


@routes.post("/billing/cancel")
async def cancel(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    try:
        answer = await api(request).cancel(creds(request))
    except ApiError as err:
        if err.status != 404:
            raise
        session.flash("error", error_text(t, err))
    else:
        sub = answer.get("subscription") or {}
        session.flash("ok", t("billing.cancelled", plan=sub.get("plan_name", ""),
                              end=formatting.format_date(sub.get("current_period_end"), t.month_names())))
    return redirect("/billing")


@routes.get("/billing/invoices/{id}")
async def invoice(request: web.Request) -> web.Response:
    require_user(request)
    doc = await api(request).invoice(creds(request), request.match_info["id"])  # 404 for others' invoices
    return await render(request, "invoice.html", {"nav": "billing", "invoice": doc})
