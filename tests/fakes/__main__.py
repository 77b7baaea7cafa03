"""``python -m tests.fakes --port P``: all four fake providers on one port, until Ctrl-C.

Prints the base URL settings to export (``OPENAI_BASE_URL``, ``QWEN_BASE_URL``, ``ANTHROPIC_BASE_URL``,
``GEMINI_BASE_URL``). Requests are not recorded by default (a long run would grow without bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from tests.fakes.scenario import Behaviour, FakeState
from tests.fakes.server import FakeServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
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
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    state = FakeState(
        default=Behaviour(chunk_delay=args.chunk_delay, stall_before_first_byte=args.stall_first_byte),
        record_requests=args.record,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with FakeServer(state=state, host=args.host, port=args.port) as fake:
        print(f"fake providers on {fake.url}", flush=True)
        for name, value in fake.env().items():
            print(f"{name}={value}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
