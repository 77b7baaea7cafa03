"""A client that leaves after its row was sealed is recorded as 499, not 200.

With the journal on, a stream's row is sealed (priced, journaled, queued) before the write that ends the answer, and
the call may wait a loop turn for the journal there. A client that leaves in that turn (aiohttp cancels the
handler) or whose last write fails did not get the whole answer: the row waiting in the writer's memory is
corrected. The race itself is a matter of microseconds, so this drives the same functions the relay calls, in that
order, against the real writer and PostgreSQL."""

from __future__ import annotations

import secrets
import time

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.gateway.conftest import Account, wait_rows
from webrana_proxy.gateway.calls import Call, client_gone, seal_early
from webrana_proxy.providers.base import Usage
from webrana_proxy.state import KEYCACHE
from webrana_proxy.tokens import sha256


async def test_a_row_sealed_before_the_client_left_is_written_as_499_and_still_charged(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str) -> None:
    app = gw.server.app
    assert app is not None
    principal = await app[KEYCACHE].resolve(sha256(account.proxy_key))
    assert principal is not None
    call = Call(f"req_{secrets.token_hex(12)}", principal, time.perf_counter(), provider="openai",
                model="gpt-4o-mini", stream=True, status=200, reached_upstream=True)
    call.usage = Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8)
    assert seal_early(app, call)  # the journal is on: sealed before the last bytes, as a stream's relay does
    client_gone(call)  # then the last write failed, or the handler was cancelled while the journal was written
    [row] = await wait_rows(migrated, 1)
    assert (row["request_id"], row["status"], row["error_type"]) == (call.request_id, 499, "client_disconnected")
    assert row["completion_tokens"] == 5 and row["cost_idr_micro"] > 0  # the provider answered: still charged
