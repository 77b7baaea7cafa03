"""The request pipeline: session and language in, CSRF check, errors rendered as pages; and, for every
response just before it is sent, the security headers and the session cookie."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web

from webrana_dashboard import csrf
from webrana_dashboard.client import ApiError, ApiUnavailable
from webrana_dashboard.i18n import LANG_COOKIE, Translator, pick_lang
from webrana_dashboard.pages import SignInRequired, error_text, redirect, render
from webrana_dashboard.state import CATALOGUES, SESSION, SESSIONS, SETTINGS, TRANSLATOR, USES_SNAP

log = logging.getLogger("webrana.dashboard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_SESSION_PREFIXES = ("/static/", "/health")  # assets and probes neither read nor write the session
STATIC_MAX_AGE = 3600  # assets carry a content hash in their URL (?v=...), so an hour is safe


async def error_page(request: web.Request, status: int, message: str | None = None) -> web.Response:
    t = request[TRANSLATOR]
    key = status if status in (403, 404, 405, 500, 503) else 400
    return await render(request, "error.html", {
        "status": status, "title": t(f"errors.{key}.title"),
        "message": message or t(f"errors.{key}.text")}, status=status)


def _sign_in_location(request: web.Request) -> str:
    return "/login?" + urlencode({"next": request.path_qs}) if request.method == "GET" else "/login"


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[TRANSLATOR] = Translator(request.app[CATALOGUES], pick_lang(request.cookies.get(LANG_COOKIE)))
    if request.path.startswith(NO_SESSION_PREFIXES):
        return await handler(request)
    session = request.app[SESSIONS].load(request)
    request[SESSION] = session
    if not await csrf.token_ok(request, session.csrf):
        return await error_page(request, 403, request[TRANSLATOR]("errors.csrf"))
    try:
        return await handler(request)
    except SignInRequired:
        return redirect(_sign_in_location(request))
    except ApiUnavailable:
        log.warning("API unreachable", extra={"path": request.path})
        return await error_page(request, 503)
    except ApiError as err:
        t = request[TRANSLATOR]
        if err.status == 401 or err.code == "account_suspended":
            session.sign_out()
            session.flash("error", t("auth.suspended") if err.code == "account_suspended" else t("auth.expired"))
            return redirect(_sign_in_location(request))
        if err.status == 404:
            return await error_page(request, 404)
        if err.status >= 500:
            log.warning("API error %s on %s: %s", err.status, request.path, err.message)
            return await error_page(request, 500)
        return await error_page(request, err.status, error_text(t, err))
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            return await error_page(request, exc.status)
        raise
    except Exception:
        log.exception("unhandled error on %s", request.path)
        return await error_page(request, 500)


def content_security_policy(snap_origin: str) -> str:
    extra = f" {snap_origin}" if snap_origin else ""
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self'{extra}",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src 'self'{extra}",
        f"frame-src {snap_origin}" if snap_origin else "frame-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ])


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response gets, whatever produced it (views, errors, static files)."""
    settings = request.app[SETTINGS]
    snap = settings.snap_origin if request.get(USES_SNAP, False) else ""
    h = response.headers
    h["Content-Security-Policy"] = content_security_policy(snap)
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "same-origin"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    if settings.secure_cookies:
        h["Strict-Transport-Security"] = "max-age=31536000"
    if request.path.startswith("/static/"):
        h.setdefault("Cache-Control", f"public, max-age={STATIC_MAX_AGE}")
    else:
        h["Cache-Control"] = "no-store"  # pages hold personal data: never cached, not even for Back
    session = request.get(SESSION)
    if session is not None:
        request.app[SESSIONS].save(session, response)
