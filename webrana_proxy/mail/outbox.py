"""``enqueue``: put a message in the outbox, inside the caller's transaction, for the mail job to send.

Any module may call it where something worth an e-mail happens (a sign-up, a payment, an alert): the message
is committed with the change that caused it, or not at all, and is sent after the commit, at least once.
The recipient's address and language are read here, from the user's row, so callers pass only the user.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from webrana_proxy.db import Conn
from webrana_proxy.mail.templates import TEMPLATES


async def enqueue(conn: Conn, user_id: uuid.UUID, template: str, params: Mapping[str, Any], *,
                  dedup_key: str | None = None) -> uuid.UUID | None:
    """Queue ``template`` for the user, in their language. ``params`` must be JSON values (see
    ``templates``: ``*_idr`` integers, ``*_at`` ISO times). With ``dedup_key``, at most one message is ever queued
    per key (across replicas and retries); returns the outbox id, or ``None`` when the key was already used or
    the user is gone."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown mail template {template!r}")
    outbox_id = uuid.uuid4()
    queued: uuid.UUID | None = await conn.fetchval(
        """INSERT INTO mail_outbox (id, user_id, recipient, locale, template, params, dedup_key)
           SELECT $1, u.id, u.email, u.locale, $3, $4, $5 FROM users u WHERE u.id = $2
           ON CONFLICT (dedup_key) DO NOTHING
           RETURNING id""",
        outbox_id, user_id, template, dict(params), dedup_key)
    return queued


async def enqueue_to_address(conn: Conn, recipient: str, locale: str, template: str, params: Mapping[str, Any],
                             ) -> uuid.UUID:
    """Queue ``template`` for an address that may have no account yet (a team invitation), in ``locale``."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown mail template {template!r}")
    outbox_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO mail_outbox (id, user_id, recipient, locale, template, params)
           VALUES ($1, (SELECT id FROM users WHERE lower(email) = lower($2)), $2, $3, $4, $5)""",
        outbox_id, recipient, locale, template, dict(params))
    return outbox_id
