"""The native lane: a Claude model on /v1/messages reaches Anthropic as it came (every field, the beta and version
headers, identity encoding) and its answer comes back byte for byte."""

from __future__ import annotations

import re

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes.scenario import FakeState
from tests.fakes.server import FakeServer
from tests.gateway.conftest import PROVIDER_KEYS, Account, wait_rows

Client = TestClient[web.Request, web.Application]
BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"
# What Claude Code sends, with fields Webrana does not know and the client's own spacing and key order.
BODY = (b'{"model": "claude-sonnet-4-5",  "max_tokens":32000, "stream": true,\n'
        b' "system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],'
        b' "messages":[{"role":"user","content":[{"type":"text","text":"satu dua tiga",'
        b'"cache_control":{"type":"ephemeral","ttl":"1h"}}]}],'
        b' "thinking":{"type":"enabled","budget_tokens":31999},'
        b' "context_management":{"edits":[{"type":"clear_tool_uses_20250919"}]},'
        b' "metadata":{"user_id":"user_abc"}, "x_future_field": 1.50}')


def _headers(account: Account) -> dict[str, str]:
    return {"x-api-key": account.proxy_key, "anthropic-version": "2023-06-01", "anthropic-beta": BETAS,
            "Accept-Encoding": "zstd, gzip", "Content-Type": "application/json", "x-stainless-lang": "js"}


async def test_body_and_headers_reach_anthropic_as_they_came(gw: Client, account: Account, fake: FakeState,
                                                             migrated: str) -> None:
    resp = await gw.post("/v1/messages?beta=true", data=BODY, headers=_headers(account))
    assert resp.status == 200, await resp.text()
    await resp.read()
    seen = fake.last
    assert seen.path == "/anthropic/v1/messages"
    assert seen.raw == BODY  # byte for byte: no re-encoding when the model id needs no change
    assert seen.headers["anthropic-beta"] == BETAS and seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["accept-encoding"] == "identity"  # never the client's zstd/gzip
    assert seen.key == PROVIDER_KEYS["anthropic"]
    assert account.proxy_key not in repr(seen.headers) and "x-stainless-lang" not in seen.headers
    rows = await wait_rows(migrated, 1)
    assert (rows[0]["endpoint"], rows[0]["provider"], rows[0]["stream"], rows[0]["tokens_estimated"]) == \
        ("messages", "anthropic", True, False)
    assert seen.usage is not None and rows[0]["completion_tokens"] == seen.usage.completion_tokens


async def test_only_the_model_id_changes(gw: Client, account: Account, fake: FakeState) -> None:
    body = BODY.replace(b'"claude-sonnet-4-5"', b'"anthropic/claude-sonnet-4-5"')
    resp = await gw.post("/v1/messages", data=body, headers=_headers(account))
    assert resp.status == 200, await resp.text()
    await resp.read()
    sent = orjson.loads(fake.last.raw)
    assert sent == {**orjson.loads(body), "model": "claude-sonnet-4-5"}
    assert list(sent) == list(orjson.loads(body))  # same fields in the same order


async def test_stream_bytes_come_back_unchanged(gw: Client, account: Account, fake: FakeState,
                                                fakes: FakeServer) -> None:
    via = await (await gw.post("/v1/messages", data=BODY, headers=_headers(account))).read()
    async with aiohttp.ClientSession() as session, session.post(
            fakes.base_url("anthropic") + "/v1/messages", data=BODY,
            headers={"x-api-key": PROVIDER_KEYS["anthropic"], "anthropic-version": "2023-06-01"}) as direct:
        expected = await direct.read()

    def same_ids(raw: bytes) -> bytes:
        return re.sub(rb"msg_fake\d+", b"msg_X", raw)

    assert b"event: ping" in via  # a translator would have dropped these
    assert same_ids(via) == same_ids(expected)


async def test_non_streamed_answer_bytes_come_back_unchanged(gw: Client, account: Account, fake: FakeState,
                                                             migrated: str) -> None:
    body = BODY.replace(b'"stream": true', b'"stream": false')
    resp = await gw.post("/v1/messages", data=body, headers=_headers(account))
    raw = await resp.read()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
    answer = orjson.loads(raw)
    assert answer["type"] == "message" and answer["usage"]["service_tier"] == "standard"  # a field we never write
    assert raw == orjson.dumps(answer)  # the fake's compact bytes, not re-encoded
    rows = await wait_rows(migrated, 1)
    assert rows[0]["prompt_tokens"] == answer["usage"]["input_tokens"]
