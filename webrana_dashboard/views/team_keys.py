"""A team's keys. Provider keys (managers and the owner): add, test, delete; shown masked, never again in full.
Team proxy keys: every member creates and manages their own, with the same rules as personal keys (the rule
fields are the personal pages' ``_key_rules.html``); managers see, change and revoke every member's, each named
by its holder."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from webrana_dashboard.client import ApiError, Json
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import error_text, field_errors, redirect, render, require_user, t_of
from webrana_dashboard.snippets import curl_snippet, python_snippet
from webrana_dashboard.state import SETTINGS
from webrana_dashboard.views.provider_keys import FIELDS as PROVIDER_FIELDS
from webrana_dashboard.views.provider_keys import provider_ids
from webrana_dashboard.views.proxy_keys import RULE_FIELDS, RuleFormError, form_of, rules_from_form
from webrana_dashboard.workspaces import Team, org_id_of, team_api, team_of, team_with

routes = web.RouteTableDef()


# --- provider keys ------------------------------------------------------------------------------------------------


async def _provider_page(request: web.Request, form: dict[str, str], errors: dict[str, str],
                         status: int = 200) -> web.Response:
    team, keys = await team_with(request, team_api(request).provider_keys())
    return await render(request, "provider_keys.html", {
        "nav": "team_provider_keys", "team": team.context(), "keys": keys,
        "providers": await provider_ids(request), "form": form, "errors": errors}, status=status)


@routes.get("/teams/{org_id}/provider-keys")
async def provider_keys(request: web.Request) -> web.Response:
    require_user(request)
    providers = await provider_ids(request)
    return await _provider_page(request, {"provider": providers[0] if providers else "", "name": "", "key": ""},
                                {})


@routes.post("/teams/{org_id}/provider-keys")
async def add_provider_key(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    data = await request.post()
    form = {"provider": form_text(data, "provider"), "name": form_text(data, "name").strip(),
            "key": form_text(data, "key").strip()}
    errors = {f: t(f"error.{f}_required" if f != "provider" else "error.unknown_provider")
              for f in PROVIDER_FIELDS if not form[f]}
    if not errors:
        try:
            created = await team_api(request).add_provider_key(form["provider"], form["name"], form["key"])
        except ApiError as err:
            if err.status not in (400, 403, 409, 422):
                raise
            errors = field_errors(t, err, PROVIDER_FIELDS)
        else:
            session.flash("ok", t("provider_keys.added", name=created["name"], masked=created["masked_key"]))
            return redirect(f"/teams/{org_id_of(request)}/provider-keys")
    form["key"] = ""  # never echo a secret back into the page
    return await _provider_page(request, form, errors, status=422)


@routes.post("/teams/{org_id}/provider-keys/{id}/test")
async def test_provider_key(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    result = await team_api(request).test_provider_key(request.match_info["id"])
    session.flash("ok" if result["status"] == "ok" else "error",
                  t(f"provider_keys.test_{result['status']}", detail=result.get("detail", "")))
    return redirect(f"/teams/{org_id_of(request)}/provider-keys")


@routes.post("/teams/{org_id}/provider-keys/{id}/delete")
async def delete_provider_key(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    try:
        await team_api(request).delete_provider_key(request.match_info["id"])
    except ApiError as err:
        if err.status != 404:
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("provider_keys.deleted"))
    return redirect(f"/teams/{org_id_of(request)}/provider-keys")


# --- proxy keys ---------------------------------------------------------------------------------------------------


async def _holders(team: Team) -> dict[str, str]:
    """Member e-mails by user id, for a manager's list of everyone's keys (a member's list is their own)."""
    if not team.can("proxy_keys.all"):
        return {}
    return {m["user_id"]: m["email"] for m in await team.api.members()}


async def _proxy_page(request: web.Request, form: dict[str, str], errors: dict[str, str],
                      status: int = 200) -> web.Response:
    team, keys = await team_with(request, team_api(request).proxy_keys())
    return await render(request, "proxy_keys.html", {
        "nav": "team_proxy_keys", "team": team.context(), "keys": keys, "holders": await _holders(team),
        "me": str((require_user(request).user or {}).get("id") or ""), "form": form, "name": form.get("name", ""),
        "providers": await provider_ids(request), "errors": errors}, status=status)


def _shown(form: MultiMapping[Any]) -> dict[str, str]:
    """The posted key form as it is shown again next to its errors."""
    return {**form_of(None), **{f: form_text(form, f) for f in RULE_FIELDS if f != "allowed_providers"},
            "allowed_providers": " ".join(str(p) for p in form.getall("allowed_providers", []))}


@routes.get("/teams/{org_id}/proxy-keys")
async def proxy_keys(request: web.Request) -> web.Response:
    require_user(request)
    return await _proxy_page(request, form_of(None), {})


@routes.post("/teams/{org_id}/proxy-keys")
async def create_proxy_key(request: web.Request) -> web.Response:
    require_user(request)
    t = t_of(request)
    form = await request.post()
    shown = _shown(form)
    name = shown["name"].strip()
    if not name:
        return await _proxy_page(request, shown, {"name": t("error.name_required")}, status=422)
    try:
        rules = {k: v for k, v in rules_from_form(form, t, await provider_ids(request)).items() if v not in (None, "")}
        created = await team_api(request).create_proxy_key(name, rules)
    except RuleFormError as err:
        return await _proxy_page(request, shown, {err.field: err.text}, status=422)
    except ApiError as err:
        if err.status not in (400, 403, 422):
            raise
        return await _proxy_page(request, shown, field_errors(t, err, RULE_FIELDS), status=422)
    public_api = request.app[SETTINGS].public_api_url
    # As for personal keys: rendered straight from the POST, the only place the full key ever appears.
    team = await team_of(request)
    return await render(request, "proxy_key_created.html", {
        "nav": "team_proxy_keys", "team": team.context(), "keys_url": f"{team.base}/proxy-keys",
        "created": created, "python_snippet": python_snippet(public_api, created["key"]),
        "curl_snippet": curl_snippet(public_api, created["key"]), "base_url": public_api + "/v1"})


async def _proxy_key(request: web.Request) -> tuple[Team, Json]:
    team, keys = await team_with(request, team_api(request).proxy_keys())
    key = next((k for k in keys if k["id"] == request.match_info["id"]), None)
    if key is None:
        raise web.HTTPNotFound
    return team, key


async def _edit_page(request: web.Request, team: Team, key: Json, form: dict[str, str], errors: dict[str, str],
                     status: int = 200) -> web.Response:
    return await render(request, "proxy_key_edit.html", {
        "nav": "team_proxy_keys", "team": team.context(), "keys_url": f"{team.base}/proxy-keys", "key": key,
        "form": form, "providers": await provider_ids(request), "errors": errors}, status=status)


@routes.get("/teams/{org_id}/proxy-keys/{id}/edit")
async def edit_page(request: web.Request) -> web.Response:
    require_user(request)
    team, key = await _proxy_key(request)
    return await _edit_page(request, team, key, form_of(key), {})


@routes.post("/teams/{org_id}/proxy-keys/{id}/edit")
async def edit(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    form = await request.post()
    shown = _shown(form)
    try:
        changes = rules_from_form(form, t, await provider_ids(request))
        if shown["name"].strip():
            changes["name"] = shown["name"].strip()
        await team_api(request).update_proxy_key(request.match_info["id"], changes)
    except (RuleFormError, ApiError) as err:
        if isinstance(err, ApiError) and err.status == 404:
            raise web.HTTPNotFound from None
        if isinstance(err, ApiError) and err.status not in (400, 403, 422):
            raise
        team, key = await _proxy_key(request)
        errors = {err.field: err.text} if isinstance(err, RuleFormError) else field_errors(t, err, RULE_FIELDS)
        return await _edit_page(request, team, key, shown, errors, status=422)
    session.flash("ok", t("proxy_keys.saved"))
    return redirect(f"/teams/{org_id_of(request)}/proxy-keys")


@routes.get("/teams/{org_id}/proxy-keys/{id}/revoke")
async def confirm_revoke(request: web.Request) -> web.Response:
    require_user(request)
    team, key = await _proxy_key(request)
    return await render(request, "proxy_key_revoke.html", {
        "nav": "team_proxy_keys", "team": team.context(), "keys_url": f"{team.base}/proxy-keys", "key": key})


@routes.post("/teams/{org_id}/proxy-keys/{id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    try:
        await team_api(request).revoke_proxy_key(request.match_info["id"])
    except ApiError as err:
        if err.status != 404:
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("proxy_keys.revoked"))
    return redirect(f"/teams/{org_id_of(request)}/proxy-keys")
