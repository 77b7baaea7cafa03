"""Usage accounting survives hostile values and a PostgreSQL that refuses writes.

- A value PostgreSQL cannot store (U+0000 in the model name, which the usage row keeps) must not block the
  usage writer: that call is a clean 4xx, and its row and every row after it are written.
- When PostgreSQL refuses writes for a while and the in-memory queue is full, memory lets go of the rows (they are
  in the journal already) and all of them arrive once writes work again.
- A spill file left by an older version is still replayed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes.midtrans import FakeMidtrans
from tests.gateway.conftest import Account, wait_rows
from tests.hardening.journals import journal_rows
from webrana_proxy.state import USAGE
from webrana_proxy.usage import UsageRecord, write_batch

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "halo"}]}


async def refused_lines(spill_dir: Path, count: int, timeout: float = 5.0) -> list[bytes]:
    """The lines of the writer's set-aside file once it holds ``count`` of them (or what it holds at the timeout)."""
    path = spill_dir / "usage-refused.jsonl"
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = path.read_bytes().splitlines() if path.exists() else []
        if len(lines) >= count or asyncio.get_running_loop().time() > deadline:
            return lines
        await asyncio.sleep(0.05)


async def test_a_nul_in_the_model_name_does_not_block_the_usage_writer(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str) -> None:
    headers = {"Authorization": f"Bearer {account.proxy_key}", "Content-Type": "application/json"}
    hostile = await gw.post("/v1/chat/completions", headers=headers,
                            data=orjson.dumps({**CHAT, "model": "gpt-4o-mini\u0000"}))
    hostile_status, hostile_text = hostile.status, await hostile.text()
    for _ in range(3):
        resp = await gw.post("/v1/chat/completions", headers=headers, json=CHAT)
        assert resp.status == 200, await resp.text()
    rows = await wait_rows(migrated, 4, timeout=8)
    assert len(rows) == 4, (f"{len(rows)} of 4 usage rows written: a row PostgreSQL refuses (U+0000 in a text "
                            "column) blocks the usage writer's queue, and every later row with it")
    assert sum(r["status"] == 200 for r in rows) == 3
    assert 400 <= hostile_status < 500, f"a model name with U+0000 was answered {hostile_status}: {hostile_text}"


@pytest.fixture
def env_overrides(fake_midtrans: FakeMidtrans, tmp_path: Path) -> dict[str, str]:
    return {"MIDTRANS_SNAP_BASE_URL": fake_midtrans.snap_base_url,
            "MIDTRANS_API_BASE_URL": fake_midtrans.api_base_url,
            "WEBRANA_USAGE_QUEUE_MAX": "1", "WEBRANA_USAGE_JOURNAL_DIR": str(tmp_path / "spill")}


async def test_rows_beyond_the_queue_bound_wait_in_the_journal_and_all_arrive(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {account.proxy_key}"}
    journal_dir = tmp_path / "spill"  # the journal folder, where old spill files are replayed too

    def journaled() -> int:  # rows in this writer's journal segments
        return journal_rows(journal_dir)

    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("ALTER TABLE proxy_requests RENAME TO proxy_requests_away")  # writes now fail
        try:
            for _ in range(4):
                resp = await gw.post("/v1/chat/completions", headers=headers, json=CHAT)
                assert resp.status == 200, await resp.text()
            assert journaled() == 4  # each row is in the journal as soon as its call is answered
            for _ in range(60):  # the queue holds one row; memory lets go of the rest, the journal keeps them
                if len(gw.app[USAGE]) <= 1:
                    break
                await asyncio.sleep(0.05)
            assert len(gw.app[USAGE]) <= 1, "rows beyond the queue bound are still held in memory"
            assert journaled() == 4
        finally:
            await conn.execute("ALTER TABLE IF EXISTS proxy_requests_away RENAME TO proxy_requests")
    finally:
        await conn.close()
    rows = await wait_rows(migrated, 4, timeout=30)
    assert len(rows) == 4, f"{len(rows)} of 4 usage rows written after writes worked again"
    for _ in range(100):  # written, so trimmed from the journal
        if journaled() == 0:
            break
        await asyncio.sleep(0.05)
    assert journaled() == 0


async def test_a_poisoned_spill_file_never_blocks_live_rows(gw: TestClient[web.Request, web.Application],
                                                            account: Account, migrated: str, tmp_path: Path) -> None:
    """A spill left by a dead worker holding a row PostgreSQL refuses (its user is gone) and a torn line: the live
    rows still arrive, the refused ones are set aside, the file is consumed."""
    import orjson

    spill_dir = tmp_path / "spill"
    spill_dir.mkdir(exist_ok=True)
    ghost = {"request_id": "req_ghost", "user_id": "00000000-0000-0000-0000-000000000001", "proxy_key_id": None,
             "provider": "openai", "model": "gpt-4o-mini", "endpoint": "chat", "stream": False, "status": 200,
             "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "tokens_estimated": False,
             "cost_idr": 0, "latency_ms": 1, "ttfb_ms": None, "upstream_request_id": None, "error_type": None,
             "created_at": "2026-11-28T00:00:00+00:00"}
    (spill_dir / "usage-spill-999999-dead.jsonl").write_bytes(orjson.dumps(ghost) + b"\n" + b'{"torn": \n')
    headers = {"Authorization": f"Bearer {account.proxy_key}", "x-request-id": "same-id-from-the-client"}
    for _ in range(3):  # a client-chosen request id, repeated: our own ids key the rows, so all three land
        resp = await gw.post("/v1/chat/completions", headers=headers, json=CHAT)
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-request-id"] != "same-id-from-the-client"
    rows = await wait_rows(migrated, 3, timeout=10)
    assert len(rows) == 3
    for _ in range(100):
        if not list(spill_dir.glob("usage-spill-*")):
            break
        await asyncio.sleep(0.05)
    assert not list(spill_dir.glob("usage-spill-*"))
    refused = await refused_lines(spill_dir, 2)
    assert len(refused) == 2 and b"req_ghost" in refused[0] + refused[1]


async def test_a_replayed_row_is_a_no_op_and_moves_no_counter(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str) -> None:
    """The same rows written again (a journal replayed after its batch had committed, or a row that arrives both
    from a journal and from the outage stream): not refused, not stored twice, and the roll-up and the key's
    counter move only for the rows actually inserted."""
    headers = {"Authorization": f"Bearer {account.proxy_key}"}
    for _ in range(3):
        resp = await gw.post("/v1/chat/completions", headers=headers, json=CHAT)
        assert resp.status == 200, await resp.text()
    first = await wait_rows(migrated, 3)
    assert len(first) == 3
    conn = await asyncpg.connect(migrated)
    try:
        before = await conn.fetchrow("SELECT sum(requests) AS n, sum(total_tokens) AS t FROM usage_daily")
        records = [UsageRecord.from_json(UsageRecord(**{k: r[k] for k in UsageRecord.__dataclass_fields__
                                                        if k in r}).to_line()) for r in first]
        fresh = UsageRecord.from_json(records[0].to_line())
        fresh.request_id = "req_never_seen"
        assert await write_batch(conn, records) == 0  # all three again: nothing inserted, nothing refused
        assert await write_batch(conn, [*records, fresh]) == 1  # a mixed batch: only the new one counts
        after = await conn.fetchrow("SELECT sum(requests) AS n, sum(total_tokens) AS t FROM usage_daily")
        assert after["n"] == before["n"] + 1
        assert after["t"] == before["t"] + fresh.total_tokens
        assert await conn.fetchval("SELECT count(*) FROM proxy_requests") == 4
        assert await conn.fetchval("SELECT request_count FROM proxy_api_keys WHERE id = $1",
                                   fresh.proxy_key_id) == 4
    finally:
        await conn.close()


async def test_a_replayed_row_that_cannot_be_priced_is_set_aside_and_the_rest_priced(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str, tmp_path: Path) -> None:
    """Rows are journaled before they are priced, so a replay prices them. A damaged line whose tokens are not
    numbers cannot be priced: it is set aside like a row PostgreSQL refuses, and never holds up the good row
    beside it or the live ones."""
    def row(request_id: str, prompt: object) -> bytes:
        return UsageRecord(request_id=request_id, user_id=uuid.UUID(account.user_id), proxy_key_id=None,
                           provider="openai", model="gpt-4o-mini", endpoint="chat", stream=False, status=200,
                           prompt_tokens=prompt, completion_tokens=1_000, total_tokens=2_000,  # type: ignore[arg-type]
                           tokens_estimated=False, latency_ms=5, ttfb_ms=None, upstream_request_id=None,
                           error_type=None, created_at=datetime.now(UTC), priced=False).to_line()

    spill_dir = tmp_path / "spill"
    spill_dir.mkdir(exist_ok=True)
    (spill_dir / "usage-spill-999998-dead.jsonl").write_bytes(row("req_unpriced_good", 1_000) +
                                                              row("req_unpriced_bad", "a thousand"))
    resp = await gw.post("/v1/chat/completions", headers={"Authorization": f"Bearer {account.proxy_key}"},
                         json=CHAT)
    assert resp.status == 200, await resp.text()
    rows = {r["request_id"]: r for r in await wait_rows(migrated, 2, timeout=10)}
    assert len(rows) == 2 and "req_unpriced_good" in rows, list(rows)
    good = rows["req_unpriced_good"]
    # gpt-4o-mini: 0.15 and 0.60 USD per million tokens in and out: 150 + 600 = 750 micro-USD
    assert (good["price_source"], good["cost_usd_nano"]) == ("catalogue", 750_000)
    refused = await refused_lines(spill_dir, 1)
    assert len(refused) == 1 and b"req_unpriced_bad" in refused[0]
