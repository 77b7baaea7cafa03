"""``create_app``: the console's aiohttp application."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from webrana_dashboard.client import ApiClient
from webrana_dashboard.credentials import Refresher
from webrana_dashboard.i18n import load_catalogues
from webrana_dashboard.middleware import on_prepare, pipeline
from webrana_dashboard.session import SessionStore
from webrana_dashboard.settings import DashboardSettings
from webrana_dashboard.shared import SharedAnswers
from webrana_dashboard.state import API, CATALOGUES, HTTP, REFRESHER, SESSIONS, SETTINGS, SHARED, STATIC_VERSION
from webrana_dashboard.views import (
    account,
    account_settings,
    admin,
    admin_prices,
    admin_upstreams,
    alerts,
    aliases,
    billing,
    mail,
    overview,
    provider_keys,
    proxy_keys,
    system,
    team_billing,
    team_invitations,
    team_keys,
    team_limits,
    team_usage,
    teams,
    usage,
)

API_CONNECTIONS = 100  # concurrent calls from one console process to the proxy; pages make one or two each
CLIENT_MAX_SIZE = 64 * 1024  # the console only receives small forms


async def _api_client(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=API_CONNECTIONS, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=True) as http:
        app[HTTP] = http
        app[API] = ApiClient(http, app[SETTINGS].api_url)
        yield


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("webrana_dashboard").joinpath(name)))


def _static_version(folder: Path) -> str:
    """A short hash of the static files, appended to their URLs so browsers may cache them."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def create_app(settings: DashboardSettings) -> web.Application:
    app = web.Application(middlewares=[pipeline], client_max_size=CLIENT_MAX_SIZE)
    app[SETTINGS] = settings
    app[CATALOGUES] = load_catalogues()
    app[SESSIONS] = SessionStore(settings.session_secret, settings.secure_cookies)
    app[REFRESHER] = Refresher()
    app[SHARED] = SharedAnswers()
    static = _package_dir("static")
    app[STATIC_VERSION] = _static_version(static)
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(_package_dir("templates"))),
                         autoescape=jinja2.select_autoescape(["html"], default=True),
                         trim_blocks=True, lstrip_blocks=True)
    app.cleanup_ctx.append(_api_client)
    app.on_response_prepare.append(on_prepare)
    for module in (system, account, overview, provider_keys, aliases, proxy_keys, usage, billing, admin,
                   account_settings, mail, admin_prices, alerts,
                   admin_upstreams, teams, team_invitations, team_keys, team_usage, team_billing, team_limits):
        app.router.add_routes(module.routes)
    app.router.add_static("/static/", static, name="static", append_version=False)
    return app
