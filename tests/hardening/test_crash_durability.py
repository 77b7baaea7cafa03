"""Usage rows survive a crash: real ``webrana-proxy serve`` processes, killed with SIGKILL, real PostgreSQL and Redis.

"PostgreSQL stopped" is real from the proxy's view: it reaches PostgreSQL (and in the last test Redis) through a
TCP relay this test owns, which refuses connections and cuts the open ones on ``cut()``. Every test checks the exact
row count, that no request id appears twice, and that the counters derived from rows (the daily roll-up, the proxy
key's request count) agree with the rows: a row replayed twice is counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import psutil
import pytest

from devstack import free_port
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import wait_rows
from tests.hardening.conftest import process_account
from tests.hardening.journals import journal_rows
from tests.processes import ProxyProcess, proxy_process

pytestmark = pytest.mark.slow

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "halo"}]}
WARM_UP = 3


class TcpRelay:
    """127.0.0.1:<port> -> target, until ``cut()`` (connections refused, open ones reset) and after ``restore()``."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def url(self, target: str) -> str:
        parts = urlsplit(target)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, f"{netloc[0]}@{host}" if len(netloc) == 2 else host, parts.path,
                           parts.query, parts.fragment))

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._open):
            w.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self._open |= pair
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open -= pair


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, RuntimeError):
        pass
    finally:
        writer.transport.abort()


@contextlib.asynccontextmanager
async def relay(target: str) -> AsyncIterator[TcpRelay]:
    r = TcpRelay(target)
    await r.restore()
    try:
        yield r
    finally:
        if r._server is not None:
            await r.cut()


async def call(session: aiohttp.ClientSession, url: str, key: str, i: int, *, fresh: bool = False) -> int:
    body = {**CHAT, "stream": True} if i % 2 else CHAT
    headers = {"Authorization": f"Bearer {key}"}
    if fresh:
        headers["Connection"] = "close"  # a new connection each time: SO_REUSEPORT spreads them over the workers
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        await resp.read()  # the whole answer, to its last byte (a stream: through its final chunk)
        return resp.status


def kill_group(proxy: ProxyProcess) -> None:
    os.killpg(proxy.proc.pid, signal.SIGKILL)


async def assert_exactly(db_url: str, count: int, timeout: float = 15) -> None:
    rows = await wait_rows(db_url, count, timeout=timeout)
    ids = [r["request_id"] for r in rows]
    assert len(ids) == count, f"{len(ids)} usage rows, expected {count}"
    assert len(set(ids)) == count
    # Rows are journaled before they are priced; replayed ones are priced on the way in, as the live ones were:
    # every row has a price, and calls with the same tokens cost the same however their row arrived.
    costs: dict[tuple[Any, ...], set[int]] = {}
    for r in rows:
        assert r["price_source"] is not None and r["cost_idr_micro"] > 0, dict(r)
        costs.setdefault((r["model"], r["prompt_tokens"], r["completion_tokens"]), set()).add(r["cost_idr_micro"])
    assert all(len(c) == 1 for c in costs.values()), costs
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT sum(requests) FROM usage_daily") == count, "roll-up out of step"
        assert await conn.fetchval("SELECT sum(request_count) FROM proxy_api_keys") == count, "key counter"
    finally:
        await conn.close()


async def wait_written(db_url: str, count: int) -> None:
    rows = await wait_rows(db_url, count, timeout=10)
    assert len(rows) == count


async def test_sigkill_right_after_the_last_answer_loses_no_row(
        gateway_env: dict[str, str], clean: None, fake: FakeState, tmp_path: Path) -> None:
    db = gateway_env["DATABASE_URL"]
    env = {**gateway_env, "WEBRANA_USAGE_JOURNAL_DIR": str(tmp_path / "journal")}
    async with proxy_process(env, str(tmp_path / "a.log")) as proxy, aiohttp.ClientSession() as session:
        key = await process_account(session, proxy.url, db)
        statuses = [await call(session, proxy.url, key, i) for i in range(55)]
        kill_group(proxy)  # the whole process group, within a millisecond of the last answer
        await proxy.proc.wait()
    assert statuses == [200] * 55
    async with proxy_process(env, str(tmp_path / "b.log")):  # the same settings: its journal is replayed
        await assert_exactly(db, 55)
    assert journal_rows(tmp_path / "journal") == 0, "the replayed journal is removed"


async def test_sigkill_during_a_postgres_outage_then_restart_loses_no_row(
        gateway_env: dict[str, str], clean: None, fake: FakeState, tmp_path: Path) -> None:
    db = gateway_env["DATABASE_URL"]
    async with relay(db) as pg:
        env = {**gateway_env, "DATABASE_URL": pg.url(db), "WEBRANA_USAGE_JOURNAL_DIR": str(tmp_path / "journal")}
        async with proxy_process(env, str(tmp_path / "a.log")) as proxy, aiohttp.ClientSession() as session:
            key = await process_account(session, proxy.url, db)
            assert [await call(session, proxy.url, key, i) for i in range(WARM_UP)] == [200] * WARM_UP
            await wait_written(db, WARM_UP)  # the key is cached, the warm-up rows are in
            await pg.cut()
            statuses = [await call(session, proxy.url, key, i) for i in range(50)]
            assert statuses == [200] * 50  # cached keys keep working
            kill_group(proxy)
            await proxy.proc.wait()
        await pg.restore()
        async with proxy_process(env, str(tmp_path / "b.log")):
            await assert_exactly(db, WARM_UP + 50)


async def ready_says_postgres_down(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with session.get(url + "/health/ready") as resp:
            body = await resp.json()
            if resp.status == 503 and body["postgres"].startswith("down"):
                return
        await asyncio.sleep(0.1)
    raise AssertionError("readiness never reported PostgreSQL down")


async def test_a_pod_deleted_mid_outage_leaves_its_rows_in_redis(
        gateway_env: dict[str, str], clean: None, fake: FakeState, tmp_path: Path) -> None:
    db = gateway_env["DATABASE_URL"]
    async with relay(db) as pg:
        env = {**gateway_env, "DATABASE_URL": pg.url(db)}
        env_a = {**env, "WEBRANA_USAGE_JOURNAL_DIR": str(tmp_path / "a-journal")}
        env_b = {**env, "WEBRANA_USAGE_JOURNAL_DIR": str(tmp_path / "b-journal")}
        async with (proxy_process(env_b, str(tmp_path / "b.log")) as other,
                    aiohttp.ClientSession() as session):
            async with proxy_process(env_a, str(tmp_path / "a.log")) as proxy:
                key = await process_account(session, proxy.url, db)
                assert [await call(session, proxy.url, key, i) for i in range(WARM_UP)] == [200] * WARM_UP
                await wait_written(db, WARM_UP)
                await pg.cut()
                assert [await call(session, proxy.url, key, i) for i in range(50)] == [200] * 50
                await ready_says_postgres_down(session, proxy.url)
                kill_group(proxy)  # the pod is gone, and its disk with it
                await proxy.proc.wait()
            lost_disk = journal_rows(tmp_path / "a-journal")
            await pg.restore()
            env_new = {**env, "WEBRANA_USAGE_JOURNAL_DIR": str(tmp_path / "fresh-journal")}
            async with proxy_process(env_new, str(tmp_path / "a2.log")):  # rescheduled: an empty journal
                await assert_exactly(db, WARM_UP + 50)
            assert other.proc.returncode is None
    assert lost_disk >= 50, "the killed pod's journal held its outage rows (nobody replays it here)"
    assert journal_rows(tmp_path / "a-journal") == lost_disk, "the rows came through Redis, not the old disk"


def workers_of(proxy: ProxyProcess) -> list[psutil.Process]:
    found = []
    for p in psutil.Process(proxy.proc.pid).children():
        with contextlib.suppress(psutil.Error):
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline()):
                found.append(p)
    return found


async def test_a_surviving_worker_replays_a_killed_workers_journal(
        gateway_env: dict[str, str], clean: None, fake: FakeState, tmp_path: Path) -> None:
    db = gateway_env["DATABASE_URL"]
    journal = tmp_path / "journal"
    async with relay(db) as pg, relay(gateway_env["REDIS_URL"]) as rd:
        # Redis is cut too, so no row can reach the outage stream: only the journal can bring them back.
        env = {**gateway_env, "DATABASE_URL": pg.url(db), "REDIS_URL": rd.url(gateway_env["REDIS_URL"]),
               "WEBRANA_USAGE_JOURNAL_DIR": str(journal)}
        async with (proxy_process(env, str(tmp_path / "x2.log"), "--workers", "2") as proxy,
                    aiohttp.ClientSession() as session):
            deadline = time.monotonic() + 20
            while len(workers_of(proxy)) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            key = await process_account(session, proxy.url, db)
            warm = 16  # on fresh connections: both workers see the key (each caches it)
            assert [await call(session, proxy.url, key, i, fresh=True) for i in range(warm)] == [200] * warm
            await wait_written(db, warm)
            await pg.cut()
            await rd.cut()
            statuses = [await call(session, proxy.url, key, i, fresh=True) for i in range(50)]
            # A worker whose key cache is cold cannot authenticate without PostgreSQL (no row: not a call); every
            # call answered 200 has its row, and the victim below must hold some in its journal.
            answered = statuses.count(200)
            assert answered > 0, statuses
            held = {w.pid: journal_rows(journal, str(w.pid)) for w in workers_of(proxy)}
            victim = max(held, key=lambda pid: held[pid])
            assert held[victim] > 0, held
            dying = psutil.Process(victim)
            dying.send_signal(signal.SIGKILL)
            psutil.wait_procs([dying], timeout=10)
            await pg.restore()
            await rd.restore()
            await assert_exactly(db, warm + answered, timeout=20)  # no restart: the other worker replayed it
            assert not list(journal.glob(f"journal-{victim}-*")), "the dead worker's journal was replayed"
            assert "usage journal of a stopped process replayed" in proxy.log()
            assert len(workers_of(proxy)) == 1
