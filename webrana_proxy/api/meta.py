"""GET /api/meta: what a client of this deployment should know before anything else, without signing in.

Small and public: the API version, whether the providers are the local demo fakes (``WEBRANA_DEMO``), so
the console can say so on every page, whether e-mail goes out (``mail``: an SMTP server is configured; without
one, e-mail verification is not enforced and the console says mail is off), and the providers (id and display
name, from the registry), which the console lists. The console keeps this answer for a minute rather than asking
per page.
"""

from __future__ import annotations

from aiohttp import web

from webrana_proxy import __version__
from webrana_proxy.jsonio import json_response
from webrana_proxy.state import REGISTRY, SETTINGS

routes = web.RouteTableDef()
META_MAX_AGE = 60  # seconds; the answer only changes when the proxy restarts with other settings


@routes.get("/api/meta")
async def meta(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    providers = [{"id": p.id, "name": p.display_name} for p in request.app[REGISTRY].all()]
    return json_response({"version": __version__, "demo": settings.demo, "mail": settings.mail_enabled,
                          "providers": providers},
                         headers={"Cache-Control": f"public, max-age={META_MAX_AGE}"})
