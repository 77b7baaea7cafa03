"""``webrana-dashboard``: the web console's command line (``serve``)."""

from __future__ import annotations

import argparse
import logging
import sys

from webrana_dashboard.settings import DashboardSettings
from webrana_proxy.envvalues import ConfigError

DESCRIPTION = """Webrana's web console. Reads and writes only through the proxy's /api.

Settings (environment):
  WEBRANA_SESSION_SECRET   required, >= 32 bytes; encrypts and signs the session cookie
  WEBRANA_DASHBOARD_HOST   default 127.0.0.1
  WEBRANA_DASHBOARD_PORT   default 8081
  WEBRANA_API_URL          the proxy, as the console reaches it (default http://127.0.0.1:8080)
  WEBRANA_PUBLIC_API_URL   the proxy, as users' SDKs reach it (default WEBRANA_API_URL)
  WEBRANA_CONSOLE_URL      the console's public URL (default http://127.0.0.1:PORT)
  MIDTRANS_CLIENT_KEY      enables the Midtrans Snap pop-up (without it: redirect to Midtrans' page)
  MIDTRANS_IS_PRODUCTION   true: production snap.js; false (default): sandbox
  MIDTRANS_SNAP_JS_URL     override the snap.js URL; "off" disables the pop-up
  WEBRANA_DEV              true: cookies without the Secure flag (plain-http local runs)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="webrana-dashboard", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the console on WEBRANA_DASHBOARD_HOST:WEBRANA_DASHBOARD_PORT")
    args = parser.parse_args(argv)
    try:
        settings = DashboardSettings.from_env()
    except ConfigError as exc:
        print(f"webrana-dashboard: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from aiohttp import web

        from webrana_dashboard.app import create_app

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:  # pragma: no cover - uvloop is a hard dependency
            loop_factory = None
        print(f"webrana-dashboard listening on http://{settings.host}:{settings.port} "
              f"(API {settings.api_url})", flush=True)
        web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None,
                    print=None, loop=loop_factory() if loop_factory else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
