"""The command line behind ``python -m tests.fakes --port P``: all four fakes on one port, until Ctrl-C.

Prints the base URL settings to export (``OPENAI_BASE_URL``, ``QWEN_BASE_URL``, ``ANTHROPIC_BASE_URL``,
``GEMINI_BASE_URL``). Requests are not recorded by default (a long run would grow without bound).
``--workers N`` runs N processes on the same port (SO_REUSEPORT) so a benchmark's upstream is never the
bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import signal
import sys

import uvloop

from tests.fakes.scenario import Behaviour, FakeState
from tests.fakes.server import FakeServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.fakes", description="Fake OpenAI/Qwen/Anthropic/Gemini."
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (needs --port)")
    p.add_argument(
        "--chunk-delay",
        type=float,
        default=0.0,
        help="seconds between stream events by default (a paced stream, e.g. for TTFT)",
    )
    p.add_argument(
        "--stall-first-byte", type=float, default=0.0, help="seconds before the first byte of every answer"
    )
    p.add_argument("--record", action="store_true", help="keep every request in memory")
    args = p.parse_args(argv)
    if args.workers > 1 and args.port == 0:
        p.error("--workers needs a fixed --port")
    return args


async def serve(args: argparse.Namespace, announce: bool = True) -> None:
    state = FakeState(
        default=Behaviour(chunk_delay=args.chunk_delay, stall_before_first_byte=args.stall_first_byte),
        record_requests=args.record,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    reuse = args.workers > 1
    async with FakeServer(state=state, host=args.host, port=args.port, reuse_port=reuse) as fake:
        if announce:
            print(f"fake providers on {fake.url} ({args.workers} worker(s))", flush=True)
            for name, value in fake.env().items():
                print(f"{name}={value}", flush=True)
        await stop.wait()


def _worker(args: argparse.Namespace) -> None:
    uvloop.run(serve(args, announce=False))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_worker, args=(args,), daemon=True) for _ in range(args.workers - 1)]
    for child in children:
        child.start()
    try:
        uvloop.run(serve(args))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(timeout=5)
    sys.exit(0)
