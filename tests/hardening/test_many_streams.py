"""1,000 concurrent slow streams through one worker (a real ``webrana-proxy serve`` process, the fake providers
in a process of their own pacing every event): all complete with ``[DONE]`` and the full text, every call
leaves its usage row, and the worker's memory stays bounded. The peak RSS is printed (``-s``) and kept in the
test report's properties."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import psutil
import pytest

from tests.hardening.conftest import fake_providers_process, process_account
from tests.processes import proxy_process

pytestmark = pytest.mark.slow

STREAMS = 1000
CHUNK_DELAY = 0.2  # seconds between upstream events
WORDS = " ".join(f"kata{i}" for i in range(10))  # echoed back: 11 events, ~2.2 s a stream
EXPECTED = f"echo: {WORDS}"
TIME_LIMIT = 30.0
RSS_GROWTH_LIMIT = 256 << 20  # bytes over the warmed-up idle worker; 1,000 streams need far less (~40 MiB)


def tree_rss(pid: int) -> int:
    """The largest RSS among the process and its children (the worker, however ``serve`` runs it)."""
    root = psutil.Process(pid)
    sizes = []
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            sizes.append(int(p.memory_info().rss))
    return max(sizes)


async def sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], tree_rss(pid))
        await asyncio.sleep(0.1)


async def one_stream(session: aiohttp.ClientSession, url: str, key: str) -> str:
    async with session.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                            json={"model": "gpt-4o-mini", "stream": True,
                                  "messages": [{"role": "user", "content": WORDS}]}) as resp:
        assert resp.status == 200, await resp.text()
        raw = (await resp.read()).decode()
    events = [line[6:] for line in raw.split("\n") if line.startswith("data: ")]
    assert events and events[-1] == "[DONE]", raw[-300:]
    return raw


async def test_a_thousand_slow_streams_through_one_worker(base_env: dict[str, str], clean: None, migrated: str,
                                                          tmp_path: Path,
                                                          record_property: Callable[[str, object], None]) -> None:
    async with fake_providers_process("--chunk-delay", str(CHUNK_DELAY)) as upstream_env:
        env = {**base_env, **upstream_env, "WEBRANA_IDLE_TIMEOUT": "10", "WEBRANA_FIRST_BYTE_TIMEOUT": "10"}
        async with proxy_process(env, str(tmp_path / "proxy.log")) as proxy:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector,
                                             timeout=aiohttp.ClientTimeout(total=TIME_LIMIT)) as session:
                key = await process_account(session, proxy.url, migrated)
                await one_stream(session, proxy.url, key)  # warm: key cache, pools
                idle_rss = tree_rss(proxy.proc.pid)
                peak = [idle_rss]
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_rss(proxy.proc.pid, stop, peak))
                started = time.monotonic()
                results = await asyncio.gather(*(one_stream(session, proxy.url, key) for _ in range(STREAMS)),
                                               return_exceptions=True)
                took = time.monotonic() - started
                stop.set()
                await sampler
            failed = [r for r in results if isinstance(r, BaseException)]
            assert not failed, f"{len(failed)} of {STREAMS} streams failed, e.g. {failed[:3]!r}"
            texts = {"".join(word for word in _deltas(r)) for r in results if isinstance(r, str)}
            assert texts == {EXPECTED}, list(texts)[:3]
            print(f"\n{STREAMS} streams in {took:.1f} s; worker RSS idle {idle_rss >> 20} MiB, "
                  f"peak {peak[0] >> 20} MiB")
            record_property("peak_rss_mib", peak[0] >> 20)
            record_property("idle_rss_mib", idle_rss >> 20)
            record_property("seconds", round(took, 1))  # a speed figure, reported; the client timeout bounds it
            assert peak[0] - idle_rss < RSS_GROWTH_LIMIT, f"worker grew from {idle_rss >> 20} to {peak[0] >> 20} MiB"
            conn = await asyncpg.connect(migrated)
            try:
                for _ in range(100):
                    rows = await conn.fetchval("SELECT count(*) FROM proxy_requests WHERE status = 200")
                    if rows >= STREAMS + 1:
                        break
                    await asyncio.sleep(0.1)
            finally:
                await conn.close()
            assert rows == STREAMS + 1, f"{rows} usage rows for {STREAMS + 1} calls"


def _deltas(raw: str) -> list[str]:
    out: list[str] = []
    for line in raw.split("\n"):
        if line.startswith("data: {"):
            for choice in orjson.loads(line[6:]).get("choices", []):
                out.append(choice.get("delta", {}).get("content") or "")
    return out
