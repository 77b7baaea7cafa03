"""The Midtrans client against the fake Midtrans over loopback, and notification signatures."""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.fakes.midtrans import FakeMidtrans
from webrana_proxy.billing.midtrans import (
    MidtransClient,
    MidtransError,
    MidtransUnavailable,
    TransactionStatus,
    basic_authorization,
    build_snap_request,
    compute_signature,
    is_valid_order_id,
    new_order_id,
    parse_gross_amount,
    verify_signature,
)
from webrana_proxy.billing.money import plan_charge
from webrana_proxy.billing.plans import get_plan
from webrana_proxy.errors import ServiceUnavailable, UpstreamError

SERVER_KEY = "SB-Mid-server-test-key-123"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Receiver:
    """A stand-in webhook and finish page that records what reaches it."""

    base_url: str = ""
    notifications: list[dict[str, Any]] = field(default_factory=list)
    other_notifications: list[dict[str, Any]] = field(default_factory=list)
    got_one: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def webhook(self) -> str:
        return f"{self.base_url}/webhook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def webhook(request: web.Request) -> web.Response:
        rec.notifications.append(orjson.loads(await request.read()))
        rec.got_one.set()
        return web.json_response({"ok": True})

    async def other(request: web.Request) -> web.Response:
        rec.other_notifications.append(orjson.loads(await request.read()))
        return web.json_response({"ok": True})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="<html>Internal Server Error</html>")

    async def finish(request: web.Request) -> web.Response:
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_post("/other", other)
    app.router.add_route("*", "/broken/{tail:.*}", broken)
    app.router.add_get("/finish", finish)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield rec
    finally:
        await runner.cleanup()


@pytest.fixture
async def fake(receiver: Receiver) -> AsyncIterator[FakeMidtrans]:
    async with FakeMidtrans(SERVER_KEY, notification_url=receiver.webhook) as midtrans:
        yield midtrans


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(fake: FakeMidtrans, session: aiohttp.ClientSession) -> MidtransClient:
    return MidtransClient(session, server_key=SERVER_KEY, snap_base_url=fake.snap_base_url,
                          api_base_url=fake.api_base_url)


async def create_pro(client: MidtransClient, order_id: str, **kwargs: Any) -> Any:
    charge = plan_charge(get_plan("pro"), 11)
    return await client.create_snap_transaction(order_id=order_id, gross_amount=charge.total_idr,
                                                item_details=charge.item_details(),
                                                customer_email="budi@example.co.id", **kwargs)


# --- order ids and signatures -------------------------------------------------------------------------------


def test_order_ids_are_valid_unique_and_short() -> None:
    ids = {new_order_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_valid_order_id(i) and len(i) <= 50 for i in ids)
    assert not is_valid_order_id("a" * 51)
    assert not is_valid_order_id("WBR 1")
    assert not is_valid_order_id("WBR/1")
    assert is_valid_order_id("Ab0-_.~")


def test_signature_accepts_the_genuine_and_rejects_forgeries() -> None:
    genuine = {"order_id": "WBR-1", "status_code": "200", "gross_amount": "109890.00"}
    genuine["signature_key"] = compute_signature("WBR-1", "200", "109890.00", SERVER_KEY)
    assert verify_signature(genuine, SERVER_KEY)
    assert not verify_signature(genuine, "another-key")
    assert not verify_signature({**genuine, "gross_amount": "109890"}, SERVER_KEY)  # exactly as received
    assert not verify_signature({**genuine, "status_code": "201"}, SERVER_KEY)
    assert not verify_signature({**genuine, "order_id": "WBR-2"}, SERVER_KEY)
    assert not verify_signature({**genuine, "signature_key": "0" * 128}, SERVER_KEY)
    assert not verify_signature({**genuine, "gross_amount": 109890.0}, SERVER_KEY)  # not a string: malformed
    assert not verify_signature({k: v for k, v in genuine.items() if k != "signature_key"}, SERVER_KEY)
    assert not verify_signature({}, SERVER_KEY)


def test_parse_gross_amount_accepts_only_whole_rupiah() -> None:
    assert parse_gross_amount("109890.00") == 109_890
    assert parse_gross_amount("109890") == 109_890
    assert parse_gross_amount(109_890) == 109_890
    for bad in ("109890.50", "1e5", "-1", "", "12.", "١٢", True, 1.0, None):
        with pytest.raises(ValueError):
            parse_gross_amount(bad)


def test_transaction_status_refuses_malformed_answers() -> None:
    good = {"order_id": "WBR-1", "status_code": "200", "transaction_status": "settlement",
            "gross_amount": "54390.00", "transaction_time": "2025-01-31 23:59:59"}
    parsed = TransactionStatus.from_body(good)
    assert parsed.paid_at == datetime(2025, 1, 31, 16, 59, 59, tzinfo=UTC)
    assert parsed.fraud_status is None
    no_status = {k: v for k, v in good.items() if k != "transaction_status"}
    for broken in ({**good, "order_id": "WBR 1"}, {**good, "gross_amount": "54390.50"},
                   {**good, "status_code": None}, no_status):
        with pytest.raises(ValueError):
            TransactionStatus.from_body(broken)


def test_snap_request_is_refused_before_sending_when_items_do_not_add_up() -> None:
    items = plan_charge(get_plan("starter"), 11).item_details()
    with pytest.raises(ValueError, match="sum of item_details"):
        build_snap_request(order_id="WBR-1", gross_amount=54_391, item_details=items,
                           customer_email="a@b.id")
    with pytest.raises(ValueError, match="order_id"):
        build_snap_request(order_id="WBR#1", gross_amount=54_390, item_details=items, customer_email="a@b.id")


# --- the client against the fake ----------------------------------------------------------------------------


async def test_create_sends_basic_auth_and_a_valid_body(client: MidtransClient, fake: FakeMidtrans,
                                                        session: aiohttp.ClientSession) -> None:
    snap = await create_pro(client, "WBR-create-1", finish_url="http://127.0.0.1:9/billing/finish",
                            expiry_minutes=60)
    assert snap.redirect_url == f"{fake.base_url}/snap/v4/redirection/{snap.token}"
    sent = fake.requests[-1]
    assert sent.path == "/snap/v1/transactions"
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()
    body = sent.json()
    assert body["transaction_details"] == {"order_id": "WBR-create-1", "gross_amount": 109_890}
    assert sum(i["price"] * i["quantity"] for i in body["item_details"]) == 109_890
    assert body["customer_details"]["email"] == "budi@example.co.id"
    assert "qris" in body["enabled_payments"] and "credit_card" in body["enabled_payments"]
    assert body["callbacks"] == {"finish": "http://127.0.0.1:9/billing/finish"}
    assert body["expiry"] == {"unit": "minutes", "duration": 60}
    assert "Idempotency-Key" not in sent.headers


async def test_idempotency_key_is_sent_and_a_retry_gets_the_first_answer(client: MidtransClient,
                                                                         fake: FakeMidtrans) -> None:
    first = await create_pro(client, "WBR-idem-1", idempotency_key="subscribe-7f3a")
    again = await create_pro(client, "WBR-idem-1", idempotency_key="subscribe-7f3a")
    assert again == first
    assert [r.headers.get("Idempotency-Key") for r in fake.requests] == ["subscribe-7f3a", "subscribe-7f3a"]
    assert list(fake.transactions) == ["WBR-idem-1"]


async def test_a_reused_order_id_is_refused(client: MidtransClient, fake: FakeMidtrans) -> None:
    await create_pro(client, "WBR-dup-1")
    with pytest.raises(MidtransError) as pending_dup:
        await create_pro(client, "WBR-dup-1")
    assert pending_dup.value.http_status == 400
    assert isinstance(pending_dup.value, UpstreamError) and pending_dup.value.status == 502
    await fake.transition("WBR-dup-1", "settlement", send_notification=False)
    with pytest.raises(MidtransError) as paid_dup:
        await create_pro(client, "WBR-dup-1")
    assert paid_dup.value.http_status == 406


async def test_a_wrong_server_key_is_an_upstream_error(fake: FakeMidtrans,
                                                       session: aiohttp.ClientSession) -> None:
    wrong = MidtransClient(session, server_key="SB-Mid-server-wrong", snap_base_url=fake.snap_base_url,
                           api_base_url=fake.api_base_url)
    with pytest.raises(MidtransError) as err:
        await create_pro(wrong, "WBR-auth-1")
    assert err.value.http_status == 401
    assert "unauthorized" in err.value.message.lower()
    with pytest.raises(MidtransError):
        await wrong.get_status("WBR-auth-1")


async def test_the_fake_validates_like_the_real_api(fake: FakeMidtrans,
                                                    session: aiohttp.ClientSession) -> None:
    auth = {"Authorization": basic_authorization(SERVER_KEY)}
    bad_bodies = [
        {"transaction_details": {"order_id": "WBR-v-1", "gross_amount": 100},
         "item_details": [{"id": "a", "price": 99, "quantity": 1, "name": "x"}]},
        {"transaction_details": {"order_id": "WBR v 1", "gross_amount": 100}},
        {"transaction_details": {"order_id": "x" * 51, "gross_amount": 100}},
        {"transaction_details": {"order_id": "WBR-v-2", "gross_amount": 100.5}},
        {"transaction_details": {"order_id": "WBR-v-3", "gross_amount": 100},
         "item_details": [{"id": "a", "price": 100, "quantity": 1, "name": "n" * 51}]},
    ]
    for body in bad_bodies:
        async with session.post(f"{fake.snap_base_url}/transactions", json=body, headers=auth) as response:
            assert response.status == 400, body
            assert (await response.json())["error_messages"]
    assert fake.transactions == {}


async def test_status_of_an_unknown_order_is_not_found(client: MidtransClient) -> None:
    with pytest.raises(MidtransError) as err:
        await client.get_status("WBR-nobody")
    assert err.value.not_found


async def test_status_answers_the_real_shape_after_settlement(client: MidtransClient, fake: FakeMidtrans,
                                                              receiver: Receiver) -> None:
    await create_pro(client, "WBR-status-1")
    with pytest.raises(MidtransError) as not_chosen:  # no payment method chosen yet: Midtrans says 404
        await client.get_status("WBR-status-1")
    assert not_chosen.value.not_found
    await fake.transition("WBR-status-1", "settlement", payment_type="qris")
    status = await client.get_status("WBR-status-1")
    assert status["status_code"] == "200"
    assert status["transaction_status"] == "settlement"
    assert status["fraud_status"] == "accept"
    assert status["payment_type"] == "qris"
    assert status["gross_amount"] == "109890.00"
    assert parse_gross_amount(status["gross_amount"]) == 109_890
    assert len(status["transaction_time"]) == len("2025-01-01 10:00:00")
    parsed = TransactionStatus.from_body(status)
    assert (parsed.order_id, parsed.gross_amount_idr) == ("WBR-status-1", 109_890)
    assert parsed.payment_type == "qris"
    assert parsed.paid_at is not None and parsed.paid_at.utcoffset() == timedelta(hours=7)
    assert abs(parsed.paid_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert fake.requests[-1].headers["Accept"] == "application/json"


async def test_an_expired_status_407_is_an_answer_not_an_error(client: MidtransClient,
                                                                fake: FakeMidtrans) -> None:
    await create_pro(client, "WBR-expire-1")
    await fake.transition("WBR-expire-1", "expire", send_notification=False)
    status = await client.get_status("WBR-expire-1")
    assert (status["status_code"], status["transaction_status"]) == ("407", "expire")


async def test_expire_a_pending_transaction_then_it_is_refused_or_unknown(client: MidtransClient, fake: FakeMidtrans,
                                                                         receiver: Receiver) -> None:
    await create_pro(client, "WBR-exp-0")
    with pytest.raises(MidtransError) as unknown:  # no payment method chosen yet: Midtrans does not know it
        await client.expire("WBR-exp-0")
    assert unknown.value.not_found
    await fake.transition("WBR-exp-0", "pending", payment_type="bca_va", send_notification=False)
    answer = await client.expire("WBR-exp-0")
    assert (answer["status_code"], answer["transaction_status"]) == ("407", "expire")
    assert answer["status_message"] == "Success, transaction has expired"
    assert TransactionStatus.from_body(answer).gross_amount_idr == 109_890
    await fake.drain()  # Midtrans notifies the expiry, signed
    assert [n["transaction_status"] for n in receiver.notifications] == ["expire"]
    assert verify_signature(receiver.notifications[0], SERVER_KEY)
    with pytest.raises(MidtransError) as refused:  # no longer pending
        await client.expire("WBR-exp-0")
    assert (refused.value.status_code, refused.value.not_found) == ("412", False)
    await create_pro(client, "WBR-exp-1")
    await fake.transition("WBR-exp-1", "settlement", send_notification=False)
    with pytest.raises(MidtransError) as paid:
        await client.expire("WBR-exp-1")
    assert paid.value.status_code == "412"
    assert fake.expire_calls == ["WBR-exp-0", "WBR-exp-0", "WBR-exp-0", "WBR-exp-1"]
    sent = [r for r in fake.requests if r.path.endswith("/expire")]
    assert {(r.method, r.headers["Authorization"]) for r in sent} == {("POST", basic_authorization(SERVER_KEY))}


async def test_notifications_are_signed_and_verify(client: MidtransClient, fake: FakeMidtrans,
                                                   receiver: Receiver) -> None:
    await create_pro(client, "WBR-notify-1")
    for transaction_status in ("pending", "settlement"):
        await fake.transition("WBR-notify-1", transaction_status)
    assert [n["transaction_status"] for n in receiver.notifications] == ["pending", "settlement"]
    for notification in receiver.notifications:
        assert verify_signature(notification, SERVER_KEY)
        assert isinstance(notification["status_code"], str)
        assert notification["gross_amount"] == "109890.00"
        assert not verify_signature(notification, "SB-Mid-server-other")
    forged = {**receiver.notifications[-1], "gross_amount": "1.00"}
    assert not verify_signature(forged, SERVER_KEY)


async def test_forged_notifications_can_be_sent_through_the_control_api(
        client: MidtransClient, fake: FakeMidtrans, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    await create_pro(client, "WBR-forge-1")
    forged = {"order_id": "WBR-forge-1", "status_code": "200", "gross_amount": "109890.00",
              "transaction_status": "settlement", "fraud_status": "accept", "signature_key": "ab" * 64}
    async with session.post(f"{fake.base_url}/_control/notify", json={"notification": forged}) as response:
        assert response.status == 200
        assert (await response.json())["deliveries"][0]["status"] == 200
    signed = {**forged, "signature_key": None}
    async with session.post(f"{fake.base_url}/_control/notify",
                            json={"notification": signed, "sign": True}) as response:
        assert response.status == 200
    assert not verify_signature(receiver.notifications[0], SERVER_KEY)
    assert verify_signature(receiver.notifications[1], SERVER_KEY)


async def test_control_api_sets_state_and_notifies(
        client: MidtransClient, fake: FakeMidtrans, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    await create_pro(client, "WBR-control-1")
    url = f"{fake.base_url}/_control/WBR-control-1"
    async with session.post(url, json={"transaction_status": "capture", "fraud_status": "challenge",
                                       "payment_type": "credit_card", "send_notification": True}) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["deliveries"][0]["status"] == 200
    status = await client.get_status("WBR-control-1")
    assert (status["transaction_status"], status["fraud_status"], status["payment_type"]) == (
        "capture", "challenge", "credit_card")
    async with session.post(url, json={"transaction_status": "capture", "fraud_status": "accept",
                                       "send_notification": False}) as response:
        assert response.status == 200
    assert len(receiver.notifications) == 1
    async with session.post(f"{fake.base_url}/_control/WBR-unknown",
                            json={"transaction_status": "settlement"}) as response:
        assert response.status == 404
    async with session.post(url, json={"transaction_status": "paid"}) as response:
        assert response.status == 400


async def test_notification_url_override_is_honoured(client: MidtransClient, fake: FakeMidtrans,
                                                     receiver: Receiver) -> None:
    await create_pro(client, "WBR-override-1", notification_url=f"{receiver.base_url}/other")
    assert fake.requests[-1].headers["X-Override-Notification"] == f"{receiver.base_url}/other"
    await fake.transition("WBR-override-1", "settlement")
    assert receiver.notifications == []
    assert [n["order_id"] for n in receiver.other_notifications] == ["WBR-override-1"]


async def test_the_payment_page_pays_notifies_and_returns_to_finish(
        client: MidtransClient, fake: FakeMidtrans, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    finish = f"{receiver.base_url}/finish?from=midtrans"
    snap = await create_pro(client, "WBR-page-1", finish_url=finish)
    async with session.get(snap.redirect_url) as response:
        assert response.status == 200
        page = await response.text()
    assert "Rp 109.890" in page and "WBR-page-1" in page
    for label in ("Pay (settlement)", "Pending", "Expire", "Deny"):
        assert label in page
    assert "<script" not in page
    async with session.post(f"{snap.redirect_url}/pay", data={"action": "settlement"},
                            allow_redirects=False) as response:
        assert response.status == 303
        location = response.headers["Location"]
    assert location == (f"{finish}&order_id=WBR-page-1&status_code=200&transaction_status=settlement")
    assert receiver.notifications[-1]["transaction_status"] == "settlement"
    assert verify_signature(receiver.notifications[-1], SERVER_KEY)
    assert (await client.get_status("WBR-page-1"))["transaction_status"] == "settlement"


async def test_unreachable_midtrans_is_service_unavailable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = MidtransClient(session, server_key=SERVER_KEY, snap_base_url=f"http://127.0.0.1:{port}/snap/v1",
                            api_base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(MidtransUnavailable) as err:
        await client.get_status("WBR-1")
    assert isinstance(err.value, ServiceUnavailable) and err.value.status == 503
    with pytest.raises(MidtransUnavailable):
        await create_pro(client, "WBR-1")


async def test_a_5xx_from_midtrans_is_service_unavailable(receiver: Receiver,
                                                          session: aiohttp.ClientSession) -> None:
    client = MidtransClient(session, server_key=SERVER_KEY, snap_base_url=f"{receiver.base_url}/broken/snap",
                            api_base_url=f"{receiver.base_url}/broken")
    with pytest.raises(MidtransUnavailable):
        await client.get_status("WBR-1")
    with pytest.raises(MidtransUnavailable):
        await create_pro(client, "WBR-1")


async def test_the_cli_serves_the_fake(receiver: Receiver, session: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.midtrans", "--port", "0", "--server-key", SERVER_KEY,
        "--notification-url", receiver.webhook, cwd=REPO, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        base = line.split(" listening on ")[1].split()[0]
        client = MidtransClient(session, server_key=SERVER_KEY, snap_base_url=f"{base}/snap/v1",
                                api_base_url=base)
        await create_pro(client, "WBR-cli-1")
        async with session.post(f"{base}/_control/WBR-cli-1",
                                json={"transaction_status": "settlement"}) as response:
            assert response.status == 200
        await asyncio.wait_for(receiver.got_one.wait(), 5)
        assert verify_signature(receiver.notifications[0], SERVER_KEY)
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
