"""Admin (admins only; others get a 404): stats, users with search and pagination, suspend/unsuspend,
change plan, refunds due (paid invoices nothing was granted for) to mark refunded, and the audit log. The
API enforces the role too; this only hides what others cannot use."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from aiohttp import web

from webrana_dashboard.client import ApiError
from webrana_dashboard.formatting import rupiah
from webrana_dashboard.forms import NotAWholeNumber, form_amount, form_int, form_text
from webrana_dashboard.pages import (
    api,
    creds,
    error_text,
    plans,
    redirect,
    render,
    require_admin,
    safe_next,
    t_of,
)

routes = web.RouteTableDef()
USERS_PER_PAGE = 25
AUDIT_PER_PAGE = 50
REFUNDS_PER_PAGE = 50
REFUND_NOTE_CHARS = 500  # the API's limit
MAX_QUERY_CHARS = 254  # an e-mail address at most


def _pages(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))


@routes.get("/admin")
async def dashboard(request: web.Request) -> web.Response:
    require_admin(request)
    client, c = api(request), creds(request)
    stats, offers = await asyncio.gather(client.admin_stats(c), plans(request))
    return await render(request, "admin/stats.html", {"nav": "admin", "admin_nav": "stats", "stats": stats,
                                                      "plans": offers["data"]})


@routes.get("/admin/users")
async def users(request: web.Request) -> web.Response:
    require_admin(request)
    q = request.query.get("q", "").strip()[:MAX_QUERY_CHARS]
    page = form_int(request.query.get("page"), 1)
    client, c = api(request), creds(request)
    listing, offers = await asyncio.gather(client.admin_users(c, q, page, USERS_PER_PAGE), plans(request))
    pages = _pages(int(listing["total"]), USERS_PER_PAGE)

    def page_url(n: int) -> str:
        return "/admin/users?" + urlencode({"q": q, "page": n} if q else {"page": n})

    return await render(request, "admin/users.html", {
        "nav": "admin", "admin_nav": "users", "users": listing["data"], "total": listing["total"], "q": q,
        "page": page, "pages": pages, "plans": offers["data"],
        "prev_url": page_url(page - 1) if page > 1 else None,
        "next_url": page_url(page + 1) if page < pages else None})


async def _change(request: web.Request, action: str) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    form = await request.post()
    user_id = request.match_info["id"]
    back = safe_next(form_text(form, "next"), "/admin/users")
    client, c = api(request), creds(request)
    try:
        if action == "plan":
            user = await client.admin_set_plan(c, user_id, form_text(form, "plan", 20))
        else:
            user = await client.admin_set_status(c, user_id, suspend=action == "suspend")
    except ApiError as err:
        if err.status not in (400, 404, 422):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t(f"admin.done_{action}", email=user["email"], plan=user["plan"]))
    return redirect(back)


@routes.post("/admin/users/{id}/suspend")
async def suspend(request: web.Request) -> web.Response:
    return await _change(request, "suspend")


@routes.post("/admin/users/{id}/unsuspend")
async def unsuspend(request: web.Request) -> web.Response:
    return await _change(request, "unsuspend")


@routes.post("/admin/users/{id}/plan")
async def set_plan(request: web.Request) -> web.Response:
    return await _change(request, "plan")


@routes.post("/admin/users/{id}/spend-cap")
async def set_spend_cap(request: web.Request) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    form = await request.post()
    back = safe_next(form_text(form, "next"), "/admin/users")
    try:
        cap = form_amount(form, "spend_cap_idr")
        result = await api(request).admin_set_spend_cap(creds(request), request.match_info["id"], cap,
                                                        hard=bool(form_text(form, "hard")))
    except NotAWholeNumber:
        session.flash("error", t("error.whole_number"))
    except ApiError as err:
        if err.status not in (400, 404, 422):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("admin.done_spend_cap", cap=rupiah(result["spend_cap_idr"])
                              if result["spend_cap_idr"] else t("rules.none")))
    return redirect(back)


@routes.get("/admin/audit")
async def audit(request: web.Request) -> web.Response:
    require_admin(request)
    page = form_int(request.query.get("page"), 1)
    log = await api(request).admin_audit_log(creds(request), page, AUDIT_PER_PAGE)
    pages = _pages(int(log["total"]), AUDIT_PER_PAGE)
    return await render(request, "admin/audit.html", {
        "nav": "admin", "admin_nav": "audit", "entries": log["data"], "page": page, "pages": pages,
        "prev_url": f"/admin/audit?page={page - 1}" if page > 1 else None,
        "next_url": f"/admin/audit?page={page + 1}" if page < pages else None})


@routes.get("/admin/refunds")
async def refunds(request: web.Request) -> web.Response:
    require_admin(request)
    page = form_int(request.query.get("page"), 1)
    listing = await api(request).admin_invoices(creds(request), "refund_due", page, REFUNDS_PER_PAGE)
    pages = _pages(int(listing["total"]), REFUNDS_PER_PAGE)
    return await render(request, "admin/refunds.html", {
        "nav": "admin", "admin_nav": "refunds", "invoices": listing["data"], "total": listing["total"],
        "page": page, "pages": pages,
        "prev_url": f"/admin/refunds?page={page - 1}" if page > 1 else None,
        "next_url": f"/admin/refunds?page={page + 1}" if page < pages else None})


@routes.post("/admin/invoices/{id}/refunded")
async def mark_refunded(request: web.Request) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    form = await request.post()
    try:
        invoice = await api(request).admin_mark_refunded(creds(request), request.match_info["id"],
                                                         form_text(form, "note", REFUND_NOTE_CHARS))
    except ApiError as err:
        if err.status not in (400, 404, 409, 422):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("admin.done_refunded", number=invoice["number"]))
    return redirect("/admin/refunds")
