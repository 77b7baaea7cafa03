"""Admin: own upstreams. The admins' OpenAI-compatible upstreams (``/api/admin/upstreams``): list, add, enable or
disable, delete. The API checks the URL (form, DNS, every address), validates names and headers, audits each change
and tells every replica within a second; this page costs one API call to show and one per change."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from webrana_dashboard.client import ApiError, Json
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import api, creds, error_text, field_errors, redirect, render, require_admin, t_of

routes = web.RouteTableDef()
FIELDS = ("slug", "name", "base_url", "model_prefix", "auth", "static_headers", "keyless")
HEADERS_CHARS = 4000


def _blank_form() -> dict[str, str]:
    return {"slug": "", "name": "", "base_url": "", "model_prefix": "", "auth_header": "", "static_headers": "",
            "keyless": ""}


def _read_form(data: Any) -> dict[str, str]:
    return {"slug": form_text(data, "slug", 32).strip(), "name": form_text(data, "name", 100).strip(),
            "base_url": form_text(data, "base_url", 2048).strip(),
            "model_prefix": form_text(data, "model_prefix", 41).strip(),
            "auth_header": form_text(data, "auth_header", 64).strip(),
            "static_headers": form_text(data, "static_headers", HEADERS_CHARS),
            "keyless": "on" if form_text(data, "keyless", 10) else ""}


def _body(form: dict[str, str], t: Any) -> tuple[Json, dict[str, str]]:
    errors: dict[str, str] = {}
    headers: dict[str, str] = {}
    for line in form["static_headers"].splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or not value.strip():
            errors["static_headers"] = t("upstreams.error_headers")
            break
        headers[name.strip()] = value.strip()
    auth: Json = ({"style": "header", "header": form["auth_header"]} if form["auth_header"]
                  else {"style": "bearer"})
    body: Json = {"slug": form["slug"], "name": form["name"], "base_url": form["base_url"],
                  "model_prefix": form["model_prefix"], "auth": auth, "static_headers": headers,
                  "keyless": form["keyless"] == "on"}
    return body, errors


async def _page(request: web.Request, form: dict[str, str], errors: dict[str, str],
                status: int = 200) -> web.Response:
    listed = await api(request).admin_upstreams(creds(request))
    return await render(request, "admin/upstreams.html", {
        "nav": "admin", "admin_nav": "upstreams", "upstreams": listed["data"], "form": form, "errors": errors},
        status=status)


@routes.get("/admin/upstreams")
async def upstreams(request: web.Request) -> web.Response:
    require_admin(request)
    return await _page(request, _blank_form(), {})


@routes.post("/admin/upstreams")
async def create(request: web.Request) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    form = _read_form(await request.post())
    body, errors = _body(form, t)
    if not errors:
        try:
            made = await api(request).admin_create_upstream(creds(request), body)
        except ApiError as err:
            if err.status not in (400, 409, 422):
                raise
            errors = field_errors(t, err, FIELDS)
        else:
            session.flash("ok", t("upstreams.added", slug=made["slug"], prefix=made["model_prefix"]))
            return redirect("/admin/upstreams")
    return await _page(request, form, errors, status=422)


@routes.post("/admin/upstreams/{id}/enabled")
async def set_enabled(request: web.Request) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    enabled = form_text(await request.post(), "enabled", 10) == "true"
    try:
        changed = await api(request).admin_update_upstream(creds(request), request.match_info["id"],
                                                           {"enabled": enabled})
    except ApiError as err:
        if err.status not in (400, 404):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("upstreams.changed", slug=changed["slug"]))
    return redirect("/admin/upstreams")


@routes.post("/admin/upstreams/{id}/delete")
async def delete(request: web.Request) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    try:
        await api(request).admin_delete_upstream(creds(request), request.match_info["id"])
    except ApiError as err:
        if err.status not in (400, 404):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("upstreams.deleted"))
    return redirect("/admin/upstreams")
