"""Sending an answer the way a scripted ``Behaviour`` says: timing, faults, and noticing the client leave.

Every fake builds its answer as bytes (a whole JSON body, or a list of SSE events plus a terminator) and hands
it to an ``Exchange``. The instant path writes everything in one ``write``; paced or faulty answers go event
by event. A client that goes away is recorded on the ``FakeState`` (``state.disconnects``): the server must
run with ``handler_cancellation=True`` (``FakeServer`` and aiohttp's ``TestServer`` do) so a handler that is
sleeping notices at once; a failed write is noticed too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.scenario import Behaviour, FakeState, RecordedRequest

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
JSON_TYPE = "application/json"


class Exchange:
    """One request being answered."""

    __slots__ = ("aborted", "behaviour", "events_sent", "noted", "rec", "request", "state")

    def __init__(
        self, request: web.Request, state: FakeState, rec: RecordedRequest, behaviour: Behaviour
    ) -> None:
        self.request = request
        self.state = state
        self.rec = rec
        self.behaviour = behaviour
        self.events_sent = 0
        self.aborted = False  # we dropped the connection ourselves (a scripted reset)
        self.noted = False  # the client's disconnect is already recorded

    async def run(self, answer: Callable[[Exchange], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Run ``answer`` under the stall-before-first-byte rule, recording a client disconnect."""
        self.state.active += 1
        try:
            if self.behaviour.stall_before_first_byte > 0:
                await asyncio.sleep(self.behaviour.stall_before_first_byte)
            return await answer(self)
        except asyncio.CancelledError:
            self._client_gone()
            raise
        finally:
            self.state.active -= 1

    # ---- whole bodies ----

    async def json(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> web.StreamResponse:
        """A non-streamed answer. Faults: reset/stall cut the body in half; malformed truncates it."""
        fault = self.behaviour.fault
        hdrs = {"Content-Type": JSON_TYPE, **(headers or {})}
        if fault is None or status >= 400:
            self.rec.outcome = "ok" if status < 400 else "error"
            return web.Response(status=status, body=body, headers=hdrs)
        if fault.kind == "malformed":
            self.rec.outcome = "malformed"
            return web.Response(status=status, body=body[: len(body) // 2], headers=hdrs)
        resp = web.StreamResponse(status=status, headers=hdrs)
        resp.content_length = len(body)
        half = len(body) // 2
        return await self._play(resp, [body[:half], body[half:]], b"", b"", cut_at=1)

    # ---- streams ----

    async def stream(
        self,
        events: list[bytes],
        *,
        terminator: bytes = b"",
        inband: bytes = b"",
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> web.StreamResponse:
        hdrs = {**SSE_HEADERS, **(headers or {})}
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        resp = web.StreamResponse(status=200, headers=hdrs)
        b = self.behaviour
        if b.is_instant:
            await resp.prepare(self.request)
            await self._write(resp, b"".join(events) + terminator, len(events))
            await resp.write_eof()
            self.rec.outcome = "ok"
            return resp
        cut = b.fault.after_events if b.fault is not None else -1
        return await self._play(resp, events, terminator, inband, cut_at=cut)

    async def _play(
        self, resp: web.StreamResponse, events: list[bytes], terminator: bytes, inband: bytes, cut_at: int
    ) -> web.StreamResponse:
        """Send events one by one; the fault (if any) strikes before event ``cut_at`` (or before the
        terminator when ``cut_at`` is past the last event)."""
        b = self.behaviour
        await resp.prepare(self.request)
        for i, event in enumerate(events):
            if i == cut_at and await self._strike(resp, inband):
                return resp
            if i and b.chunk_delay > 0:
                await asyncio.sleep(b.chunk_delay)
            await self._write(resp, event, 1)
        if 0 <= len(events) <= cut_at and await self._strike(resp, inband):
            return resp
        if terminator:
            await self._write(resp, terminator, 0)
        await resp.write_eof()
        if self.rec.outcome == "pending":
            self.rec.outcome = "ok"
        return resp

    async def _strike(self, resp: web.StreamResponse, inband: bytes) -> bool:
        """Apply the behaviour's fault; True when the answer ends here."""
        fault = self.behaviour.fault
        if fault is None:
            return False
        if fault.kind == "reset":
            await self._abort()
            return True
        if fault.kind == "stall":
            self.rec.outcome = "stalled"
            await asyncio.sleep(fault.seconds)
            return False
        if fault.kind == "malformed":
            self.rec.outcome = "malformed"
            await self._write(resp, fault.payload, 0)
            if fault.then_continue:
                return False
        else:  # inband_error
            self.rec.outcome = "inband_error"
            await self._write(resp, inband, 0)
        await resp.write_eof()
        return True

    async def _write(self, resp: web.StreamResponse, data: bytes, events: int) -> None:
        try:
            await resp.write(data)
        except ConnectionResetError:
            self._client_gone()
            raise asyncio.CancelledError from None
        self.events_sent += events

    def _client_gone(self) -> None:
        if not (self.aborted or self.noted):
            self.noted = True
            self.state.note_disconnect(self.rec, self.events_sent)

    async def _abort(self) -> None:
        """Drop the TCP connection once what was written has left (no terminator, no chunked end)."""
        self.aborted = True
        self.rec.outcome = "reset"
        transport = self.request.transport
        if transport is None:
            return
        while transport.get_write_buffer_size() > 0 and not transport.is_closing():
            await asyncio.sleep(0.001)
        transport.abort()


def lower_headers(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


async def intake(
    request: web.Request, state: FakeState, provider: str, key: str
) -> tuple[RecordedRequest, Any, bool]:
    """Read and record a request. Returns (record, parsed JSON or None, whether the body parsed)."""
    raw = await request.read()
    body: Any = None
    parsed = True
    if raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = False
    rec = RecordedRequest(
        provider=provider,
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=lower_headers(request) if state.record_requests else {},
        body=body,
        key=key,
        at=time.monotonic(),
        raw=raw if state.record_requests else b"",
    )
    return state.record(rec), body, parsed
