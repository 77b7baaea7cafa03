"""/api/admin: business numbers, users (search, suspend, plan, limits), invoices (refund-due ones to refund)
and the audit log. Admin role only; every change is written to ``audit_log`` (who, what, when) in the same
transaction as the change itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.api.identity import User, current_admin
from webrana_proxy.api.spend_caps import cap_changed, cap_view, read_cap, set_user_cap
from webrana_proxy.billing.invoice_state import InvoiceStatus
from webrana_proxy.billing.invoices import invoice_summary
from webrana_proxy.billing.midtrans import JAKARTA
from webrana_proxy.billing.plans import PLAN_IDS, get_plan
from webrana_proxy.db import Conn
from webrana_proxy.errors import BadRequest, NotFound, ValidationFailed, WebranaError
from webrana_proxy.jsonio import (
    json_response,
    opt_int,
    parse_json_object,
    path_uuid,
    read_body,
    read_json,
    req_str,
)
from webrana_proxy.state import KEYCACHE, POOL, SETTINGS

routes = web.RouteTableDef()

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
LATENCY_WINDOW = timedelta(hours=1)
MAX_BURST_OVERRIDE = 1_000_000  # requests/minute; far above anything real, below integer trouble
MAX_MONTHLY_OVERRIDE = 2_000_000_000  # fits the INTEGER column
REFUND_NOTE_MAX = 500  # characters: a Midtrans refund key or bank reference and a sentence
INVOICE_STATUSES = tuple(s.value for s in InvoiceStatus)


class NotRefundDue(WebranaError):
    status = 409
    type = "invalid_request_error"
    default_code = "not_refund_due"


def _page(request: web.Request) -> tuple[int, int]:
    def number(name: str, default: int, maximum: int) -> int:
        raw = request.query.get(name, "")
        if not raw:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise ValidationFailed(f"'{name}' must be a whole number between 1 and {maximum}", param=name)
        return int(raw)

    return number("page", 1, 1_000_000), number("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _user_view(row: asyncpg.Record) -> dict[str, Any]:
    return {**User.from_row(row).public(),
            "burst_per_minute_override": row["burst_per_minute_override"],
            "monthly_requests_override": row["monthly_requests_override"],
            "spend_cap_idr": row.get("spend_cap_idr"), "spend_cap_hard": row.get("spend_cap_hard", True)}


async def _audit(conn: Conn, actor: User, action: str, target: uuid.UUID | None,
                 details: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, action, target_user_id, details) VALUES ($1, $2, $3, $4)",
        actor.id, action, target, {"actor_email": actor.email, **details})


async def _locked_user(conn: Conn, user_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT id, email, role, plan, status, created_at, burst_per_minute_override, monthly_requests_override
           FROM users WHERE id = $1 FOR UPDATE""", user_id)
    if row is None:
        raise NotFound("user not found")
    return row


@routes.get("/api/admin/stats")
async def stats(request: web.Request) -> web.Response:
    await current_admin(request)
    pool = request.app[POOL]
    now = datetime.now(UTC)
    today = now.astimezone(JAKARTA).date()
    month_start = today.replace(day=1)
    async with pool.acquire() as conn:
        users = await conn.fetch("SELECT plan, status, count(*) AS n FROM users GROUP BY plan, status")
        subs = await conn.fetch(
            """SELECT plan, count(*) AS n FROM subscriptions
               WHERE status = 'active' AND current_period_end > $1 GROUP BY plan""", now)
        requests = await conn.fetchrow(
            """SELECT coalesce(sum(requests) FILTER (WHERE day = $1), 0) AS today,
                      coalesce(sum(requests), 0) AS month
               FROM usage_daily WHERE day >= $2 AND day <= $1""", today, month_start)
        refunds_due = await conn.fetchrow(
            """SELECT count(*) AS n, coalesce(sum(total_idr), 0) AS total_idr
               FROM invoices WHERE status = 'refund_due'""")
        latency = await conn.fetchrow(
            """SELECT count(*) AS n,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
                      percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99
               FROM proxy_requests WHERE created_at > $1""", now - LATENCY_WINDOW)
    by_plan = dict.fromkeys(PLAN_IDS, 0)
    totals = {"total": 0, "active": 0, "suspended": 0}
    for r in users:
        by_plan[r["plan"]] += r["n"]
        totals["total"] += r["n"]
        totals[r["status"]] += r["n"]
    subs_by_plan = {r["plan"]: r["n"] for r in subs}
    assert requests is not None and latency is not None and refunds_due is not None

    def ms(value: float | None) -> float | None:
        return None if value is None else round(float(value), 2)

    return json_response({
        "generated_at": now.isoformat(),
        "users": {**totals, "by_plan": by_plan},
        "subscriptions": {"active": sum(subs_by_plan.values()), "by_plan": subs_by_plan},
        # Monthly recurring revenue: the 30-day price (before PPN) of every running subscription.
        "mrr_idr": sum(get_plan(plan).price_idr * n for plan, n in subs_by_plan.items()),
        "requests": {"today": int(requests["today"]), "this_month": int(requests["month"]),
                     "timezone": "Asia/Jakarta"},
        # Paid but not granted (GET /api/admin/invoices?status=refund_due): money to send back.
        "refunds_due": {"count": refunds_due["n"], "total_idr": int(refunds_due["total_idr"])},
        "latency_ms": {"window_seconds": int(LATENCY_WINDOW.total_seconds()), "count": latency["n"],
                       "p50": ms(latency["p50"]), "p95": ms(latency["p95"]), "p99": ms(latency["p99"])},
    })


@routes.get("/api/admin/users")
async def users(request: web.Request) -> web.Response:
    await current_admin(request)
    page, per_page = _page(request)
    q = request.query.get("q", "").strip()
    if len(q) > 254:
        raise ValidationFailed("'q' must be at most 254 characters", param="q")
    pattern = _like_pattern(q.lower()) if q else "%"
    async with request.app[POOL].acquire() as conn:
        total = await conn.fetchval("SELECT count(*) FROM users WHERE lower(email) LIKE $1", pattern)
        rows = await conn.fetch(
            """SELECT id, email, role, plan, status, created_at, burst_per_minute_override, monthly_requests_override,
                      spend_cap_idr, spend_cap_hard
               FROM users WHERE lower(email) LIKE $1
               ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3""",
            pattern, per_page, (page - 1) * per_page)
    return json_response({"data": [_user_view(r) for r in rows], "page": page, "per_page": per_page,
                          "total": total})


async def _set_status(request: web.Request, status: str) -> web.Response:
    admin = await current_admin(request)
    user_id = path_uuid(request)
    if status == "suspended" and user_id == admin.id:
        raise BadRequest("you cannot suspend your own account", code="cannot_suspend_self")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await _locked_user(conn, user_id)
        row = await conn.fetchrow(
            """UPDATE users SET status = $2 WHERE id = $1
               RETURNING id, email, role, plan, status, created_at, burst_per_minute_override,
                         monthly_requests_override""", user_id, status)
        await _audit(conn, admin, "user.suspend" if status == "suspended" else "user.unsuspend", user_id,
                     {"email": before["email"], "from": before["status"], "to": status})
    await request.app[KEYCACHE].invalidate_user(user_id)
    assert row is not None
    return json_response(_user_view(row))


@routes.post("/api/admin/users/{id}/suspend")
async def suspend(request: web.Request) -> web.Response:
    return await _set_status(request, "suspended")


@routes.post("/api/admin/users/{id}/unsuspend")
async def unsuspend(request: web.Request) -> web.Response:
    return await _set_status(request, "active")


@routes.put("/api/admin/users/{id}/plan")
async def set_plan(request: web.Request) -> web.Response:
    admin = await current_admin(request)
    user_id = path_uuid(request)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    plan = req_str(body, "plan", max_len=20)
    if plan not in PLAN_IDS:
        raise ValidationFailed(f"'plan' must be one of {', '.join(PLAN_IDS)}", param="plan",
                               code="unknown_plan")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await _locked_user(conn, user_id)
        row = await conn.fetchrow(
            """UPDATE users SET plan = $2 WHERE id = $1
               RETURNING id, email, role, plan, status, created_at, burst_per_minute_override,
                         monthly_requests_override""", user_id, plan)
        await _audit(conn, admin, "user.set_plan", user_id,
                     {"email": before["email"], "from": before["plan"], "to": plan})
    await request.app[KEYCACHE].invalidate_user(user_id)
    assert row is not None
    return json_response(_user_view(row))


@routes.put("/api/admin/users/{id}/limits")
async def set_limits(request: web.Request) -> web.Response:
    """Custom limits for one user; ``null`` (or absent) means the plan's default."""
    admin = await current_admin(request)
    user_id = path_uuid(request)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    burst = opt_int(body, "burst_per_minute", minimum=1, maximum=MAX_BURST_OVERRIDE)
    monthly = opt_int(body, "monthly_requests", minimum=0, maximum=MAX_MONTHLY_OVERRIDE)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await _locked_user(conn, user_id)
        row = await conn.fetchrow(
            """UPDATE users SET burst_per_minute_override = $2, monthly_requests_override = $3 WHERE id = $1
               RETURNING id, email, role, plan, status, created_at, burst_per_minute_override,
                         monthly_requests_override""", user_id, burst, monthly)
        await _audit(conn, admin, "user.set_limits", user_id, {
            "email": before["email"],
            "from": {"burst_per_minute": before["burst_per_minute_override"],
                     "monthly_requests": before["monthly_requests_override"]},
            "to": {"burst_per_minute": burst, "monthly_requests": monthly}})
    await request.app[KEYCACHE].invalidate_user(user_id)
    assert row is not None
    return json_response(_user_view(row))


@routes.put("/api/admin/users/{id}/spend-cap")
async def set_spend_cap(request: web.Request) -> web.Response:
    """A user's monthly spend cap: ``{"spend_cap_idr": int | null, "hard": bool}`` (as the user sets it)."""
    admin = await current_admin(request)
    user_id = path_uuid(request)
    cap, hard = read_cap(await read_json(request, request.app[SETTINGS].api_body_limit))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
        if email is None:
            raise NotFound("user not found")
        before_cap, before_hard = await set_user_cap(conn, user_id, cap, hard)
        await _audit(conn, admin, "user.set_spend_cap", user_id, {
            "email": email, "from": {"spend_cap_idr": before_cap, "hard": before_hard},
            "to": {"spend_cap_idr": cap, "hard": hard}})
    await cap_changed(request.app, user_id, was_capped=before_cap is not None)
    return json_response({"user_id": str(user_id), **await cap_view(request.app, user_id, cap, hard)})


@routes.get("/api/admin/audit-log")
async def audit_log(request: web.Request) -> web.Response:
    await current_admin(request)
    page, per_page = _page(request)
    target_raw = request.query.get("user_id")
    target: uuid.UUID | None = None
    if target_raw:
        try:
            target = uuid.UUID(target_raw)
        except ValueError:
            raise ValidationFailed("'user_id' must be a UUID", param="user_id") from None
    async with request.app[POOL].acquire() as conn:
        total = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE ($1::uuid IS NULL OR target_user_id = $1)", target)
        rows = await conn.fetch(
            """SELECT a.id, a.actor_id, u.email AS actor_email, a.action, a.target_user_id, a.details,
                      a.created_at
               FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
               WHERE ($1::uuid IS NULL OR a.target_user_id = $1)
               ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3""", target, per_page,
            (page - 1) * per_page)
    return json_response({
        "data": [{"id": str(r["id"]),
                  "actor_id": str(r["actor_id"]) if r["actor_id"] else None,
                  "actor_email": r["actor_email"] or (r["details"] or {}).get("actor_email"),
                  "action": r["action"],
                  "target_user_id": str(r["target_user_id"]) if r["target_user_id"] else None,
                  "details": r["details"], "created_at": r["created_at"].isoformat()} for r in rows],
        "page": page, "per_page": per_page, "total": total})


def _admin_invoice_view(row: asyncpg.Record) -> dict[str, Any]:
    return {**invoice_summary(row), "user_id": str(row["user_id"]), "email": row["email"],
            "period_start": row["period_start"].isoformat() if row["period_start"] else None,
            "period_end": row["period_end"].isoformat() if row["period_end"] else None}


@routes.get("/api/admin/invoices")
async def invoices(request: web.Request) -> web.Response:
    """Invoices of every user in one state, newest change first; by default the refund-due ones."""
    await current_admin(request)
    page, per_page = _page(request)
    status = request.query.get("status", InvoiceStatus.REFUND_DUE.value)
    if status not in INVOICE_STATUSES:
        raise ValidationFailed(f"'status' must be one of {', '.join(INVOICE_STATUSES)}", param="status")
    async with request.app[POOL].acquire() as conn:
        total = await conn.fetchval("SELECT count(*) FROM invoices WHERE status = $1", status)
        rows = await conn.fetch(
            """SELECT i.id, i.user_id, u.email, i.number, i.order_id, i.kind, i.plan, i.status, i.subtotal_idr,
                      i.ppn_idr, i.total_idr, i.payment_method, i.created_at, i.paid_at, i.expires_at,
                      i.period_start, i.period_end, i.refund_reason, i.refunded_at
               FROM invoices i JOIN users u ON u.id = i.user_id
               WHERE i.status = $1
               ORDER BY i.updated_at DESC, i.id DESC LIMIT $2 OFFSET $3""",
            status, per_page, (page - 1) * per_page)
    return json_response({"data": [_admin_invoice_view(r) for r in rows], "page": page, "per_page": per_page,
                          "total": total})


@routes.post("/api/admin/invoices/{id}/refunded")
async def mark_refunded(request: web.Request) -> web.Response:
    """A refund-due invoice was refunded (in the Midtrans dashboard or by transfer): record it, audited.
    Optional body ``{"note": "..."}`` (the refund reference)."""
    admin = await current_admin(request)
    invoice_id = path_uuid(request)
    raw = await read_body(request, request.app[SETTINGS].api_body_limit)
    note: str | None = None
    if raw.strip():
        body = parse_json_object(raw)
        if body.get("note") is not None:
            note = req_str(body, "note", max_len=REFUND_NOTE_MAX)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            """SELECT i.id, i.user_id, u.email, i.number, i.order_id, i.status, i.total_idr, i.refund_reason
               FROM invoices i JOIN users u ON u.id = i.user_id WHERE i.id = $1 FOR UPDATE OF i""", invoice_id)
        if before is None:
            raise NotFound("invoice not found")
        if before["status"] != InvoiceStatus.REFUND_DUE.value:
            raise NotRefundDue(f"invoice {before['number']} is {before['status']}, not refund_due")
        row = await conn.fetchrow(
            """UPDATE invoices i SET status = 'refunded', refunded_at = now() FROM users u
               WHERE i.id = $1 AND u.id = i.user_id
               RETURNING i.id, i.user_id, u.email, i.number, i.order_id, i.kind, i.plan, i.status, i.subtotal_idr,
                         i.ppn_idr, i.total_idr, i.payment_method, i.created_at, i.paid_at, i.expires_at,
                         i.period_start, i.period_end, i.refund_reason, i.refunded_at""", invoice_id)
        await _audit(conn, admin, "invoice.mark_refunded", before["user_id"], {
            "email": before["email"], "invoice": before["number"], "order_id": before["order_id"],
            "total_idr": before["total_idr"], "reason": before["refund_reason"], "note": note})
    assert row is not None
    return json_response(_admin_invoice_view(row))
