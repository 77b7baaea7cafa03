"""The webhook job: one replica at a time (a PostgreSQL advisory lock), every ``INTERVAL_SECONDS``, it POSTs the due
deliveries to their users' webhook URLs.

* Each delivery is claimed before it is sent (one more attempt counted, the next one pushed back:
  ``BACKOFF_FIRST`` doubling up to ``BACKOFF_MAX``) and marked sent only after a 2xx. A crash in between means it
  is sent again later: delivery is at least once; the body's ``id`` lets the receiver drop the copy.
* The URL is read and checked at send time (``netguard.resolve_target``: https only, every address the host
  resolves to must be public; dev mode also allows loopback, and http to it), then the connection goes only to
  the checked addresses (``PinnedResolver``): DNS cannot switch it after the check.
* Short timeouts, redirects not followed (a 3xx is a failed attempt), at most ``RESPONSE_BYTES`` of the answer
  read, no proxy from the environment. ``MAX_ATTEMPTS`` failed tries: the delivery is marked failed.

``run_once(app, now)`` does one pass and is what tests call; ``webhooks_ctx`` runs the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
from aiohttp import web

from webrana_proxy import __version__
from webrana_proxy.alerts.signing import SIGNATURE_HEADER, signature
from webrana_proxy.crypto import DecryptionFailed, Keyring, Sealed
from webrana_proxy.netguard import AddressRefused, PinnedResolver, Policy, Resolve, resolve_target, system_resolve
from webrana_proxy.settings import Settings
from webrana_proxy.state import KEYRING, POOL, SETTINGS
from webrana_proxy.tasks import background

log = logging.getLogger("webrana.webhooks")

WEBHOOK_LOCK_ID = 7_301_202_404  # advisory lock key of this job (next to the mail job's)
INTERVAL_SECONDS = 2.0  # an alert's webhook should follow the call that caused it closely
BATCH = 50  # deliveries per run at most
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
MAX_ATTEMPTS = 12  # with the backoff above: about 8 hours of trying
CONNECT_TIMEOUT = 5.0  # seconds to reach a receiver
TOTAL_TIMEOUT = 10.0  # seconds for the whole exchange: a receiver should answer at once and work later
RESPONSE_BYTES = 1024  # of a receiver's answer read (kept in last_error when it is not a 2xx)
ERROR_CHARS = 500


def policy_for(settings: Settings) -> Policy:
    """Outside dev mode only public addresses over https; dev mode also a receiver on this machine or the
    private network (http only to loopback)."""
    dev = settings.dev_mode
    return Policy(allow_loopback=dev, allow_private=dev, allow_http_loopback=dev)


@dataclass(slots=True)
class WebhookSender:
    keyring: Keyring
    policy: Policy
    resolve: Resolve = system_resolve


@dataclass(slots=True)
class WebhookReport:
    ran: bool = True  # False: another replica holds the lock
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


SENDER = web.AppKey("webhook_sender", WebhookSender)

_DUE = """SELECT id FROM webhook_deliveries WHERE status = 'queued' AND next_attempt_at <= $1
          ORDER BY next_attempt_at LIMIT $2"""
_CLAIM = """
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1,
    next_attempt_at = $2::timestamptz
                      + make_interval(secs => least($4::float8, $3::float8 * power(2, least(d.attempts, 30))))
FROM webhooks w
WHERE d.id = $1 AND d.status = 'queued' AND w.id = d.webhook_id
RETURNING d.id, d.user_id, d.event_type, d.body, d.attempts, w.id AS webhook_id, w.url, w.secret_ciphertext,
          w.secret_nonce, w.key_version"""


async def run_once(app: web.Application, now: datetime | None = None) -> WebhookReport:
    pool, sender = app[POOL], app[SENDER]
    now = now or datetime.now(UTC)
    async with pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", WEBHOOK_LOCK_ID):
            return WebhookReport(ran=False)
        try:
            report = WebhookReport()
            for delivery_id in [r["id"] for r in await pool.fetch(_DUE, now, BATCH)]:
                await _deliver(pool, sender, delivery_id, now, report)
            return report
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", WEBHOOK_LOCK_ID)


async def _deliver(pool: asyncpg.Pool, sender: WebhookSender, delivery_id: uuid.UUID, now: datetime,
                   report: WebhookReport) -> None:
    row = await pool.fetchrow(_CLAIM, delivery_id, now, BACKOFF_FIRST.total_seconds(), BACKOFF_MAX.total_seconds())
    if row is None:
        return
    try:
        secret = sender.keyring.open(Sealed(row["secret_ciphertext"], row["secret_nonce"], row["key_version"]),
                                     row["user_id"], row["webhook_id"])
    except DecryptionFailed as exc:
        await _failed(pool, row, None, f"cannot open the signing secret: {exc}", report, give_up=True)
        return
    status, error = await post(sender, row["url"], row["body"].encode(), secret, row["event_type"], row["id"])
    if status is not None and 200 <= status < 300:
        await pool.execute("""UPDATE webhook_deliveries SET status = 'sent', sent_at = $2, last_status = $3,
                              last_error = NULL WHERE id = $1""", row["id"], datetime.now(UTC), status)
        report.sent += 1
        return
    await _failed(pool, row, status, error, report, give_up=row["attempts"] >= MAX_ATTEMPTS)


async def post(sender: WebhookSender, url: str, body: bytes, secret: str, event_type: str,
               delivery_id: uuid.UUID) -> tuple[int | None, str]:
    """One signed POST: (the receiver's status, or None when it could not be reached; an error text)."""
    try:
        target = await resolve_target(url, sender.policy, sender.resolve)
    except AddressRefused as exc:
        return None, f"refused: {exc}"
    headers = {"Content-Type": "application/json", "User-Agent": f"Webrana-Webhooks/{__version__}",
               "Webrana-Event": event_type, "Webrana-Delivery": str(delivery_id),
               SIGNATURE_HEADER: signature(secret, body, int(time.time()))}
    connector = aiohttp.TCPConnector(resolver=PinnedResolver(target), use_dns_cache=False, force_close=True,
                                     limit=1)
    timeout = aiohttp.ClientTimeout(total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                         auto_decompress=False) as session, \
                session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            answer = await resp.content.read(RESPONSE_BYTES)
            if 300 <= resp.status < 400:
                return resp.status, f"HTTP {resp.status}: redirects are not followed"
            if resp.status >= 300:
                return resp.status, f"HTTP {resp.status}: {answer.decode(errors='replace')}"
            return resp.status, ""
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return None, f"cannot reach the receiver: {type(exc).__name__}: {exc}"


async def _failed(pool: asyncpg.Pool, row: asyncpg.Record, status: int | None, error: str, report: WebhookReport,
                  *, give_up: bool) -> None:
    await pool.execute(
        "UPDATE webhook_deliveries SET status = $2, last_status = $3, last_error = $4 WHERE id = $1",
        row["id"], "failed" if give_up else "queued", status, error[:ERROR_CHARS])
    report.errors.append(error)
    if give_up:
        log.error("webhook delivery given up", extra={"delivery_id": str(row["id"]), "attempts": row["attempts"],
                                                      "error": error[:200]})
        report.failed += 1
    else:
        log.warning("webhook not delivered yet; will retry", extra={"delivery_id": str(row["id"]),
                                                                    "error": error[:200]})
        report.retrying += 1


async def _loop(app: web.Application) -> None:
    while True:
        try:
            report = await run_once(app)
            if report.sent or report.retrying or report.failed:
                log.info("webhook run", extra={"sent": report.sent, "retrying": report.retrying,
                                               "failed": report.failed})
        except asyncio.CancelledError:
            raise
        except Exception:  # a bad run must not stop the job; the next one retries
            log.exception("webhook run failed")
        await asyncio.sleep(INTERVAL_SECONDS)


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sender on the app; the job when background jobs are on. Add after the pool's context."""
    settings = app[SETTINGS]
    app[SENDER] = WebhookSender(app[KEYRING], policy_for(settings))
    if settings.background_jobs:
        async with background(_loop(app), "webhook-sender"):
            yield
    else:
        yield
