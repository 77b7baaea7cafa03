"""``webrana-proxy serve --workers 2``: two processes listen on the one port (SO_REUSEPORT), both take
connections and answer, and SIGTERM to the parent stops both; everything exits 0. ``/metrics`` on any worker
reports the whole group, also after one of them died."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.scenario import FakeState
from tests.hardening.conftest import process_account
from tests.processes import proxy_process

pytestmark = pytest.mark.slow

CONNECTIONS = 48  # with two listeners, all landing on one has odds of 2**-47
CALLS = 40  # gateway calls, each on a connection of its own
SCRAPES = 8  # each on a new connection: any one worker's share alone would show fewer than CALLS


def listeners(root: psutil.Process, port: int) -> list[psutil.Process]:
    found = []
    for p in [root, *root.children(recursive=True)]:
        conns = p.net_connections(kind="tcp")
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns):
            found.append(p)
    return found


def serving(p: psutil.Process, port: int) -> int:
    return sum(1 for c in p.net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)


async def test_two_workers_share_the_port_and_stop_on_sigterm(gateway_env: dict[str, str], clean: None,
                                                              fake: FakeState, tmp_path: Path) -> None:
    async with proxy_process(gateway_env, str(tmp_path / "proxy.log"), "--workers", "2") as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        root = psutil.Process(proxy.proc.pid)
        deadline = time.monotonic() + 20
        while len(workers := listeners(root, port)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # /health answered as soon as the first worker was up
        assert len(workers) == 2, f"{len(workers)} processes listen on {port}:\n{proxy.log()}"
        assert len({w.pid for w in workers}) == 2

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def health() -> int:
                async with session.get(proxy.url + "/metrics") as resp:
                    await resp.read()
                    return resp.status

            statuses = await asyncio.gather(*(health() for _ in range(CONNECTIONS)))  # kept alive in the pool
            assert statuses == [200] * CONNECTIONS
            held = {w.pid: serving(w, port) for w in workers}
            assert all(n > 0 for n in held.values()), f"connections per worker: {held}"
            assert sum(held.values()) == CONNECTIONS, held

        code = await proxy.terminate(timeout=30)
        assert code == 0, proxy.log()
        gone = psutil.wait_procs(workers, timeout=5)[1]
        assert not gone, f"workers still running after the parent exited: {gone}"
        assert proxy.log().count("webrana-proxy listening") == 2, proxy.log()
        assert proxy.log().count('"stopped"') == 2, proxy.log()


def metric_sums(text: str) -> dict[str, float]:
    """Sample name -> the sum over its label sets, from a Prometheus text exposition."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


async def scrape(url: str) -> dict[str, float]:
    async with (aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
                session.get(url + "/metrics") as resp):
        assert resp.status == 200
        return metric_sums(await resp.text())


def group_dirs(parent_pid: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"webrana-metrics-{parent_pid}-*"))


async def test_metrics_of_any_worker_count_the_calls_of_the_whole_group(
        gateway_env: dict[str, str], clean: None, fake: FakeState, tmp_path: Path) -> None:
    async with proxy_process(gateway_env, str(tmp_path / "proxy.log"), "--workers", "2") as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        root = psutil.Process(proxy.proc.pid)
        deadline = time.monotonic() + 20
        while len(workers := listeners(root, port)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(workers) == 2, proxy.log()

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            key = await process_account(session, proxy.url, gateway_env["DATABASE_URL"])

            async def call() -> int:
                body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "halo"}]}
                async with session.post(proxy.url + "/v1/chat/completions", json=body,
                                        headers={"Authorization": f"Bearer {key}"}) as resp:
                    await resp.read()
                    return resp.status

            # All at once, so each call opens a connection of its own (kept alive in the pool afterwards).
            statuses = await asyncio.gather(*(call() for _ in range(CALLS)))
            assert statuses == [200] * CALLS
            held = {w.pid: sum(1 for c in w.net_connections(kind="tcp")
                               if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port) for w in workers}
            assert all(n > 0 for n in held.values()), f"calls per worker: {held}: both must have served some"

        for _ in range(SCRAPES):
            sums = await scrape(proxy.url)
            assert sums.get("webrana_requests_total") == CALLS, sums.get("webrana_requests_total")
            assert sums.get("webrana_request_duration_seconds_count") == CALLS
            assert sums.get("webrana_gateway_overhead_seconds_count") == CALLS
            assert sums.get("webrana_open_streams") == 0  # one group-wide sample, not one per worker
        assert len(group_dirs(proxy.proc.pid)) == 1

        # A worker that dies keeps its share of the counters; its live gauges leave with it.
        os.kill(workers[0].pid, signal.SIGKILL)
        psutil.wait_procs([workers[0]], timeout=10)
        # The depth must settle to 0, not be 0 at the first scrape: the supervisor drops a dead worker's live gauges
        # only once it has reaped it, and a writer's queue can hold rows for a moment (seen at 17-19 here, once in a
        # while); a dead worker's last value frozen into the sum never would settle.
        deadline = time.monotonic() + 10
        while (depth := (sums := await scrape(proxy.url)).get("webrana_usage_queue_depth", 0)) != 0:
            assert sums.get("webrana_requests_total") == CALLS
            assert time.monotonic() < deadline, f"the group's usage queue depth stays at {depth}"
            await asyncio.sleep(0.1)
        for _ in range(SCRAPES // 2):
            sums = await scrape(proxy.url)
            assert sums.get("webrana_requests_total") == CALLS
            assert sums.get("webrana_usage_queue_depth", 0) == 0

        code = await proxy.terminate(timeout=30)
        assert code == 1, "a worker killed by a signal makes the exit non-zero"
        assert group_dirs(proxy.proc.pid) == [], "the run's metrics folder is removed at the end"
