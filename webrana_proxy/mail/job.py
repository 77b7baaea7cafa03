"""The mail job: one replica at a time (a PostgreSQL advisory lock), every ``MAIL_INTERVAL_SECONDS``, it sends
the due messages of the outbox over one SMTP connection.

* Each message is claimed just before it is sent: one more attempt counted, the next attempt pushed back
  (``BACKOFF_FIRST`` doubling up to ``BACKOFF_MAX``) and its Message-ID fixed if this is the first. Only after the
  server accepted it is it marked sent. A crash (or a lost answer) in between means it is sent again later,
  with the same Message-ID: delivery is at least once, and a receiver can tell the copy.
* The server unreachable: every due message waits its backoff; nothing is lost. A refusal for good (5xx on the
  recipient or the content) or ``MAX_ATTEMPTS`` tries: the message is marked failed, logged.
* No SMTP server configured (mail is off): due messages are marked ``not_sent`` and logged.

``run_once(app_or_mailer, pool, now)`` does one pass and is what tests call; ``mail_ctx`` runs the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiosmtplib
import asyncpg
from aiohttp import web

from webrana_proxy.mail.mailer import MAILER, Mailer
from webrana_proxy.mail.smtp import PermanentFailure, build_message, sender_domain
from webrana_proxy.mail.templates import render
from webrana_proxy.state import POOL, SETTINGS
from webrana_proxy.tasks import background

log = logging.getLogger("webrana.mail")

MAIL_LOCK_ID = 7_301_202_403  # advisory lock key of this job (next to the migration's and the billing job's)
MAIL_INTERVAL_SECONDS = 2.0  # a verification e-mail should arrive while the person still looks at the page
BATCH = 100  # messages per run at most; the rest waits for the next run
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=2)
MAX_ATTEMPTS = 20  # with the backoff above: about a day of trying before a message is given up
ERROR_CHARS = 500  # of an SMTP error kept on the row
MAIL_OFF = "mail is off: WEBRANA_SMTP_URL is not set"


@dataclass(slots=True)
class MailReport:
    ran: bool = True  # False: another replica holds the lock
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    not_sent: int = 0


async def run_once(app_or_mailer: web.Application | Mailer, pool: asyncpg.Pool | None = None,
                   now: datetime | None = None) -> MailReport:
    if isinstance(app_or_mailer, web.Application):
        mailer, pool = app_or_mailer[MAILER], app_or_mailer[POOL]
    else:
        mailer = app_or_mailer
    assert pool is not None
    now = now or datetime.now(UTC)
    async with pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", MAIL_LOCK_ID):
            return MailReport(ran=False)
        try:
            report = MailReport()
            if mailer.sender is None:
                await _mark_not_sent(pool, now, report)
            else:
                await _send_due(mailer, pool, now, report)
            return report
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", MAIL_LOCK_ID)


async def _mark_not_sent(pool: asyncpg.Pool, now: datetime, report: MailReport) -> None:
    rows = await pool.fetch(
        """UPDATE mail_outbox SET status = 'not_sent', last_error = $2
           WHERE id IN (SELECT id FROM mail_outbox WHERE status = 'queued' AND next_attempt_at <= $1
                        ORDER BY next_attempt_at LIMIT $3)
           RETURNING id, user_id, template""", now, MAIL_OFF, BATCH)
    for row in rows:
        log.warning("e-mail not sent: mail is off (set WEBRANA_SMTP_URL)",
                    extra={"outbox_id": str(row["id"]), "user_id": str(row["user_id"]), "template": row["template"]})
    report.not_sent += len(rows)


_DUE = """SELECT id FROM mail_outbox WHERE status = 'queued' AND next_attempt_at <= $1
          ORDER BY next_attempt_at LIMIT $2"""

# One more attempt, the next one pushed back (old attempts: 0 -> BACKOFF_FIRST, doubling, at most BACKOFF_MAX),
# and the Message-ID fixed at the first attempt. $5: the sender's domain.
_CLAIM = """
UPDATE mail_outbox
SET attempts = attempts + 1,
    next_attempt_at = $2::timestamptz
                      + make_interval(secs => least($4::float8, $3::float8 * power(2, least(attempts, 30)))),
    message_id = coalesce(message_id, '<' || id::text || '@' || $5 || '>')
WHERE id = $1 AND status = 'queued'
RETURNING id, recipient, locale, template, params, message_id, attempts, created_at"""


async def _send_due(mailer: Mailer, pool: asyncpg.Pool, now: datetime, report: MailReport) -> None:
    assert mailer.sender is not None
    due = [r["id"] for r in await pool.fetch(_DUE, now, BATCH)]
    if not due:
        return
    smtp = mailer.sender.connection()
    try:
        await smtp.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        smtp.close()  # a login refused leaves the connection open
        # Nobody to hand them to: every due message waits its backoff, none is lost.
        for outbox_id in due:
            await _failed_attempt(pool, mailer, outbox_id, now, f"cannot reach the SMTP server: {exc!r}", report)
        return
    try:
        for outbox_id in due:
            if not await _send_one(mailer, pool, smtp, outbox_id, now, report):
                break  # the connection is in doubt; the rest goes next run
    finally:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()


async def _send_one(mailer: Mailer, pool: asyncpg.Pool, smtp: aiosmtplib.SMTP, outbox_id: uuid.UUID,
                    now: datetime, report: MailReport) -> bool:
    """True when the connection can go on to the next message."""
    assert mailer.sender is not None
    row = await pool.fetchrow(_CLAIM, outbox_id, now, BACKOFF_FIRST.total_seconds(),
                              BACKOFF_MAX.total_seconds(), sender_domain(mailer.mail_from))
    if row is None:
        return True
    try:
        rendered = render(row["template"], row["locale"], row["params"], console_url=mailer.console_url,
                          token_for=lambda purpose, token_id: mailer.links.token_for(purpose, uuid.UUID(token_id)))
        msg = build_message(rendered, mail_from=mailer.mail_from, recipient=row["recipient"],
                            message_id=row["message_id"], locale=row["locale"], date=row["created_at"])
    except (KeyError, ValueError) as exc:  # a template or its params no longer fit: a bug, not the server
        await _give_up(pool, row, f"cannot render: {exc!r}", report)
        return True
    try:
        await mailer.sender.send(smtp, msg)
    except PermanentFailure as exc:
        await _give_up(pool, row, str(exc), report)
        return True
    except (aiosmtplib.SMTPException, OSError) as exc:
        await _failed_attempt(pool, mailer, row["id"], now, repr(exc), report, claimed=row["attempts"])
        return False
    await pool.execute("UPDATE mail_outbox SET status = 'sent', sent_at = $2, last_error = NULL WHERE id = $1",
                       row["id"], datetime.now(UTC))
    report.sent += 1
    return True


async def _failed_attempt(pool: asyncpg.Pool, mailer: Mailer, outbox_id: uuid.UUID, now: datetime, error: str,
                          report: MailReport, claimed: int | None = None) -> None:
    """A try that did not get through: counted (unless ``_send_one`` already claimed it) and kept for later,
    or given up after ``MAX_ATTEMPTS``."""
    if claimed is None:
        row = await pool.fetchrow(_CLAIM, outbox_id, now, BACKOFF_FIRST.total_seconds(),
                                  BACKOFF_MAX.total_seconds(), sender_domain(mailer.mail_from))
        if row is None:
            return
        claimed = int(row["attempts"])
    if claimed >= MAX_ATTEMPTS:
        await pool.execute("UPDATE mail_outbox SET status = 'failed', last_error = $2 WHERE id = $1",
                           outbox_id, error[:ERROR_CHARS])
        log.error("e-mail given up after %d attempts", claimed, extra={"outbox_id": str(outbox_id), "error": error})
        report.failed += 1
        return
    await pool.execute("UPDATE mail_outbox SET last_error = $2 WHERE id = $1", outbox_id, error[:ERROR_CHARS])
    log.warning("e-mail not sent yet; will retry", extra={"outbox_id": str(outbox_id), "error": error[:200]})
    report.retrying += 1


async def _give_up(pool: asyncpg.Pool, row: asyncpg.Record, error: str, report: MailReport) -> None:
    await pool.execute("UPDATE mail_outbox SET status = 'failed', last_error = $2 WHERE id = $1",
                       row["id"], error[:ERROR_CHARS])
    log.error("e-mail refused for good", extra={"outbox_id": str(row["id"]), "template": row["template"],
                                                "error": error[:200]})
    report.failed += 1


async def _loop(app: web.Application) -> None:
    while True:
        try:
            report = await run_once(app)
            if report.sent or report.retrying or report.failed:
                log.info("mail run", extra={"sent": report.sent, "retrying": report.retrying,
                                            "failed": report.failed})
        except asyncio.CancelledError:
            raise
        except Exception:  # a bad run must not stop the job; the next one retries
            log.exception("mail run failed")
        await asyncio.sleep(MAIL_INTERVAL_SECONDS)


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mailer on the app; the job when background jobs are on. Add after the pool's context."""
    settings = app[SETTINGS]
    app[MAILER] = Mailer.from_settings(settings)
    if settings.smtp is None and not settings.dev_mode:
        log.warning("E-MAIL IS OFF: WEBRANA_SMTP_URL is not set. No verification, password-reset or receipt "
                    "e-mail will be sent (each is logged as not sent), and e-mail verification is not enforced. "
                    "Set WEBRANA_SMTP_URL (e.g. smtp+starttls://user:pass@smtp.example.com:587) and "
                    "WEBRANA_MAIL_FROM.")
    if settings.background_jobs:
        async with background(_loop(app), "mail-sender"):
            yield
    else:
        yield
