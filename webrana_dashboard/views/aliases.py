"""Aliases: list, add, change, delete (a model name such as wbr/fast for models tried in order). Each page costs
one API call: the list (with the add form), or the one alias being changed; a refused save two (it and the list)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from webrana_dashboard.client import ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.i18n import Translator
from webrana_dashboard.pages import api, creds, error_text, redirect, render, require_user, t_of

routes = web.RouteTableDef()
MAX_HOPS = 5  # the API's limit (/api/openapi.json)
HOP_FIELDS = ("model", "max_tokens", "temperature", "top_p", "timeout")
NUMBERS = {"max_tokens": int, "temperature": float, "top_p": float, "timeout": float}


def _empty_form() -> dict[str, Any]:
    return {"name": "", "hops": [dict.fromkeys(HOP_FIELDS, "") for _ in range(MAX_HOPS)]}


def _form_of(alias: dict[str, Any]) -> dict[str, Any]:
    """An alias from the API as the form shows it."""
    form = _empty_form()
    form["name"] = alias["name"]
    for i, hop in enumerate(alias["hops"][:MAX_HOPS]):
        hop = {"model": hop} if isinstance(hop, str) else hop
        params = hop.get("params") or {}
        timeout = hop.get("first_byte_timeout")
        form["hops"][i] = {"model": hop.get("model", ""),
                           **{k: "" if params.get(k) is None else f"{params[k]:g}" for k in
                              ("max_tokens", "temperature", "top_p")},
                           "timeout": "" if timeout is None else f"{timeout:g}"}
    return form


def _read(data: Any, t: Translator) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    """(the form as typed, the hops for the API, errors by field)."""
    form = _empty_form()
    form["name"] = form_text(data, "name").strip()
    hops: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for i in range(MAX_HOPS):
        row = {f: form_text(data, f"hop{i}_{f}").strip() for f in HOP_FIELDS}
        form["hops"][i] = row
        if not row["model"]:
            continue
        hop: dict[str, Any] = {"model": row["model"]}
        params: dict[str, Any] = {}
        for field, kind in NUMBERS.items():
            if not row[field]:
                continue
            try:
                value = kind(row[field])
            except ValueError:
                errors[f"hop{i}_{field}"] = t("aliases.not_a_number")
                continue
            if field == "timeout":
                hop["first_byte_timeout"] = value
            else:
                params[field] = value
        if params:
            hop["params"] = params
        hops.append(hop)
    return form, hops, errors


def _api_errors(t: Translator, err: ApiError, hops_typed: list[int]) -> dict[str, str]:
    """The API's error next to its field: ``hops[i].params.max_tokens`` -> the i-th filled row's input."""
    param = err.param or ""
    if param == "name":
        return {"name": error_text(t, err)}
    if param.startswith("hops[") and "]" in param:
        index = int(param[5:param.index("]")])
        rest = param[param.index("]") + 2:]
        field = {"model": "model", "first_byte_timeout": "timeout"}.get(rest, rest.rsplit(".", 1)[-1])
        if index < len(hops_typed) and field in HOP_FIELDS:
            return {f"hop{hops_typed[index]}_{field}": error_text(t, err)}
        return {"hops": error_text(t, err)}
    if param == "hops":
        return {"hops": error_text(t, err)}
    return {"form": error_text(t, err)}


async def _page(request: web.Request, form: dict[str, Any], errors: dict[str, str], editing: str | None = None,
                status: int = 200) -> web.Response:
    """The list with the add form (one call), or the form changing one alias (no call of its own)."""
    aliases = await api(request).aliases(creds(request)) if editing is None else []
    return await render(request, "aliases.html", {
        "nav": "aliases", "aliases": aliases, "form": form, "errors": errors, "editing": editing},
        status=status)


@routes.get("/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    require_user(request)
    return await _page(request, _empty_form(), {})


@routes.get("/aliases/{id}/edit")
async def edit_alias(request: web.Request) -> web.Response:
    require_user(request)
    alias_id = request.match_info["id"]
    try:
        alias = await api(request).alias(creds(request), alias_id)
    except ApiError as err:
        if err.status in (400, 404):
            raise web.HTTPNotFound from None
        raise
    return await _page(request, _form_of(alias), {}, editing=alias_id)


async def _save(request: web.Request, alias_id: str | None) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    form, hops, errors = _read(await request.post(), t)
    if not form["name"]:
        errors["name"] = t("error.name_required")
    if not errors:
        try:
            saved = await api(request).save_alias(creds(request), alias_id, form["name"], hops)
        except ApiError as err:
            if err.status not in (400, 403, 404, 409, 422):
                raise
            typed = [i for i, row in enumerate(form["hops"]) if row["model"]]
            errors = _api_errors(t, err, typed)
        else:
            session.flash("ok", t("aliases.updated" if alias_id else "aliases.added", name=saved["name"]))
            return redirect("/aliases")
    return await _page(request, form, errors, editing=alias_id, status=422)  # the save and the list: two calls


@routes.post("/aliases")
async def add_alias(request: web.Request) -> web.Response:
    return await _save(request, None)


@routes.post("/aliases/{id}")
async def change_alias(request: web.Request) -> web.Response:
    return await _save(request, request.match_info["id"])


@routes.post("/aliases/{id}/delete")
async def delete_alias(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    try:
        await api(request).delete_alias(creds(request), request.match_info["id"])
    except ApiError as err:
        if err.status not in (400, 404):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("aliases.deleted"))
    return redirect("/aliases")
