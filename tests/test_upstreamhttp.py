"""The gateway's HTTP/1.1 client (``webrana_proxy.upstreamhttp``) against real sockets on loopback: small asyncio
servers that write exact bytes, so every framing (Content-Length, chunked, close-delimited), keep-alive rule,
failure and timeout is the real thing. Each test runs on asyncio's own loop and on uvloop (the gateway's)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webrana_proxy.upstreamhttp import (
    HIGH_WATER,
    HeaderNotSendable,
    PoolExhausted,
    UpstreamClosed,
    UpstreamPool,
    UpstreamProtocolError,
    parse_target,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def pool(**kw: Any) -> UpstreamPool:
    return UpstreamPool(limit=kw.pop("limit", 16), connect_timeout=kw.pop("connect_timeout", 2.0), **kw)


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


class Server:
    """A loopback server running ``handler`` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat?x=1"


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return OK_HEAD + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        _, body = await read_request(reader)
        writer.write(answer(b'{"echo":' + body + b"}"))
        await writer.drain()


def test_urls_are_parsed_once_and_bad_ones_refused() -> None:
    t = parse_target("https://api.openai.com/v1/chat/completions")
    assert (t.scheme, t.host, t.port, t.path, t.host_header) == ("https", "api.openai.com", 443,
                                                                 "/v1/chat/completions", "api.openai.com")
    t = parse_target("http://127.0.0.1:8080/a/b?key=1&alt=sse")
    assert (t.port, t.path, t.host_header) == (8080, "/a/b?key=1&alt=sse", "127.0.0.1:8080")
    t = parse_target("http://[::1]:9000/")
    assert (t.host, t.host_header) == ("::1", "[::1]:9000")
    for bad in ("ftp://example.com/", "http://user:pw@example.com/", "not a url", "http:///path"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_a_line_break_in_a_header_is_refused_not_sent() -> None:
    p = pool()
    target = p.target("http://127.0.0.1:1/v1")
    head = p.head(target, "POST", {"Authorization": "Bearer sk-abc"}, b"{}")
    assert head.startswith(b"POST /v1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n")
    assert b"\r\nAuthorization: Bearer sk-abc\r\nContent-Length: 2\r\n\r\n" in head
    assert b"\r\nAccept-Encoding: identity\r\n" in head  # answers are parsed and relayed as they come
    for evil in ("sk-abc\r\nX-Injected: 1", "sk-abc\nX: 1", "sk-abc\r", "sk-\u043a\u043b\u044e\u0447", "sk-\U0001f511"):
        with pytest.raises(HeaderNotSendable):
            p.head(target, "POST", {"Authorization": evil}, b"{}")


@RUNNERS
def test_answers_are_read_whole_and_the_connection_is_reused(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def main() -> None:
        async with Server(keep_answering) as server:
            p = pool()
            for i in range(3):
                resp = await p.request("POST", server.url, {"Content-Type": "application/json"}, b"%d" % i,
                                       first_byte_timeout=2)
                assert resp.status == 200 and resp.headers["content-type"] == "application/json"
                assert await resp.read() == b'{"echo":%d}' % i
            assert server.connections == 1 and p.open_connections == 1 and p.in_use == 0
            await p.close()

    run(main())


@RUNNERS
def test_chunked_answers_arrive_piece_by_piece(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    second = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-Id: a\r\nx-request-id: b\r\n"
                         b"\r\n5\r\nhello\r\n")
            await writer.drain()
            await second.wait()
            second.clear()
            writer.write(b"6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
            await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            p = pool()
            for _ in range(2):
                resp = await p.request("GET", server.url, {}, None, first_byte_timeout=2)
                assert resp.headers["x-request-id"] == "a, b"
                assert await resp.read_chunk() == b"hello"  # before the server has sent the rest
                second.set()
                rest = b""
                while chunk := await resp.read_chunk():
                    rest += chunk
                assert rest == b" world"
                resp.release()
            assert server.connections == 1
            await p.close()

    run(main())


@RUNNERS
def test_close_delimited_and_connection_close_answers_are_not_reused(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        if b"/close-delimited" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        else:
            writer.write(answer(b"bye", b"Connection: close\r\n"))
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            base = server.url.split("/v1")[0]
            p = pool()
            for path in ("/close-delimited", "/close-delimited", "/conn-close", "/conn-close"):
                resp = await p.request("GET", base + path, {}, None, first_byte_timeout=2)
                assert await resp.read() == (b"until the end" if "delimited" in path else b"bye")
            assert server.connections == 4
            await p.close()

    run(main())


@RUNNERS
def test_bytes_after_an_answer_make_the_connection_unusable(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer(b"one") + answer(b"unasked"))  # a second answer with no request behind it
            await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            p = pool()
            for _ in range(2):
                resp = await p.request("GET", server.url, {}, None, first_byte_timeout=2)
                assert await resp.read() == b"one"
                await asyncio.sleep(0.01)
            assert server.connections == 2  # the unasked answer is never read as the next request's
            await p.close()

    run(main())


@RUNNERS
def test_a_reset_mid_answer_hands_over_what_came_then_fails(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndata\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    async def main() -> None:
        async with Server(handler) as server:
            p = pool()
            resp = await p.request("POST", server.url, {}, b"{}", first_byte_timeout=2)
            assert await resp.read_chunk() == b"data"
            with pytest.raises(UpstreamClosed):
                await resp.read_chunk()
            resp.release()
            resp = await p.request("POST", server.url, {}, b"{}", first_byte_timeout=2)
            with pytest.raises(UpstreamClosed):
                await resp.read()
            assert p.open_connections == 0
            await p.close()

    run(main())


@RUNNERS
def test_garbage_timeouts_and_refusals_are_os_errors(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def main() -> None:
        p = pool()
        async with Server(garbage) as server:
            with pytest.raises(UpstreamProtocolError):
                await p.request("GET", server.url, {}, None, first_byte_timeout=2)
        async with Server(silent) as server:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError):
                await p.request("GET", server.url, {}, None, first_byte_timeout=0.2)
            assert 0.15 < loop.time() - started < 1.5
        probe = await asyncio.start_server(keep_answering, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await p.request("GET", f"http://127.0.0.1:{port}/", {}, None, first_byte_timeout=2)
        assert p.open_connections == 0
        await p.close()

    run(main())


@RUNNERS
def test_interim_answers_are_skipped(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + answer(b"final"))
            await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            p = pool()
            for _ in range(2):
                resp = await p.request("GET", server.url, {}, None, first_byte_timeout=2)
                assert resp.status == 200 and "link" not in resp.headers
                assert await resp.read() == b"final"
            assert server.connections == 1
            await p.close()

    run(main())


@RUNNERS
def test_the_pool_never_opens_more_than_its_limit(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    open_now = [0, 0]  # current, peak

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_now[0] += 1
        open_now[1] = max(open_now[1], open_now[0])
        try:
            while True:
                await read_request(reader)
                await asyncio.sleep(0.02)
                writer.write(answer(b"slow"))
                await writer.drain()
        finally:
            open_now[0] -= 1

    async def main() -> None:
        async with Server(handler) as server:
            p = pool(limit=2)

            async def one() -> bytes:
                resp = await p.request("GET", server.url, {}, None, first_byte_timeout=5)
                return await resp.read()

            assert await asyncio.gather(*(one() for _ in range(12))) == [b"slow"] * 12
            assert open_now[1] == 2 and server.connections == 2
            await p.close()

    run(main())


@RUNNERS
def test_idle_connections_expire_and_closing_wakes_a_reader(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            if b"/stall" in head:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(5)
            writer.write(answer(b"x"))
            await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            p = pool(keepalive=0.05)
            for _ in range(2):
                resp = await p.request("GET", server.url, {}, None, first_byte_timeout=2)
                await resp.read()
                await asyncio.sleep(0.1)  # past the keep-alive: the next request gets a new connection
            assert server.connections == 2
            resp = await p.request("GET", server.url.replace("/v1/chat", "/stall"), {}, None, first_byte_timeout=2)
            reader = asyncio.ensure_future(resp.read_chunk())
            await asyncio.sleep(0.05)
            resp.close()  # what the gateway's idle timer does
            with pytest.raises(UpstreamClosed):
                await asyncio.wait_for(reader, 1)
            await p.close()

    run(main())


@RUNNERS
def test_a_slow_reader_pauses_the_provider(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    total = 48 << 20
    piece = b"z" * 65536
    written = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        while written[0] < total:
            writer.write(piece)
            await writer.drain()
            written[0] += len(piece)

    async def main() -> None:
        async with Server(handler) as server:
            p = pool()
            resp = await p.request("GET", server.url, {}, None, first_byte_timeout=2)
            assert len(await resp.read_chunk()) > 0
            await asyncio.sleep(0.5)  # nobody reads: the socket buffers fill and the server's drain blocks
            assert written[0] < total // 2, f"the provider wrote {written[0]} bytes to a reader that did not read"
            received = 0
            while chunk := await resp.read_chunk():
                received += len(chunk)
                assert len(chunk) <= HIGH_WATER + 4 * 65536 + (1 << 20)
            assert written[0] == total and received > total - (1 << 20)
            await p.close()

    run(main())


def self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context(cafile=str(tmp / "cert.pem"))
    return server, client


@RUNNERS
def test_https_with_certificate_checks(run: Callable[[Coroutine[Any, Any, None]], None], tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed(tmp_path)

    async def main() -> None:
        server = await asyncio.start_server(keep_answering, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            p = pool(ssl_context=client_ctx)
            for _ in range(2):
                resp = await p.request("POST", f"https://localhost:{port}/v1", {}, b"7", first_byte_timeout=2)
                assert await resp.read() == b'{"echo":7}'
            assert p.open_connections == 1
            await p.close()
            untrusting = pool(ssl_context=ssl.create_default_context())  # the system store: our cert is unknown
            with pytest.raises(ssl.SSLError):
                await untrusting.request("POST", f"https://localhost:{port}/v1", {}, b"7", first_byte_timeout=2)
            await untrusting.close()
        finally:
            server.close()

    run(main())


@RUNNERS
def test_a_waiter_cancelled_as_it_is_woken_passes_its_turn_on(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def main() -> None:
        async with Server(keep_answering) as server:
            p = pool(limit=1)
            busy = await p.request("POST", server.url, {}, b"1", first_byte_timeout=2)
            first = asyncio.ensure_future(p.request("POST", server.url, {}, b"2", first_byte_timeout=2))
            second = asyncio.ensure_future(p.request("POST", server.url, {}, b"3", first_byte_timeout=2))
            await asyncio.sleep(0.05)  # both wait for the one connection
            await busy.read()  # releases it: the first waiter is woken...
            first.cancel()  # ...and cancelled before it runs (its client went away)
            resp = await asyncio.wait_for(second, 2)  # the second gets the connection instead of hanging
            assert await resp.read() == b'{"echo":3}'
            assert first.cancelled()
            await p.close()

    run(main())


@RUNNERS
def test_framing_edges_reset_close_delimited_identity_coding(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        if b"/identity" in head:  # not chunked: the body ends when the connection does
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nall of it")
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"partial\": ")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a reset (RST), not a clean close: the answer is cut off, not complete

    async def main() -> None:
        async with Server(handler) as server:
            base = server.url.split("/v1")[0]
            p = pool()
            resp = await p.request("GET", base + "/identity", {}, None, first_byte_timeout=2)
            assert await resp.read() == b"all of it"
            resp = await p.request("GET", base + "/cut", {}, None, first_byte_timeout=2)
            with pytest.raises(UpstreamClosed):
                await resp.read()
            await p.close()

    run(main())


@RUNNERS
def test_a_408_or_a_quick_drop_on_a_reused_connection_is_resent_a_slow_drop_is_not(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    conns: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append("open")
        n = len(conns)
        await read_request(reader)
        writer.write(answer(b"first"))  # every connection answers its first request
        await writer.drain()
        head, _ = await read_request(reader)
        if b"/408" in head and n == 1:
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        elif b"/slow" in head:
            await asyncio.sleep(0.8)  # worked on it a while, then dropped it: may have acted on it
        else:
            writer.write(answer(b"second"))
            await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            base = server.url.split("/v1")[0]
            p = pool()
            assert await (await p.request("GET", base + "/a", {}, None, first_byte_timeout=2)).read() == b"first"
            resp = await p.request("GET", base + "/408", {}, None, first_byte_timeout=2)
            assert resp.status == 200 and await resp.read() == b"first"  # resent on a fresh connection
            assert len(conns) == 2
            with pytest.raises(UpstreamClosed):  # reuses connection 2, which drops it after 0.8 s
                await p.request("GET", base + "/slow", {}, None, first_byte_timeout=5)
            assert len(conns) == 2  # not resent
            await p.close()

    run(main())


@RUNNERS
def test_waiting_for_a_free_connection_is_bounded_by_the_connect_timeout(
        run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    async def main() -> None:
        async with Server(keep_answering) as server:
            p = pool(limit=1, connect_timeout=0.2)
            busy = await p.request("POST", server.url, {}, b"1", first_byte_timeout=2)  # holds the one connection
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(PoolExhausted):
                await p.request("POST", server.url, {}, b"2", first_byte_timeout=2)
            assert 0.15 < loop.time() - started < 1.0
            assert await busy.read() == b'{"echo":1}'
            resp = await p.request("POST", server.url, {}, b"3", first_byte_timeout=2)  # free again: served
            assert await resp.read() == b'{"echo":3}'
            await p.close()

    run(main())
