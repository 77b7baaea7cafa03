"""A lean, auto-pipelined Redis connection for the gateway's one call per request.

redis-py spends more CPU per command than the rest of the limiter put together (connection-pool checkout,
argument filtering, health checks). The hot path needs only EVALSHA, so this keeps one persistent connection per
process, writes each command as soon as it is issued (concurrent calls share the socket, replies are matched in
order) and parses replies with hiredis. Failures surface as redis-py's own exception types, so callers handle
both clients alike. Only plain ``redis://`` URLs; other schemes use redis-py (see ``limits.Limiter``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

REPLY_TIMEOUT = 2.0  # seconds: a Redis that has not answered by then is treated as down
CONNECT_TIMEOUT = 2.0


def encode_command(*parts: str | int | bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: RedisPipe) -> None:
        self._pipe = pipe
        self._reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        pending = self._pipe.pending
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            if not pending:
                continue  # a reply nobody waits for any more (its waiter timed out)
            fut, _ = pending.popleft()
            if fut.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                fut.set_exception(NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pipe.lost(exc)


class RedisPipe:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.password = unquote(parts.password) if parts.password else None
        self.username = unquote(parts.username) if parts.username else None
        path = parts.path.strip("/")
        self.db = int(path) if path.isdigit() else 0
        self.pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Lock = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None

    @staticmethod
    def supports(url: str) -> bool:
        return urlsplit(url).scheme == "redis"

    async def _connect(self) -> asyncio.Transport:
        async with self._connecting:
            if self._transport is not None:
                return self._transport
            loop = asyncio.get_running_loop()
            try:
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(lambda: _Protocol(self), self.host, self.port), CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from None
            setup: list[bytes] = []
            if self.password is not None:
                setup.append(encode_command("AUTH", *([self.username] if self.username else []), self.password))
            if self.db:
                setup.append(encode_command("SELECT", self.db))
            # Setup commands go on the wire before the transport is published, so no concurrent command can
            # slip in between AUTH and SELECT; a failed setup drops the connection (the next call retries).
            waiters = [self._write(transport, command) for command in setup]
            self._transport = transport  # (uvloop's transport is no asyncio.Transport subclass: no isinstance)
            try:
                await asyncio.gather(*waiters)
            except Exception:
                transport.abort()
                self._transport = None
                raise RedisConnectionError("Redis connection setup (AUTH/SELECT) failed") from None
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = asyncio.create_task(self._expire_stuck(), name="redispipe-watchdog")
            return transport

    def _write(self, transport: asyncio.Transport, command: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, time.monotonic()))
        transport.write(command)
        return fut

    async def _send(self, transport: asyncio.Transport, command: bytes) -> Any:
        return await self._write(transport, command)

    async def execute(self, *parts: str | int | bytes) -> Any:
        transport = self._transport or await self._connect()
        return await self._send(transport, encode_command(*parts))

    async def evalsha(self, sha: str, keys: list[str], args: list[int | str | bytes]) -> Any:
        return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    def lost(self, exc: Exception | None) -> None:
        self._transport = None
        error = RedisConnectionError(f"Redis connection lost: {exc or 'closed'}")
        while self.pending:
            fut, _ = self.pending.popleft()
            if not fut.done():
                fut.set_exception(error)

    async def _expire_stuck(self) -> None:
        """Fail calls Redis has not answered within REPLY_TIMEOUT and drop the connection (cheaper than a
        timeout per call)."""
        while True:
            await asyncio.sleep(REPLY_TIMEOUT / 4)
            if self.pending and time.monotonic() - self.pending[0][1] > REPLY_TIMEOUT:
                transport = self._transport
                self._transport = None
                error = RedisTimeoutError("Redis did not answer in time")
                while self.pending:
                    fut, _ = self.pending.popleft()
                    if not fut.done():
                        fut.set_exception(error)
                if transport is not None:
                    transport.abort()

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._transport is not None:
            self._transport.close()
            self._transport = None
