"""The account's own e-mails: the verification link, the reset link, the "password changed" notice. Each call
runs inside the caller's transaction (the link and its message commit with what asked for them)."""

from __future__ import annotations

import uuid
from datetime import datetime

from webrana_proxy.db import Conn
from webrana_proxy.errors import ValidationFailed
from webrana_proxy.mail.linktokens import RESET, VERIFY, LinkTokens
from webrana_proxy.mail.outbox import enqueue
from webrana_proxy.mail.templates import LOCALES


def read_locale(value: object, param: str = "locale") -> str:
    if value not in LOCALES:
        raise ValidationFailed(f"'{param}' must be one of {', '.join(LOCALES)}", param=param, code="invalid_locale")
    return str(value)


async def send_verification(conn: Conn, links: LinkTokens, user_id: uuid.UUID, email: str, now: datetime) -> None:
    token_id = await links.create(conn, user_id, VERIFY, now)
    await enqueue(conn, user_id, "verify_email", {"token_id": str(token_id), "email": email})


async def send_reset(conn: Conn, links: LinkTokens, user_id: uuid.UUID, email: str, now: datetime) -> None:
    token_id = await links.create(conn, user_id, RESET, now)
    await enqueue(conn, user_id, "password_reset", {"token_id": str(token_id), "email": email})


async def send_password_changed(conn: Conn, user_id: uuid.UUID, email: str, now: datetime) -> None:
    await enqueue(conn, user_id, "password_changed", {"email": email, "changed_at": now.isoformat()})
