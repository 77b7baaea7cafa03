"""The OpenAPI operations of /api/plans, /api/billing and /api/admin (merged into ``openapi.paths()``)."""

from __future__ import annotations

from typing import Any

from webrana_proxy.api.openapi import INT, PLAN, STR, UUID, _obj, _op, _path_id, _query

DATETIME = {"type": "string", "format": "date-time"}
NULL_DATETIME = {"type": ["string", "null"], "format": "date-time"}
NULL_STR = {"type": ["string", "null"]}
INVOICE_STATUS = {"type": "string", "enum": ["pending", "paid", "expired", "cancelled", "denied", "refund_due",
                                             "refunded"]}
PARTY = {"type": "object", "additionalProperties": {"type": "string"}}

PLAN_OFFER = _obj(["id", "name", "price_idr", "period_days", "monthly_requests", "ppn_idr", "total_idr"],
                  id=PLAN, name=STR, price_idr=INT, period_days=INT, monthly_requests=INT,
                  max_proxy_keys={"type": ["integer", "null"]}, max_providers={"type": ["integer", "null"]},
                  team_seats=INT, burst_per_minute=INT, ppn_idr=INT, total_idr=INT)
PLANS = _obj(["currency", "ppn_percent", "data"], currency={"const": "IDR"}, ppn_percent=INT,
             data={"type": "array", "items": PLAN_OFFER})
CHECKOUT = _obj(["order_id", "token", "redirect_url", "invoice_id", "invoice_number", "kind", "plan",
                 "subtotal_idr", "ppn_idr", "total_idr"],
                order_id=STR, token=STR, redirect_url=STR, invoice_id=UUID, invoice_number=STR,
                kind={"type": "string", "enum": ["new", "renewal", "upgrade"]}, plan=PLAN, subtotal_idr=INT,
                ppn_idr=INT, total_idr=INT, expires_at=DATETIME)
SUBSCRIPTION = _obj(["id", "plan", "status", "current_period_start", "current_period_end",
                     "cancel_at_period_end", "scheduled_plan"],
                    id=UUID, plan=PLAN, plan_name=STR, status=STR, current_period_start=NULL_DATETIME,
                    current_period_end=NULL_DATETIME, days_left=INT, cancel_at_period_end={"type": "boolean"},
                    scheduled_plan={"type": ["string", "null"]})
SUBSCRIPTION_STATE = _obj(["plan", "subscription"], plan=PLAN,
                          subscription={"oneOf": [SUBSCRIPTION, {"type": "null"}]})
INVOICE_SUMMARY = _obj(["id", "number", "order_id", "kind", "plan", "status", "currency", "subtotal_idr",
                        "ppn_idr", "total_idr", "issued_at"],
                       id=UUID, number={"type": "string", "pattern": "^WEB-[0-9]{4}-[0-9]{2}-[0-9]{4,}$"},
                       order_id=STR, kind=STR, plan=PLAN, status=INVOICE_STATUS, currency={"const": "IDR"},
                       subtotal_idr=INT, ppn_idr=INT, total_idr=INT, payment_method=NULL_STR,
                       issued_at=DATETIME, paid_at=NULL_DATETIME, expires_at=DATETIME,
                       refund_reason=NULL_STR, refunded_at=NULL_DATETIME)
INVOICE = {"allOf": [INVOICE_SUMMARY, _obj(
    ["lines", "ppn_percent", "seller", "buyer"],
    lines={"type": "array", "items": _obj(["id", "name", "price_idr", "quantity", "amount_idr"], id=STR,
                                          name=STR, price_idr=INT, quantity=INT, amount_idr=INT)},
    ppn_percent={"type": ["integer", "null"]}, period_start=NULL_DATETIME, period_end=NULL_DATETIME,
    seller=PARTY, buyer=PARTY, redirect_url=NULL_STR, snap_token=NULL_STR)]}
ADMIN_USER = {"allOf": [{"$ref": "#/components/schemas/User"}, _obj(
    [], burst_per_minute_override={"type": ["integer", "null"]},
    monthly_requests_override={"type": ["integer", "null"]})]}
ADMIN_INVOICE = {"allOf": [INVOICE_SUMMARY, _obj(["user_id", "email"], user_id=UUID, email=STR,
                                                period_start=NULL_DATETIME, period_end=NULL_DATETIME)]}
PAGE_PARAMS = [_query("page", {"type": "integer", "minimum": 1, "default": 1}, "page number, from 1"),
               _query("per_page", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                      "rows per page")]
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "schema": {"type": "string", "maxLength": 100},
               "description": "a retry with the same key gets the first answer; no second payment opens"}
NOTIFICATION = _obj(["order_id", "status_code", "gross_amount", "signature_key", "transaction_status"],
                    order_id=STR, status_code=STR, gross_amount=STR, signature_key=STR,
                    transaction_status=STR, fraud_status=STR, payment_type=STR, transaction_id=STR)


def billing_paths() -> dict[str, dict[str, Any]]:
    user_id = _path_id("user id")
    return {
        "/api/plans": {"get": _op("The plans and their prices (IDR, before and after PPN)", auth=False,
                                  response=PLANS)},
        "/api/billing/subscribe": {"post": _op(
            "Start paying for a plan (new, renewal, prorated upgrade, or downgrade at the period end): "
            "a numbered invoice and a Midtrans Snap checkout. One pending invoice per user: the same plan again "
            "returns it (Idempotent-Replayed: true); another plan first expires it at Midtrans (409 "
            "payment_in_progress while a card payment of it is under review)", ok=201, params=[IDEMPOTENCY],
            body=_obj(["plan"], plan={"type": "string", "enum": ["starter", "pro", "team"]}),
            response=CHECKOUT)},
        "/api/billing/subscription": {"get": _op("The caller's plan and running subscription",
                                                 response=SUBSCRIPTION_STATE)},
        "/api/billing/cancel": {"post": _op("Stop renewing: the plan stays until the period ends",
                                            response=SUBSCRIPTION_STATE)},
        "/api/billing/invoices": {"get": _op("The caller's invoices, newest first", response=_obj(
            ["data"], data={"type": "array", "items": INVOICE_SUMMARY}))},
        "/api/billing/invoices/{id}": {"get": _op("One invoice with seller, buyer, lines, PPN and total",
                                                  params=[_path_id("invoice id")], response=INVOICE)},
        "/api/billing/orders/{order_id}": {"get": _op(
            "The invoice of a Midtrans order id (the Snap finish page)", response=INVOICE,
            params=[{"name": "order_id", "in": "path", "required": True, "schema": STR,
                     "description": "Midtrans order id"}])},
        "/api/billing/midtrans/notification": {"post": _op(
            "Midtrans payment notification (signed; verified against Midtrans' status API)", auth=False,
            body=NOTIFICATION, response=_obj(["ok", "verdict"], ok={"type": "boolean"}, verdict=STR))},
        "/api/admin/stats": {"get": _op("Users, subscriptions, MRR, requests and gateway latency (admin)")},
        "/api/admin/users": {"get": _op("Search users by e-mail (admin)", params=[
            _query("q", STR, "part of an e-mail address"), *PAGE_PARAMS], response=_obj(
            ["data", "page", "per_page", "total"], data={"type": "array", "items": ADMIN_USER}, page=INT,
            per_page=INT, total=INT))},
        "/api/admin/users/{id}/suspend": {"post": _op("Suspend a user (admin)", params=[user_id],
                                                      response=ADMIN_USER)},
        "/api/admin/users/{id}/unsuspend": {"post": _op("Reactivate a user (admin)", params=[user_id],
                                                        response=ADMIN_USER)},
        "/api/admin/users/{id}/plan": {"put": _op("Set a user's plan (admin)", params=[user_id],
                                                  body=_obj(["plan"], plan=PLAN), response=ADMIN_USER)},
        "/api/admin/users/{id}/limits": {"put": _op(
            "Set a user's custom limits; null = the plan's default (admin)", params=[user_id],
            body=_obj([], burst_per_minute={"type": ["integer", "null"], "minimum": 1},
                      monthly_requests={"type": ["integer", "null"], "minimum": 0}), response=ADMIN_USER)},
        "/api/admin/invoices": {"get": _op(
            "Invoices of every user in one state, newest change first; by default refund_due (paid, nothing "
            "granted: to refund) (admin)", params=[
                _query("status", INVOICE_STATUS, "invoice state (default refund_due)"), *PAGE_PARAMS],
            response=_obj(["data", "page", "per_page", "total"], data={"type": "array", "items": ADMIN_INVOICE},
                          page=INT, per_page=INT, total=INT))},
        "/api/admin/invoices/{id}/refunded": {"post": _op(
            "Mark a refund_due invoice refunded once the money went back (audited; 409 otherwise) (admin)",
            params=[_path_id("invoice id")], response=ADMIN_INVOICE,
            body=_obj([], note={"type": ["string", "null"], "maxLength": 500}))},
        "/api/admin/audit-log": {"get": _op("Admin actions, newest first (admin)", params=[
            _query("user_id", UUID, "only actions on this user"), *PAGE_PARAMS])},
    }
