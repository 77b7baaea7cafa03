"""Real `webrana-proxy serve` processes for tests of signals, workers and faults."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from devstack import free_port


@dataclass
class ProxyProcess:
    proc: asyncio.subprocess.Process
    url: str
    log_path: str

    async def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@contextlib.asynccontextmanager
async def proxy_process(env: dict[str, str], log_path: str, *args: str) -> AsyncIterator[ProxyProcess]:
    port = free_port()
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WEBRANA_", "DATABASE_", "REDIS_"))},
                **env, "WEBRANA_PROXY_PORT": str(port), "WEBRANA_LOG_FORMAT": "json"}
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "webrana_proxy", "serve", *args, env=full_env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    handle = ProxyProcess(proc, url, log_path)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                if proc.returncode is not None:
                    raise RuntimeError(f"proxy exited early ({proc.returncode}):\n{handle.log()}")
                try:
                    async with session.get(url + "/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"proxy did not start:\n{handle.log()}")
        yield handle
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
