"""Building one message (``build_message``) and sending a batch over one SMTP connection (``SmtpSender``,
on aiosmtplib). TLS certificates are always checked; ``smtp://`` sends in clear (a local relay or the dev sink),
``smtp+starttls://`` upgrades or fails, ``smtps://`` is TLS from the first byte."""

from __future__ import annotations

import email.utils
import hashlib
from datetime import datetime
from email.message import EmailMessage

import aiosmtplib

from webrana_proxy.envvalues import SmtpUrl
from webrana_proxy.mail.templates import Rendered

SMTP_TIMEOUT_SECONDS = 20.0  # a connect, a command or a whole DATA: a healthy server answers in well under this


class PermanentFailure(Exception):
    """The server refused this message for good (a 5xx on its recipient or content): no retry will help."""


def sender_domain(mail_from: str) -> str:
    address = email.utils.parseaddr(mail_from)[1]
    return address.rpartition("@")[2].strip().lower() or "localhost"


def build_message(rendered: Rendered, *, mail_from: str, recipient: str, message_id: str, locale: str,
                  date: datetime) -> EmailMessage:
    """Plain text with an HTML alternative. Every header comes from the outbox row, so a resend is the same
    message: same Message-ID, same Date, same bytes."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = recipient
    msg["Subject"] = rendered.subject
    msg["Date"] = email.utils.format_datetime(date)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders do not answer it
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    # A fixed boundary (from the Message-ID) rather than a random one: a resend is the same bytes.
    msg["Content-Language"] = locale  # after the content: setting content clears Content-* headers
    msg.set_boundary("=_webrana_" + hashlib.sha256(message_id.encode()).hexdigest()[:32])
    return msg


class SmtpSender:
    """``async with sender.connection() as conn: await conn.send(msg)``: one connection per job run."""

    def __init__(self, target: SmtpUrl, mail_from: str) -> None:
        self.target = target
        self.mail_from = mail_from

    def connection(self) -> aiosmtplib.SMTP:
        t = self.target
        return aiosmtplib.SMTP(
            hostname=t.host, port=t.port, username=t.username or None, password=t.password or None,
            use_tls=t.security == "tls", start_tls=t.security == "starttls",
            local_hostname=sender_domain(self.mail_from),  # never socket.getfqdn(): a blocking DNS lookup
            timeout=SMTP_TIMEOUT_SECONDS)

    @staticmethod
    async def send(smtp: aiosmtplib.SMTP, msg: EmailMessage) -> None:
        """Send one message; ``PermanentFailure`` when the server refuses it for good. Other ``SMTPException``s
        and ``OSError``s mean "try again later"."""
        try:
            await smtp.send_message(msg)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(r.code >= 500 for r in exc.recipients):
                raise PermanentFailure(f"recipient refused: {exc.recipients[0].code} "
                                       f"{exc.recipients[0].message}") from None
            raise
        except aiosmtplib.SMTPDataError as exc:
            if exc.code >= 500:
                raise PermanentFailure(f"message refused: {exc.code} {exc.message}") from None
            raise
