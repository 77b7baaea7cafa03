"""The usage writer's journal, one loop turn at a time, in the real app: a row is in a journal file before the
call that recorded it may end its answer (``await writer.durable()`` returns), however many rows a turn records;
and every row still reaches PostgreSQL once."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Api
from webrana_proxy.settings import Settings
from webrana_proxy.state import USAGE
from webrana_proxy.usage import NO_WAIT, UsageRecord, UsageWriter
from webrana_proxy.usage_journal import segment_bytes

Client = TestClient[web.Request, web.Application]


def row(user_id: uuid.UUID, request_id: str) -> UsageRecord:
    return UsageRecord(request_id=request_id, user_id=user_id, proxy_key_id=None, provider="openai",
                       model="gpt-4o-mini", endpoint="chat", stream=False, status=200, prompt_tokens=3,
                       completion_tokens=2, total_tokens=5, tokens_estimated=False, latency_ms=1, ttfb_ms=None,
                       upstream_request_id=None, error_type=None, created_at=datetime.now(UTC), priced=False)


def journaled(settings: Settings) -> bytes:
    """Everything in every journal segment under the test app's journal folder."""
    return b"".join(segment_bytes(p.read_bytes())
                    for p in Path(settings.usage_journal_dir).glob("journal-*/*.jsonl"))


async def test_a_row_is_in_the_journal_when_its_wait_returns_alone_or_in_a_busy_turn(
        client: Client, api: Api, settings: Settings, migrated: str) -> None:
    writer: UsageWriter = client.app[USAGE]
    assert writer.journaled
    user_id = uuid.UUID((await api.register())["user"]["id"])
    ids = [f"req_turns_{secrets.token_hex(6)}_{n}" for n in range(6)]
    await asyncio.sleep(0.05)  # a quiet turn or two: the next row is a turn's only row

    # Alone in its turn: written at once, nothing to wait for.
    writer.record(row(user_id, ids[0]))
    assert writer.durable() is NO_WAIT
    assert ids[0].encode() in journaled(settings)
    await asyncio.sleep(0)  # the turn ends: it recorded one row

    # A busy turn: the first row is written at once, the others at the start of the next turn, which their
    # calls wait for.
    writer.record(row(user_id, ids[1]))
    writer.record(row(user_id, ids[2]))
    assert ids[1].encode() in journaled(settings)
    assert ids[2].encode() not in journaled(settings)
    await writer.durable()
    assert ids[2].encode() in journaled(settings)

    # The turn after a busy one batches from its first row on: that row waits for the turn's end too.
    writer.record(row(user_id, ids[3]))
    assert ids[3].encode() not in journaled(settings)
    await writer.durable()
    assert ids[3].encode() in journaled(settings)

    # Calls of one turn wait together, and each finds its own row written when it resumes.
    async def call(request_id: str) -> bool:
        writer.record(row(user_id, request_id))
        await writer.durable()
        return request_id.encode() in journaled(settings)

    assert await asyncio.gather(call(ids[4]), call(ids[5])) == [True, True]

    conn = await asyncpg.connect(migrated)
    try:
        deadline = time.monotonic() + 10
        while (stored := await conn.fetchval("SELECT count(*) FROM proxy_requests WHERE request_id = ANY($1)",
                                             ids)) < len(ids):
            assert time.monotonic() < deadline, f"{stored} of {len(ids)} rows in PostgreSQL"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # another flush or two: nothing is written twice
        assert await conn.fetchval("SELECT count(*) FROM proxy_requests WHERE request_id = ANY($1)", ids) == len(ids)
    finally:
        await conn.close()
