"""Provider keys: add (the API checks the format; errors shown next to the field), test, delete. Keys are
only ever shown masked: the API never returns them after creation."""

from __future__ import annotations

from aiohttp import web

from webrana_dashboard.client import ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import api, creds, error_text, field_errors, redirect, render, require_user, t_of
from webrana_dashboard.state import SHARED

routes = web.RouteTableDef()
FIELDS = ("provider", "name", "key")


async def provider_ids(request: web.Request) -> list[str]:
    """The provider ids the proxy routes to, in its order (``/api/meta``, kept by the console for a minute)."""
    return [str(p["id"]) for p in await request.app[SHARED].providers(api(request), creds(request))]


async def _page(request: web.Request, form: dict[str, str], errors: dict[str, str],
                status: int = 200) -> web.Response:
    keys = await api(request).provider_keys(creds(request))
    return await render(request, "provider_keys.html", {
        "nav": "provider_keys", "keys": keys, "providers": await provider_ids(request), "form": form,
        "errors": errors}, status=status)


@routes.get("/provider-keys")
async def list_keys(request: web.Request) -> web.Response:
    require_user(request)
    providers = await provider_ids(request)
    return await _page(request, {"provider": providers[0] if providers else "", "name": "", "key": ""}, {})


@routes.post("/provider-keys")
async def add_key(request: web.Request) -> web.Response:
    require_user(request)
    t = t_of(request)
    data = await request.post()
    form = {"provider": form_text(data, "provider"), "name": form_text(data, "name").strip(),
            "key": form_text(data, "key").strip()}
    errors: dict[str, str] = {}
    if form["provider"] not in await provider_ids(request):
        errors["provider"] = t("error.unknown_provider")
    if not form["name"]:
        errors["name"] = t("error.name_required")
    if not form["key"]:
        errors["key"] = t("error.key_required")
    if not errors:
        try:
            created = await api(request).add_provider_key(creds(request), form["provider"], form["name"],
                                                          form["key"])
        except ApiError as err:
            if err.status not in (400, 403, 409, 422):
                raise
            errors = field_errors(t, err, FIELDS)
        else:
            session = require_user(request)
            session.flash("ok", t("provider_keys.added", name=created["name"], masked=created["masked_key"]))
            return redirect("/provider-keys")
    form["key"] = ""  # never echo a secret back into the page
    return await _page(request, form, errors, status=422)


@routes.post("/provider-keys/{id}/test")
async def test_key(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    result = await api(request).test_provider_key(creds(request), request.match_info["id"])
    kind = "ok" if result["status"] == "ok" else "error"
    session.flash(kind, t(f"provider_keys.test_{result['status']}", detail=result.get("detail", "")))
    return redirect("/provider-keys")


@routes.post("/provider-keys/{id}/delete")
async def delete_key(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    try:
        await api(request).delete_provider_key(creds(request), request.match_info["id"])
    except ApiError as err:
        if err.status != 404:
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("provider_keys.deleted"))
    return redirect("/provider-keys")
