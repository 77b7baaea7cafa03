"""What the public webhook keeps: a rejected notification leaves only an order id, a status, a hash, a size
and at most 1 KiB of the body, the route takes at most 16 KiB, and rejected rows go after 30 days."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson

from tests.billing.conftest import WEBHOOK_PATH, Billing
from webrana_proxy.billing.lifecycle import run_once
from webrana_proxy.billing.webhook import NOTIFICATION_BODY_LIMIT, REJECTED_EXCERPT_BYTES


def _forged(order_id: str, padding: int) -> bytes:
    return orjson.dumps({"order_id": order_id, "status_code": "200", "gross_amount": "54390.00",
                         "transaction_status": "settlement", "signature_key": "0" * 128,
                         "padding": "x" * padding})


async def _rows(billing: Billing) -> list[dict[str, object]]:
    rows = await billing.db.fetch(
        """SELECT order_id, transaction_status, raw, body_sha256, body_bytes, excerpt, rejected, verdict,
                  pg_column_size(p.*) AS row_bytes
           FROM payment_notifications p ORDER BY created_at""")
    return [dict(r) for r in rows]


async def test_the_route_refuses_bodies_over_its_own_small_limit(billing: Billing) -> None:
    assert NOTIFICATION_BODY_LIMIT == 16 * 1024
    big = _forged("WBR-big", NOTIFICATION_BODY_LIMIT)
    assert len(big) > NOTIFICATION_BODY_LIMIT
    resp = await billing.client.post(WEBHOOK_PATH, data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "request_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading too
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    resp = await billing.client.post(WEBHOOK_PATH, data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert await _rows(billing) == []


async def test_a_forged_notification_keeps_only_what_an_investigation_needs(billing: Billing) -> None:
    body = _forged("WBR-forged-1", NOTIFICATION_BODY_LIMIT - 400)
    assert len(body) <= NOTIFICATION_BODY_LIMIT
    resp = await billing.client.post(WEBHOOK_PATH, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 401
    [row] = await _rows(billing)
    assert row["raw"] is None and row["rejected"] is True and row["verdict"] == "forged"
    assert (row["order_id"], row["transaction_status"]) == ("WBR-forged-1", "settlement")
    assert row["body_sha256"] == hashlib.sha256(body).hexdigest() and row["body_bytes"] == len(body)
    excerpt = str(row["excerpt"])
    assert len(excerpt.encode()) == REJECTED_EXCERPT_BYTES == 1024
    assert body.decode().startswith(excerpt)
    assert int(str(row["row_bytes"])) < 2048  # was the whole body: up to WEBRANA_API_BODY_LIMIT (1 MiB) a post


async def test_a_malformed_body_is_kept_as_escaped_text_within_1_kib(billing: Billing) -> None:
    body = b"\x00\xff not json " + "é".encode() * 600  # NUL, a byte that is not UTF-8, multi-byte characters
    resp = await billing.client.post(WEBHOOK_PATH, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    [row] = await _rows(billing)
    assert (row["raw"], row["order_id"], row["verdict"], row["rejected"]) == (None, None, "malformed", True)
    excerpt = str(row["excerpt"])
    assert excerpt.startswith("\\x00\\xff not json é") and len(excerpt.encode()) <= 1024
    assert row["body_sha256"] == hashlib.sha256(body).hexdigest()
    # An absurd claim is cut too.
    resp = await billing.client.post(WEBHOOK_PATH, data=_forged("W" * 5000, 0))
    assert resp.status == 401
    assert len(str((await _rows(billing))[-1]["order_id"])) == 64


async def test_a_signed_notification_is_still_kept_whole(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "starter")
    await billing.notify(checkout["order_id"], "settlement")
    [row] = await _rows(billing)
    assert row["rejected"] is False and row["verdict"] == "applied:paid"
    raw = orjson.loads(str(row["raw"]))
    assert raw["order_id"] == checkout["order_id"] and raw["signature_key"]


async def test_the_lifecycle_job_prunes_rejected_notifications_after_30_days(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "starter")
    await billing.notify(checkout["order_id"], "settlement")  # signed: kept
    for i in range(3):
        resp = await billing.client.post(WEBHOOK_PATH, data=_forged(f"WBR-old-{i}", 10))
        assert resp.status == 401
    await billing.db.execute("UPDATE payment_notifications SET created_at = now() - interval '31 days'")
    resp = await billing.client.post(WEBHOOK_PATH, data=_forged("WBR-recent", 10))
    assert resp.status == 401
    report = await run_once(billing.client.app, datetime.now(UTC) + timedelta(minutes=1))
    assert report.pruned_notifications == 3
    left = [(r["order_id"], r["rejected"]) for r in await _rows(billing)]
    assert left == [(checkout["order_id"], False), ("WBR-recent", True)]
    again = await run_once(billing.client.app, datetime.now(UTC) + timedelta(minutes=2))
    assert again.pruned_notifications == 0
