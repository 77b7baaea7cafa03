"""The processes a bench run needs, started over loopback and stopped afterwards: fake upstreams (instant and
paced), the bare relay (``python -m bench.relay``), the gateway (``webrana-proxy serve --workers N``) with real
settings, and a bench account.

The account is a normal user made through the management API (register, provider keys, a proxy key). Its plan
and limits are raised in SQL so the limiter runs its Redis script on every call but never says no.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from devstack import free_port, http_ok, port_open  # the repository's dev tooling: one copy of each

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # seconds for a process to answer on its port
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL
BENCH_IP_RATE_LIMIT = 1_000_000_000  # per-IP limit, per minute: the check still runs, it never trips here
BENCH_SIGNUP_LIMIT = 1_000_000  # sign-ups per address per hour: every run signs people up from 127.0.0.1
BENCH_QUOTA = 2_000_000_000  # monthly requests and burst per minute for the bench user (INTEGER column max ~2.1e9)
CLOSED_URL = "http://127.0.0.1:9"  # Midtrans is not part of the bench: a loopback port nothing listens on


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"bench: {self.name} still up after {STOP_TIMEOUT:.0f}s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def spawn(name: str, argv: list[str], env: Mapping[str, str], port: int, cores: set[int] | None,
          log: Path) -> Proc:
    """Start ``argv`` in its own session, pinned to ``cores`` from its first instruction (children inherit)."""

    def pre() -> None:
        if cores:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, cores)

    with log.open("ab") as out:
        popen = subprocess.Popen(argv, env=dict(env), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=pre)
    return Proc(name, popen, port)


def wait_ready(proc: Proc, ready: str | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with code {proc.popen.returncode} (see bench/results/*.log)")
        if (http_ok(ready) if ready else port_open(proc.port)):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not start within {START_TIMEOUT:.0f}s")


def start_fake(name: str, env: Mapping[str, str], *, chunk_delay: float, cores: set[int] | None,
               logs: Path) -> Proc:
    port = free_port()
    argv = [sys.executable, "-m", "tests.fakes", "--port", str(port), "--chunk-delay", str(chunk_delay)]
    proc = spawn(name, argv, env, port, cores, logs / f"{name}.log")
    wait_ready(proc)
    return proc


def gateway_env(base: Mapping[str, str], *, port: int, instant: Proc, paced: Proc,
                journal: Path | None) -> dict[str, str]:
    """Real settings (JSON logs at INFO, auth, Redis limits, usage rows) pointed at the fakes over loopback."""
    fast = f"http://127.0.0.1:{instant.port}"
    env = dict(base)
    env.update({
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH", "")) if p),
        "WEBRANA_PROXY_HOST": "127.0.0.1",
        "WEBRANA_PROXY_PORT": str(port),
        "WEBRANA_IP_RATE_LIMIT": str(BENCH_IP_RATE_LIMIT),
        "WEBRANA_SIGNUP_LIMIT": str(BENCH_SIGNUP_LIMIT),
        "OPENAI_BASE_URL": f"{fast}/openai/v1",
        "ANTHROPIC_BASE_URL": f"{fast}/anthropic",
        "GEMINI_BASE_URL": f"{fast}/gemini",
        "QWEN_BASE_URL": f"http://127.0.0.1:{paced.port}/qwen/compatible-mode/v1",
        "MIDTRANS_SNAP_BASE_URL": f"{CLOSED_URL}/snap/v1",
        "MIDTRANS_API_BASE_URL": CLOSED_URL,
        "WEBRANA_BACKGROUND_JOBS": "false",
        "WEBRANA_USAGE_JOURNAL_DIR": str(journal) if journal is not None else "off",
    })
    for name in ("WEBRANA_LOG_LEVEL", "WEBRANA_LOG_FORMAT", "WEBRANA_DEV"):
        env.pop(name, None)  # the defaults: JSON log lines at INFO, one per call
    return env


def start_gateway(env: Mapping[str, str], *, workers: int, cores: set[int] | None, logs: Path) -> Proc:
    port = int(env["WEBRANA_PROXY_PORT"])
    argv = [*proxy_command(), "serve", "--workers", str(workers)]
    proc = spawn(f"gateway-x{workers}", argv, env, port, cores, logs / f"gateway-x{workers}.log")
    wait_ready(proc, f"http://127.0.0.1:{port}/health")
    return proc


def start_relay(env: Mapping[str, str], *, upstream: str, cores: set[int] | None, logs: Path,
                client: str = "upstream") -> Proc:
    """The bare relay (``bench/relay.py``): the floor the gateway is compared with."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.relay", "--port", str(port), "--upstream", upstream, "--client", client]
    proc = spawn("relay", argv, env, port, cores, logs / "relay.log")
    wait_ready(proc)
    return proc


def proxy_command() -> list[str]:
    """The installed ``webrana-proxy`` script (editable install: this tree's code).

    Not ``python -m webrana_proxy``: multiprocessing's spawn cannot re-import a package's ``__main__`` in the
    worker processes, so ``--workers N`` only works from the console script.
    """
    script = Path(sys.executable).with_name("webrana-proxy")
    return [str(script)] if script.exists() else [sys.executable, "-m", "webrana_proxy"]


def migrate(env: Mapping[str, str]) -> None:
    subprocess.run([*proxy_command(), "migrate"], env=dict(env), cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


@dataclass(frozen=True, slots=True)
class Account:
    user_id: uuid.UUID
    proxy_key: str
    provider_key: str  # what the direct measurements present to the fake upstream
    anthropic_key: str  # the same, for the fake Anthropic (Messages rows)


ALIAS = "wbr/bench"  # the alias rows: its first hop is the chat rows' model, so the two are compared like for like


async def create_account(api: str, database_url: str) -> Account:
    """Register a user, lift its plan and limits (SQL), add OpenAI, Qwen and Anthropic keys, an alias
    (``ALIAS`` = gpt-4o-mini -> qwen-plus) and a proxy key."""
    email = f"bench-{secrets.token_hex(6)}@bench.example"
    password = f"Bench-{secrets.token_urlsafe(12)}-9"
    provider_key = f"sk-bench-{secrets.token_hex(16)}"
    anthropic_key = f"sk-ant-bench-{secrets.token_hex(16)}"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{api}/api/auth/register", json={"email": email, "password": password}) as r:
            reg = await r.json()
            if r.status != 201:
                raise RuntimeError(f"register failed: {r.status} {reg}")
        user_id = uuid.UUID(reg["user"]["id"])
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                """UPDATE users SET plan = 'team', monthly_requests_override = $2, burst_per_minute_override = $2
                   WHERE id = $1""", user_id, BENCH_QUOTA)
        finally:
            await conn.close()
        auth = {"Authorization": f"Bearer {reg['access_token']}"}
        for provider, key in (("openai", provider_key), ("qwen", provider_key), ("anthropic", anthropic_key)):
            async with s.post(f"{api}/api/provider-keys", headers=auth,
                              json={"provider": provider, "name": "bench", "key": key}) as r:
                if r.status != 201:
                    raise RuntimeError(f"provider key ({provider}) failed: {r.status} {await r.text()}")
        async with s.post(f"{api}/api/aliases", headers=auth,
                          json={"name": ALIAS, "hops": ["gpt-4o-mini", "qwen-plus"]}) as r:
            if r.status != 201:
                raise RuntimeError(f"alias failed: {r.status} {await r.text()}")
        async with s.post(f"{api}/api/proxy-keys", headers=auth, json={"name": "bench"}) as r:
            made = await r.json()
            if r.status != 201:
                raise RuntimeError(f"proxy key failed: {r.status} {made}")
    return Account(user_id, made["key"], provider_key, anthropic_key)


async def truncate_usage(database_url: str) -> None:
    """The bench database starts each run with no usage rows (so the row count proves logging ran)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("TRUNCATE proxy_requests, usage_daily")
    finally:
        await conn.close()


async def usage_rows(database_url: str, user_id: uuid.UUID) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        n = await conn.fetchval("SELECT count(*) FROM proxy_requests WHERE user_id = $1", user_id)
        return int(n)
    finally:
        await conn.close()


@contextlib.contextmanager
def running(procs: list[Proc]) -> Iterator[list[Proc]]:
    try:
        yield procs
    finally:
        for p in reversed(procs):
            p.stop()
