"""What ``/v1/responses`` remembers between calls.

* Responses of translated providers (``store`` true, the default): kept in PostgreSQL (``stored_responses``) for
  their user, so ``previous_response_id`` and ``GET /v1/responses/{id}`` work with Claude, Gemini and Qwen from
  any replica. Webrana's ids start ``resp_wbr_``. Rows live ``RETENTION`` and are then deleted by
  ``running_prune`` (one replica at a time, under an advisory lock, when background jobs are on).
* Responses OpenAI stored (native lane): OpenAI keeps them; Webrana remembers only which of the user's provider
  keys created each one (Redis, ``RETENTION``), so ``GET`` / ``DELETE`` and ``previous_response_id`` go to OpenAI
  with that same key (a response lives in the project of the key that made it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from webrana_proxy.providers.base import JSON
from webrana_proxy.state import POOL, SETTINGS
from webrana_proxy.tasks import background

log = logging.getLogger("webrana.responses")

WEBRANA_PREFIX = "resp_wbr_"  # ids of responses Webrana stored; OpenAI's are resp_ + hex
RETENTION = timedelta(days=30)  # as long as OpenAI keeps a stored response
PRUNE_LOCK_ID = 7_301_202_407  # advisory lock key of the prune job (next to the lifecycle job's)
PRUNE_INTERVAL_SECONDS = 3600.0  # expiry is a retention promise, not a deadline to the second
PRUNE_BATCH = 5_000  # rows per delete statement: short transactions, no long locks
OWNER_PREFIX = "wbr:resp:"  # Redis key of an OpenAI-stored response's owner: "<user id> <provider key id>"


def new_response_id() -> str:
    return WEBRANA_PREFIX + secrets.token_hex(16)


def is_webrana_id(response_id: str) -> bool:
    return response_id.startswith(WEBRANA_PREFIX)


@dataclass(frozen=True, slots=True)
class Stored:
    response_id: str
    model: str
    input_items: list[JSON]
    response: JSON

    def history(self) -> list[JSON]:
        """The conversation up to and including this response: its input items, then its output items."""
        output = self.response.get("output")
        return [*self.input_items, *(output if isinstance(output, list) else [])]


async def save(pool: asyncpg.Pool, user_id: uuid.UUID, response_id: str, model: str, input_items: list[JSON],
               response: JSON, now: datetime | None = None) -> None:
    created = now or datetime.now(UTC)
    await pool.execute(
        """INSERT INTO stored_responses (response_id, user_id, model, input_items, response, expires_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        response_id, user_id, model[:200], input_items, response, created + RETENTION, created)


async def load(pool: asyncpg.Pool, user_id: uuid.UUID, response_id: str) -> Stored | None:
    """The user's stored response, or None (unknown, another user's, or expired)."""
    row = await pool.fetchrow(
        """SELECT response_id, model, input_items, response FROM stored_responses
           WHERE response_id = $1 AND user_id = $2 AND expires_at > now()""", response_id, user_id)
    if row is None:
        return None
    return Stored(row["response_id"], row["model"], row["input_items"], row["response"])


async def delete(pool: asyncpg.Pool, user_id: uuid.UUID, response_id: str) -> bool:
    status = await pool.execute(
        "DELETE FROM stored_responses WHERE response_id = $1 AND user_id = $2 AND expires_at > now()",
        response_id, user_id)
    return status != "DELETE 0"


async def prune(pool: asyncpg.Pool, now: datetime | None = None) -> int | None:
    """Delete expired responses; the number deleted, or None when another replica is pruning."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", PRUNE_LOCK_ID):
            return None
        try:
            deleted = 0
            while True:
                status = await conn.execute(
                    """DELETE FROM stored_responses WHERE id IN (
                           SELECT id FROM stored_responses WHERE expires_at <= $1 LIMIT $2)""", now, PRUNE_BATCH)
                count = int(status.rsplit(" ", 1)[-1])
                deleted += count
                if count < PRUNE_BATCH:
                    return deleted
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK_ID)


async def _prune_forever(pool: asyncpg.Pool) -> None:
    while True:
        try:
            deleted = await prune(pool)
            if deleted:
                log.info("expired stored responses deleted", extra={"deleted": deleted})
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("could not prune stored responses yet", extra={"error": type(exc).__name__})
        await asyncio.sleep(PRUNE_INTERVAL_SECONDS)


async def responses_store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The prune job, when background jobs are on (add after the database context)."""
    if app[SETTINGS].background_jobs:
        async with background(_prune_forever(app[POOL]), "responses-prune"):
            yield
    else:
        yield


# ---- responses OpenAI stored: which key made them ----


async def remember_owner(redis: Redis, response_id: str, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Remember the provider key that created an OpenAI-stored response (never fails the call: logged)."""
    try:
        await redis.set(OWNER_PREFIX + response_id, f"{user_id} {key_id}", ex=int(RETENTION.total_seconds()))
    except (RedisError, OSError) as exc:
        log.warning("could not remember a stored response's key", extra={"error": type(exc).__name__})


async def owner_of(redis: Redis, response_id: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(user id, provider key id) that created the OpenAI-stored response, or None when unknown."""
    try:
        value: Any = await redis.get(OWNER_PREFIX + response_id)
    except (RedisError, OSError) as exc:
        log.warning("could not look up a stored response's key", extra={"error": type(exc).__name__})
        return None
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    user, _, key = text.partition(" ")
    with contextlib.suppress(ValueError):
        return uuid.UUID(user), uuid.UUID(key)
    return None


async def forget_owner(redis: Redis, response_id: str) -> None:
    with contextlib.suppress(RedisError, OSError):
        await redis.delete(OWNER_PREFIX + response_id)
