"""Admin: prices. The current models with their price and context window (the vendored price data plus reviewed
overrides, as ``/api/prices`` serves them) and the admins' own overrides (``/api/admin/prices``): add, change,
delete. An override wins over the price data from its ``valid_from`` on, on every replica within a second; the API
validates and audits each change. Prices are USD per million tokens, as the API takes them: a number, or a
prompt-size tiered rate as JSON (``{"base": "2", "tiers": [[200000, "4"]]}``)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from webrana_dashboard.client import ApiError, Json
from webrana_dashboard.formatting import number, to_jakarta
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import api, creds, error_text, field_errors, redirect, render, require_admin, t_of
from webrana_dashboard.state import SHARED
from webrana_dashboard.views.provider_keys import provider_ids

routes = web.RouteTableDef()
RATES = ("input", "cache_read", "cache_write", "cache_write_1h", "output", "output_thinking")  # the API's names
FIELDS = ("provider", "model_pattern", "valid_from", "prices", "context_window", "source", "note")
CONSOLE_OFFSET = "+07:00"  # the console shows and takes times in WIB
LOCAL_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # what <input type="datetime-local" step="1"> sends and shows
PATTERN_CHARS, SOURCE_CHARS, NOTE_CHARS, RATE_CHARS = 200, 500, 2000, 1000  # the API's limits (a rate: a little JSON)


def rate_text(value: Any) -> str:
    """A rate as people read it: ``2.5``, or ``2 · >200.000: 4`` for a prompt-size tiered one."""
    if isinstance(value, dict):
        tiers = " · ".join(f">{number(int(start))}: {price}" for start, price in value.get("tiers", ()))
        return f"{value.get('base', '-')} · {tiers}" if tiers else str(value.get("base", "-"))
    return "-" if value is None else str(value)


def rate_field(value: Any) -> str:
    """A rate as the form field holds it: the number, or the tiered rate's JSON."""
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return "" if value is None else str(value)


async def _provider_name(request: web.Request, provider_id: str) -> str:
    for p in await request.app[SHARED].providers(api(request), creds(request)):
        if p.get("id") == provider_id:
            return str(p.get("name") or provider_id)
    return provider_id


def _blank_form(provider: str) -> dict[str, str]:
    return {"provider": provider, "model_pattern": "", "valid_from": "", "context_window": "", "source": "",
            "note": "", **{f"price_{name}": "" for name in RATES}}


def _form_of(override: Json) -> dict[str, str]:
    prices = override.get("prices") or {}
    return {"provider": override["provider"], "model_pattern": override["model_pattern"],
            "valid_from": to_jakarta(override["valid_from"]).strftime(LOCAL_TIME_FORMAT),
            "context_window": str(override["context_window"] or ""), "source": override.get("source") or "",
            "note": override.get("note") or "", **{f"price_{name}": rate_field(prices.get(name)) for name in RATES}}


def _read_form(data: Any) -> dict[str, str]:
    form = {"provider": form_text(data, "provider", 40), "model_pattern": form_text(data, "model_pattern").strip(),
            "valid_from": form_text(data, "valid_from", 40).strip(),
            "context_window": form_text(data, "context_window", 20).strip(),
            "source": form_text(data, "source", SOURCE_CHARS).strip(),
            "note": form_text(data, "note", NOTE_CHARS).strip()}
    for name in RATES:
        form[f"price_{name}"] = form_text(data, f"price_{name}", RATE_CHARS).strip()
    return form


def _body(form: dict[str, str], t: Any, providers: list[str]) -> tuple[Json, dict[str, str]]:
    """The API's body from the form, and the errors the console can tell before asking the API."""
    errors: dict[str, str] = {}
    prices: Json = {}
    for name in RATES:
        raw = form[f"price_{name}"]
        if not raw:
            continue
        if raw.startswith("{"):
            try:
                prices[name] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                errors[f"price_{name}"] = t("prices.error_tiers")
        else:
            prices[name] = raw.replace(",", ".")  # "2,5" as written in Indonesia is 2.5
    if not prices and not errors:
        errors["prices"] = t("prices.error_no_price")
    if form["provider"] not in providers:
        errors["provider"] = t("error.unknown_provider")
    if not form["model_pattern"]:
        errors["model_pattern"] = t("prices.error_pattern")
    body: Json = {"provider": form["provider"], "model_pattern": form["model_pattern"], "prices": prices,
                  "source": form["source"], "note": form["note"]}
    if form["valid_from"]:
        body["valid_from"] = form["valid_from"] + CONSOLE_OFFSET
    if form["context_window"]:
        if form["context_window"].isdigit():
            body["context_window"] = int(form["context_window"])
        else:
            errors["context_window"] = t("prices.error_context_window")
    return body, errors


async def _page(request: web.Request, form: dict[str, str], errors: dict[str, str],
                status: int = 200) -> web.Response:
    client, c = api(request), creds(request)
    catalogue, overrides = await asyncio.gather(client.prices(c), client.admin_prices(c))
    models = [{**m, "rates": {name: rate_text(m["pricing"].get(name)) for name in RATES}}
              for m in catalogue["data"]]
    listed = [{**o, "rates": {name: rate_text(v) for name, v in (o.get("prices") or {}).items()}}
              for o in overrides["data"]]
    return await render(request, "admin/prices.html", {
        "nav": "admin", "admin_nav": "prices", "models": models, "source": catalogue["source"],
        "overrides": listed, "providers": await provider_ids(request), "rate_names": RATES, "form": form,
        "errors": errors, "action": "/admin/prices", "editing": None}, status=status)


async def _edit_page(request: web.Request, override: Json, form: dict[str, str], errors: dict[str, str],
                     status: int = 200) -> web.Response:
    return await render(request, "admin/price_edit.html", {
        "nav": "admin", "admin_nav": "prices", "providers": await provider_ids(request), "rate_names": RATES,
        "form": form,
        "errors": errors, "action": f"/admin/prices/{override['id']}", "editing": override}, status=status)


async def _find(request: web.Request, price_id: str) -> Json:
    for override in (await api(request).admin_prices(creds(request)))["data"]:
        if override["id"] == price_id:
            found: Json = override
            return found
    raise web.HTTPNotFound


@routes.get("/admin/prices")
async def prices(request: web.Request) -> web.Response:
    require_admin(request)
    providers = await provider_ids(request)
    return await _page(request, _blank_form(providers[0] if providers else ""), {})


@routes.post("/admin/prices")
async def create(request: web.Request) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    form = _read_form(await request.post())
    body, errors = _body(form, t, await provider_ids(request))
    if not errors:
        try:
            created = await api(request).admin_create_price(creds(request), body)
        except ApiError as err:
            if err.status not in (400, 404, 409, 422):
                raise
            errors = field_errors(t, err, FIELDS)
        else:
            session.flash("ok", t("prices.added", provider=await _provider_name(request, created["provider"]),
                                  pattern=created["model_pattern"]))
            return redirect("/admin/prices")
    return await _page(request, form, errors, status=422)


@routes.get("/admin/prices/{id}/edit")
async def edit(request: web.Request) -> web.Response:
    require_admin(request)
    override = await _find(request, request.match_info["id"])
    return await _edit_page(request, override, _form_of(override), {})


@routes.post("/admin/prices/{id}")
async def update(request: web.Request) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    price_id = request.match_info["id"]
    form = _read_form(await request.post())
    body, errors = _body(form, t, await provider_ids(request))
    if not errors:
        try:
            changed = await api(request).admin_update_price(creds(request), price_id, body)
        except ApiError as err:
            if err.status == 404:
                session.flash("error", error_text(t, err))
                return redirect("/admin/prices")
            if err.status not in (400, 409, 422):
                raise
            errors = field_errors(t, err, FIELDS)
        else:
            session.flash("ok", t("prices.changed", provider=await _provider_name(request, changed["provider"]),
                                  pattern=changed["model_pattern"]))
            return redirect("/admin/prices")
    return await _edit_page(request, {"id": price_id}, form, errors, status=422)


@routes.post("/admin/prices/{id}/delete")
async def delete(request: web.Request) -> web.Response:
    session = require_admin(request)
    t = t_of(request)
    try:
        await api(request).admin_delete_price(creds(request), request.match_info["id"])
    except ApiError as err:
        if err.status not in (400, 404):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("prices.deleted"))
    return redirect("/admin/prices")
