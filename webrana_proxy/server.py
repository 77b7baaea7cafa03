"""Running one worker: bind (optionally with SO_REUSEPORT), serve until SIGTERM/SIGINT, then shut down
gracefully: readiness turns false, the listener closes, open requests get ``shutdown_grace`` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, cast

import uvloop
from aiohttp import web
from prometheus_client.multiprocess import mark_process_dead

from webrana_proxy.app import create_app
from webrana_proxy.envvalues import ConfigError
from webrana_proxy.health import SHUTTING_DOWN
from webrana_proxy.settings import Settings

log = logging.getLogger("webrana.server")
BACKLOG = 2048  # room for bursts of new connections under load
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for its multiprocess folder
GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (CPython default: 700)


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
    # Everything alive now (modules, settings, pools, caches) lives as long as the process: moved out of the
    # collector's sight, so full collections walk only request-time objects. And the young generation is
    # collected every GC_YOUNG_THRESHOLD allocations instead of every 700: a call allocates a few hundred
    # objects, nearly all freed by reference counting, so the default ran a collection every other call.
    # (`make bench`: p99 at c=64 ~45-55 -> ~20-25 ms; c=1 p99 ~1.9 -> ~1.2-1.7 ms; ~+10% calls/s.)
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
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


def run_loop(coro_factory: Callable[[], Awaitable[int]]) -> int:
    """Run a coroutine on uvloop and return its exit code."""
    return uvloop.run(cast(Coroutine[Any, Any, int], coro_factory()))


def serve_one(settings: Settings, reuse_port: bool) -> int:
    from webrana_proxy.logs import configure

    configure(settings.log_format, settings.log_level)
    return run_loop(lambda: serve(settings, reuse_port=reuse_port))


def worker_main(reuse_port: bool) -> None:
    """Entry point of a spawned worker process (importable, so multiprocessing can find it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM for us
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"webrana-proxy: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(serve_one(settings, reuse_port))


METRICS_DIR_PREFIX = "webrana-metrics-"  # + the serving parent's pid + "-" + random: one fresh folder per run


def run_workers(settings: Settings, workers: int) -> int:
    """One process, or N processes sharing the port with SO_REUSEPORT; SIGTERM/SIGINT reach every worker.

    N workers share one metrics folder (prometheus_client's multiprocess mode), so a scrape of any of them
    reports the whole group: a fresh folder per run, its dead workers' live gauges dropped, removed at the end.
    """
    if workers == 1:
        return serve_one(settings, reuse_port=False)
    with metrics_group_dir() as group_dir:
        # The spawned workers inherit the environment: prometheus_client reads this when they import it (their
        # values then live in files there) and Settings.metrics_group_dir makes /metrics merge the folder.
        os.environ[MULTIPROC_ENV] = group_dir
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=worker_main, args=(True,), name=f"webrana-proxy-{i}") for i in range(workers)]
        for p in procs:
            p.start()

        def forward(signum: int, _frame: object) -> None:
            for p in procs:
                if p.pid is not None and p.is_alive():
                    os.kill(p.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        running = {p.sentinel: p for p in procs}
        while running:
            for sentinel in multiprocessing.connection.wait(list(running)):
                p = running.pop(cast(int, sentinel))
                p.join()
                if p.pid is not None:
                    mark_process_dead(p.pid, group_dir)  # type: ignore[no-untyped-call]  # its live gauges go
    # Any worker that failed, or was killed by a signal (a negative exit code), makes the whole exit non-zero.
    return 1 if any(p.exitcode for p in procs) else 0


@contextlib.contextmanager
def metrics_group_dir() -> Iterator[str]:
    """A fresh, private folder for one run's metric files under the temp dir (``/tmp``: an emptyDir in the chart,
    a tmpfs in compose); folders left by runs that were killed are removed first."""
    base = Path(tempfile.gettempdir())
    for stale in base.glob(f"{METRICS_DIR_PREFIX}*-*"):
        owner = stale.name.removeprefix(METRICS_DIR_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-", dir=base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True
