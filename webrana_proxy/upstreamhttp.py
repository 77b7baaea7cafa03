"""A lean keep-alive HTTP/1.1 client for the gateway's calls to providers: the hot path only.

aiohttp's client spent a quarter of the gateway's CPU per call in `make bench` (request objects, URL handling,
tracing hooks, connector bookkeeping, a stream reader per answer). This one does only what a provider call needs:
the request written in one ``transport.write``, the answer parsed by llhttp (``httptools``, the parser aiohttp
itself uses), a keep-alive pool per origin with a total limit, TLS, a connect timeout and a first-byte timeout,
answers read whole or as they arrive with back-pressure. No redirects, cookies, proxies, compression
(``Accept-Encoding: identity``) or HTTP/2. The console's key tests and Midtrans keep using aiohttp.

Failures are ``OSError``s: ``TimeoutError`` (connect or first byte), ``UpstreamClosed`` (the connection ended before
the answer did, also when we closed it), ``UpstreamProtocolError`` (not valid HTTP), ``AddressNotAllowed`` (a guarded
request's host resolved to an address its policy refuses), or what the socket/TLS layer raised while connecting
(``ConnectionRefusedError``, ``socket.gaierror``, ``ssl.SSLError``).

Guarded requests (``guard=``: an admin-given upstream URL) are checked when a connection is opened: the host is
resolved once by ``netguard.resolve_target`` (``resolve``, replaceable by tests), every address is checked against the
policy, and the socket connects only to those addresses (TLS still verifies the host name). Guarded connections
are pooled apart from unguarded ones to the same origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools

from webrana_proxy import netguard

HIGH_WATER = 256 * 1024  # bytes of one answer buffered before reading pauses (a slow client downstream)
MAX_HEAD_BYTES = 64 * 1024  # response status line + headers
KEEPALIVE_SECONDS = 15.0  # an idle pooled connection older than this is closed, not reused
RESEND_WINDOW = 0.5  # seconds: a reused connection dropped unanswered sooner than this is the keep-alive race
TARGET_CACHE_SIZE = 1024  # parsed URLs kept (provider URLs are few; a bound in case model names vary)
_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int, bool]


class UpstreamClosed(ConnectionError):
    """The connection ended before the answer was complete (reset, closed by the provider, or closed by us)."""


class UpstreamProtocolError(ConnectionError):
    """The provider's bytes were not valid HTTP/1.1."""


class HeaderNotSendable(ValueError):
    """A header name or value cannot go on the wire as it is (a line break, or a character outside Latin-1).
    Raised before anything is sent."""


class AddressNotAllowed(ConnectionRefusedError):
    """A guarded request's host resolved to an address its policy refuses (nothing was sent)."""


class PoolExhausted(TimeoutError):
    """Every connection the pool may open was busy for the whole connect timeout."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    host_header: str
    guarded: bool = False  # connections are opened through netguard and kept apart from unguarded ones

    @property
    def origin(self) -> Origin:
        return (self.scheme, self.host, self.port, self.guarded)


def parse_target(url: str) -> Target:
    """``http(s)://host[:port]/path?query`` -> Target; anything else is a ValueError naming the URL."""
    try:
        parsed = httptools.parse_url(url.encode("ascii"))
    except (httptools.HttpParserInvalidURLError, UnicodeEncodeError):
        raise ValueError(f"not a valid upstream URL: {url!r}") from None
    scheme = (parsed.schema or b"").decode("ascii").lower()
    host = (parsed.host or b"").decode("ascii")
    if scheme not in _DEFAULT_PORTS or not host or parsed.userinfo:
        raise ValueError(f"upstream URLs must be http:// or https:// with a host and no credentials: {url!r}")
    port = parsed.port or _DEFAULT_PORTS[scheme]
    path = (parsed.path or b"/").decode("ascii")
    if parsed.query:
        path = f"{path}?{parsed.query.decode('ascii')}"
    bare_host = host.strip("[]")
    named = f"[{bare_host}]" if ":" in bare_host else bare_host  # IPv6 literals are bracketed in Host headers
    host_header = named if port == _DEFAULT_PORTS[scheme] else f"{named}:{port}"
    return Target(scheme, bare_host, port, path, host_header)


class UpstreamResponse:
    """One answer: ``status`` and ``headers`` (lower-case names) once the head has arrived; the body read whole
    (``read``) or piece by piece as it arrives (``read_chunk``); then ``release`` (the connection goes back to the
    pool if the answer was complete) or ``close`` (it is dropped: the provider stops generating)."""

    __slots__ = ("_chunks", "_conn", "_done", "_error", "_head", "_head_bytes", "_interim", "_keep_alive",
                 "_paused", "_size", "_waiter", "_whole", "headers", "status")

    def __init__(self, conn: _Connection, head: asyncio.Future[None]) -> None:
        self._conn: _Connection | None = conn
        self._head = head
        self._chunks: list[bytes] = []
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._keep_alive = False
        self._paused = False
        self._whole = False  # read() wants everything: never pause reading for it
        self._interim = False  # inside a 1xx answer, which is skipped
        self._head_bytes = 0
        self.status = 0
        self.headers: dict[str, str] = {}

    # --- reading, for the gateway -------------------------------------------------------------------------
    async def read(self) -> bytes:
        """The whole body (the connection is released when it is complete)."""
        self._whole = True
        if self._paused:
            self._resume()
        while not self._done:
            if self._error is not None:
                raise self._error
            await self._wait()
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks = []
        self.release()
        return body

    async def read_chunk(self) -> bytes:
        """What has arrived since the last call (waiting for something if nothing has); b"" at the end. Data that
        arrived before a failure is returned first, then the failure is raised."""
        while not self._chunks:
            if self._done:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._size = 0
        if self._paused:
            self._resume()
        return data

    def release(self) -> None:
        """Done with this answer: a complete one hands its connection back to the pool, anything else closes it."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if self._done and self._keep_alive and self._error is None:
            conn.pool.put_back(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Drop the connection now; a read waiting on it raises UpstreamClosed."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if not self._done:
            self._fail(UpstreamClosed("closed before the answer was complete"))
        conn.close()

    async def _wait(self) -> None:
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume(self) -> None:
        self._paused = False
        conn = self._conn
        if conn is not None and conn.transport is not None:
            conn.transport.resume_reading()

    # --- events, from the connection ----------------------------------------------------------------------
    def _on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise UpstreamProtocolError(f"response headers over {MAX_HEAD_BYTES} bytes")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def _on_head(self, status: int, keep_alive: bool) -> None:
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): wait for the real one
            self._interim = True
            self.headers = {}
            return
        self.status = status
        self._keep_alive = keep_alive
        if not self._head.done():
            self._head.set_result(None)

    def _on_body(self, data: bytes, conn: _Connection) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self._wake()
        if self._size > HIGH_WATER and not self._whole and not self._paused and conn.transport is not None:
            self._paused = True
            conn.transport.pause_reading()

    def _on_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._done = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._done or self._error is not None:
            return
        self._error = exc
        if not self._head.done():
            self._head.set_exception(exc)
        self._wake()

    def _on_eof(self, conn: _Connection, exc: Exception | None) -> None:
        """The connection ended: the end of a close-delimited answer (a clean close), or a failure."""
        if (exc is None and self._head.done() and not self._head.cancelled() and self.status
                and conn.close_delimited):
            self._keep_alive = False
            self._done = True
            self._wake()
        else:
            self._fail(UpstreamClosed("the provider closed the connection before the answer was complete"))


class _Connection(asyncio.Protocol):
    """One pooled connection: feeds received bytes to llhttp, whose callbacks land here."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: UpstreamResponse | None = None
        self.closed = False
        self.idle_since = 0.0
        self.got_bytes = False  # any byte of the current answer arrived
        self.close_delimited = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        resp = self.response
        if resp is None:  # bytes while no request is outstanding: the connection cannot be trusted
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            resp._fail(UpstreamProtocolError("the provider switched protocols"))
            self.close()
        except (httptools.HttpParserError, UpstreamProtocolError) as exc:
            resp._fail(exc if isinstance(exc, UpstreamProtocolError) else UpstreamProtocolError(str(exc)))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        resp = self.response
        if resp is not None:
            self.response = None
            resp._on_eof(self, exc)
        self.pool.forget(self)

    # llhttp callbacks (httptools looks these up by name)
    def on_message_begin(self) -> None:
        if self.response is None:  # a second answer nobody asked for (in the same read): never reuse this one
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            self.response._on_header(name, value)

    def on_headers_complete(self) -> None:
        resp = self.response
        if resp is not None:
            headers = resp.headers
            status = self.parser.get_status_code()
            coding = headers.get("transfer-encoding", "").rsplit(",", 1)[-1].strip().lower()
            self.close_delimited = ("content-length" not in headers and coding != "chunked"
                                    and status not in (204, 304) and status >= 200)
            resp._on_head(status, self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._on_body(body, self)

    def on_message_complete(self) -> None:
        resp = self.response
        if resp is not None:
            resp._on_complete()
            if resp._done:
                self.response = None  # the next bytes belong to the next request

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class UpstreamPool:
    """Keep-alive connections per origin (most recently used first), at most ``limit`` open in all."""

    def __init__(self, *, limit: int, connect_timeout: float, ssl_context: ssl.SSLContext | None = None,
                 user_agent: str = "webrana", keepalive: float = KEEPALIVE_SECONDS) -> None:
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context
        self._keepalive = keepalive
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._targets: dict[str, Target] = {}
        self._fixed = f"User-Agent: {user_agent}\r\nAccept-Encoding: identity\r\n"
        self._closed = False
        self.resolve: netguard.Resolve = netguard.system_resolve  # guarded connections' DNS (tests inject one)

    @property
    def open_connections(self) -> int:
        return len(self._all) + self._opening

    @property
    def in_use(self) -> int:
        """Connections carrying a request now (not idle in the pool)."""
        return len(self._all) - sum(1 for q in self._idle.values() for c in q if not c.closed)

    def target(self, url: str) -> Target:
        found = self._targets.get(url)
        if found is None:
            found = parse_target(url)
            if len(self._targets) < TARGET_CACHE_SIZE:
                self._targets[url] = found
        return found

    def head(self, target: Target, method: str, headers: dict[str, str], body: bytes | None) -> bytes:
        parts = [f"{method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n", self._fixed]
        for name, value in headers.items():
            parts.append(f"{name}: {value}\r\n")
        lines = len(headers) + 5  # request line, Host, the two fixed headers, the blank line
        if body is not None:
            parts.append(f"Content-Length: {len(body)}\r\n")
            lines += 1
        parts.append("\r\n")
        text = "".join(parts)
        # Each part above ends in exactly one CRLF: any other CR or LF came in through a name or value.
        if text.count("\n") != lines or text.count("\r") != lines:
            raise HeaderNotSendable("an upstream request header contains a line break")
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise HeaderNotSendable("an upstream request header has a character outside Latin-1") from None

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None, *,
                      first_byte_timeout: float, guard: netguard.Policy | None = None) -> UpstreamResponse:
        """Send the request and wait for the answer's status and headers (not its body).

        A pooled connection that turns out to be closed before any byte of the answer within RESEND_WINDOW (the
        provider dropped it while idle), or that answers 408 (its idle timeout notice), is retried once on a fresh
        connection."""
        target = self.target(url)
        if guard is not None:
            target = Target(target.scheme, target.host, target.port, target.path, target.host_header, True)
        head = self.head(target, method, headers, body)
        # Small bodies go out with the head in one write; big ones as a second buffer of the same write (no copy).
        payload = (head + body,) if body and len(body) < 65536 else (head, body) if body else (head,)
        conn, reused = await self._acquire(target, url, guard)
        sent = asyncio.get_running_loop().time()
        try:
            resp = await self._exchange(conn, payload, first_byte_timeout)
        except UpstreamClosed:
            # Resent only when it is the keep-alive race: a reused connection the provider closed (while idle)
            # at once, before any byte of an answer. Later than that, the provider may have acted on it.
            if not reused or conn.got_bytes or asyncio.get_running_loop().time() - sent > RESEND_WINDOW:
                raise
        else:
            if not (reused and resp.status == 408):
                return resp
            resp.close()  # a server's "idle too long" notice on the reused connection, not our answer
        conn, _ = await self._acquire(target, url, guard, fresh=True)
        return await self._exchange(conn, payload, first_byte_timeout)

    async def _exchange(self, conn: _Connection, payload: tuple[bytes, ...],
                        first_byte_timeout: float) -> UpstreamResponse:
        loop = asyncio.get_running_loop()
        head: asyncio.Future[None] = loop.create_future()
        resp = UpstreamResponse(conn, head)
        conn.response = resp
        conn.got_bytes = False
        transport = conn.transport
        assert transport is not None
        if len(payload) == 1:
            transport.write(payload[0])
        else:
            transport.writelines(payload)
        timer = loop.call_at(loop.time() + first_byte_timeout, _first_byte_timeout, head, first_byte_timeout)
        try:
            await head
        except BaseException:  # timeout, failure, or our caller cancelled: the connection's state is unknown
            resp.close()
            raise
        finally:
            timer.cancel()
        return resp

    async def _acquire(self, target: Target, url: str, guard: netguard.Policy | None, *,
                       fresh: bool = False) -> tuple[_Connection, bool]:
        origin = target.origin
        deadline: float | None = None  # set when we first have to wait for a free connection
        while True:
            idle = self._idle.get(origin)
            if idle and not fresh:
                now = asyncio.get_running_loop().time()
                while idle:
                    conn = idle.pop()
                    if conn.closed:
                        continue
                    if now - conn.idle_since > self._keepalive or conn.transport is None \
                            or conn.transport.is_closing():
                        conn.close()
                        continue
                    return conn, True
            if self._closed:
                raise UpstreamClosed("the upstream pool is closed")
            if self.open_connections < self._limit:
                return await self._connect(target, url, guard), False
            if self._drop_one_idle():
                continue
            loop = asyncio.get_running_loop()
            deadline = deadline if deadline is not None else loop.time() + self._connect_timeout
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken but are leaving (cancelled, timed out): pass the turn on
                if isinstance(exc, TimeoutError):
                    raise PoolExhausted(f"all {self._limit} upstream connections stayed busy for "
                                        f"{self._connect_timeout:g} s") from None
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def _drop_one_idle(self) -> bool:
        """At the limit with idle connections to other origins: close the oldest of them to make room."""
        for queue in self._idle.values():
            while queue:
                conn = queue.popleft()
                if not conn.closed:
                    conn.close()
                    self._all.discard(conn)  # counted out now; connection_lost follows
                    return True
        return False

    async def _connect(self, target: Target, url: str, guard: netguard.Policy | None) -> _Connection:
        self._opening += 1
        try:
            secure = target.scheme == "https"
            if secure and self._ssl is None:
                self._ssl = await asyncio.to_thread(ssl.create_default_context)  # reads the CA store: not on the loop
            async with asyncio.timeout(self._connect_timeout):
                hosts: tuple[str, ...] = (target.host,)
                if guard is not None:
                    try:
                        checked = await netguard.resolve_target(url, guard, self.resolve)
                    except netguard.AddressRefused as exc:
                        raise AddressNotAllowed(str(exc)) from None
                    hosts = tuple(str(ip) for ip in checked.addresses)
                conn = await self._open(target, hosts, secure)
        finally:
            self._opening -= 1
            self._wake_one()
        self._all.add(conn)
        return conn

    async def _open(self, target: Target, hosts: tuple[str, ...], secure: bool) -> _Connection:
        """A connection to the first of ``hosts`` that answers (one host: the name, resolved by the loop; guarded:
        the checked addresses, with the name kept for TLS)."""
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for host in hosts:
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, target.origin), host, target.port,
                    ssl=self._ssl if secure else None, server_hostname=target.host if secure else None)
                return conn
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    def put_back(self, conn: _Connection) -> None:
        if conn.closed or self._closed:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        queue = self._idle.get(conn.origin)
        if queue is None:
            queue = self._idle[conn.origin] = deque()
        queue.append(conn)
        self._wake_one()

    def forget(self, conn: _Connection) -> None:
        self._all.discard(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        for conn in list(self._all):
            if conn.response is not None:
                conn.response.close()
            conn.close()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(UpstreamClosed("the upstream pool is closed"))
        await asyncio.sleep(0)  # let the transports run connection_lost


def _first_byte_timeout(head: asyncio.Future[None], seconds: float) -> None:
    if not head.done():
        head.set_exception(TimeoutError(f"no answer within {seconds:g} s"))
