"""What Codex and the Agents SDK send to /v1/responses, beyond the plain function tools: compressed request bodies
and custom (freeform) tools on translated providers."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

try:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]  # Python >= 3.14
except ImportError:
    from backports import zstd  # type: ignore[no-redef,unused-ignore]

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, wait_rows

Client = TestClient[web.Request, web.Application]
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+satu\n*** End Patch\n"
COMPRESS = {"gzip": gzip.compress, "zstd": zstd.compress}


def _headers(account: Account, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.proxy_key}", "Content-Type": "application/json", **extra}


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
@pytest.mark.parametrize(("model", "provider"), [("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic")])
async def test_compressed_request_bodies_are_decoded(encoding: str, model: str, provider: str, gw: Client,
                                                     account: Account, fake: FakeState, migrated: str) -> None:
    body = orjson.dumps({"model": model, "input": "satu dua tiga", "store": False})
    resp = await gw.post("/v1/responses", data=COMPRESS[encoding](body),
                         headers=_headers(account, **{"Content-Encoding": encoding}))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["output"][0]["content"][0]["text"] == \
        "echo: satu dua tiga"
    seen = fake.last
    assert "content-encoding" not in seen.headers  # the provider gets plain JSON
    if provider == "openai":
        assert seen.raw == body  # the native lane: the decoded bytes, as they came
    rows = await wait_rows(migrated, 1)
    assert [(r["endpoint"], r["provider"], r["status"]) for r in rows] == [("responses", provider, 200)]


async def test_a_compressed_body_larger_than_the_limit_once_decoded_is_refused(
        gw: Client, account: Account, fake: FakeState) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "input": "a" * 12_000_000})  # above the 10 MiB default
    resp = await gw.post("/v1/responses", data=zstd.compress(body),
                         headers=_headers(account, **{"Content-Encoding": "zstd"}))
    assert resp.status == 413, await resp.text()
    assert (await resp.json())["error"]["type"] == "invalid_request_error"
    assert fake.requests == []


def _custom_tools() -> list[dict[str, Any]]:
    return [{"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
            {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {
                "cmd": {"type": "string"}}}}]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "fake_name"), [("claude-sonnet-4-5", "anthropic"),
                                                  ("gemini-2.5-flash", "gemini"), ("qwen-plus", "qwen")])
async def test_custom_tools_round_trip_on_translated_providers(stream: bool, model: str, fake_name: str,
                                                               gw: Client, account: Account,
                                                               fake: FakeState) -> None:
    fake.script(scenario.tool_calls(("apply_patch", {"input": PATCH}), provider=fake_name),
                scenario.text("Sudah.", provider=fake_name))
    body: dict[str, Any] = {"model": model, "input": "Tambah a.txt", "tools": _custom_tools(), "store": False,
                            "stream": stream}
    resp = await gw.post("/v1/responses", json=body, headers=_headers(account))
    assert resp.status == 200, await resp.text()
    if stream:
        raw = await resp.read()
        done = [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]
        names = [d["type"] for d in done]
        assert "response.custom_tool_call_input.done" in names
        output = done[-1]["response"]["output"]
    else:
        output = (await resp.json())["output"]
    call = output[0]
    assert {k: call[k] for k in ("type", "name", "input")} == \
        {"type": "custom_tool_call", "name": "apply_patch", "input": PATCH}
    # The provider saw a function of one string; Codex sends the call and its output back as custom items.
    body["input"] = [{"role": "user", "content": "Tambah a.txt"},
                     {"type": "custom_tool_call", "call_id": call["call_id"], "name": "apply_patch",
                      "input": PATCH},
                     {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "Done!"}]
    resp = await gw.post("/v1/responses", json={**body, "stream": False}, headers=_headers(account))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["output"][0]["content"][0]["text"] == "Sudah."
    assert "Done!" in orjson.dumps(fake.last.body).decode() and "apply_patch" in orjson.dumps(fake.last.body).decode()
