"""What every view needs: the request's session, translator and API credentials, rendering, redirects."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from webrana_dashboard import formatting
from webrana_dashboard.client import Anonymous, ApiClient, ApiError
from webrana_dashboard.credentials import BrowserCredentials
from webrana_dashboard.i18n import Translator
from webrana_dashboard.session import Session
from webrana_dashboard.state import (
    API,
    CREDENTIALS,
    REFRESHER,
    SESSION,
    SETTINGS,
    SHARED,
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


async def plans(request: web.Request) -> dict[str, Any]:
    """The plans (the same for everyone): kept by the console for a few minutes, not asked per page."""
    return await request.app[SHARED].plans(request.app[API], Anonymous(forwarded_for(request)))


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


URL_INVISIBLE = str.maketrans("", "", "\t\r\n")  # browsers drop these anywhere in a URL (WHATWG URL standard)


def safe_next(value: str | None, default: str = "/overview") -> str:
    r"""A path on this console to go to after a form, else ``default``.

    The value is read as a browser would read it in a ``Location`` header: TAB, CR and LF are dropped and a
    backslash counts as a slash, so ``/\t/evil.example`` and ``/\evil.example`` both mean ``//evil.example``,
    another site. What is left must be a path: one ``/`` first and no second ``/``, no scheme, no host, only
    printable ASCII (``request.path_qs`` is always percent-encoded) and no backslash at all. Percent-encoded
    forms (``/%09/evil.example``, ``/%2F%2Fevil.example``) are paths on this console: browsers never decode
    them while resolving a redirect, so they lead to a 404 here, never elsewhere.
    """
    if not value:
        return default
    path = value.translate(URL_INVISIBLE)
    if not path.startswith("/") or path.startswith("//"):
        return default
    if any(not "!" <= c <= "~" or c == "\\" for c in path):
        return default
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        return default
    return path


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
    # The deployment's facts, kept by this process for a minute (a page whose own answer carries the demo flag,
    # the overview, keeps them fresh without a call of its own).
    shared, anonymous = request.app[SHARED], Anonymous(forwarded_for(request))
    facts = await shared.facts(request.app[API], anonymous)
    context = {"demo": bool(facts.get("demo")), **(context or {}), "mail_enabled": bool(facts.get("mail"))}
    names = {p["id"]: p["name"] for p in await shared.providers(request.app[API], anonymous)}
    base: dict[str, Any] = {
        "t": t,
        "lang": t.lang,
        "session": session,
        "user": session.user if session else None,
        # The address still to verify: only while mail is on (without mail nothing is enforced or sent).
        "unverified": bool(session and session.user and session.user.get("email_verified") is False
                           and context.get("mail_enabled")),
        "dev_mailbox": settings.dev,
        "is_admin": bool(session and session.is_admin),
        "csrf_token": session.csrf if session else "",
        "flashes": session.take_flashes() if session else [],
        "path": request.path,
        "path_qs": request.path_qs,
        "static_version": request.app[STATIC_VERSION],
        "settings": settings,
        "uses_snap": request.get(USES_SNAP, False),
        "rupiah": formatting.rupiah,
        "rupiah_micro": formatting.rupiah_micro,
        "num": formatting.number,
        "dec": formatting.decimal,
        "dt": lambda v: formatting.format_datetime(v, months),
        "day": lambda v: formatting.format_date(v, months),
        "provider_name": lambda provider_id: names.get(provider_id, provider_id),  # the proxy's display name
        # The user's undismissed alerts, carried by whatever signed-in answer this page got (no call of its own).
        "alerts": request[CREDENTIALS].alerts if CREDENTIALS in request and session and session.signed_in else [],
        "period": lambda p: formatting.format_period(str(p), months),
        # The workspace switcher: the page's team (a team page passes ``team``) and the remembered list.
        "team": None,
        "teams": session.teams if session and session.signed_in else None,
        "keys_url": "/proxy-keys",  # where the proxy key pages shared with teams lead back to
    }
    base.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, base, status=status)
    return response
