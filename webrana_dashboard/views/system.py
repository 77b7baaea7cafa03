"""/health for probes, the home redirect, and the language switch."""

from __future__ import annotations

import logging

from aiohttp import web

from webrana_dashboard.client import ApiError
from webrana_dashboard.i18n import LANG_COOKIE, LANGS
from webrana_dashboard.pages import api, creds, redirect, safe_next, session_of
from webrana_dashboard.state import SETTINGS

log = logging.getLogger("webrana.dashboard")
routes = web.RouteTableDef()
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600  # a preference, kept for a year


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    return redirect("/overview" if session_of(request).signed_in else "/login")


@routes.post("/lang")
async def switch_language(request: web.Request) -> web.Response:
    form = await request.post()
    lang = str(form.get("lang", ""))
    response = redirect(safe_next(str(form.get("next", "")), "/"))
    if lang in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE, path="/", httponly=True,
                            samesite="Lax", secure=request.app[SETTINGS].secure_cookies)
        session = session_of(request)
        if session.signed_in and session.user is not None and session.user.get("locale") != lang:
            # The account's e-mails follow the console's language. Best effort: the switch works either way.
            try:
                await api(request).set_locale(creds(request), lang)
            except ApiError as err:
                log.warning("could not store the account's language: %s", err)
            else:
                session.user = {**session.user, "locale": lang}
                session.changed = True
    return response
