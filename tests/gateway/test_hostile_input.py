"""Hostile and random input never produces a 5xx, a crash or a traceback."""

from __future__ import annotations

import json

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import Account

JSONS = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)
MODELS = st.sampled_from(["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "qwen-plus", "x", "", "a/b"])
MESSAGES = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "x"]),
                                           "content": JSONS}), max_size=3)
BODIES = st.fixed_dictionaries({"model": MODELS | JSONS, "messages": MESSAGES | JSONS},
                               optional={"stream": st.booleans() | JSONS, "tools": JSONS, "tool_choice": JSONS,
                                         "n": st.integers(-2, 5), "temperature": JSONS, "max_tokens": JSONS,
                                         "stop": JSONS, "stream_options": JSONS})


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text


async def test_generated_chat_bodies_never_5xx(gw: TestClient[web.Request, web.Application],
                                               account: Account) -> None:
    headers = {"Authorization": f"Bearer {account.proxy_key}"}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=BODIES)
    def check(body: dict[str, object]) -> None:
        bodies.append(body)

    bodies: list[dict[str, object]] = []
    check()
    for body in bodies:
        resp = await gw.post("/v1/chat/completions", data=orjson.dumps(body), headers=headers)
        text = await resp.text()
        assert resp.status < 500, (body, resp.status, text)
        _no_traceback(text)


async def test_malformed_payloads_are_rejected_cleanly(gw: TestClient[web.Request, web.Application],
                                                       account: Account) -> None:
    headers = {"Authorization": f"Bearer {account.proxy_key}", "Content-Type": "application/json"}
    deep = b"[" * 5000 + b"]" * 5000
    cases = {
        "invalid utf-8": b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        "deeply nested": b'{"model": "gpt-4o-mini", "messages": ' + deep + b"}",
        # parsed (orjson reads 1,024 levels) but not writable back upstream (it writes 254)
        "nested past re-encoding": b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
                                   b'"metadata": ' + b"[" * 300 + b"]" * 300 + b"}",
        "huge number": b'{"model": "gpt-4o-mini", "max_tokens": 1' + b"0" * 5000 + b', "messages": []}',
        "duplicate keys": b'{"model": "gpt-4o-mini", "model": "claude-sonnet-4-5", "messages": 1}',
        "not an object": b'"just a string"',
        "empty": b"",
        "truncated": b'{"model": "gpt-4o-mini", "messages": [',
    }
    for name, raw in cases.items():
        resp = await gw.post("/v1/chat/completions", data=raw, headers=headers)
        text = await resp.text()
        assert 400 <= resp.status < 500, (name, resp.status, text)
        assert json.loads(text)["error"]["message"], name
        _no_traceback(text)


async def test_oversized_headers_are_rejected(gw: TestClient[web.Request, web.Application]) -> None:
    resp = await gw.get("/health", headers={"X-Big": "a" * 20_000})
    assert resp.status in (400, 413, 431)
