"""The native lane: an OpenAI model on /v1/responses reaches OpenAI as it came (every field, identity encoding,
none of the client's headers) and its answer comes back byte for byte; the key that created a stored response
is the one that reads, deletes and continues it."""

from __future__ import annotations

import re

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.fakes.server import FakeServer
from tests.gateway.conftest import PROVIDER_KEYS, Account, make_account, sdk, wait_rows

Client = TestClient[web.Request, web.Application]
# What Codex sends, with fields Webrana does not know, the client's own spacing and key order.
BODY = (b'{"model": "gpt-4o-mini",  "stream": true, "store": false,\n'
        b' "instructions":"You are Codex.","input":[{"type":"message","role":"developer","content":'
        b'[{"type":"input_text","text":"sandbox: read-only"}]},{"type":"message","role":"user","content":'
        b'[{"type":"input_text","text":"satu dua tiga"}]}],'
        b' "tools":[{"type":"function","name":"exec_command","parameters":{"type":"object"},"strict":false},'
        b'{"type":"web_search"},{"type":"namespace","name":"mcp","description":"x","tools":[]}],'
        b' "tool_choice":"auto","parallel_tool_calls":true,"reasoning":{"summary":"auto"},'
        b' "include":["reasoning.encrypted_content"],"prompt_cache_key":"abc","client_metadata":{"x":1},'
        b' "x_future_field": 1.50}')


def _headers(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.proxy_key}", "Accept-Encoding": "zstd,gzip",
            "Content-Type": "application/json", "originator": "codex_exec", "session_id": "s1",
            "x-stainless-lang": "js"}


async def test_body_reaches_openai_as_it_came(gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    resp = await gw.post("/v1/responses", data=BODY, headers=_headers(account))
    assert resp.status == 200, await resp.text()
    await resp.read()
    seen = fake.last
    assert seen.path == "/openai/v1/responses"
    assert seen.raw == BODY  # byte for byte: no re-encoding when the model id needs no change
    assert seen.headers["accept-encoding"] == "identity"  # never the client's zstd/gzip
    assert seen.key == PROVIDER_KEYS["openai"]
    assert account.proxy_key not in repr(seen.headers)
    assert not {"originator", "session_id", "x-stainless-lang"} & set(seen.headers)
    rows = await wait_rows(migrated, 1)
    assert (rows[0]["endpoint"], rows[0]["provider"], rows[0]["stream"], rows[0]["tokens_estimated"]) == \
        ("responses", "openai", True, False)
    assert seen.usage is not None
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (seen.usage.prompt_tokens,
                                                                        seen.usage.completion_tokens)


async def test_only_the_model_id_changes(gw: Client, account: Account, fake: FakeState) -> None:
    body = BODY.replace(b'"gpt-4o-mini"', b'"openai/gpt-4o-mini"')
    resp = await gw.post("/v1/responses", data=body, headers=_headers(account))
    assert resp.status == 200, await resp.text()
    await resp.read()
    sent = orjson.loads(fake.last.raw)
    assert sent == {**orjson.loads(body), "model": "gpt-4o-mini"}
    assert list(sent) == list(orjson.loads(body))  # same fields in the same order


def _same_ids(raw: bytes) -> bytes:
    return re.sub(rb"(resp|msg|fc)_[0-9a-f]{40,}", rb"\1_X", re.sub(rb'"created_at":\d+', b'"created_at":0', raw))


async def test_stream_bytes_come_back_unchanged(gw: Client, account: Account, fake: FakeState,
                                                fakes: FakeServer) -> None:
    via = await (await gw.post("/v1/responses", data=BODY, headers=_headers(account))).read()
    async with aiohttp.ClientSession() as session, session.post(
            fakes.base_url("openai") + "/responses", data=BODY,
            headers={"Authorization": f"Bearer {PROVIDER_KEYS['openai']}"}) as direct:
        expected = await direct.read()
    assert b"event: response.output_text.delta" in via and b"[DONE]" not in via
    assert _same_ids(via) == _same_ids(expected)


async def test_large_final_event_usage_is_read(gw: Client, account: Account, fake: FakeState,
                                               migrated: str) -> None:
    fake.script(scenario.large_answer(300_000))
    resp = await gw.post("/v1/responses", data=BODY, headers=_headers(account))
    raw = await resp.read()
    assert raw.count(b"event: response.completed") == 1 and len(raw) > 600_000  # deltas, then the whole text again
    rows = await wait_rows(migrated, 1)
    assert fake.last.usage is not None and not rows[0]["tokens_estimated"]
    assert rows[0]["completion_tokens"] == fake.last.usage.completion_tokens


async def test_non_streamed_answer_bytes_come_back_unchanged(gw: Client, account: Account, fake: FakeState,
                                                             migrated: str) -> None:
    body = BODY.replace(b'"stream": true', b'"stream": false')
    resp = await gw.post("/v1/responses", data=body, headers=_headers(account))
    raw = await resp.read()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
    answer = orjson.loads(raw)
    assert answer["object"] == "response" and answer["service_tier"] == "default"  # a field we never write
    assert raw == orjson.dumps(answer, option=orjson.OPT_INDENT_2)  # OpenAI's pretty-printed bytes, as they came
    rows = await wait_rows(migrated, 1)
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == \
        (answer["usage"]["input_tokens"], answer["usage"]["output_tokens"])


async def test_stored_responses_use_the_key_that_made_them(gw: Client, fake: FakeState, migrated: str) -> None:
    second_key = "sk-proj-fakeOPENAI0000000000002"
    account = await make_account(gw, migrated, extra_keys={"openai": [second_key]})
    client = sdk(gw, account.proxy_key)
    made = [await client.responses.create(model="gpt-4o-mini", input=f"halo {i}") for i in range(2)]
    creators = [r.key for r in fake.requests if r.method == "POST"]
    assert sorted(creators) == sorted([PROVIDER_KEYS["openai"], second_key])  # round robin over the two keys
    for response, key in zip(made, creators, strict=True):
        assert (await client.responses.retrieve(response.id)).id == response.id
        assert fake.last.key == key and fake.last.method == "GET"
        await client.responses.create(model="gpt-4o-mini", previous_response_id=response.id, input="lagi")
        assert fake.last.key == key  # continued in the project that holds it
    other = await make_account(gw, migrated)
    for response in made:  # another user's proxy key never reaches them
        resp = await gw.get(f"/v1/responses/{response.id}",
                            headers={"Authorization": f"Bearer {other.proxy_key}"})
        assert resp.status == 404 and (await resp.json())["error"]["type"] == "not_found_error"
        resp = await gw.delete(f"/v1/responses/{response.id}",
                               headers={"Authorization": f"Bearer {other.proxy_key}"})
        assert resp.status == 404
    await client.responses.delete(made[0].id)
    assert fake.last.method == "DELETE" and fake.last.key == creators[0]


async def test_failover_to_the_next_key_and_that_key_owns_the_response(gw: Client, fake: FakeState,
                                                                       migrated: str) -> None:
    second_key = "sk-proj-fakeOPENAI0000000000002"
    account = await make_account(gw, migrated, extra_keys={"openai": [second_key]})
    fake.rule_for_key(PROVIDER_KEYS["openai"], scenario.rate_limited("1"))  # the first key is out of quota
    client = sdk(gw, account.proxy_key)
    made = await client.responses.create(model="gpt-4o-mini", input="halo", stream=False)
    assert fake.last.key == second_key
    fake.key_rules.clear()
    for _ in range(2):  # whichever key the round robin would start with, the owner's key reads it
        assert (await client.responses.retrieve(made.id)).id == made.id
        assert fake.last.key == second_key
    metrics = await (await gw.get("/metrics")).text()
    assert 'endpoint="responses"' in metrics
