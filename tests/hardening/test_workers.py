"""``webrana-proxy serve --workers 2``: two processes listen on the one port (SO_REUSEPORT), both take
connections and answer, and SIGTERM to the parent stops both; everything exits 0."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.fakes.scenario import FakeState
from tests.processes import proxy_process

pytestmark = pytest.mark.slow

CONNECTIONS = 48  # with two listeners, all landing on one has odds of 2**-47


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
