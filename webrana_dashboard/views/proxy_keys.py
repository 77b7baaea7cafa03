"""Proxy keys (``wbr_...``): create (shown exactly once, with a copy button and the SDK snippet), list with
last use and request count, revoke after a confirmation step."""

from __future__ import annotations

from aiohttp import web

from webrana_dashboard.client import ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import api, creds, error_text, field_errors, redirect, render, require_user, t_of
from webrana_dashboard.snippets import curl_snippet, python_snippet
from webrana_dashboard.state import SETTINGS

routes = web.RouteTableDef()


async def _page(request: web.Request, name: str, errors: dict[str, str], status: int = 200) -> web.Response:
    keys = await api(request).proxy_keys(creds(request))
    return await render(request, "proxy_keys.html", {"nav": "proxy_keys", "keys": keys, "name": name,
                                                     "errors": errors}, status=status)


@routes.get("/proxy-keys")
async def list_keys(request: web.Request) -> web.Response:
    require_user(request)
    return await _page(request, "", {})


@routes.post("/proxy-keys")
async def create_key(request: web.Request) -> web.Response:
    require_user(request)
    t = t_of(request)
    name = form_text(await request.post(), "name").strip()
    if not name:
        return await _page(request, name, {"name": t("error.name_required")}, status=422)
    try:
        created = await api(request).create_proxy_key(creds(request), name)
    except ApiError as err:
        if err.status not in (400, 403, 422):
            raise
        return await _page(request, name, field_errors(t, err, ("name",)), status=422)
    public_api = request.app[SETTINGS].public_api_url
    # Rendered straight from the POST (never redirected, never stored): this answer is the only place the
    # full key ever appears, and Cache-Control: no-store keeps it out of the browser's cache.
    return await render(request, "proxy_key_created.html", {
        "nav": "proxy_keys", "created": created, "python_snippet": python_snippet(public_api, created["key"]),
        "curl_snippet": curl_snippet(public_api, created["key"]), "base_url": public_api + "/v1"})


@routes.get("/proxy-keys/{id}/revoke")
async def confirm_revoke(request: web.Request) -> web.Response:
    require_user(request)
    keys = await api(request).proxy_keys(creds(request))
    key = next((k for k in keys if k["id"] == request.match_info["id"]), None)
    if key is None:
        raise web.HTTPNotFound
    return await render(request, "proxy_key_revoke.html", {"nav": "proxy_keys", "key": key})


@routes.post("/proxy-keys/{id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    try:
        await api(request).revoke_proxy_key(creds(request), request.match_info["id"])
    except ApiError as err:
        if err.status != 404:
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("proxy_keys.revoked"))
    return redirect("/proxy-keys")
