"""What every view needs: the request's session, translator and API credentials, rendering, redirects."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from webrana_dashboard import formatting
from webrana_dashboard.client import ApiClient, ApiError
from webrana_dashboard.credentials import BrowserCredentials
from webrana_dashboard.i18n import Translator
from webrana_dashboard.session import Session
from webrana_dashboard.state import (
    API,
    CREDENTIALS,
    REFRESHER,
    SESSION,
    SETTINGS,
    STATIC_VERSION,
    TRANSLATOR,
    USES_SNAP,
)


class SignInRequired(Exception):
    """Raised by views that need a signed-in user; the middleware sends the browser to the sign-in page."""


def forwarded_for(request: web.Request) -> str:
    """The X-Forwarded-For chain to send to the API: what reached us plus the peer, so the proxy (which knows
    the trusted hops) picks the browser's address and nobody outside can choose their own."""
    peer = request.remote or "unknown"
    incoming = request.headers.get("X-Forwarded-For", "").strip()
    return f"{incoming}, {peer}" if incoming else peer


def session_of(request: web.Request) -> Session:
    return request[SESSION]


def t_of(request: web.Request) -> Translator:
    return request[TRANSLATOR]


def api(request: web.Request) -> ApiClient:
    return request.app[API]


def creds(request: web.Request) -> BrowserCredentials:
    if CREDENTIALS not in request:
        request[CREDENTIALS] = BrowserCredentials(request.app[API], request.app[REFRESHER], request[SESSION],
                                                  forwarded_for(request))
    return request[CREDENTIALS]


def require_user(request: web.Request) -> Session:
    session = request[SESSION]
    if not session.signed_in:
        raise SignInRequired
    return session


def require_admin(request: web.Request) -> Session:
    session = require_user(request)
    if not session.is_admin:
        raise web.HTTPNotFound  # the admin area does not exist for other users
    return session


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def safe_next(value: str | None, default: str = "/overview") -> str:
    """A local path to go to after a form; anything else (other hosts, ``//evil``, ``/\\evil``) is ignored."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or any(c in value for c in "\r\n"):
        return default
    return value


def error_text(t: Translator, err: ApiError) -> str:
    """The API's error in the visitor's language when the catalogue knows its code, else the API's words."""
    key = f"error.{err.code}"
    return t(key) if err.code and t.has(key) else err.message


def field_errors(t: Translator, err: ApiError, fields: tuple[str, ...], fallback: str = "form") -> dict[str, str]:
    """Put an API error next to the form field it names (``param``), or at the top of the form."""
    name = err.param if err.param in fields else fallback
    return {name: error_text(t, err)}


async def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
                 status: int = 200) -> web.Response:
    t = request[TRANSLATOR]
    months = t.month_names()
    session = request.get(SESSION)
    settings = request.app[SETTINGS]
    base: dict[str, Any] = {
        "t": t,
        "lang": t.lang,
        "session": session,
        "user": session.user if session else None,
        "is_admin": bool(session and session.is_admin),
        "csrf_token": session.csrf if session else "",
        "flashes": session.take_flashes() if session else [],
        "path": request.path,
        "path_qs": request.path_qs,
        "static_version": request.app[STATIC_VERSION],
        "settings": settings,
        "uses_snap": request.get(USES_SNAP, False),
        "rupiah": formatting.rupiah,
        "num": formatting.number,
        "dec": formatting.decimal,
        "dt": lambda v: formatting.format_datetime(v, months),
        "day": lambda v: formatting.format_date(v, months),
    }
    base.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, base, status=status)
    return response
