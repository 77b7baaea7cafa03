"""/api/orgs/{org_id}/billing: a team's subscription and invoices, the owner's alone (``billing.manage``; a manager
or member gets 403, an outsider 404, from ``workspaces.authorize``).

The team's subscription moved to the organisation when it was created (``subscriptions.move_to_organisation``);
these routes are the personal /api/billing ones (api/billing.py) bound to the team's account: the same checkout
(Midtrans Snap, one pending invoice per buyer, Idempotency-Key), the same renewal / upgrade / downgrade rules, the
same invoices. A plan change or cancel that would leave fewer seats than the team uses (members and open
invitations) is refused, naming how many must leave first. Snap returns the browser to the console's
``/teams/{org_id}/billing/result``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from webrana_proxy.api.auth_email import require_verified_email
from webrana_proxy.billing import subscriptions
from webrana_proxy.billing.checkout import check_idempotency_key, subscribe
from webrana_proxy.billing.deps import BillingDeps
from webrana_proxy.billing.invoices import fetch_invoice, invoice_summary, invoice_view, list_invoices
from webrana_proxy.billing.midtrans import is_valid_order_id
from webrana_proxy.billing.plans import PLAN_IDS, get_plan
from webrana_proxy.errors import NotFound, ValidationFailed
from webrana_proxy.jsonio import json_response, path_uuid, read_json, req_str
from webrana_proxy.state import POOL, SETTINGS
from webrana_proxy.teams import check_plan_change
from webrana_proxy.workspaces import Workspace, authorize

routes = web.RouteTableDef()
BILLING = "billing.manage"
INVOICE_LIST_MAX = 200  # as the personal list: years of monthly invoices


def _now() -> datetime:
    return datetime.now(UTC)


def _account(ws: Workspace) -> subscriptions.Account:
    assert ws.org_id is not None
    return subscriptions.Account(ws.user.id, ws.org_id)


def _org(ws: Workspace) -> uuid.UUID:
    assert ws.org_id is not None
    return ws.org_id


@routes.get("/api/orgs/{org_id}/billing/subscription")
async def get_subscription(request: web.Request) -> web.Response:
    ws = await authorize(request, BILLING)
    now = _now()
    row = await subscriptions.running_subscription(request.app[POOL], _account(ws), now)
    return json_response({"plan": ws.plan, "subscription": subscriptions.subscription_view(row, now) if row else None})


@routes.post("/api/orgs/{org_id}/billing/subscribe")
async def subscribe_plan(request: web.Request) -> web.Response:
    ws = await authorize(request, BILLING)
    await require_verified_email(request, ws.user)
    key = check_idempotency_key(request.headers.get("Idempotency-Key"))
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    plan_id = req_str(body, "plan", max_len=20)
    if plan_id not in PLAN_IDS:
        raise ValidationFailed(f"'plan' must be one of {', '.join(PLAN_IDS)}", param="plan", code="unknown_plan")
    if plan_id == "free":
        raise ValidationFailed("the Free plan needs no payment; to stop renewing, cancel the team's subscription "
                               "(POST /api/orgs/{org_id}/billing/cancel)", param="plan", code="free_plan")
    plan = get_plan(plan_id)
    await check_plan_change(request.app[POOL], _org(ws), plan)  # a team keeps a seat for everyone in it
    checkout = await subscribe(BillingDeps.from_app(request.app), ws.user, plan, key, _now(), org_id=ws.org_id)
    headers = {"Idempotent-Replayed": "true"} if checkout.replayed else None
    return json_response(checkout.body, status=201, headers=headers)


@routes.post("/api/orgs/{org_id}/billing/cancel")
async def cancel(request: web.Request) -> web.Response:
    ws = await authorize(request, BILLING)
    # Cancelling returns the team to Free at the period's end: one seat, so the team must be down to its owner.
    await check_plan_change(request.app[POOL], _org(ws), get_plan("free"))
    now = _now()
    row = await subscriptions.cancel(request.app[POOL], _account(ws), now)
    if row is None:
        raise NotFound("the team has no running subscription to cancel", code="no_subscription")
    return json_response({"plan": ws.plan, "subscription": subscriptions.subscription_view(row, now)})


@routes.get("/api/orgs/{org_id}/billing/invoices")
async def invoices(request: web.Request) -> web.Response:
    ws = await authorize(request, BILLING)
    rows = await list_invoices(request.app[POOL], ws.user.id, INVOICE_LIST_MAX, org_id=ws.org_id)
    return json_response({"data": [invoice_summary(r) for r in rows]})


@routes.get("/api/orgs/{org_id}/billing/invoices/{id}")
async def invoice(request: web.Request) -> web.Response:
    invoice_id = path_uuid(request)
    ws = await authorize(request, BILLING)
    row = await fetch_invoice(request.app[POOL], user_id=ws.user.id, invoice_id=invoice_id, org_id=_org(ws))
    if row is None:
        raise NotFound("invoice not found")
    return json_response(invoice_view(row))


@routes.get("/api/orgs/{org_id}/billing/orders/{order_id}")
async def order(request: web.Request) -> web.Response:
    """The team invoice behind a Midtrans order id: what the console's team Snap finish page shows."""
    ws = await authorize(request, BILLING)
    order_id = request.match_info["order_id"]
    row = (await fetch_invoice(request.app[POOL], user_id=ws.user.id, order_id=order_id, org_id=_org(ws))
           if is_valid_order_id(order_id) else None)
    if row is None:
        raise NotFound("order not found")
    return json_response(invoice_view(row))
