"""Alerts and the webhook: dismissing a banner's alert, and the settings page's webhook section (set the URL, see
the signing secret once, send a test event, remove it)."""

from __future__ import annotations

from aiohttp import web

from webrana_dashboard.client import ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import api, creds, field_errors, redirect, require_user, safe_next, t_of
from webrana_dashboard.views.account_settings import settings_view

routes = web.RouteTableDef()


@routes.post("/alerts/{id}/dismiss")
async def dismiss(request: web.Request) -> web.Response:
    require_user(request)
    back = safe_next(form_text(await request.post(), "next"))
    try:
        await api(request).dismiss_alert(creds(request), request.match_info["id"])
    except ApiError as err:
        if err.status != 404:  # already gone (another tab): nothing to do
            raise
    return redirect(back)


@routes.post("/settings/webhook")
async def set_webhook(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    form = await request.post()
    url = form_text(form, "url").strip()
    rotate = bool(form_text(form, "rotate_secret"))
    try:
        view = await api(request).set_webhook(creds(request), url, rotate_secret=rotate)
    except ApiError as err:
        if err.status not in (400, 422):
            raise
        return await settings_view(request, webhook_form={"url": url},
                                   webhook_errors=field_errors(t, err, ("url",), fallback="url"), status=422)
    session.flash("ok", t("webhook.saved"))
    # The secret is shown on this answer only (never put in the session cookie or a redirect).
    return await settings_view(request, webhook=view, new_secret=view.get("secret"))


@routes.post("/settings/webhook/test")
async def test_webhook(request: web.Request) -> web.Response:
    session = require_user(request)
    await api(request).test_webhook(creds(request))
    session.flash("ok", t_of(request)("webhook.test_queued"))
    return redirect("/settings#webhook")


@routes.post("/settings/webhook/delete")
async def delete_webhook(request: web.Request) -> web.Response:
    session = require_user(request)
    try:
        await api(request).delete_webhook(creds(request))
    except ApiError as err:
        if err.status != 404:
            raise
    session.flash("ok", t_of(request)("webhook.deleted"))
    return redirect("/settings#webhook")
