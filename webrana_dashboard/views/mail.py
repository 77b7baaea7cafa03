"""Pages that work through e-mail: verify the address (the link from the sign-up e-mail) and ask for a new
link, forgot password and the reset form (the link from that e-mail), and, in dev mode only, the mailbox of
the local SMTP sink that `make run` starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from webrana_dashboard import devmail
from webrana_dashboard.client import Anonymous, ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import (
    api,
    creds,
    error_text,
    field_errors,
    forwarded_for,
    redirect,
    render,
    require_user,
    safe_next,
    session_of,
    t_of,
)
from webrana_dashboard.state import SETTINGS

routes = web.RouteTableDef()
RESET_FIELDS = ("password", "password_confirm", "token")
TOKEN_MAX = 100  # a link token is 43 characters


@routes.get("/verify-email")
async def verify_email(request: web.Request) -> web.Response:
    token = request.query.get("token", "")[:TOKEN_MAX]
    session = session_of(request)
    try:
        answer = await api(request).verify_email(Anonymous(forwarded_for(request)), token)
    except ApiError as err:
        if err.status not in (400, 422, 429):
            raise
        return await render(request, "verify_email.html", {"ok": False, "error": error_text(t_of(request), err)},
                            status=400)
    if session.user and session.user.get("id") == answer.get("user_id"):
        session.user = {**session.user, "email_verified": True}  # the banner goes at once, not at the next refresh
        session.changed = True
    return await render(request, "verify_email.html", {"ok": True})


@routes.post("/verify-email/resend")
async def resend_verification(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    back = safe_next(form_text(await request.post(), "next"))
    try:
        answer = await api(request).resend_verification(creds(request))
    except ApiError as err:
        if err.status != 429:
            raise
        session.flash("error", error_text(t, err))
        return redirect(back)
    if answer.get("verified"):
        if session.user is not None:
            session.user = {**session.user, "email_verified": True}
        session.flash("ok", t("verify.already"))
    else:
        session.flash("ok", t("verify.resent", email=(session.user or {}).get("email", "")))
    return redirect(back)


@routes.get("/forgot-password")
async def forgot_page(request: web.Request) -> web.Response:
    return await render(request, "forgot_password.html", {"email": "", "errors": {}, "sent": False})


@routes.post("/forgot-password")
async def forgot(request: web.Request) -> web.Response:
    t = t_of(request)
    email = form_text(await request.post(), "email").strip()
    if not email:
        return await render(request, "forgot_password.html", {
            "email": email, "errors": {"email": t("error.email_required")}, "sent": False}, status=422)
    try:
        await api(request).forgot_password(Anonymous(forwarded_for(request)), email)
    except ApiError as err:
        if err.status not in (400, 422, 429):
            raise
        return await render(request, "forgot_password.html", {
            "email": email, "errors": field_errors(t, err, ("email",)), "sent": False}, status=422)
    # The same page whether or not an account uses the address.
    return await render(request, "forgot_password.html", {"email": email, "errors": {}, "sent": True})


@routes.get("/reset-password")
async def reset_page(request: web.Request) -> web.Response:
    token = request.query.get("token", "")[:TOKEN_MAX]
    return await render(request, "reset_password.html", {"token": token, "errors": {}})


@routes.post("/reset-password")
async def reset(request: web.Request) -> web.Response:
    t = t_of(request)
    form = await request.post()
    token = form_text(form, "token", TOKEN_MAX)
    password = form_text(form, "password")
    errors: dict[str, str] = {}
    if not password:
        errors["password"] = t("error.weak_password")
    elif password != form_text(form, "password_confirm"):
        errors["password_confirm"] = t("error.password_mismatch")
    if not errors:
        try:
            await api(request).reset_password(Anonymous(forwarded_for(request)), token, password)
        except ApiError as err:
            if err.status not in (400, 422, 429) and err.code != "password_hashing_busy":
                raise
            errors = field_errors(t, err, RESET_FIELDS)
        else:
            session = session_of(request)
            if session.signed_in:
                session.sign_out()  # every sign-in of the account just ended, this one too
            session.flash("ok", t("reset.done"))
            return redirect("/login")
    return await render(request, "reset_password.html", {"token": token, "errors": errors}, status=422)


def _mail_dir(request: web.Request) -> Path:
    settings = request.app[SETTINGS]
    if not settings.dev:
        raise web.HTTPNotFound  # the dev mailbox does not exist outside dev mode
    return Path(settings.dev_mail_dir)


@routes.get("/dev/mail")
async def dev_mailbox(request: web.Request) -> web.Response:
    messages = await asyncio.to_thread(devmail.list_messages, _mail_dir(request))
    return await render(request, "dev_mailbox.html", {"messages": messages, "folder": str(_mail_dir(request))})


@routes.get("/dev/mail/{name}")
async def dev_message(request: web.Request) -> web.Response:
    message = await asyncio.to_thread(devmail.read_message, _mail_dir(request), request.match_info["name"])
    if message is None:
        raise web.HTTPNotFound
    return await render(request, "dev_message.html", {"message": message})
