"""The usage API (/api/usage/*): summaries from the daily roll-up, the paginated request log and the streamed
CSV export, always limited to the caller's own rows. Data is written with the real usage writer's
``write_batch``, so raw rows and the roll-up agree exactly as they do in production."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import io
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Api
from webrana_proxy.api import usage as usage_api
from webrana_proxy.api.usage import (
    CSV_FIELDS,
    EXPORT_CHUNK,
    EXPORT_SQL,
    EXPORT_WRITE_TIMEOUT,
    RequestFilter,
    csv_safe,
    decode_cursor,
    encode_cursor,
    jakarta_today,
    page_query,
    parse_status,
)
from webrana_proxy.db import POOL_MAX
from webrana_proxy.errors import ValidationFailed
from webrana_proxy.state import POOL
from webrana_proxy.usage import JAKARTA, UsageRecord, write_batch

Client = TestClient[web.Request, web.Application]
T0 = datetime(2024, 3, 1, 16, 59, 59, tzinfo=UTC)  # 2024-03-01 23:59:59 in Jakarta: the day's last second


def rec(user_id: str, at: datetime, *, provider: str = "openai", model: str = "gpt-4o-mini",
        status: int = 200, prompt: int = 10, completion: int = 5, cost: int = 100, stream: bool = False,
        error_type: str | None = None, estimated: bool = False) -> UsageRecord:
    return UsageRecord(request_id="req_" + secrets.token_hex(10), user_id=uuid.UUID(user_id),
                       proxy_key_id=None, provider=provider, model=model, endpoint="chat", stream=stream,
                       status=status, prompt_tokens=prompt, completion_tokens=completion,
                       total_tokens=prompt + completion, tokens_estimated=estimated, cost_idr_micro=cost * 1_000_000,
                       latency_ms=250, ttfb_ms=40 if stream else None, upstream_request_id=None,
                       error_type=error_type, created_at=at)


@pytest_asyncio.fixture(loop_scope="session")
async def db(client: Client, migrated: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated)
    try:
        yield conn
    finally:
        await conn.close()


async def write(conn: asyncpg.Connection, records: Iterable[UsageRecord]) -> None:
    await write_batch(conn, list(records))


async def user(api: Api) -> tuple[str, dict[str, str]]:
    tokens = await api.register()
    return tokens["user"]["id"], api.auth(tokens)


async def get_json(client: Client, path: str, headers: dict[str, str], status: int = 200) -> Any:
    resp = await client.get(path, headers=headers)
    assert resp.status == status, await resp.text()
    return await resp.json()


def sums(requests: int, errors: int, prompt: int, completion: int, cost: int) -> dict[str, int]:
    return {"requests": requests, "errors": errors, "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "cost_idr": cost, "cost_idr_micro": cost * 1_000_000,
            "cost_usd_nano": 0, "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
            "fallback_requests": 0}


# ------------------------------------------------------------------------------------------------- summary

async def test_summary_sums_the_rollup_by_jakarta_day_provider_and_model(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    bob, _ = await user(api)
    await write(db, [
        rec(alice, T0),  # Jakarta 03-01
        rec(alice, T0 + timedelta(seconds=1), prompt=20, completion=10, cost=200),  # Jakarta 03-02 00:00:00
        rec(alice, datetime(2024, 3, 3, 2, tzinfo=UTC), provider="anthropic", model="claude-3-5-sonnet",
            status=500, prompt=0, completion=0, cost=0, error_type="upstream_error"),
        rec(alice, datetime(2024, 3, 3, 3, tzinfo=UTC), provider="anthropic", model="claude-3-5-sonnet",
            prompt=100, completion=50, cost=1500),
        rec(alice, datetime(2024, 3, 5, 10, tzinfo=UTC), model="gpt-4o", prompt=7, completion=3, cost=900),
        rec(alice, datetime(2024, 3, 6, 10, tzinfo=UTC), cost=5),  # after the range
        rec(bob, datetime(2024, 3, 3, 3, tzinfo=UTC), provider="qwen", model="bob-only-model", cost=77777),
    ])
    body = await get_json(client, "/api/usage/summary?from=2024-03-01&to=2024-03-05", headers)
    assert body["from"] == "2024-03-01" and body["to"] == "2024-03-05"
    assert body["totals"] == sums(5, 1, 137, 68, 2700)
    assert body["by_day"] == [
        {"date": "2024-03-01", **sums(1, 0, 10, 5, 100)},
        {"date": "2024-03-02", **sums(1, 0, 20, 10, 200)},
        {"date": "2024-03-03", **sums(2, 1, 100, 50, 1500)},
        {"date": "2024-03-04", **sums(0, 0, 0, 0, 0)},
        {"date": "2024-03-05", **sums(1, 0, 7, 3, 900)},
    ]
    assert body["by_provider"] == [{"provider": "openai", **sums(3, 0, 37, 18, 1200)},
                                   {"provider": "anthropic", **sums(2, 1, 100, 50, 1500)}]
    assert body["by_model"] == [
        {"provider": "anthropic", "model": "claude-3-5-sonnet", **sums(2, 1, 100, 50, 1500)},
        {"provider": "openai", "model": "gpt-4o-mini", **sums(2, 0, 30, 15, 300)},
        {"provider": "openai", "model": "gpt-4o", **sums(1, 0, 7, 3, 900)},
    ]
    assert b"bob-only-model" not in orjson.dumps(body) and b"qwen" not in orjson.dumps(body)

    one_day = await get_json(client, "/api/usage/summary?from=2024-03-02&to=2024-03-02", headers)
    assert one_day["totals"] == sums(1, 0, 20, 10, 200)
    assert one_day["by_day"] == [{"date": "2024-03-02", **sums(1, 0, 20, 10, 200)}]


async def test_summary_reads_the_rollup_not_the_raw_rows(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    await write(db, [rec(alice, T0, cost=123)])
    before = await get_json(client, "/api/usage/summary?from=2024-03-01&to=2024-03-01", headers)
    await db.execute("DELETE FROM proxy_requests WHERE user_id = $1", uuid.UUID(alice))
    after = await get_json(client, "/api/usage/summary?from=2024-03-01&to=2024-03-01", headers)
    assert after == before and after["totals"]["cost_idr"] == 123


async def test_summary_defaults_to_this_jakarta_month_so_far(client: Client, api: Api) -> None:
    _, headers = await user(api)
    body = await get_json(client, "/api/usage/summary", headers)
    today = jakarta_today()
    assert (body["from"], body["to"]) == (today.replace(day=1).isoformat(), today.isoformat())
    assert [d["date"] for d in body["by_day"]] == [date(today.year, today.month, n).isoformat()
                                                   for n in range(1, today.day + 1)]
    assert body["totals"] == sums(0, 0, 0, 0, 0) and body["by_provider"] == [] and body["by_model"] == []
    only_to = await get_json(client, "/api/usage/summary?to=2024-02-10", headers)
    assert (only_to["from"], only_to["to"], len(only_to["by_day"])) == ("2024-02-01", "2024-02-10", 10)


@pytest.mark.parametrize(("query", "param", "code"), [
    ("from=2024-13-01", "from", "invalid_date"),
    ("from=2024-02-30", "from", "invalid_date"),
    ("to=2024/03/01", "to", "invalid_date"),
    ("to=20240301", "to", "invalid_date"),
    ("from=yesterday", "from", "invalid_date"),
    ("from=0001-01-01&to=0001-01-02", "from", "invalid_date"),
    ("from=2024-03-05&to=2024-03-01", "from", "invalid_range"),
    ("from=2023-12-31&to=2024-12-31", "to", "range_too_long"),  # 367 days
])
async def test_summary_rejects_bad_ranges_naming_the_parameter(
        client: Client, api: Api, query: str, param: str, code: str) -> None:
    _, headers = await user(api)
    body = await get_json(client, f"/api/usage/summary?{query}", headers, status=400)
    assert body["error"]["type"] == "invalid_request_error"
    assert (body["error"]["param"], body["error"]["code"]) == (param, code)


async def test_summary_accepts_a_whole_leap_year(client: Client, api: Api) -> None:
    _, headers = await user(api)
    body = await get_json(client, "/api/usage/summary?from=2024-01-01&to=2024-12-31", headers)
    assert len(body["by_day"]) == 366


@pytest.mark.parametrize("path", ["/api/usage/summary", "/api/usage/requests", "/api/usage/export.csv"])
async def test_usage_needs_a_signed_in_user(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 401
    assert (await resp.json())["error"]["type"] == "authentication_error"


# ------------------------------------------------------------------------------------------------ requests

async def collect(client: Client, query: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        suffix = f"&cursor={cursor}" if cursor else ""
        page = await get_json(client, f"/api/usage/requests?{query}{suffix}", headers)
        rows.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("pagination never ended")


async def test_requests_pages_newest_first_with_every_row_exactly_once(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    bob, _ = await user(api)
    same = datetime(2024, 3, 2, 5, tzinfo=UTC)
    mine = [rec(alice, T0 + timedelta(minutes=i)) for i in range(17)] + [rec(alice, same) for _ in range(6)]
    await write(db, mine + [rec(bob, T0 + timedelta(minutes=i)) for i in range(5)])
    expected = await db.fetch("SELECT id::text FROM proxy_requests WHERE user_id = $1 "
                              "ORDER BY created_at DESC, id DESC", uuid.UUID(alice))

    first = await get_json(client, "/api/usage/requests?limit=5", headers)
    assert len(first["data"]) == 5 and first["next_cursor"]
    rows = await collect(client, "limit=5", headers)
    assert [r["id"] for r in rows] == [r["id"] for r in expected]
    assert len(rows) == 23 and {r["request_id"] for r in rows} == {r.request_id for r in mine}

    by_request = {r.request_id: r for r in mine}
    row = rows[0]
    assert set(row) == {"id", "request_id", "created_at", "provider", "model", "endpoint", "stream", "status",
                        "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cache_write_tokens",
                        "reasoning_tokens", "tokens_estimated", "cost_idr", "cost_idr_micro", "cost_usd_nano",
                        "usd_to_idr", "price_source", "price_version", "latency_ms", "ttfb_ms", "error_type"}
    src = by_request[row["request_id"]]
    assert datetime.fromisoformat(row["created_at"]) == src.created_at
    assert (row["prompt_tokens"], row["total_tokens"], row["cost_idr"], row["stream"], row["ttfb_ms"]) == (
        10, 15, 100, False, None)

    whole = await get_json(client, "/api/usage/requests", headers)
    assert len(whole["data"]) == 23 and whole["next_cursor"] is None  # default limit 50


async def test_requests_filter_by_day_model_provider_and_status(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    bob, _ = await user(api)
    await write(db, [
        rec(alice, T0),  # Jakarta 03-01
        rec(alice, T0 + timedelta(seconds=1), stream=True),  # Jakarta 03-02
        rec(alice, T0 + timedelta(hours=1), status=429, error_type="rate_limit_error"),
        rec(alice, T0 + timedelta(hours=2), provider="anthropic", model="claude-3-5-sonnet", status=502,
            error_type="upstream_error"),
        rec(alice, T0 + timedelta(days=1, seconds=1), provider="anthropic", model="claude-3-5-sonnet",
            estimated=True),  # Jakarta 03-03 00:00:00
        rec(bob, T0 + timedelta(hours=1), status=429, model="gpt-4o-mini"),
    ])

    async def statuses(query: str) -> list[int]:
        return [r["status"] for r in await collect(client, query, headers)]

    assert await statuses("status=error") == [502, 429]
    assert await statuses("status=ok") == [200, 200, 200]
    assert await statuses("status=429") == [429]
    assert await statuses("status=ERROR&provider=anthropic") == [502]
    assert len(await collect(client, "model=gpt-4o-mini&limit=1", headers)) == 3
    assert len(await collect(client, "provider=anthropic", headers)) == 2
    assert await collect(client, "model=nope", headers) == []
    day1 = await collect(client, "from=2024-03-01&to=2024-03-01", headers)
    assert [datetime.fromisoformat(r["created_at"]) for r in day1] == [T0]
    day2 = await collect(client, "from=2024-03-02&to=2024-03-02", headers)
    assert len(day2) == 3 and any(r["stream"] and r["ttfb_ms"] == 40 for r in day2)
    later = await collect(client, "from=2024-03-03", headers)
    assert len(later) == 1 and later[0]["tokens_estimated"] is True


@pytest.mark.parametrize(("query", "param"), [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"), ("limit=-1", "limit"),
    ("status=teapot", "status"), ("status=99", "status"), ("status=600", "status"),
    ("cursor=not-a-cursor", "cursor"), ("cursor=WzEsMl0", "cursor"),
    ("from=2024-03-02&to=2024-03-01", "from"), ("to=March", "to"), ("model=" + "m" * 201, "model"),
])
async def test_requests_rejects_bad_parameters(client: Client, api: Api, query: str, param: str) -> None:
    _, headers = await user(api)
    body = await get_json(client, f"/api/usage/requests?{query}", headers, status=400)
    assert body["error"]["param"] == param


async def test_requests_limit_200_is_allowed(client: Client, api: Api) -> None:
    _, headers = await user(api)
    assert (await get_json(client, "/api/usage/requests?limit=200", headers))["data"] == []


async def test_a_page_after_a_cursor_is_an_index_range_scan(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, _ = await user(api)
    bob, _ = await user(api)
    await write(db, [rec(alice, T0 + timedelta(seconds=i)) for i in range(3000)])
    await write(db, [rec(bob, T0 + timedelta(seconds=i)) for i in range(3000)])
    await db.execute("ANALYZE proxy_requests")
    f = RequestFilter(uuid.UUID(alice), status=parse_status("ok"))
    sql, args = page_query(f, (T0 + timedelta(seconds=1500), uuid.uuid4()), 51)
    plan = await (await db.prepare(sql)).explain(*args)
    node = (orjson.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    while node["Node Type"] == "Limit":
        node = node["Plans"][0]
    assert node["Node Type"] == "Index Scan", node  # no Sort: the index order is the page order
    assert node["Index Name"] == "proxy_requests_user_time_idx"
    assert "created_at" in node["Index Cond"] and "user_id" in node["Index Cond"]  # seek, not filter


# -------------------------------------------------------------------------------------------------- export

async def test_export_streams_the_callers_rows_as_safe_csv(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    bob, _ = await user(api)
    bulk = [rec(alice, datetime(2024, 3, 2, 3, tzinfo=UTC) + timedelta(seconds=i)) for i in range(2500)]
    nasty = [rec(alice, T0 + timedelta(seconds=1), model="=HYPERLINK(\"http://evil\")", error_type="@SUM(1)"),
             rec(alice, T0 + timedelta(seconds=2), model="+cmd", error_type="-2+3", status=500)]
    await write(db, [rec(alice, T0), *nasty, *bulk,  # T0 is Jakarta 03-01: outside the range
                     rec(alice, datetime(2024, 3, 3, 17, tzinfo=UTC)),  # Jakarta 03-04: outside
                     rec(bob, datetime(2024, 3, 2, 3, tzinfo=UTC), model="bob-only-model")])

    resp = await client.get("/api/usage/export.csv?from=2024-03-02&to=2024-03-03", headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers["Content-Disposition"] == \
        'attachment; filename="webrana-usage-2024-03-02-2024-03-03.csv"'
    assert resp.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in resp.headers
    text = (await resp.read()).decode()
    assert "bob-only-model" not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_FIELDS
    body = [dict(zip(CSV_FIELDS, r, strict=True)) for r in rows[1:]]
    assert len(body) == 2502
    assert [r["request_id"] for r in body] == [r.request_id for r in [*nasty, *bulk]]  # oldest first
    assert body[0]["model"] == "'=HYPERLINK(\"http://evil\")" and body[0]["error_type"] == "'@SUM(1)"
    assert body[1]["model"] == "'+cmd" and body[1]["error_type"] == "'-2+3" and body[1]["status"] == "500"
    assert body[0]["created_at"] == "2024-03-02T00:00:00+07:00"  # Jakarta time, like the file's days
    assert (body[2]["total_tokens"], body[2]["stream"], body[2]["ttfb_ms"]) == ("15", "false", "")
    assert (body[2]["cost_idr"], body[2]["cost_usd"]) == ("100.000000", "0.000000000")  # exact decimals


# The export's next page, waiting for a lock the test holds. Found by its lock, not by its state or query text:
# with a statement already prepared on that connection the lock is taken at Bind, while pg_stat_activity still
# shows the backend idle with the previous query.
WAITING_FOR_OUR_LOCK = """SELECT DISTINCT l.pid FROM pg_locks l
    WHERE NOT l.granted AND l.relation = 'proxy_requests'::regclass AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


SMALL_RECEIVE_BUFFER = 16 * 1024  # bytes in the downloading socket: the rest of a big export waits on the server
READ_SIZE, READ_PAUSE = 16_384, 0.5  # 32 KB/s per reader: one ~8 MB download takes over 4 minutes


@contextlib.asynccontextmanager
async def downloader(client: Client) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session whose sockets have a small fixed receive buffer (no autotuning to megabytes), so what a
    download has not read yet stays mostly on the server's side: the export really waits for the reader."""
    def small_socket(addr_info: Any) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
        return sock

    connector = aiohttp.TCPConnector(socket_factory=small_socket, limit=0)
    async with aiohttp.ClientSession(str(client.make_url("")), connector=connector) as session:
        yield session


MANY_ROWS = 60_000


async def many_rows(db: asyncpg.Connection, user_id: str) -> None:
    """~8 MB of CSV in Jakarta 2024-03-02..03: many times what the server's socket may buffer for one export
    (``EXPORT_SEND_BUFFER``, doubled), so a download through ``downloader`` stays open until it is read."""
    start = datetime(2024, 3, 2, 3, tzinfo=UTC)
    for part in range(MANY_ROWS // 10_000):
        await write(db, [rec(user_id, start + timedelta(seconds=part * 10_000 + i)) for i in range(10_000)])


APP_BACKENDS = """SELECT count(*) FILTER (WHERE state <> 'idle') AS running, max(query_start) AS last_query
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"""
QUIET = 1.0  # seconds without a query on the app's connections: the export is waiting for its reader
SETTLE_BOUND = 60.0  # seconds for the export to fill the socket and wait (a second or two; a loaded machine more)


async def test_an_export_holds_no_database_connection_while_the_client_reads(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    await many_rows(db, alice)
    pool = client.app[POOL]
    busy_before = pool.get_size() - pool.get_idle_size()  # e.g. a background task's own connection

    async with downloader(client) as session, \
            session.get("/api/usage/export.csv?from=2024-03-02&to=2024-03-04", headers=headers) as resp:
        assert resp.status == 200
        head = await resp.content.readany()
        assert head.startswith(b"request_id,")
        # The server sends page after page until the socket is full, then waits for the reader. One look could
        # fall between two pages, while the next one is fetched (allowed: that is no wait for the reader), so the
        # test waits until no query has run for QUIET seconds: the export is then waiting for the reader, and at
        # every look in that time it held no connection and no query, cursor or transaction was open.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_BOUND
        quiet_since: float | None = None
        last_seen: datetime | None = None
        while True:
            app = await db.fetchrow(APP_BACKENDS)
            busy = pool.get_size() - pool.get_idle_size()  # the same moment: no await since the query answered
            assert app is not None
            if app["running"] == 0 and busy <= busy_before and app["last_query"] == last_seen:
                quiet_since = loop.time() if quiet_since is None else quiet_since
                if loop.time() - quiet_since >= QUIET:
                    break
            else:
                quiet_since = None
            last_seen = app["last_query"]
            assert loop.time() < deadline, (
                f"the export never waited for the reader without a connection: {busy} in use (before: "
                f"{busy_before}), {app['running']} of the app's backends not idle (a query, or a transaction open)")
            await asyncio.sleep(0.1)
        # ... and the download was in progress all along: the rest comes now, complete (an export that had stopped
        # meanwhile, e.g. at its write timeout, would end in an incomplete download).
        try:
            body = head + await resp.read()
        except aiohttp.ClientPayloadError:
            pytest.fail("the export ended while the client was not reading")
        assert len(body.splitlines()) == 1 + MANY_ROWS
    assert (await client.get("/api/usage/summary", headers=headers)).status == 200


@pytest.mark.slow
async def test_a_slow_but_steady_reader_downloads_past_the_write_timeout(
        client: Client, api: Api, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client reading 32 KB/s (a slow mobile link) is not cut by the per-chunk write timeout (30 s): each chunk
    leaves within seconds, however long the whole download takes. Run 4x faster (128 KB/s against a 7.5 s timeout:
    the same ratio of the send buffer's drain time to the timeout) so it takes ~11 s, not ~45."""
    speed_up = 4
    monkeypatch.setattr(usage_api, "EXPORT_WRITE_TIMEOUT", EXPORT_WRITE_TIMEOUT / speed_up)
    alice, headers = await user(api)
    await many_rows(db, alice)
    loop = asyncio.get_running_loop()
    async with downloader(client) as session, \
            session.get("/api/usage/export.csv?from=2024-03-02&to=2024-03-04", headers=headers) as resp:
        assert resp.status == 200
        body = b""
        until = loop.time() + (EXPORT_WRITE_TIMEOUT + 15) / speed_up
        while loop.time() < until:
            body += await resp.content.read(READ_SIZE * speed_up)
            await asyncio.sleep(READ_PAUSE)
        assert not resp.content.at_eof()
        try:
            body += await resp.read()
        except aiohttp.ClientPayloadError:
            pytest.fail(f"the export was cut after {len(body)} bytes read at a steady 32 KB/s")
    assert len(body.splitlines()) == 1 + MANY_ROWS


async def test_an_export_cut_by_the_database_is_an_incomplete_download_not_a_short_file(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    await many_rows(db, alice)
    async with downloader(client) as session, \
            session.get("/api/usage/export.csv?from=2024-03-02&to=2024-03-04", headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.content.readany()).startswith(b"request_id,")
        # Hold the next page's query on a lock, so its backend can be found and cut while it runs.
        async with db.transaction():
            await db.execute("LOCK TABLE proxy_requests IN ACCESS EXCLUSIVE MODE")
            rest = asyncio.ensure_future(resp.read())
            async with asyncio.timeout(SETTLE_BOUND):
                while not (backends := await db.fetch(WAITING_FOR_OUR_LOCK)):
                    await asyncio.sleep(0.05)
            [backend] = backends
            assert await db.fetchval("SELECT pg_terminate_backend($1)", backend["pid"])
        with pytest.raises(aiohttp.ClientPayloadError):
            await rest
    assert (await client.get("/api/usage/summary", headers=headers)).status == 200


SLOW_READERS = 25  # more downloads than the pool has connections
# Seconds for all downloads to start, and for each API answer (normal answers take milliseconds; while 25 exports
# fill their sockets on a loaded 2-core machine, seconds). Well under the downloads' 4 minutes: were a download to
# hold a connection, 5 of them and the API would wait for the first 20 to end, far longer than this.
LIVENESS_BOUND = 60.0


async def test_the_api_answers_while_more_slow_export_readers_than_pool_connections_download(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    await many_rows(db, alice)  # ~8 MB of CSV: no download finishes during the test
    assert client.app[POOL].get_max_size() == POOL_MAX == 20
    started = 0
    stop = asyncio.Event()

    async def slow_reader(session: aiohttp.ClientSession) -> int:
        """Reads a little now and then: never slow enough for the per-chunk write timeout to end it."""
        nonlocal started
        async with session.get("/api/usage/export.csv?from=2024-03-02&to=2024-03-04", headers=headers) as resp:
            assert resp.status == 200
            received = 0
            while not stop.is_set():
                chunk = await resp.content.read(READ_SIZE)
                assert chunk, "a slow download finished early; the test needs them all open"
                started += not received
                received += len(chunk)
                await asyncio.sleep(READ_PAUSE)
            return received

    async def answers(path: str) -> None:
        try:
            async with asyncio.timeout(LIVENESS_BOUND):
                resp = await client.get(path, headers=headers)
                assert resp.status == 200, await resp.text()
        except TimeoutError:
            pytest.fail(f"GET {path} got no answer in {LIVENESS_BOUND:.0f}s while {SLOW_READERS} slow downloads "
                        "were in progress")

    async with downloader(client) as session:
        readers = [asyncio.ensure_future(slow_reader(session)) for _ in range(SLOW_READERS)]
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIVENESS_BOUND):
                    while started < SLOW_READERS:
                        await asyncio.sleep(0.05)
            assert started == SLOW_READERS, f"only {started} of {SLOW_READERS} downloads got their first bytes"
            for _ in range(5):
                await answers("/api/auth/me")
                await answers("/api/usage/summary")
                await answers("/api/usage/requests?limit=5")
                await asyncio.sleep(0.2)
            assert not any(r.done() for r in readers), "every download is still in progress while the API answers"
        finally:
            stop.set()
            received = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(n, int) and n > 0 for n in received), received


async def test_export_pages_through_rows_that_share_one_instant(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    """Keyset pages on (created_at, id): rows with the same created_at across a page boundary are each in the
    file once, in id order, exactly as one ordered query over the range gives them."""
    alice, headers = await user(api)
    same = datetime(2024, 3, 2, 3, tzinfo=UTC)
    await write(db, [rec(alice, same) for _ in range(EXPORT_CHUNK + 300)])
    await write(db, [rec(alice, same + timedelta(microseconds=1)) for _ in range(EXPORT_CHUNK - 1)])
    resp = await client.get("/api/usage/export.csv?from=2024-03-02&to=2024-03-02", headers=headers)
    rows = list(csv.reader(io.StringIO(await resp.text())))
    expected = await db.fetch("SELECT request_id FROM proxy_requests WHERE user_id = $1::uuid "
                              "ORDER BY created_at, id", alice)
    assert [r[0] for r in rows[1:]] == [r["request_id"] for r in expected]
    assert len(rows) == 1 + 2 * EXPORT_CHUNK + 299


async def test_an_export_has_the_rows_up_to_the_moment_it_started(
        client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, headers = await user(api)
    earlier = datetime.now(UTC) - timedelta(minutes=10)
    before = [rec(alice, earlier + timedelta(milliseconds=i)) for i in range(3 * EXPORT_CHUNK)]
    await write(db, before)
    first = earlier.astimezone(JAKARTA).date()
    resp = await client.get(f"/api/usage/export.csv?from={first}&to={jakarta_today()}", headers=headers)
    assert resp.status == 200
    head = await resp.content.readany()
    assert head.startswith(b"request_id,")
    await write(db, [rec(alice, datetime.now(UTC) + timedelta(seconds=1))])  # a call after the export began
    rows = list(csv.reader(io.StringIO((head + await resp.read()).decode())))
    assert [r[0] for r in rows[1:]] == [r.request_id for r in before]


async def test_an_export_page_is_an_index_range_scan(client: Client, api: Api, db: asyncpg.Connection) -> None:
    alice, _ = await user(api)
    bob, _ = await user(api)
    await write(db, [rec(alice, T0 + timedelta(seconds=i)) for i in range(3000)])
    for part in range(3):  # enough other rows that reading the table is dearer than the index, as in production
        await write(db, [rec(bob, T0 + timedelta(seconds=part * 10_000 + i)) for i in range(10_000)])
    await db.execute("ANALYZE proxy_requests")
    for after in ((None, None), (T0 + timedelta(seconds=1500), uuid.uuid4())):
        plan = await (await db.prepare(EXPORT_SQL)).explain(
            uuid.UUID(alice), T0, T0 + timedelta(days=1), *after, EXPORT_CHUNK)
        node = (orjson.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
        while node["Node Type"] == "Limit":
            node = node["Plans"][0]
        assert node["Node Type"] == "Index Scan", node  # no Sort: the index read backwards is the file's order
        assert node["Index Name"] == "proxy_requests_user_time_idx"
        assert "created_at" in node["Index Cond"] and "user_id" in node["Index Cond"]


async def test_export_validates_before_streaming(client: Client, api: Api) -> None:
    _, headers = await user(api)
    body = await get_json(client, "/api/usage/export.csv?from=2024-01-01&to=2025-06-01", headers, status=400)
    assert body["error"]["param"] == "to"
    resp = await client.get("/api/usage/export.csv", headers=headers)
    today = jakarta_today()
    assert resp.status == 200
    assert f"webrana-usage-{today.replace(day=1).isoformat()}-{today.isoformat()}.csv" in \
        resp.headers["Content-Disposition"]
    assert (await resp.text()).splitlines() == [",".join(CSV_FIELDS)]


# ------------------------------------------------------------------------------------------------ pure parts

@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"), ("gpt-4o", "gpt-4o"),
    (None, ""), (True, "true"), (0, "0"), (1234, "1234"),
])
def test_csv_cells_never_start_a_formula(value: object, cell: str) -> None:
    assert csv_safe(value) == cell


def test_cursor_round_trips_to_the_microsecond() -> None:
    at = datetime(2024, 3, 1, 16, 59, 59, 123456, tzinfo=UTC)
    row_id = uuid.uuid4()
    assert decode_cursor(encode_cursor(at, row_id)) == (at, row_id)


def b64(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


@pytest.mark.parametrize("raw", [
    "", "%%%", "@@@@", b64(None), b64([1]), b64(["a", "b"]), b64([True, uuid.uuid4().hex]), b64([1, "zz"]),
    b64([10**18, uuid.uuid4().hex]), b64([-(10**18), uuid.uuid4().hex]), b64({"a": 1}),
])
def test_a_forged_cursor_is_a_400(raw: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        decode_cursor(raw)
    assert err.value.param == "cursor"
