"""/api/billing: the caller's personal subscription (Midtrans Snap), cancel, invoices, and the Midtrans webhook.
A team's billing is its owner's, under /api/orgs/{org_id}/billing (api/org_billing.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from webrana_proxy.api.auth_email import require_verified_email
from webrana_proxy.api.identity import current_user
from webrana_proxy.billing import subscriptions, webhook
from webrana_proxy.billing.checkout import check_idempotency_key, subscribe
from webrana_proxy.billing.deps import BillingDeps
from webrana_proxy.billing.invoices import fetch_invoice, invoice_summary, invoice_view, list_invoices
from webrana_proxy.billing.midtrans import is_valid_order_id
from webrana_proxy.billing.plans import PLAN_IDS, get_plan
from webrana_proxy.errors import NotFound, ValidationFailed
from webrana_proxy.jsonio import json_response, path_uuid, read_body, read_json, req_str
from webrana_proxy.state import POOL, SETTINGS

routes = web.RouteTableDef()

INVOICE_LIST_MAX = 200  # a user pays about once a month; two hundred is years of invoices


def _now() -> datetime:
    return datetime.now(UTC)


@routes.post("/api/billing/subscribe")
async def subscribe_plan(request: web.Request) -> web.Response:
    user = await current_user(request)
    await require_verified_email(request, user)
    key = check_idempotency_key(request.headers.get("Idempotency-Key"))
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    plan_id = req_str(body, "plan", max_len=20)
    if plan_id not in PLAN_IDS:
        raise ValidationFailed(f"'plan' must be one of {', '.join(PLAN_IDS)}", param="plan",
                               code="unknown_plan")
    if plan_id == "free":
        raise ValidationFailed("the Free plan needs no payment; to stop renewing, cancel the subscription "
                               "(POST /api/billing/cancel)", param="plan", code="free_plan")
    plan = get_plan(plan_id)
    checkout = await subscribe(BillingDeps.from_app(request.app), user, plan, key, _now())
    headers = {"Idempotent-Replayed": "true"} if checkout.replayed else None
    return json_response(checkout.body, status=201, headers=headers)


@routes.get("/api/billing/subscription")
async def get_subscription(request: web.Request) -> web.Response:
    user = await current_user(request)
    now = _now()
    row = await subscriptions.running_subscription(request.app[POOL], subscriptions.Account(user.id), now)
    return json_response({"plan": user.plan,
                          "subscription": subscriptions.subscription_view(row, now) if row else None})


@routes.post("/api/billing/cancel")
async def cancel(request: web.Request) -> web.Response:
    user = await current_user(request)
    now = _now()
    row = await subscriptions.cancel(request.app[POOL], subscriptions.Account(user.id), now)
    if row is None:
        raise NotFound("no running subscription to cancel", code="no_subscription")
    return json_response({"plan": user.plan, "subscription": subscriptions.subscription_view(row, now)})


@routes.get("/api/billing/invoices")
async def invoices(request: web.Request) -> web.Response:
    user = await current_user(request)
    rows = await list_invoices(request.app[POOL], user.id, INVOICE_LIST_MAX)
    return json_response({"data": [invoice_summary(r) for r in rows]})


@routes.get("/api/billing/invoices/{id}")
async def invoice(request: web.Request) -> web.Response:
    user = await current_user(request)
    row = await fetch_invoice(request.app[POOL], user_id=user.id, invoice_id=path_uuid(request))
    if row is None:
        raise NotFound("invoice not found")
    return json_response(invoice_view(row))


@routes.get("/api/billing/orders/{order_id}")
async def order(request: web.Request) -> web.Response:
    """The invoice behind a Midtrans order id: what the console's Snap finish page shows."""
    user = await current_user(request)
    order_id = request.match_info["order_id"]
    row = (await fetch_invoice(request.app[POOL], user_id=user.id, order_id=order_id)
           if is_valid_order_id(order_id) else None)
    if row is None:
        raise NotFound("order not found")
    return json_response(invoice_view(row))


@routes.post("/api/billing/midtrans/notification")
async def midtrans_notification(request: web.Request) -> web.Response:
    """Midtrans' webhook: no sign-in, the signature and Midtrans' own status answer are the proof. Its own
    small body limit (413 beyond): a public route whose every post is recorded."""
    limit = min(webhook.NOTIFICATION_BODY_LIMIT, request.app[SETTINGS].api_body_limit)
    raw = await read_body(request, limit)
    received = await webhook.receive(BillingDeps.from_app(request.app), raw, _now())
    return json_response({"ok": True, "verdict": received.verdict})
