"""The floor: a bare aiohttp relay with no auth, no limits, no logging and no usage rows.

    python -m bench.relay --port P --upstream http://127.0.0.1:U/openai/v1/chat/completions

``POST /v1/chat/completions`` bodies go to ``--upstream`` unchanged (with the caller's ``Authorization`` and
``Content-Type``); the answer comes back as it came: JSON read whole and returned, a stream relayed chunk by
chunk as it arrives. Same stack as the gateway: uvloop, one shared ``aiohttp.ClientSession`` with the gateway's
connector settings and ``auto_decompress=False``, an ``AppRunner`` without access log. What the bench measures
through it is what one extra aiohttp hop costs in CPython on this machine; the gateway minus this is what the
features (auth, limits, routing, usage rows, logs, metrics) cost.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Sequence

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM_CONNECTIONS = 4096  # the gateway's default (WEBRANA_UPSTREAM_CONNECTIONS)
CONNECT_TIMEOUT = 10.0  # the gateway's default (WEBRANA_CONNECT_TIMEOUT)
BACKLOG = 2048  # the gateway's listen backlog
FORWARDED = ("Authorization", "Content-Type")  # what the gateway sends upstream, besides the body
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

HTTP = web.AppKey("http", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def _http(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS, limit_per_host=0, ttl_dns_cache=300,
                                     enable_cleanup_closed=True)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                    timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT))
    app[HTTP] = session
    yield
    await session.close()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
    async with request.app[HTTP].post(request.app[UPSTREAM], data=body, headers=headers,
                                      allow_redirects=False) as resp:
        kind = resp.headers.get("Content-Type", "application/json")
        if not kind.startswith("text/event-stream"):
            return web.Response(body=await resp.read(), status=resp.status, headers={"Content-Type": kind})
        out = web.StreamResponse(status=resp.status, headers=SSE_HEADERS)
        await out.prepare(request)
        content = resp.content
        while data := await content.readany():
            await out.write(data)
        await out.write_eof()
        return out


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream
    app.cleanup_ctx.append(_http)
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


async def serve(host: str, port: int, upstream: str) -> int:
    runner = web.AppRunner(make_app(upstream), access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=BACKLOG).start()
    print(f"bench relay on http://{host}:{port} -> {upstream}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relay",
                                description="A bare aiohttp relay (no auth, limits or logging): the bench's floor.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="port to listen on")
    p.add_argument("--upstream", required=True, help="full URL that POST /v1/chat/completions is relayed to")
    args = p.parse_args(argv)
    return uvloop.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    raise SystemExit(main())
