"""Argon2 is no memory bomb: 200 parallel sign-ups from one address against a real ``webrana-proxy serve``
process keep its peak RSS within

    baseline + WEBRANA_PASSWORD_HASH_CONCURRENCY x passwords.HASH_MEMORY_BYTES + SLACK

(baseline: the warmed-up process, after a sign-up and a /v1 call), while a loop of /v1 calls against the fake
providers keeps succeeding. Sign-ups beyond the free hashing slots wait at most WEBRANA_PASSWORD_HASH_WAIT for
one, then get 503 with Retry-After. The per-address sign-up limit is raised for this test, so the hashing slots
are what is exercised. The peak is the kernel's (VmHWM, reset after the warm-up), checked against a sampler
thread polling /proc as well."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest

from tests.conftest import PASSWORD
from tests.hardening.conftest import fake_providers_process, process_account
from tests.processes import proxy_process
from webrana_proxy.passwords import HASH_MEMORY_BYTES
from webrana_proxy.settings import Settings

pytestmark = pytest.mark.slow

SIGNUPS = 200
SLACK = 48 << 20  # 200 requests in flight (buffers, JSON, asyncpg records, error bodies) and allocator rounding
MIB = 1 << 20
CALL_TIMEOUT = 30.0  # seconds: a sign-up waits ~2 s for a slot at most, then ~0.1 s for its hash; /v1 far less


class PeakRss:
    """The process's peak RSS from now on: the kernel's high-water mark (VmHWM after resetting it through
    /proc/<pid>/clear_refs) and, in case that reset is not allowed here, a thread polling VmRSS every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.pid = pid
        self.sampled = 0
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(psutil.NoSuchProcess):
                self.sampled = max(self.sampled, int(self.proc.memory_info().rss))

    def start(self) -> int:
        """Reset the high-water mark, start sampling; returns the baseline RSS."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        baseline = int(self.proc.memory_info().rss)
        self.sampled = baseline
        self._thread.start()
        return baseline

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        peak = self.sampled
        if self.hwm_reset:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        return peak


async def chat(session: aiohttp.ClientSession, url: str, key: str) -> int:
    """The call's status; 0 when it got no answer (timeout, connection lost)."""
    try:
        async with session.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "halo"}]},
                                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)) as r:
            await r.read()
            return r.status
    except (TimeoutError, aiohttp.ClientError):
        return 0


async def sign_up(session: aiohttp.ClientSession, url: str, i: int) -> tuple[int, str | None, str]:
    """(status, Retry-After, body); status 0 when it got no answer."""
    try:
        async with session.post(url + "/api/auth/register", json={"email": f"bom-{i}@example.com",
                                                                  "password": PASSWORD},
                                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)) as r:
            body = await r.text()
            return r.status, r.headers.get("Retry-After"), body
    except (TimeoutError, aiohttp.ClientError) as exc:
        return 0, None, repr(exc)


async def test_two_hundred_parallel_sign_ups_stay_within_the_hashing_memory_bound(
        base_env: dict[str, str], clean: None, migrated: str, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    async with fake_providers_process() as upstream_env:
        env = {**base_env, **upstream_env, "WEBRANA_SIGNUP_LIMIT": "100000"}
        permits = Settings.from_env(env).password_hash_concurrency
        async with proxy_process(env, str(tmp_path / "proxy.log")) as proxy:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                key = await process_account(session, proxy.url, migrated)  # one sign-up: a hash has run
                assert await chat(session, proxy.url, key) == 200
                rss = PeakRss(proxy.proc.pid)
                baseline = rss.start()
                bound = baseline + permits * HASH_MEMORY_BYTES + SLACK

                storm_done = asyncio.Event()
                v1_statuses: list[int] = []

                async def v1_loop() -> None:
                    while not storm_done.is_set():
                        v1_statuses.append(await chat(session, proxy.url, key))

                looper = asyncio.create_task(v1_loop())
                results = await asyncio.gather(*(sign_up(session, proxy.url, i) for i in range(SIGNUPS)))
                storm_done.set()
                await looper
                peak = rss.stop()

        statuses = [s for s, _, _ in results]
        created, busy = statuses.count(201), statuses.count(503)
        print(f"\n{SIGNUPS} sign-ups: {created} created, {busy} busy (503); {len(v1_statuses)} /v1 calls meanwhile; "
              f"RSS baseline {baseline / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, bound {bound / MIB:.0f} MiB "
              f"({permits} x {HASH_MEMORY_BYTES / MIB:.0f} MiB + {SLACK / MIB:.0f} MiB slack); "
              f"VmHWM reset: {rss.hwm_reset}")
        record_property("peak_rss_growth_mib", round((peak - baseline) / MIB, 1))
        assert peak <= bound, (f"peak RSS {peak / MIB:.0f} MiB exceeds baseline {baseline / MIB:.0f} MiB + "
                               f"{permits} x {HASH_MEMORY_BYTES / MIB:.0f} MiB + {SLACK / MIB:.0f} MiB")
        assert created + busy == SIGNUPS, sorted(set(statuses))
        assert created >= permits
        for status, retry_after, body in results:
            if status == 503:
                assert retry_after is not None and int(retry_after) >= 1, body
                assert '"password_hashing_busy"' in body, body
        assert v1_statuses and set(v1_statuses) == {200}, v1_statuses
        conn = await asyncpg.connect(migrated)
        try:
            assert await conn.fetchval("SELECT count(*) FROM users WHERE email LIKE 'bom-%'") == created
        finally:
            await conn.close()
