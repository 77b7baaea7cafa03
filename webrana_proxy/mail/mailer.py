"""What the mail job and the e-mail routes share at run time, on the app under ``MAILER``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from webrana_proxy.mail.linktokens import LinkTokens
from webrana_proxy.mail.smtp import SmtpSender
from webrana_proxy.settings import Settings


@dataclass(frozen=True, slots=True)
class Mailer:
    sender: SmtpSender | None  # None: mail is off (no WEBRANA_SMTP_URL); messages are marked not sent
    links: LinkTokens
    console_url: str
    mail_from: str

    @property
    def enabled(self) -> bool:
        return self.sender is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        sender = SmtpSender(settings.smtp, settings.mail_from) if settings.smtp is not None else None
        return cls(sender, LinkTokens(settings.jwt_secret), settings.console_url, settings.mail_from)


MAILER = web.AppKey("mailer", Mailer)
