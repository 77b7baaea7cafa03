"""Sign up, sign in, sign out."""

from __future__ import annotations

import contextlib
from urllib.parse import urlencode

from aiohttp import web

from webrana_dashboard.client import Anonymous, ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import (
    api,
    field_errors,
    forwarded_for,
    redirect,
    render,
    safe_next,
    session_of,
    t_of,
)
from webrana_dashboard.workspaces import refresh_teams

routes = web.RouteTableDef()
SIGNUP_FIELDS = ("email", "password", "password_confirm")
LOGIN_FIELDS = ("email", "password")


def _shown_to_visitor(err: ApiError) -> bool:
    """Errors that belong on the form (bad input, wrong password, too many tries, no hashing slot free for a
    moment) rather than an error page."""
    return err.status in (400, 401, 403, 409, 422, 429) or err.code == "password_hashing_busy"


@routes.get("/signup")
async def signup_page(request: web.Request) -> web.Response:
    next_url = safe_next(request.query.get("next"))
    if session_of(request).signed_in:
        return redirect(next_url)
    return await render(request, "signup.html", {"email": "", "errors": {}, "next": next_url})


@routes.post("/signup")
async def signup(request: web.Request) -> web.Response:
    t = t_of(request)
    form = await request.post()
    email = form_text(form, "email").strip()
    password = form_text(form, "password")
    next_url = safe_next(form_text(form, "next"))  # e.g. back to an invitation's page
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = t("error.email_required")
    if not password:
        errors["password"] = t("error.weak_password")
    elif password != form_text(form, "password_confirm"):
        errors["password_confirm"] = t("error.password_mismatch")
    if not errors:
        try:
            tokens = await api(request).register(Anonymous(forwarded_for(request)), email, password,
                                                 locale=t.lang)  # the language of the e-mails
        except ApiError as err:
            if not _shown_to_visitor(err):
                raise
            errors = field_errors(t, err, SIGNUP_FIELDS)
        else:
            session = session_of(request)
            session.sign_in(tokens)
            session.teams = []  # a new account is in no team yet
            session.flash("ok", t("auth.welcome"))
            return redirect(next_url)
    return await render(request, "signup.html", {"email": email, "errors": errors, "next": next_url}, status=422)


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    next_url = safe_next(request.query.get("next"))
    if session_of(request).signed_in:
        return redirect(next_url)
    return await render(request, "login.html", {"email": "", "errors": {}, "next": next_url})


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    t = t_of(request)
    form = await request.post()
    email = form_text(form, "email").strip()
    password = form_text(form, "password")
    next_url = safe_next(form_text(form, "next"))
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = t("error.email_required")
    if not password:
        errors["password"] = t("error.password_required")
    if not errors:
        try:
            tokens = await api(request).login(Anonymous(forwarded_for(request)), email, password)
        except ApiError as err:
            if not _shown_to_visitor(err):
                raise
            # A wrong e-mail or password is reported on the password field (the pair is what failed).
            errors = field_errors(t, err, LOGIN_FIELDS,
                                  fallback="password" if err.code == "invalid_credentials" else "form")
        else:
            session_of(request).sign_in(tokens)
            with contextlib.suppress(ApiError):  # the switcher's list; /teams asks again if this failed
                await refresh_teams(request)
            return redirect(next_url)
    return await render(request, "login.html", {"email": email, "errors": errors, "next": next_url},
                        status=422)


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    session = session_of(request)
    back = safe_next(form_text(await request.post(), "next"), "")  # e.g. an invitation for another address
    if session.refresh_token:
        # The cookie goes either way; a token the API no longer knows is already useless.
        with contextlib.suppress(ApiError):
            await api(request).logout(Anonymous(forwarded_for(request)), session.refresh_token)
    session.sign_out()
    session.flash("ok", t_of(request)("auth.signed_out"))
    return redirect("/login?" + urlencode({"next": back}) if back else "/login")
