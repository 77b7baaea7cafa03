"""One bench session: services, fakes, the gateway, the account, the load tool and core pinning, in one place.

    with session(opts) as h:
        gw = h.gateway(workers=1)
        result = h.load(h.gateway_url(gw), h.json_body, h.gateway_headers, h.json_check, concurrency=64)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench import loadgen, stack
from bench.loadgen import Check, LoadResult
from bench.procstat import pin, usable_cores
from devstack import free_port

RESULTS = stack.ROOT / "bench" / "results"
BENCH_DATABASE = "webrana_bench"  # the bench's own database next to the dev one (usage rows are truncated)
PACED_CHUNK_DELAY = 0.005  # seconds between events of the paced stream: TTFT stands apart from the whole stream
PROMPT = "say these sixteen words back to me one at a time so the stream has twenty events"  # 16 words
JSON_MODEL = "gpt-6-luna"  # a current OpenAI model (priced from the catalogue): the instant fake
MESSAGES_MODEL = "claude-sonnet-5-5"  # routes to anthropic (the instant fake): the native Messages lane
ANTHROPIC_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14"  # passed on, as Claude Code's are
PACED_MODEL = "qwen-plus"  # routes to qwen: the paced fake (time to first token)
ALIAS = stack.ALIAS  # wbr/bench = gpt-4o-mini (healthy: it always answers) -> qwen-plus


def chat_body(model: str, stream: bool) -> bytes:
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # what the gateway asks upstream for anyway
    return orjson.dumps(body)


def responses_body() -> bytes:
    """A streamed Responses request as Codex sends it (``store: false``) with the chat rows' prompt, for an OpenAI
    model: the native Responses lane."""
    return orjson.dumps({"model": JSON_MODEL, "input": PROMPT, "stream": True, "store": False})


def messages_body() -> bytes:
    """A streamed Anthropic Messages request with the chat rows' prompt (the fake answers 17 words in 23 events)."""
    return orjson.dumps({"model": MESSAGES_MODEL, "max_tokens": 1024, "stream": True,
                         "messages": [{"role": "user", "content": PROMPT}]})


@dataclass
class Pinning:
    gateway: set[int] | None
    load: int | None  # load generator, fakes, Redis and this driver

    def describe(self) -> str:
        if self.gateway is None:
            return "not pinned (fewer than 2 usable cores or affinity not allowed)"
        return (f"gateway and bare relay on core(s) {sorted(self.gateway)}; load generator, fake upstreams, Redis "
                f"and the driver on core {self.load}; PostgreSQL unpinned (may be shared with other devstack users)")


@dataclass
class Harness:
    env: dict[str, str]
    database_url: str
    instant: stack.Proc
    paced: stack.Proc
    account: stack.Account
    pinning: Pinning
    wrk: str | None
    duration: float
    logs: Path
    procs: list[stack.Proc] = field(default_factory=list)

    @property
    def tool(self) -> str:
        return loadgen.wrk_version(self.wrk) if self.wrk else "python (aiohttp, multi-process)"

    @property
    def json_body(self) -> bytes:
        return chat_body(JSON_MODEL, stream=False)

    @property
    def stream_body(self) -> bytes:
        return chat_body(JSON_MODEL, stream=True)

    @property
    def alias_stream_body(self) -> bytes:
        """The chat stream through an alias whose first hop is the chat rows' model."""
        return chat_body(ALIAS, stream=True)

    @property
    def paced_body(self) -> bytes:
        return chat_body(PACED_MODEL, stream=True)

    @property
    def messages_body(self) -> bytes:
        return messages_body()

    @property
    def direct_messages_url(self) -> str:
        return f"http://127.0.0.1:{self.instant.port}/anthropic/v1/messages"

    @property
    def direct_messages_headers(self) -> dict[str, str]:
        return {"x-api-key": self.account.anthropic_key, "anthropic-version": "2023-06-01",
                "anthropic-beta": ANTHROPIC_BETAS, "Content-Type": "application/json"}

    @property
    def gateway_messages_headers(self) -> dict[str, str]:
        return {**self.direct_messages_headers, "x-api-key": self.account.proxy_key}

    @staticmethod
    def gateway_messages_url(gw: stack.Proc) -> str:
        return f"http://127.0.0.1:{gw.port}/v1/messages?beta=true"

    @property
    def responses_body(self) -> bytes:
        return responses_body()

    @property
    def direct_responses_url(self) -> str:
        return f"http://127.0.0.1:{self.instant.port}/openai/v1/responses"

    @staticmethod
    def gateway_responses_url(gw: stack.Proc) -> str:
        return f"http://127.0.0.1:{gw.port}/v1/responses"

    @property
    def direct_url(self) -> str:
        return f"http://127.0.0.1:{self.instant.port}/openai/v1/chat/completions"

    @property
    def direct_paced_url(self) -> str:
        return f"http://127.0.0.1:{self.paced.port}/qwen/compatible-mode/v1/chat/completions"

    @property
    def direct_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.account.provider_key}", "Content-Type": "application/json"}

    @property
    def gateway_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.account.proxy_key}", "Content-Type": "application/json"}

    @staticmethod
    def gateway_url(gw: stack.Proc) -> str:
        return f"http://127.0.0.1:{gw.port}/v1/chat/completions"

    def gateway(self, workers: int, *, journal: bool = True) -> stack.Proc:
        """``journal=False``: WEBRANA_USAGE_JOURNAL_DIR=off (only for ``--journal-ab``)."""
        env = stack.gateway_env(self.env, port=free_port(), instant=self.instant, paced=self.paced,
                                journal=RESULTS / "usage-journal" if journal else None)
        # One worker: its own core. More workers: every core, named explicitly (this driver pinned itself to the
        # load core, and a child started with no affinity would inherit that single core).
        if workers == 1 or self.pinning.gateway is None:
            cores = self.pinning.gateway
        else:
            cores = self.pinning.gateway | ({self.pinning.load} if self.pinning.load is not None else set())
        gw = stack.start_gateway(env, workers=workers, cores=cores, logs=self.logs)
        self.procs.append(gw)
        return gw

    def relay(self, client: str = "upstream") -> stack.Proc:
        """The bare relay in front of the instant fake, pinned exactly like the one-worker gateway."""
        proc = stack.start_relay(self.env, upstream=self.direct_url, cores=self.pinning.gateway, logs=self.logs,
                                 client=client)
        self.procs.append(proc)
        return proc

    @staticmethod
    def relay_url(relay: stack.Proc) -> str:
        return f"http://127.0.0.1:{relay.port}/v1/chat/completions"

    def load(self, url: str, body: bytes, headers: dict[str, str], check: Check, *, concurrency: int,
             duration: float | None = None) -> LoadResult:
        seconds = duration if duration is not None else self.duration
        if self.wrk:
            return loadgen.run_wrk(self.wrk, url, body, headers, check, concurrency=concurrency, duration=seconds,
                                   script_dir=self.logs, core=self.pinning.load)
        return loadgen.run_python(url, body, headers, check, concurrency=concurrency, duration=seconds,
                                  core=self.pinning.load)

    def check_for(self, url: str, body: bytes, headers: dict[str, str]) -> Check:
        """Learn the answer's shape from one call (and fail loudly if even that call is wrong)."""
        status, raw = asyncio.run(loadgen.probe(url, body, headers))
        stream = b'"stream":true' in body
        if status != 200:
            raise RuntimeError(f"probe of {url} answered {status}: {raw[:300]!r}")
        # The stream's last event is its end marker: ``data: [DONE]`` (chat) or ``message_stop`` (Messages); of
        # ``response.completed`` (Responses), which carries the response's id and time, the tail two calls share.
        end = raw[raw.rstrip(b"\n").rfind(b"\n\n") + 2:] if stream and not raw.endswith(loadgen.STREAM_END) \
            else loadgen.STREAM_END
        if stream and end.startswith(b"event: response."):
            _, again = asyncio.run(loadgen.probe(url, body, headers))
            same = next((i for i in range(1, len(end) + 1) if i > len(again) or again[-i] != end[-i]), len(end) + 1)
            end = end[len(end) - same + 1:]
        check = Check(stream=stream, stream_events=raw.count(b"data: ") if stream else 0, end=end)
        if not loadgen.body_ok(check, status, raw):
            raise RuntimeError(f"probe of {url} gave an unexpected body: {raw[:300]!r}")
        return check


def choose_pinning() -> Pinning:
    cores = usable_cores()
    if len(cores) < 2 or not pin(0, set(cores)):
        return Pinning(None, None)
    return Pinning({cores[0]}, cores[-1])


@contextlib.contextmanager
def session(*, duration: float, python_load: bool = False) -> Iterator[Harness]:
    sys.path.insert(0, str(stack.ROOT))
    import devstack  # the repository's dev tooling (not part of the package)

    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(RESULTS / "usage-journal", ignore_errors=True)  # a killed earlier run's: its database is gone
    logs = RESULTS / "logs"
    logs.mkdir(exist_ok=True)
    pinning = choose_pinning()
    if pinning.load is not None:
        pin(0, {pinning.load})  # this driver, and what it starts from now on, stays off the gateway's core
    wrk = None if python_load else loadgen.wrk_path()
    with devstack.services(database=BENCH_DATABASE) as base:
        env = {**base, "PYTHONPATH": os.pathsep.join(p for p in (str(stack.ROOT), base.get("PYTHONPATH", "")) if p)}
        stack.migrate(env)
        asyncio.run(stack.truncate_usage(env["DATABASE_URL"]))
        procs: list[stack.Proc] = []
        with stack.running(procs):
            core = {pinning.load} if pinning.load is not None else None
            instant = stack.start_fake("fake-instant", env, chunk_delay=0.0, cores=core, logs=logs)
            procs.append(instant)
            paced = stack.start_fake("fake-paced", env, chunk_delay=PACED_CHUNK_DELAY, cores=core, logs=logs)
            procs.append(paced)
            # The account is made through a throwaway gateway's API, so both measured gateways start cold alike.
            setup_env = stack.gateway_env(env, port=free_port(), instant=instant, paced=paced,
                                          journal=RESULTS / "usage-journal")
            setup_gw = stack.start_gateway(setup_env, workers=1, cores=core, logs=logs)
            try:
                account = asyncio.run(stack.create_account(f"http://127.0.0.1:{setup_gw.port}",
                                                           env["DATABASE_URL"]))
            finally:
                setup_gw.stop()
            h = Harness(env, env["DATABASE_URL"], instant, paced, account, pinning, wrk, duration, logs, procs)
            yield h
