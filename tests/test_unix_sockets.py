"""The proxy runs with PostgreSQL and Redis reached through unix sockets, in the URL forms a Cloud SQL proxy or a
PaaS hands out: ``postgresql://user@/db?host=/socket/dir``, the socket directory percent-encoded as the host, and
``unix:///path/redis.sock?db=N``.

The test services listen on TCP (and the embedded PostgreSQL's own socket may belong to another user), so each
socket here is a byte relay in front of the real server: asyncpg and redis-py really connect over AF_UNIX and talk
to the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from tests.conftest import Api, serve_app
from webrana_proxy.settings import Settings

PG_SOCKET_PORT = 5432  # libpq's socket file name carries a port: <dir>/.s.PGSQL.5432


class Relay:
    """A unix socket that pipes every connection to a TCP address, counting connections."""

    def __init__(self, path: Path, host: str, port: int) -> None:
        self.path, self.host, self.port = path, host, port
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        pipes = [asyncio.ensure_future(self._pipe(reader, up_writer)),
                 asyncio.ensure_future(self._pipe(up_reader, writer))]
        self._tasks.update(pipes)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
            self._tasks.discard(task)
        for w in (writer, up_writer):
            w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="wbr-"))  # short: a unix socket path is limited to ~107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("form", ["host in the query", "host percent-encoded"])
async def test_the_proxy_runs_on_unix_socket_urls(form: str, base_env: dict[str, str], migrated: str,
                                                  socket_dir: Path) -> None:
    pg, rd = urlsplit(base_env["DATABASE_URL"]), urlsplit(base_env["REDIS_URL"])
    assert pg.hostname and pg.port and rd.hostname and rd.port
    auth = pg.netloc.rpartition("@")[0]
    auth = f"{auth}@" if auth else ""
    if form == "host in the query":
        database_url = f"postgresql://{auth}{pg.path}?host={socket_dir}&port={PG_SOCKET_PORT}"
    else:
        database_url = f"postgresql://{auth}{quote(str(socket_dir), safe='')}:{PG_SOCKET_PORT}{pg.path}"
    redis_url = f"unix://{socket_dir}/redis.sock?db={rd.path.strip('/') or '0'}"
    env = {**base_env, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    settings = Settings.from_env(env)  # accepted, as given
    assert (settings.database_url, settings.redis_url) == (database_url, redis_url)

    from webrana_proxy.app import create_app

    async with Relay(socket_dir / f".s.PGSQL.{PG_SOCKET_PORT}", pg.hostname, pg.port) as pg_relay, \
            Relay(socket_dir / "redis.sock", rd.hostname, rd.port) as redis_relay, \
            serve_app(create_app(settings)) as client:
        resp = await client.get("/health/ready")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["status"] == "ready"
        tokens = await Api(client).register()  # a real write through the socket
        resp = await client.get("/api/auth/me", headers=Api.auth(tokens))
        assert resp.status == 200, await resp.text()
        assert pg_relay.connections > 0 and redis_relay.connections > 0
