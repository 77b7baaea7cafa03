"""Running one worker: bind (optionally with SO_REUSEPORT), serve until SIGTERM/SIGINT, then shut down
gracefully: readiness turns false, the listener closes, open requests get ``shutdown_grace`` seconds."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from webrana_proxy.app import create_app
from webrana_proxy.health import SHUTTING_DOWN
from webrana_proxy.settings import ConfigError, Settings

log = logging.getLogger("webrana.server")
BACKLOG = 2048  # room for bursts of new connections under load


async def serve(settings: Settings, *, reuse_port: bool = False) -> int:
    app = create_app(settings)
    # handler_cancellation: a client that goes away cancels its handler, which closes the upstream at once.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_grace,
                           handle_signals=False, handler_cancellation=True)
    try:
        await runner.setup()
    except ConfigError as exc:
        log.error(str(exc))
        print(f"webrana-proxy: {exc}", flush=True)
        return 2
    site = web.TCPSite(runner, settings.proxy_host, settings.proxy_port, reuse_port=reuse_port or None,
                       backlog=BACKLOG)
    await site.start()
    log.info("webrana-proxy listening", extra={"host": settings.proxy_host, "port": settings.proxy_port})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace})
    app[SHUTTING_DOWN].set()  # /health/ready answers 503 from now on
    if settings.readiness_delay:
        await asyncio.sleep(settings.readiness_delay)  # let load balancers notice before the port closes
    # Closes the listener (new connections are refused), lets open requests and streams finish within the
    # grace, then runs cleanup_ctx in reverse: the usage writer drains every queued row before the pool closes.
    await runner.cleanup()
    log.info("stopped")
    return 0
