"""Account settings: the monthly spend cap in rupiah (hard: calls stop at it; soft: alerts only) and this
month's spend (Asia/Jakarta); the webhook for alerts (its forms are in ``views.alerts``)."""

from __future__ import annotations

from aiohttp import web

from webrana_dashboard.client import ApiError, Json
from webrana_dashboard.forms import NotAWholeNumber, form_amount, form_text
from webrana_dashboard.pages import api, creds, field_errors, redirect, render, require_user, t_of

routes = web.RouteTableDef()


async def _page(request: web.Request, form: dict[str, str] | None, errors: dict[str, str],
                status: int = 200) -> web.Response:
    return await settings_view(request, form=form, errors=errors, status=status)


async def settings_view(request: web.Request, *, form: dict[str, str] | None = None,
                        errors: dict[str, str] | None = None, webhook: Json | None = None,
                        webhook_form: dict[str, str] | None = None, webhook_errors: dict[str, str] | None = None,
                        new_secret: str | None = None, status: int = 200) -> web.Response:
    """The settings page: the spend cap and the webhook (two calls; one when the webhook's answer is at hand)."""
    cap = await api(request).spend_cap(creds(request))
    hook = webhook if webhook is not None else await api(request).webhook(creds(request))
    shown = form or {"spend_cap_idr": str(cap["spend_cap_idr"] or ""), "hard": "1" if cap["hard"] else ""}
    current = hook.get("webhook") or {}
    return await render(request, "settings.html", {
        "nav": "settings", "cap": cap, "form": shown, "errors": errors or {}, "webhook": hook.get("webhook"),
        "deliveries": hook.get("deliveries") or [], "webhook_form": webhook_form or {"url": current.get("url", "")},
        "webhook_errors": webhook_errors or {}, "new_secret": new_secret,
    }, status=status)


@routes.get("/settings")
async def settings_page(request: web.Request) -> web.Response:
    require_user(request)
    return await _page(request, None, {})


@routes.post("/settings/spend-cap")
async def set_cap(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    form = await request.post()
    shown = {"spend_cap_idr": form_text(form, "spend_cap_idr"), "hard": form_text(form, "hard")}
    try:
        cap = form_amount(form, "spend_cap_idr")
        await api(request).set_spend_cap(creds(request), cap, hard=bool(shown["hard"]))
    except NotAWholeNumber:
        return await _page(request, shown, {"spend_cap_idr": t("error.whole_number")}, status=422)
    except ApiError as err:
        if err.status not in (400, 422):
            raise
        return await _page(request, shown, field_errors(t, err, ("spend_cap_idr", "hard")), status=422)
    session.flash("ok", t("settings.saved"))
    return redirect("/settings")
