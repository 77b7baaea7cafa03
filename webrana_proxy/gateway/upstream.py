"""Calling a provider: try the user's keys in turn, failing over on 429, 5xx or a connection error while
nothing has reached the client yet; then relay the answer (JSON, or a stream event by event)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from math import ceil

import orjson
from aiohttp import web

from webrana_proxy.errors import BadRequest, UpstreamError, UpstreamTimeout
from webrana_proxy.gateway.calls import Call, client_gone, seal_call
from webrana_proxy.keycache import ProviderKey
from webrana_proxy.middleware import RESPONSE_STARTED
from webrana_proxy.providers.base import JSON, ChatResult, Provider, StreamTranslator, UpstreamRequest
from webrana_proxy.providers.chunks import error_json, sse
from webrana_proxy.settings import Settings
from webrana_proxy.state import METRICS, USAGE
from webrana_proxy.upstreamhttp import (
    AddressNotAllowed,
    HeaderNotSendable,
    PoolExhausted,
    UpstreamPool,
    UpstreamResponse,
)
from webrana_proxy.usage import NO_WAIT

ENCODE_DEPTH_LIMIT = 254  # orjson writes at most this many levels of nesting (it parses up to 1,024)
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _upstream_id(resp: UpstreamResponse) -> str | None:
    return resp.headers.get("x-request-id") or resp.headers.get("request-id")


async def open_upstream(pool: UpstreamPool, settings: Settings, provider: Provider, keys: tuple[ProviderKey, ...],
                        build: Callable[[str], UpstreamRequest], call: Call) -> UpstreamResponse:
    """The first successful upstream response (status < 400), headers read, body not yet. Keys whose circuit
    breaker is open are skipped (``circuit_open`` when none is left); each request sent is an attempt."""
    last: UpstreamError | None = None
    board = call.breakers
    tripped = board.tripped if board is not None else None
    timeout = call.first_byte_timeout or settings.first_byte_timeout
    for key in keys:
        if tripped and key.id in tripped and board is not None and not board.allows(key.id):
            if last is None:
                last = _circuit_open(provider, board.retry_after(key.id))
            continue
        req = _build(build, key.key)
        reached_before, call.reached_upstream = call.reached_upstream, True
        call.attempts += 1
        call.key_id = key.id
        started = time.perf_counter()
        try:
            # A pooled connection the provider dropped while idle is retried once on a fresh one by the pool.
            resp = await pool.request(req.method, req.url, req.headers, req.body, first_byte_timeout=timeout,
                                      guard=req.guard)
        except PoolExhausted:
            raise UpstreamError(f"the gateway is at its limit of open connections to {provider.display_name}; "
                                "retry shortly", status=503, code="upstream_busy") from None
        except HeaderNotSendable:  # a key stored before keys were checked to be printable ASCII; nothing was sent
            call.reached_upstream = reached_before
            call.attempts -= 1
            last = UpstreamError(f"the stored {provider.display_name} key {key.id} has characters an API key cannot "
                                 "have; delete it and add it again in the Webrana console under Provider keys",
                                 status=400, code="provider_key_invalid", retryable=True,
                                 error_type="invalid_request_error")
            continue
        except AddressNotAllowed as exc:  # an admin's upstream whose host now resolves somewhere refused
            last = UpstreamError(f"{provider.display_name} may not be called: {exc}", status=502,
                                 code="upstream_address_refused")
            attempt_failed(call, last, time.perf_counter() - started, provider.id)
            break
        except TimeoutError:  # before OSError: TimeoutError is one
            last = UpstreamTimeout(f"{provider.display_name} did not answer within {timeout:g} s")
            attempt_failed(call, last, time.perf_counter() - started, provider.id)
            continue
        except OSError as exc:  # refused, DNS, TLS, reset, not HTTP
            last = UpstreamError(f"could not reach {provider.display_name}: {type(exc).__name__}", status=502,
                                 code="upstream_unreachable", retryable=True)
            attempt_failed(call, last, time.perf_counter() - started, provider.id)
            continue
        finally:
            call.upstream_seconds += time.perf_counter() - started
        call.upstream_id = _upstream_id(resp)
        if resp.status < 400:
            if board is not None:
                board.success(key.id)
            return resp
        watch = IdleWatch(resp, settings.idle_timeout)
        try:
            raw = await resp.read()
        except OSError:
            raw = b""
        finally:
            watch.cancel()
            resp.release()
        last = provider.upstream_error(resp.status, raw, resp.headers)
        attempt_failed(call, last, time.perf_counter() - started, provider.id)
        if not last.retryable:
            break
    assert last is not None, "a provider with no keys is refused before calling upstream"
    try:
        raise last
    finally:
        last = None  # no exception -> traceback -> this frame -> exception cycle holding the request body


def _circuit_open(provider: Provider, retry_after: float) -> UpstreamError:
    return UpstreamError(f"{provider.display_name} failed repeatedly with this account's key(s); Webrana skips it "
                         f"for {max(1, ceil(retry_after))} s, then tries again", status=503, code="circuit_open",
                         headers={"Retry-After": str(max(1, ceil(retry_after)))}, retryable=True)


def attempt_failed(call: Call, err: UpstreamError, seconds: float, provider_id: str) -> None:
    """The attempt under way failed: its usage row, and its key's breaker (429, 5xx, unreachable, timeouts, and
    rejected keys)."""
    call.fail_attempt(err.status, err.code or err.type, seconds, call.upstream_id)
    board, key_id = call.breakers, call.key_id
    if board is not None and key_id is not None and (err.retryable or err.status in (401, 403)):
        board.failure(key_id, provider_id)


def _build(build: Callable[[str], UpstreamRequest], key: str) -> UpstreamRequest:
    """The provider's request; the client's 400 when its body cannot be written back as JSON. The one place every
    provider's re-encoding passes through, so no second walk of the body is needed to guard it."""
    try:
        return build(key)
    except orjson.JSONEncodeError:
        # The only thing orjson parses but cannot write: nesting past 254 levels (it reads up to 1,024).
        raise BadRequest(f"request body is nested too deeply to forward (at most {ENCODE_DEPTH_LIMIT} levels)",
                         code="invalid_json") from None


class IdleWatch:
    """One timer per upstream answer instead of a timeout context per read: each read only stamps the time;
    the timer closes the upstream response when nothing arrived for ``idle`` seconds, which wakes the read."""

    __slots__ = ("_handle", "_idle", "_loop", "_resp", "fired", "last")

    def __init__(self, resp: UpstreamResponse, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = idle
        self._resp = resp
        self.fired = False
        self.last = self._loop.time()
        self._handle = self._loop.call_at(self.last + idle, self._check)

    def _check(self) -> None:
        due = self.last + self._idle
        if self._loop.time() >= due:
            self.fired = True
            self._resp.close()
        else:
            self._handle = self._loop.call_at(due, self._check)

    def touch(self) -> None:
        self.last = self._loop.time()

    def cancel(self) -> None:
        self._handle.cancel()


async def relay_json(resp: UpstreamResponse, call: Call, settings: Settings,
                     parse: Callable[[bytes], ChatResult], headers: dict[str, str]) -> web.Response:
    started = time.perf_counter()
    watch = IdleWatch(resp, settings.idle_timeout)
    try:
        raw = await resp.read()
    except (OSError, asyncio.CancelledError) as exc:
        resp.close()
        if watch.fired:
            raise UpstreamTimeout(f"the provider stopped sending for {settings.idle_timeout:g} s") from None
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise UpstreamError(f"the provider connection failed mid-answer: {type(exc).__name__}", status=502,
                            code="upstream_reset", retryable=True) from None
    finally:
        watch.cancel()
        call.upstream_seconds += time.perf_counter() - started
    resp.release()
    result = parse(raw)
    call.usage = result.usage
    call.usage_estimated = result.usage_estimated
    call.upstream_id = result.upstream_id or call.upstream_id
    call.status = 200
    headers["x-webrana-provider"] = call.provider
    headers["x-webrana-model"] = call.model
    headers["x-webrana-attempts"] = str(call.attempts)
    return web.Response(body=result.body, content_type="application/json", headers=headers)


async def relay_stream(request: web.Request, resp: UpstreamResponse, call: Call, settings: Settings,
                       translator: StreamTranslator, headers: dict[str, str],
                       inband: Callable[[JSON], bytes] = sse,
                       last: Callable[[], Awaitable[bytes]] | None = None) -> web.StreamResponse:
    """``inband`` writes the relay's own errors (idle timeout, broken upstream) in the client's dialect; ``last``
    is awaited after a clean end and its bytes end the stream (the Responses lane stores the answer there).

    When an alias hop follows (``call.fallback``), nothing goes to the client before the answer's first bytes:
    a stream that breaks, stalls or reports an error before then raises a retryable ``UpstreamError`` instead,
    and the next hop answers. Once a byte went out, errors are in-band as always.

    With the usage journal on, the call's row is sealed before the write that ends the stream (the final event,
    an in-band error, or the end of the body), so it is on disk before the client has the whole answer."""
    out = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers, **call.served_headers()})
    hold = call.fallback
    if not hold:
        request[RESPONSE_STARTED] = True
    call.status = 200
    idle = settings.idle_timeout
    clean_end = False
    watch = IdleWatch(resp, idle)
    perf = time.perf_counter
    open_streams = request.app[METRICS].open_streams
    app = request.app
    journaled = app[USAGE].journaled

    def take_usage() -> None:
        call.usage = translator.usage
        call.completion_chars = translator.completion_chars
        call.upstream_id = translator.upstream_id or call.upstream_id

    def seal() -> Awaitable[None]:  # before the write that ends the stream: the row is in the journal first
        if journaled and call.sealed is None:
            take_usage()
            seal_call(app, call)
            return app[USAGE].durable()
        return NO_WAIT

    open_streams.inc()
    try:
        if not hold:
            await out.prepare(request)  # inside the try: a client gone before the headers is a 499 too
        while True:
            waited = perf()
            try:
                data = await resp.read_chunk()
            except OSError as exc:
                data = None
                broken = exc
            finally:
                call.upstream_seconds += perf() - waited
            if watch.fired:
                if hold:
                    raise _early(f"the provider sent nothing for {idle:g} s", "upstream_idle_timeout")
                call.error_type = "upstream_idle_timeout"
                await seal()
                await out.write(inband(error_json(f"the provider sent nothing for {idle:g} s; stream ended",
                                               "timeout", "upstream_idle_timeout")))
                break
            if data is None:
                if hold:
                    raise _early(f"the provider connection broke: {type(broken).__name__}", "upstream_reset")
                call.error_type = "upstream_reset"
                await seal()
                await out.write(inband(error_json(f"the provider connection broke mid-stream: {type(broken).__name__}",
                                               "api_error", "upstream_reset")))
                break
            watch.touch()
            if call.ttfb is None:
                call.ttfb = perf() - call.started
            if not data:
                tail = translator.finish()
                if hold:
                    if translator.error is not None or not translator.done:
                        raise _early("the provider's stream ended before any answer", _stream_error(translator))
                    hold = False
                    request[RESPONSE_STARTED] = True
                    await out.prepare(request)
                if translator.error is not None and call.error_type is None:
                    call.error_type = _stream_error(translator)
                await seal()
                if tail:
                    await out.write(b"".join(tail))
                clean_end = translator.done
                break
            chunks = translator.feed(data)
            if hold:
                if translator.error is not None:
                    raise _early("the provider's stream failed before any answer", _stream_error(translator))
                if not chunks:
                    continue
                hold = False
                request[RESPONSE_STARTED] = True
                await out.prepare(request)
            if translator.done or translator.error is not None:  # these chunks end the stream
                if translator.error is not None:
                    call.error_type = _stream_error(translator)
                await seal()
            if chunks:
                await out.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            if translator.error is not None:
                break
        if clean_end and last is not None:
            await out.write(await last())
        await seal()
        await out.write_eof()
    except ConnectionResetError:
        client_gone(call)
    finally:
        open_streams.dec()
        watch.cancel()
        if clean_end:
            resp.release()
        else:
            resp.close()  # stop the provider generating tokens for nobody
        if call.sealed is None:
            take_usage()
    return out


def _stream_error(translator: StreamTranslator) -> str:
    error = translator.error
    return str(error.get("error", {}).get("code") or "upstream_stream_error") if error else "upstream_stream_error"


def _early(message: str, code: str) -> UpstreamError:
    """A stream that failed before a byte reached the client: the alias's next hop may answer instead."""
    return UpstreamError(message, status=502, code=code, retryable=True)
