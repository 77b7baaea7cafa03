"""``GET /v1/responses/{id}/input_items`` and ``POST /v1/responses/{id}/cancel`` through the official openai SDK:
a response Webrana stored (translated lane) lists and pages like one OpenAI stored (proxied with the key that made
it); another user's response is a 404; only background responses can be cancelled."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes.scenario import FakeState
from tests.gateway.conftest import MODELS, PROVIDER_KEYS, Account, make_account, sdk

Client = TestClient[web.Request, web.Application]
PROVIDERS = ("openai", "anthropic")  # stored by OpenAI, stored by Webrana
NEWEST_FIRST = ["ketiga", "kedua", "pertama", "echo: nama saya Budi", "nama saya Budi"]


def text_of(item: Any) -> str:
    assert item.type == "message" and item.id
    return str(item.content[0].text)


async def _conversation(client: openai.AsyncOpenAI, provider: str) -> str:
    """A response whose input items are the first turn, its answer and three new messages: five in all."""
    first = await client.responses.create(model=MODELS[provider], input="nama saya Budi")
    second = await client.responses.create(model=MODELS[provider], previous_response_id=first.id, input=[
        {"role": "user", "content": text} for text in ("pertama", "kedua", "ketiga")])
    return second.id


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_input_items_list_and_page_as_openai_lists_them(provider: str, gw: Client, account: Account,
                                                              fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    rid = await _conversation(client, provider)
    listed = [text_of(item) async for item in client.responses.input_items.list(rid, limit=2)]
    assert listed == NEWEST_FIRST  # three pages of 2, 2 and 1, each asked for after the last id
    if provider == "openai":
        assert fake.last.path.startswith(f"/openai/v1/responses/{rid}/input_items")
        assert fake.last.key == PROVIDER_KEYS["openai"]
    page = await client.responses.input_items.list(rid, order="asc", limit=3)
    assert [text_of(item) for item in page.data] == NEWEST_FIRST[::-1][:3] and page.has_more is True
    assert [item.role for item in page.data] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    rest = await client.responses.input_items.list(rid, order="asc", after=page.data[-1].id)  # type: ignore[union-attr]
    assert [text_of(item) for item in rest.data] == ["kedua", "ketiga"] and rest.has_more is False
    raw = await gw.get(f"/v1/responses/{rid}/input_items", params={"limit": "1"},
                       headers={"Authorization": f"Bearer {account.proxy_key}"})
    assert raw.status == 200
    body = await raw.json()
    assert (body["object"], body["has_more"], len(body["data"])) == ("list", True, 1)
    assert body["first_id"] == body["last_id"] == body["data"][0]["id"]
    assert body["data"][0]["content"] == [{"type": "input_text", "text": "ketiga"}]
    assert body["data"][0]["status"] == "completed"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.input_items.list(rid, limit=101)
    assert caught.value.status_code == 400 and "limit" in caught.value.message


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_another_users_response_is_not_found(provider: str, gw: Client, account: Account, fake: FakeState,
                                                   migrated: str) -> None:
    client = sdk(gw, account.proxy_key)
    kept = await client.responses.create(model=MODELS[provider], input="rahasia")
    requests = len(fake.requests)
    other = sdk(gw, (await make_account(gw, migrated)).proxy_key)
    with pytest.raises(openai.NotFoundError):
        await other.responses.input_items.list(kept.id)
    with pytest.raises(openai.NotFoundError):
        await other.responses.cancel(kept.id)
    assert len(fake.requests) == requests  # never asked OpenAI with anyone's key
    with pytest.raises(openai.NotFoundError):
        await client.responses.input_items.list("resp_wbr_" + "0" * 32)
    assert [text_of(item) async for item in client.responses.input_items.list(kept.id)] == ["rahasia"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_only_background_responses_can_be_cancelled(provider: str, gw: Client, account: Account,
                                                          fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    done = await client.responses.create(model=MODELS[provider], input="halo")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.cancel(done.id)
    assert "Cannot cancel a synchronous response" in caught.value.message
    if provider == "openai":  # OpenAI said so, asked with the key that made the response
        assert (fake.last.method, fake.last.path) == ("POST", f"/openai/v1/responses/{done.id}/cancel")
        assert fake.last.key == PROVIDER_KEYS["openai"]
    assert (await client.responses.retrieve(done.id)).status == "completed"
