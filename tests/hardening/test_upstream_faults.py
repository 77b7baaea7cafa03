"""Upstream failures end cleanly: the client gets a clear OpenAI-shaped error (before the answer starts) or an
in-band error event (after), the call leaves one usage row, and nothing leaks: the gateway's upstream connector
holds no acquired connection afterwards and no task outlives the call. Includes connection refused and a 10 MB
answer (JSON and streamed, relayed byte for byte); the other faults are asserted in detail in
tests/gateway/test_errors_and_faults.py, here they are swept for leaks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from tests.fakes import scenario
from tests.fakes.midtrans import FakeMidtrans
from tests.fakes.scenario import FakeState, large_text
from tests.gateway.conftest import Account, wait_rows
from tests.hardening.conftest import error_shape_problems, leftover_tasks, task_baseline
from webrana_proxy.state import UPSTREAM

TEN_MB = 10 << 20
WORDS = "satu dua tiga empat lima enam tujuh delapan sembilan sepuluh"


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but never listening: connecting to it is refused (and nobody else can take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def env_overrides(fake_midtrans: FakeMidtrans, refused_port: int) -> dict[str, str]:
    return {"MIDTRANS_SNAP_BASE_URL": fake_midtrans.snap_base_url,
            "MIDTRANS_API_BASE_URL": fake_midtrans.api_base_url,
            "QWEN_BASE_URL": f"http://127.0.0.1:{refused_port}/compatible-mode/v1",
            "WEBRANA_FIRST_BYTE_TIMEOUT": "3"}


@dataclass(frozen=True)
class Fault:
    model: str
    stream: bool
    behaviour: scenario.Behaviour | None
    status: int  # HTTP status the client sees
    error_code: str | None  # error.code in the answer (or in-band), None: a success
    row_error: str | None  # error_type on the usage row


FAULTS = {
    "connection refused": Fault("qwen-plus", False, None, 502, "upstream_unreachable", "upstream_unreachable"),
    "connection refused, streamed": Fault("qwen-plus", True, None, 502, "upstream_unreachable",
                                          "upstream_unreachable"),
    "5xx": Fault("gpt-4o-mini", False, scenario.http_error(500), 500, "*", "*"),
    "stall before the first byte": Fault("gpt-4o-mini", True, scenario.stall_first_byte(10), 504, "*",
                                         "upstream_timeout"),
    "reset mid-stream": Fault("gpt-4o-mini", True, scenario.reset_mid_stream(3), 200, "upstream_reset",
                              "upstream_reset"),
    "stall mid-stream": Fault("gpt-4o-mini", True, scenario.stall_mid_stream(3, 10), 200,
                              "upstream_idle_timeout", "upstream_idle_timeout"),
    "malformed SSE": Fault("gpt-4o-mini", True, scenario.malformed_sse(3), 200, "*", "*"),
    "10 MB answer": Fault("gpt-4o-mini", False, scenario.large_answer(TEN_MB), 200, None, None),
    "10 MB answer, streamed": Fault("gpt-4o-mini", True, scenario.large_answer(TEN_MB), 200, None, None),
}


def sse_events(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for block in raw.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                payload = line[6:]
                out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out


def acquired(client: TestClient[web.Request, web.Application]) -> int:
    return client.app[UPSTREAM].in_use


async def chat(url: str, key: str, model: str, stream: bool) -> tuple[int, CIMultiDict[str], bytes]:
    """One call on a connection of its own that closes afterwards (no idle keep-alive handler lingers)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": WORDS}]}
        if stream:
            body["stream_options"] = {"include_usage": True}
        async with session.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.read()


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_gives_a_clear_error_a_row_and_leaks_nothing(
        name: str, gw: TestClient[web.Request, web.Application], account: Account, fake: FakeState,
        migrated: str) -> None:
    fault = FAULTS[name]
    url = str(gw.make_url("/v1/chat/completions"))
    status, _, _ = await chat(url, account.proxy_key, "gpt-4o-mini", False)  # warm: one pooled upstream conn
    assert status == 200
    await wait_rows(migrated, 1)
    baseline = await task_baseline()
    if fault.behaviour is not None:
        fake.script(fault.behaviour)

    status, headers, raw = await chat(url, account.proxy_key, fault.model, fault.stream)

    assert status == fault.status, raw[:500]
    error: dict[str, Any] | None = None
    if status >= 400:
        assert not error_shape_problems(status, headers.get("Content-Type", ""), raw), raw[:500]
        error = orjson.loads(raw)["error"]
    elif fault.stream:
        events = sse_events(raw)
        errors = [e["error"] for e in events if isinstance(e, dict) and "error" in e]
        if fault.error_code is None:
            assert not errors and events[-1] == "[DONE]", events[-3:]
            text = "".join(c["delta"].get("content") or "" for e in events if isinstance(e, dict)
                           for c in e.get("choices", []))
            assert text == large_text(TEN_MB)
        else:
            assert len(errors) == 1, events[-3:]
            error = errors[0]
    else:
        assert orjson.loads(raw)["choices"][0]["message"]["content"] == large_text(TEN_MB)
    if fault.error_code is not None:
        assert error is not None and isinstance(error.get("message"), str) and error["message"], error
        if fault.error_code != "*":
            assert error.get("code") == fault.error_code, error

    rows = [r for r in await wait_rows(migrated, 2) if r["request_id"] == headers["x-request-id"]]
    assert len(rows) == 1, "exactly one usage row for the call"
    row = rows[0]
    assert row["status"] == fault.status and row["model"] == fault.model
    if fault.row_error == "*":
        assert row["error_type"]
    else:
        assert row["error_type"] == fault.row_error
    if fault.error_code is None:  # exact usage as the provider reported it, not an estimate
        assert row["tokens_estimated"] is False
        assert row["completion_tokens"] == fake.last.usage.completion_tokens  # type: ignore[union-attr]

    for _ in range(40):  # the handler's last lines run just after the client has its last byte
        if acquired(gw) == 0:
            break
        await asyncio.sleep(0.05)
    assert acquired(gw) == 0, "an upstream connection is still acquired after the call"
    leaked = await leftover_tasks(baseline)
    assert not leaked, f"tasks outlived the call: {leaked}"
