"""The console's configuration, read from the environment here and nowhere else.

``DashboardSettings.from_env()`` returns complete, valid settings or raises ``ConfigError`` (shared with the
proxy, from ``webrana_proxy.envvalues``) with one line a person can act on; the CLI prints it and exits 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from webrana_proxy.envvalues import ConfigError, read_bool, read_url

DEFAULT_HOST = "127.0.0.1"  # loopback unless deployment says otherwise
DEFAULT_PORT = 8081  # next to the proxy's 8080
DEFAULT_API_URL = "http://127.0.0.1:8080"  # the proxy `make run` starts
MIN_SECRET_BYTES = 32  # the session key is derived from this; shorter secrets are guessable
DEFAULT_DEV_MAIL_DIR = ".webrana/mail"  # where devstack's SMTP sink saves messages, from the repository's root
SNAP_JS_SANDBOX = "https://app.sandbox.midtrans.com/snap/snap.js"
SNAP_JS_PRODUCTION = "https://app.midtrans.com/snap/snap.js"
SECRET_HINT = "generate one with: python -c \"import secrets;print(secrets.token_urlsafe(48))\""  # noqa: S105 - a hint, not a secret


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"{name} must be a port number from 1 to 65535, got {raw!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    session_secret: bytes
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_url: str = DEFAULT_API_URL
    public_api_url: str = DEFAULT_API_URL
    console_url: str = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    midtrans_client_key: str = ""
    midtrans_is_production: bool = False
    snap_js_url: str = SNAP_JS_SANDBOX
    dev: bool = False
    # Dev mode only: the folder where `make run`'s local SMTP sink saves each message (the dev mailbox page).
    dev_mail_dir: str = DEFAULT_DEV_MAIL_DIR

    @property
    def secure_cookies(self) -> bool:
        """Secure cookies everywhere except dev mode and a plain-http console (browsers would drop them)."""
        return not self.dev and self.console_url.startswith("https://")

    @property
    def snap_enabled(self) -> bool:
        """The Snap pop-up is used only with a client key and a snap.js URL; otherwise plain redirects."""
        return bool(self.midtrans_client_key and self.snap_js_url)

    @property
    def snap_origin(self) -> str:
        parts = urlsplit(self.snap_js_url)
        return f"{parts.scheme}://{parts.netloc}" if self.snap_enabled else ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardSettings:
        e = os.environ if env is None else env
        secret = e.get("WEBRANA_SESSION_SECRET", "")
        if not secret:
            raise ConfigError(f"WEBRANA_SESSION_SECRET is not set; {SECRET_HINT}")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"WEBRANA_SESSION_SECRET is shorter than {MIN_SECRET_BYTES} bytes; {SECRET_HINT}")
        port = _port(e, "WEBRANA_DASHBOARD_PORT", DEFAULT_PORT)
        host = e.get("WEBRANA_DASHBOARD_HOST", "").strip() or DEFAULT_HOST
        api_url = read_url(e, "WEBRANA_API_URL", DEFAULT_API_URL)
        production = read_bool(e, "MIDTRANS_IS_PRODUCTION", False)
        snap_raw = e.get("MIDTRANS_SNAP_JS_URL")
        if snap_raw is not None and snap_raw.strip().lower() in {"", "off", "none"}:
            snap_js = ""  # explicitly off: always the plain redirect to Midtrans' payment page
        else:
            snap_js = read_url(e, "MIDTRANS_SNAP_JS_URL", SNAP_JS_PRODUCTION if production else SNAP_JS_SANDBOX)
        return cls(
            session_secret=secret.encode(),
            host=host,
            port=port,
            api_url=api_url,
            public_api_url=read_url(e, "WEBRANA_PUBLIC_API_URL", api_url),
            console_url=read_url(e, "WEBRANA_CONSOLE_URL", f"http://127.0.0.1:{port}"),
            midtrans_client_key=e.get("MIDTRANS_CLIENT_KEY", "").strip(),
            midtrans_is_production=production,
            snap_js_url=snap_js,
            dev=read_bool(e, "WEBRANA_DEV", False),
            dev_mail_dir=e.get("WEBRANA_DEV_MAIL_DIR", "").strip() or DEFAULT_DEV_MAIL_DIR,
        )
