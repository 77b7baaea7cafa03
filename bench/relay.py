"""The floor: a bare relay with no auth, no limits, no logging and no usage rows.

    python -m bench.relay --port P --upstream http://127.0.0.1:U/openai/v1/chat/completions [--client aiohttp]

``POST /v1/chat/completions`` bodies go to ``--upstream`` unchanged (with the caller's ``Authorization`` and
``Content-Type``); the answer comes back as it came: JSON read whole and returned, a stream relayed chunk by
chunk as it arrives. Same stack as the gateway: uvloop, aiohttp's server (an ``AppRunner`` without access log)
and, by default, the gateway's own upstream client (``webrana_proxy.upstreamhttp.UpstreamPool`` with the gateway's
limits and timeouts). ``--client aiohttp`` relays through one shared ``aiohttp.ClientSession`` instead (the
gateway's client before it had its own; kept to reproduce that floor). What the bench measures through it is what
one extra hop costs in CPython on this machine; the gateway minus this is what the features (auth, limits,
routing, usage rows, logs, metrics) cost.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Sequence

import aiohttp
import uvloop
from aiohttp import web

from webrana_proxy.upstreamhttp import UpstreamPool

UPSTREAM_CONNECTIONS = 4096  # the gateway's default (WEBRANA_UPSTREAM_CONNECTIONS)
CONNECT_TIMEOUT = 10.0  # the gateway's default (WEBRANA_CONNECT_TIMEOUT)
BACKLOG = 2048  # the gateway's listen backlog
FORWARDED = ("Authorization", "Content-Type")  # what the gateway sends upstream, besides the body
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

FIRST_BYTE_TIMEOUT = 120.0  # the gateway's default (WEBRANA_FIRST_BYTE_TIMEOUT)

HTTP = web.AppKey("http", aiohttp.ClientSession)
POOL = web.AppKey("pool", UpstreamPool)
UPSTREAM = web.AppKey("upstream", str)


async def _http(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS, limit_per_host=0, ttl_dns_cache=300,
                                     enable_cleanup_closed=True)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                    timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT))
    app[HTTP] = session
    yield
    await session.close()


async def _pool(app: web.Application) -> AsyncIterator[None]:
    pool = UpstreamPool(limit=UPSTREAM_CONNECTIONS, connect_timeout=CONNECT_TIMEOUT)
    app[POOL] = pool
    yield
    await pool.close()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Through the gateway's client."""
    body = await request.read()
    headers = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
    resp = await request.app[POOL].request("POST", request.app[UPSTREAM], headers, body,
                                           first_byte_timeout=FIRST_BYTE_TIMEOUT)
    try:
        kind = resp.headers.get("content-type", "application/json")
        if not kind.startswith("text/event-stream"):
            return web.Response(body=await resp.read(), status=resp.status, headers={"Content-Type": kind})
        out = web.StreamResponse(status=resp.status, headers=SSE_HEADERS)
        await out.prepare(request)
        while data := await resp.read_chunk():
            await out.write(data)
        await out.write_eof()
        return out
    finally:
        resp.release()


async def chat_completions_aiohttp(request: web.Request) -> web.StreamResponse:
    """Through aiohttp's client (``--client aiohttp``)."""
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


def make_app(upstream: str, client: str = "upstream") -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream
    if client == "aiohttp":
        app.cleanup_ctx.append(_http)
        app.router.add_post("/v1/chat/completions", chat_completions_aiohttp)
    else:
        app.cleanup_ctx.append(_pool)
        app.router.add_post("/v1/chat/completions", chat_completions)
    return app


async def serve(host: str, port: int, upstream: str, client: str) -> int:
    runner = web.AppRunner(make_app(upstream, client), access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=BACKLOG).start()
    print(f"bench relay on http://{host}:{port} -> {upstream} ({client} client)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relay",
                                description="A bare relay (no auth, limits or logging): the bench's floor.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="port to listen on")
    p.add_argument("--upstream", required=True, help="full URL that POST /v1/chat/completions is relayed to")
    p.add_argument("--client", choices=("upstream", "aiohttp"), default="upstream",
                   help="upstream client: the gateway's own (default) or aiohttp's ClientSession")
    args = p.parse_args(argv)
    return uvloop.run(serve(args.host, args.port, args.upstream, args.client))


if __name__ == "__main__":
    raise SystemExit(main())
