"""JSON nested past what can be re-encoded (orjson parses 1,024 levels but writes only 254) is a 400 in the
route's error shape on every route, never a 500 and never a traceback in the log."""

from __future__ import annotations

import logging

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.gateway.conftest import MODELS, Account, wait_rows

DEPTHS = (255, 256, 300, 1024, 10_000)  # total nesting of the whole body, outer object included


def chain(levels: int) -> bytes:
    """A JSON object ``levels`` deep: {"a":{"a":...{}}}. Built as bytes: orjson could not write it."""
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def chat_body(model: str, depth: int, *, stream: bool) -> bytes:
    """A valid chat request whose tool's ``parameters`` make the whole body ``depth`` levels deep: a place
    every provider forwards (OpenAI as is, Anthropic as ``input_schema``, Gemini as ``parametersJsonSchema``)."""
    # body (1) > tools (2) > tool (3) > function (4) > parameters (5...)
    return (b'{"model":' + orjson.dumps(model) + b',"stream":' + orjson.dumps(stream)
            + b',"messages":[{"role":"user","content":"hi"}],'
            + b'"tools":[{"type":"function","function":{"name":"f","parameters":' + chain(depth - 4) + b"}}]}")


def tool_call_body(model: str, depth: int) -> bytes:
    """A deep tool-call ``arguments`` *string*: parsed only by the translating providers, so no depth check at
    parse time of the outer body could see it."""
    arguments = orjson.dumps(chain(depth).decode())
    return (b'{"model":' + orjson.dumps(model) + b',"messages":[{"role":"user","content":"hi"},'
            + b'{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f",'
            + b'"arguments":' + arguments + b"}}]},"
            + b'{"role":"tool","tool_call_id":"c1","content":"ok"}]}')


def embeddings_body(model: str, depth: int) -> bytes:
    # body (1) > input (2...): nested token-id lists
    return b'{"model":' + orjson.dumps(model) + b',"input":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def assert_clean_400(status: int, raw: bytes, what: str) -> None:
    assert status == 400, (what, status, raw[:300])
    error = orjson.loads(raw)["error"]
    assert error["type"] == "invalid_request_error" and error["message"], (what, error)
    assert b"Traceback" not in raw and b'File "' not in raw, what


def assert_no_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


@pytest.mark.parametrize("depth", DEPTHS)
async def test_deep_chat_bodies_are_400_for_every_provider_streamed_or_not(
        gw: TestClient[web.Request, web.Application], account: Account, depth: int,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    headers = {"Authorization": f"Bearer {account.proxy_key}", "Content-Type": "application/json"}
    for provider in ("openai", "anthropic", "google", "qwen"):
        for stream in (False, True):
            resp = await gw.post("/v1/chat/completions", data=chat_body(MODELS[provider], depth, stream=stream),
                                 headers=headers)
            raw = await resp.read()
            if depth == 255 and provider == "anthropic" and resp.status == 200:
                continue  # translated, the schema sits one level higher (tools[].input_schema) and fits
            assert_clean_400(resp.status, raw, f"{provider} stream={stream} depth={depth}")
    assert_no_traceback_logged(caplog)


@pytest.mark.parametrize("depth", DEPTHS)
async def test_deep_tool_call_arguments_are_400_on_translating_providers(
        gw: TestClient[web.Request, web.Application], account: Account, depth: int,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    headers = {"Authorization": f"Bearer {account.proxy_key}", "Content-Type": "application/json"}
    for provider in ("anthropic", "google"):
        resp = await gw.post("/v1/chat/completions", data=tool_call_body(MODELS[provider], depth), headers=headers)
        assert_clean_400(resp.status, await resp.read(), f"{provider} arguments depth={depth}")
    assert_no_traceback_logged(caplog)


@pytest.mark.parametrize("depth", DEPTHS)
async def test_deep_embeddings_bodies_are_400(gw: TestClient[web.Request, web.Application], account: Account,
                                              depth: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    headers = {"Authorization": f"Bearer {account.proxy_key}", "Content-Type": "application/json"}
    for model in ("text-embedding-3-small", "text-embedding-v3", "text-embedding-004"):
        resp = await gw.post("/v1/embeddings", data=embeddings_body(model, depth), headers=headers)
        assert_clean_400(resp.status, await resp.read(), f"{model} depth={depth}")
    assert_no_traceback_logged(caplog)


@pytest.mark.parametrize("depth", DEPTHS)
async def test_deep_bodies_on_api_routes_are_400(gw: TestClient[web.Request, web.Application], account: Account,
                                                 depth: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    deep = chain(depth - 1)  # under the body's own object
    signed_in = {**account.headers, "Content-Type": "application/json"}
    anonymous = {"Content-Type": "application/json"}
    cases = [
        ("/api/auth/register", anonymous, b'{"email":"deep@example.co.id","password":"long enough pw","x":'),
        ("/api/auth/login", anonymous, b'{"email":"deep@example.co.id","password":'),
        ("/api/provider-keys", signed_in, b'{"provider":"openai","name":"n","key":"sk-0123456789abcdefghij","x":'),
        ("/api/proxy-keys", signed_in, b'{"name":'),
        ("/api/billing/subscribe", signed_in, b'{"plan":'),
        ("/api/billing/midtrans/notification", anonymous, b'{"order_id":'),
    ]
    for path, headers, head in cases:
        resp = await gw.post(path, data=head + deep + b"}", headers=headers)
        raw = await resp.read()
        assert resp.status < 500, (path, depth, resp.status, raw[:300])
        if path != "/api/billing/midtrans/notification":  # a webhook answers what Midtrans expects
            assert_clean_400(resp.status, raw, f"{path} depth={depth}")
    assert_no_traceback_logged(caplog)


async def test_a_body_refused_before_sending_is_not_charged(gw: TestClient[web.Request, web.Application],
                                                            account: Account, migrated: str) -> None:
    headers = {"Authorization": f"Bearer {account.proxy_key}", "Content-Type": "application/json"}
    resp = await gw.post("/v1/chat/completions", data=chat_body(MODELS["openai"], 300, stream=False),
                         headers=headers)
    assert resp.status == 400
    # the same for any body the provider's translator refuses (Anthropic has no n > 1)
    resp = await gw.post("/v1/chat/completions", headers=headers, json={
        "model": MODELS["anthropic"], "n": 2, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status == 400
    rows = await wait_rows(migrated, 2)
    assert sorted((r["status"], r["error_type"], r["total_tokens"], r["cost_idr"]) for r in rows) == \
        [(400, "invalid_json", 0, 0), (400, "invalid_request", 0, 0)]
