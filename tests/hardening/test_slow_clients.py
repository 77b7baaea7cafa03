"""Slowloris on a real proxy process: clients that dribble a request one byte a second are cut off after a
bounded time, while everyone else keeps being served at full speed.

The knobs these tests assume (recommended; see the hardening report):

- ``WEBRANA_KEEPALIVE_TIMEOUT`` (seconds, default 75): passed to aiohttp as ``keepalive_timeout``
  (``web.AppRunner(..., keepalive_timeout=...)`` or the app's ``handler_args``). aiohttp arms it when a
  connection opens and after every response, and closes the connection if no complete request head has arrived
  by then: it is the header-read deadline as well as the idle keep-alive time. aiohttp's default is 3630 s.
- ``WEBRANA_BODY_TIMEOUT`` (seconds, default 60): the most a client may take to send a request body; reading
  the body (``jsonio.read_body`` / ``read_json``) runs under ``asyncio.timeout`` and answers 408 in the error
  shape (code ``request_timeout``) when it runs out.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.fakes.scenario import FakeState
from tests.processes import ProxyProcess, proxy_process

pytestmark = pytest.mark.slow

TIMEOUT = 2.0  # what the tests configure
SLACK = 2.0  # how much later than TIMEOUT the cut may come
GIVE_UP = 8.0  # a slow client still connected this long means there is no timeout at all
SLOW_CLIENTS = 20


async def served_meanwhile(url: str, stop: asyncio.Event) -> list[float]:
    """Fresh-connection GET /health every 0.1 s until ``stop``; the latency of each."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        while not stop.is_set():
            started = time.monotonic()
            async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                assert resp.status == 200
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.1)
    return latencies


def complete_response(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


async def dribble(proxy: ProxyProcess, head: bytes, data: bytes) -> tuple[float | None, bytes]:
    """Send ``head`` at once, then ``data`` one byte a second; seconds until the server answered or ended the
    connection (None: neither within GIVE_UP) and whatever it answered."""
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    answer = b""

    async def feed() -> None:
        writer.write(head)
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            await writer.drain()
            await asyncio.sleep(1.0)

    feeder = asyncio.create_task(feed())
    try:
        async with asyncio.timeout(GIVE_UP):
            while chunk := await reader.read(65536):
                answer += chunk
                if complete_response(answer):
                    break
        return time.monotonic() - started, answer
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started, answer
    except TimeoutError:
        return None, answer
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        writer.close()


async def test_slow_headers_are_cut_off_and_others_are_served(gateway_env: dict[str, str], clean: None,
                                                              fake: FakeState, tmp_path: Path) -> None:
    env = {**gateway_env, "WEBRANA_KEEPALIVE_TIMEOUT": str(TIMEOUT)}
    async with proxy_process(env, str(tmp_path / "proxy.log")) as proxy:
        stop = asyncio.Event()
        others = asyncio.create_task(served_meanwhile(proxy.url, stop))
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
        results = await asyncio.gather(*(dribble(proxy, b"", head) for _ in range(SLOW_CLIENTS)))
        stop.set()
        latencies = await others
    cut = [t for t, _ in results]
    assert all(t is not None for t in cut), (
        f"{sum(t is None for t in cut)} of {SLOW_CLIENTS} clients sending headers at one byte a second were still "
        f"connected after {GIVE_UP:g} s: the proxy has no header-read timeout (aiohttp keepalive_timeout is "
        "3630 s by default; set it from WEBRANA_KEEPALIVE_TIMEOUT)")
    assert max(t for t in cut if t is not None) < TIMEOUT + SLACK, cut
    assert all(b"200 OK" not in answer for _, answer in results)
    # Not stuck behind the slow clients: a blocked server would keep every probe waiting at least TIMEOUT.
    assert len(latencies) >= 10 and max(latencies) < TIMEOUT, latencies


async def test_slow_body_is_cut_off(gateway_env: dict[str, str], clean: None, fake: FakeState,
                                    tmp_path: Path) -> None:
    env = {**gateway_env, "WEBRANA_KEEPALIVE_TIMEOUT": str(TIMEOUT), "WEBRANA_BODY_TIMEOUT": str(TIMEOUT)}
    async with proxy_process(env, str(tmp_path / "proxy.log")) as proxy:
        stop = asyncio.Event()
        others = asyncio.create_task(served_meanwhile(proxy.url, stop))
        body = orjson.dumps({"email": "slow@example.com", "password": "x" * 200})
        head = (b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        took, answer = await dribble(proxy, head, body)
        stop.set()
        latencies = await others
    assert took is not None, (
        f"a client sending its body at one byte a second was still connected after {GIVE_UP:g} s: reading a "
        "request body has no deadline (WEBRANA_BODY_TIMEOUT)")
    assert took < TIMEOUT + SLACK, took
    if answer:  # a clean answer is better than a bare close: then it is 408 in the error shape
        status_line, _, rest = answer.partition(b"\r\n")
        assert b" 408 " in status_line, answer[:300]
        assert orjson.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    assert len(latencies) >= 5 and max(latencies) < 1.0, latencies
