"""``webrana-proxy``: serve, migrate, create-admin, rotate-master-key."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable

from webrana_proxy.envvalues import ConfigError
from webrana_proxy.settings import Settings

log = logging.getLogger("webrana.cli")


def _settings() -> Settings:
    return Settings.from_env()


def _run(coro_factory: Callable[[], Awaitable[int]]) -> int:
    from webrana_proxy.server import run_loop

    return run_loop(coro_factory)


async def _migrate(settings: Settings) -> int:
    from webrana_proxy.db import create_pool
    from webrana_proxy.migrate import apply_migrations, migrations_dir

    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            applied = await apply_migrations(conn, migrations_dir(settings.migrations_dir))
    finally:
        await pool.close()
    print(f"migrations applied: {', '.join(applied)}" if applied else "migrations: already up to date")
    return 0


async def _create_admin(settings: Settings, email: str, password: str, promote: bool) -> int:
    from webrana_proxy.admins import Outcome, ensure_admin
    from webrana_proxy.db import create_pool
    from webrana_proxy.errors import ValidationFailed
    from webrana_proxy.jsonio import req_email
    from webrana_proxy.passwords import Passwords, check_policy

    try:
        req_email({"email": email})
        check_policy(password)
    except ValidationFailed as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            outcome = await ensure_admin(conn, Passwords(), email, password, promote=promote)
    finally:
        await pool.close()
    if outcome is Outcome.REFUSED:
        print(f"error: {email} already has an account that is not an admin, and anyone can sign up with any "
              "address, so it is not promoted on its own. If you know this account is yours to make an admin, "
              f"run `webrana-proxy create-admin --promote {email}`: it sets the password given here and signs "
              "the account out of every session. Otherwise choose another e-mail.", file=sys.stderr)
        return 1
    print(f"admin ready: {email} ({outcome.value})")
    return 0


async def _rotate(settings: Settings) -> int:
    from webrana_proxy.crypto import Keyring
    from webrana_proxy.db import create_pool
    from webrana_proxy.rotation import rotate

    if settings.master_key_previous is None:
        print("note: MASTER_ENCRYPTION_KEY_PREVIOUS is not set; only rows already readable with the current "
              "key can be processed", file=sys.stderr)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        count = await rotate(pool, Keyring(settings.master_key, settings.master_key_previous))
    finally:
        await pool.close()
    print(f"re-encrypted {count} provider key(s) under the current master key")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webrana-proxy", description="Webrana AI API gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="run the gateway and management API",
                             description="Serve /v1 (gateway), /api (management), /metrics and /health on "
                                         "WEBRANA_PROXY_HOST:WEBRANA_PROXY_PORT.")
    serve_p.add_argument("--workers", type=int, default=None,
                         help="worker processes sharing the port with SO_REUSEPORT (default: WEBRANA_WORKERS or "
                              "1; 0 means one per core)")
    sub.add_parser("migrate", help="apply pending SQL migrations from sql/",
                   description="Apply pending migrations in order; safe to run from several replicas at once.")
    admin_p = sub.add_parser("create-admin", help="create an admin account (idempotent)",
                             description="Create an admin account, or do nothing if it is already an admin with "
                                         "this password (another password resets it and signs the account out "
                                         "everywhere). An existing non-admin account is refused unless "
                                         "--promote is given. The password comes from WEBRANA_ADMIN_PASSWORD or "
                                         "is asked for.")
    admin_p.add_argument("email")
    admin_p.add_argument("--promote", action="store_true",
                         help="make an existing non-admin account an admin: sets the password and revokes every "
                              "refresh and access token of that account")
    sub.add_parser("rotate-master-key", help="re-encrypt provider keys and webhook secrets under MASTER_ENCRYPTION_KEY",
                   description="Re-encrypt every provider key sealed with another master key, reading old rows "
                               "with MASTER_ENCRYPTION_KEY_PREVIOUS. Online, batched and resumable.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings()
        if args.command == "serve":
            requested = args.workers if args.workers is not None else settings.workers
            workers = requested if requested > 0 else (os.cpu_count() or 1)
            from webrana_proxy.server import run_workers

            return run_workers(settings, workers)
        if args.command == "migrate":
            return _run(lambda: _migrate(settings))
        if args.command == "create-admin":
            password = settings.admin_password or getpass.getpass("Admin password: ")
            return _run(lambda: _create_admin(settings, args.email, password, args.promote))
        if args.command == "rotate-master-key":
            return _run(lambda: _rotate(settings))
    except ConfigError as exc:
        print(f"webrana-proxy: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
