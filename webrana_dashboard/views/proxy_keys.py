"""Proxy keys (``wbr_...``): create (shown exactly once, with a copy button and the SDK snippet), optionally with
rules (monthly spend cap, requests per minute, allowed models and providers, expiry, note); list with last use,
request count, rules and this month's spend; change a key's rules; revoke after a confirmation step."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from webrana_dashboard.client import ApiError, Json
from webrana_dashboard.forms import NotAWholeNumber, form_amount, form_text
from webrana_dashboard.i18n import Translator
from webrana_dashboard.pages import api, creds, error_text, field_errors, redirect, render, require_user, t_of
from webrana_dashboard.snippets import curl_snippet, python_snippet
from webrana_dashboard.state import SETTINGS
from webrana_dashboard.views.provider_keys import provider_ids

routes = web.RouteTableDef()
JAKARTA = timezone(timedelta(hours=7))  # expiry times are typed and shown in Asia/Jakarta time
RULE_FIELDS = ("name", "spend_cap_idr", "rpm_limit", "allowed_models", "allowed_providers", "expires_at", "note")
NOTE_CHARS = 500


class RuleFormError(Exception):
    def __init__(self, field: str, text: str) -> None:
        super().__init__(text)
        self.field = field
        self.text = text


def rules_from_form(form: MultiMapping[Any], t: Translator, known_providers: list[str]) -> Json:
    """Every rule field of the form, as the API takes them (a blank field is null: no such rule)."""
    rules: Json = {}
    for name in ("spend_cap_idr", "rpm_limit"):
        try:
            rules[name] = form_amount(form, name)
        except NotAWholeNumber:
            raise RuleFormError(name, t("error.whole_number")) from None
    models = form_text(form, "allowed_models").replace(",", " ").split()
    rules["allowed_models"] = models or None
    providers = [p for p in form.getall("allowed_providers", []) if isinstance(p, str) and p in known_providers]
    rules["allowed_providers"] = providers or None
    expires = form_text(form, "expires_at").strip()
    if expires:
        try:
            when = datetime.fromisoformat(expires)
        except ValueError:
            raise RuleFormError("expires_at", t("error.invalid_time")) from None
        rules["expires_at"] = (when if when.tzinfo else when.replace(tzinfo=JAKARTA)).isoformat()
    else:
        rules["expires_at"] = None
    rules["note"] = form_text(form, "note", NOTE_CHARS + 1).strip()
    return rules


def form_of(key: Json | None) -> dict[str, str]:
    """A key's rules as the form shows them (expiry in Jakarta time, for a datetime-local input)."""
    key = key or {}
    expires = key.get("expires_at")
    return {
        "name": key.get("name") or "",
        "spend_cap_idr": str(key["spend_cap_idr"]) if key.get("spend_cap_idr") else "",
        "rpm_limit": str(key["rpm_limit"]) if key.get("rpm_limit") else "",
        "allowed_models": ", ".join(key.get("allowed_models") or []),
        "allowed_providers": " ".join(key.get("allowed_providers") or []),
        "expires_at": datetime.fromisoformat(expires).astimezone(JAKARTA).strftime("%Y-%m-%dT%H:%M") if expires
        else "",
        "note": key.get("note") or "",
    }


async def _page(request: web.Request, form: dict[str, str], errors: dict[str, str], status: int = 200) -> web.Response:
    keys = await api(request).proxy_keys(creds(request))
    providers = await provider_ids(request)
    return await render(request, "proxy_keys.html", {"nav": "proxy_keys", "keys": keys, "form": form,
                                                     "name": form.get("name", ""), "providers": providers,
                                                     "errors": errors}, status=status)


@routes.get("/proxy-keys")
async def list_keys(request: web.Request) -> web.Response:
    require_user(request)
    return await _page(request, form_of(None), {})


@routes.post("/proxy-keys")
async def create_key(request: web.Request) -> web.Response:
    require_user(request)
    t = t_of(request)
    form = await request.post()
    shown = {**form_of(None), **{f: form_text(form, f) for f in RULE_FIELDS if f != "allowed_providers"},
             "allowed_providers": " ".join(str(p) for p in form.getall("allowed_providers", []))}
    name = shown["name"].strip()
    if not name:
        return await _page(request, shown, {"name": t("error.name_required")}, status=422)
    try:
        rules = {k: v for k, v in rules_from_form(form, t, await provider_ids(request)).items() if v not in (None, "")}
        created = await api(request).create_proxy_key(creds(request), name, rules)
    except RuleFormError as err:
        return await _page(request, shown, {err.field: err.text}, status=422)
    except ApiError as err:
        if err.status not in (400, 403, 422):
            raise
        return await _page(request, shown, field_errors(t, err, RULE_FIELDS), status=422)
    public_api = request.app[SETTINGS].public_api_url
    # Rendered straight from the POST (never redirected, never stored): this answer is the only place the
    # full key ever appears, and Cache-Control: no-store keeps it out of the browser's cache.
    return await render(request, "proxy_key_created.html", {
        "nav": "proxy_keys", "created": created, "python_snippet": python_snippet(public_api, created["key"]),
        "curl_snippet": curl_snippet(public_api, created["key"]), "base_url": public_api + "/v1"})


async def _key(request: web.Request) -> Json:
    keys = await api(request).proxy_keys(creds(request))
    key = next((k for k in keys if k["id"] == request.match_info["id"]), None)
    if key is None:
        raise web.HTTPNotFound
    return key


async def _edit_page(request: web.Request, key: Json, form: dict[str, str], errors: dict[str, str],
                     status: int = 200) -> web.Response:
    return await render(request, "proxy_key_edit.html", {"nav": "proxy_keys", "key": key, "form": form,
                                                          "providers": await provider_ids(request), "errors": errors},
                        status=status)


@routes.get("/proxy-keys/{id}/edit")
async def edit_page(request: web.Request) -> web.Response:
    require_user(request)
    key = await _key(request)
    return await _edit_page(request, key, form_of(key), {})


@routes.post("/proxy-keys/{id}/edit")
async def edit(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    form = await request.post()
    shown = {**{f: form_text(form, f) for f in RULE_FIELDS if f != "allowed_providers"},
             "allowed_providers": " ".join(str(p) for p in form.getall("allowed_providers", []))}
    try:
        changes = rules_from_form(form, t, await provider_ids(request))
        if shown["name"].strip():
            changes["name"] = shown["name"].strip()
        await api(request).update_proxy_key(creds(request), request.match_info["id"], changes)
    except (RuleFormError, ApiError) as err:
        if isinstance(err, ApiError) and err.status == 404:
            raise web.HTTPNotFound from None
        if isinstance(err, ApiError) and err.status not in (400, 422):
            raise
        key = await _key(request)
        errors = ({err.field: err.text} if isinstance(err, RuleFormError)
                  else field_errors(t, err, RULE_FIELDS))
        return await _edit_page(request, key, shown, errors, status=422)
    session.flash("ok", t("proxy_keys.saved"))
    return redirect("/proxy-keys")


@routes.get("/proxy-keys/{id}/revoke")
async def confirm_revoke(request: web.Request) -> web.Response:
    require_user(request)
    key = await _key(request)
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
