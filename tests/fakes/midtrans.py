"""A fake Midtrans (Snap + Core API status + signed notifications) for tests and local runs, on loopback.

It validates Snap create requests the way the real one does (Basic auth with the server key, order_id rules,
``gross_amount == sum(item_details)``, duplicate order ids, ``Idempotency-Key`` replays), serves a
plain-HTML payment page at the ``redirect_url`` whose buttons settle / leave pending / expire / deny the
transaction, sends a correctly signed notification to the webhook and sends the browser back to
``callbacks.finish``.

Routes (base URL ``B``; set ``MIDTRANS_SNAP_BASE_URL=B/snap/v1`` and ``MIDTRANS_API_BASE_URL=B``):

* ``POST /snap/v1/transactions``, ``GET /v2/{order_id}/status``, ``POST /v2/{order_id}/expire`` - like the real
  API (expire: 407 and a notification for a pending transaction, 412 once it is paid or closed, 404 while no
  payment method was chosen; every call is in ``requests`` and its order id in ``expire_calls``);
* ``GET /snap/v4/redirection/{token}`` (+ ``POST .../pay``) - the payment page;
* ``POST /_control/{order_id}`` ``{transaction_status, fraud_status?, payment_type?, send_notification?}``,
  ``GET /_control/{order_id}``, ``POST /_control/notify`` ``{notification, url?, sign?}`` (forged or arbitrary
  notifications), ``GET /_control/requests``, ``GET /_control/notifications`` - for tests. The names
  ``notify``, ``requests`` and ``notifications`` are therefore not usable as order ids here.

CLI: ``python -m tests.fakes.midtrans --port P --server-key K --notification-url U``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import html
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeGuard
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web

JAKARTA = timezone(timedelta(hours=7))
ORDER_ID_RE = re.compile(r"[A-Za-z0-9\-_.~]{1,50}")
ITEM_NAME_MAX = 50
NOTIFICATION_TIMEOUT_SECONDS = 15.0  # what the real Midtrans waits for a webhook answer
TRANSACTION_STATUSES = frozenset({
    "authorize", "capture", "settlement", "pending", "deny", "cancel", "expire", "failure", "refund",
    "partial_refund", "chargeback", "partial_chargeback",
})
# The status_code Midtrans puts in status bodies and notifications for each transaction_status.
STATUS_CODES: dict[str, str] = {
    "authorize": "200", "capture": "200", "settlement": "200", "pending": "201", "deny": "202",
    "cancel": "200", "expire": "407", "failure": "202", "refund": "200", "partial_refund": "200",
    "chargeback": "200", "partial_chargeback": "200",
}
STATUS_MESSAGES: dict[str, str] = {
    "200": "Success, transaction is found",
    "201": "Success, transaction is found",
    "202": "Transaction is denied",
    "407": "Success, transaction is found",
}
EXPIRE_MESSAGE = "Success, transaction has expired"
CANNOT_MODIFY_MESSAGE = "Merchant cannot modify the status of the transaction"
NOT_FOUND_MESSAGE = "Transaction doesn't exist."

# The payment-page buttons: (form action, label, payment_type, fraud_status).
PAGE_ACTIONS: tuple[tuple[str, str, str, str | None], ...] = (
    ("settlement", "Pay (settlement)", "qris", "accept"),
    ("pending", "Pending", "qris", "accept"),
    ("expire", "Expire", "qris", "accept"),
    ("deny", "Deny", "credit_card", "deny"),
)
UNAUTHORIZED_MESSAGES = [
    "Access denied due to unauthorized transaction, please check client or server key",
    "Visit https://snap-docs.midtrans.com/#request-headers for more details",
]
SESSION_KEY = web.AppKey("fake_midtrans_session", aiohttp.ClientSession)


def _now_text() -> str:
    return datetime.now(UTC).astimezone(JAKARTA).strftime("%Y-%m-%d %H:%M:%S")


def signature(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """Midtrans' notification signature (computed independently of the code under test)."""
    return hashlib.sha512(f"{order_id}{status_code}{gross_amount}{server_key}".encode()).hexdigest()


@dataclass
class FakeTransaction:
    order_id: str
    gross_amount: int
    token: str
    request: dict[str, Any]
    finish_url: str | None
    notification_urls: list[str] | None
    transaction_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    transaction_status: str | None = None  # None: created, no payment method chosen (status API says 404)
    fraud_status: str | None = None
    payment_type: str | None = None
    transaction_time: str | None = None
    settlement_time: str | None = None

    @property
    def gross_amount_text(self) -> str:
        return f"{self.gross_amount}.00"

    @property
    def status_code(self) -> str:
        return STATUS_CODES[self.transaction_status or "pending"]

    @property
    def paid(self) -> bool:
        return self.transaction_status in {"settlement", "capture"}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def view(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "query": self.query, "headers": self.headers,
                "body": self.body.decode(errors="replace")}


@dataclass(frozen=True)
class SentNotification:
    url: str
    body: dict[str, Any]
    status: int | None
    response_text: str | None
    error: str | None

    def view(self) -> dict[str, Any]:
        return {"url": self.url, "body": self.body, "status": self.status,
                "response_text": self.response_text, "error": self.error}


def _snap_error(status: int, *messages: str) -> web.Response:
    return web.json_response({"error_messages": list(messages)}, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_snap_request(body: Any) -> list[str]:
    """The error messages the real Snap API would give for ``body`` (empty when it is acceptable)."""
    if not isinstance(body, dict):
        return ["Request body is not a JSON object"]
    details = body.get("transaction_details")
    if not isinstance(details, dict):
        return ["transaction_details is required"]
    errors: list[str] = []
    order_id = details.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        errors.append("transaction_details.order_id is required")
    elif len(order_id) > 50:
        errors.append("transaction_details.order_id too long, maximum 50 characters")
    elif not ORDER_ID_RE.fullmatch(order_id):
        errors.append("transaction_details.order_id contains characters other than [A-Za-z0-9-_.~]")
    gross = details.get("gross_amount")
    if not _is_int(gross):
        errors.append("transaction_details.gross_amount must be an integer (IDR has no decimals)")
    elif gross < 1:
        errors.append("transaction_details.gross_amount must be greater than or equal to 1")
    items = body.get("item_details")
    if items is not None:
        if not isinstance(items, list) or not items:
            errors.append("item_details must be a non-empty list")
        else:
            total = 0
            items_ok = True
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    errors.append(f"item_details[{i}] must be an object")
                    items_ok = False
                    continue
                price, quantity, name = item.get("price"), item.get("quantity"), item.get("name")
                if not _is_int(price):
                    errors.append(f"item_details[{i}].price must be an integer")
                    items_ok = False
                if not _is_int(quantity) or quantity < 1:
                    errors.append(f"item_details[{i}].quantity must be a positive integer")
                    items_ok = False
                if not isinstance(name, str) or not name:
                    errors.append(f"item_details[{i}].name is required")
                elif len(name) > ITEM_NAME_MAX:
                    errors.append(f"item_details[{i}].name too long, maximum {ITEM_NAME_MAX} characters")
                if items_ok and _is_int(price) and _is_int(quantity):
                    total += price * quantity
            if items_ok and _is_int(gross) and total != gross:
                errors.append("transaction_details.gross_amount is not equal to the sum of item_details")
    customer = body.get("customer_details")
    if customer is not None:
        email = customer.get("email") if isinstance(customer, dict) else None
        if not isinstance(customer, dict) or (email is not None and (
                not isinstance(email, str) or "@" not in email)):
            errors.append("customer_details.email format is invalid")
    payments = body.get("enabled_payments")
    if payments is not None and (not isinstance(payments, list)
                                 or not all(isinstance(p, str) for p in payments)):
        errors.append("enabled_payments must be a list of strings")
    callbacks = body.get("callbacks")
    if callbacks is not None and (not isinstance(callbacks, dict)
                                  or not isinstance(callbacks.get("finish", ""), str)):
        errors.append("callbacks.finish must be a string")
    expiry = body.get("expiry")
    units = {"second", "minute", "hour", "day", "seconds", "minutes", "hours", "days"}
    if expiry is not None and (not isinstance(expiry, dict) or expiry.get("unit") not in units
                               or not _is_int(expiry.get("duration")) or expiry["duration"] < 1):
        errors.append("expiry.unit and a positive expiry.duration are required")
    return errors


class FakeMidtrans:
    """One fake Midtrans merchant account. All state lives on the instance."""

    def __init__(self, server_key: str, *, notification_url: str | None = None,
                 merchant_id: str = "G123456789", public_url: str | None = None) -> None:
        self.server_key = server_key
        self.notification_url = notification_url
        self.merchant_id = merchant_id
        self.public_url = public_url.rstrip("/") if public_url else None
        self.transactions: dict[str, FakeTransaction] = {}
        self.by_token: dict[str, FakeTransaction] = {}
        self.idempotent_answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.requests: list[RecordedRequest] = []
        self.notifications: list[SentNotification] = []
        self.expire_calls: list[str] = []  # order ids of POST /v2/{order_id}/expire, in order
        self._sending: set[asyncio.Task[list[SentNotification]]] = set()
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self.base_url: str | None = None

    # --- lifecycle --------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.cleanup_ctx.append(self._client_session)
        app.router.add_post("/snap/v1/transactions", self._create)
        app.router.add_get("/v2/{order_id}/status", self._status)
        app.router.add_post("/v2/{order_id}/expire", self._expire)
        app.router.add_get("/snap/v4/redirection/{token}", self._payment_page)
        app.router.add_post("/snap/v4/redirection/{token}/pay", self._pay)
        app.router.add_post("/_control/notify", self._control_notify)
        app.router.add_get("/_control/requests", self._control_requests)
        app.router.add_get("/_control/notifications", self._control_notifications)
        app.router.add_post("/_control/{order_id}", self._control_set)
        app.router.add_get("/_control/{order_id}", self._control_get)
        self._app = app
        return app

    async def _client_session(self, app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=NOTIFICATION_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            app[SESSION_KEY] = session
            yield

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); returns the base URL."""
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1] if self._runner.addresses else port
        self.base_url = f"http://{host}:{bound_port}"
        return self.base_url

    async def drain(self) -> None:
        """Wait for the notifications sent after an answer (the expire API's) to be delivered."""
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeMidtrans:
        if self.base_url is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def snap_base_url(self) -> str:
        return f"{self.base_url}/snap/v1"

    @property
    def api_base_url(self) -> str:
        assert self.base_url is not None
        return self.base_url

    # --- state changes, usable directly from tests ------------------------------------------------------

    def set_status(self, order_id: str, transaction_status: str, *, fraud_status: str | None = "accept",
                   payment_type: str | None = None) -> FakeTransaction:
        if transaction_status not in TRANSACTION_STATUSES:
            raise ValueError(f"unknown transaction_status {transaction_status!r}")
        tx = self.transactions[order_id]
        tx.transaction_status = transaction_status
        tx.fraud_status = fraud_status
        tx.payment_type = payment_type or tx.payment_type or "qris"
        tx.transaction_time = tx.transaction_time or _now_text()
        if transaction_status == "settlement":
            tx.settlement_time = _now_text()
        return tx

    def status_body(self, tx: FakeTransaction) -> dict[str, Any]:
        """The body of ``GET /v2/{order_id}/status`` (and of a notification, which adds a few fields)."""
        code = tx.status_code
        body: dict[str, Any] = {
            "status_code": code,
            "status_message": STATUS_MESSAGES.get(code, "Success, transaction is found"),
            "transaction_id": tx.transaction_id,
            "order_id": tx.order_id,
            "merchant_id": self.merchant_id,
            "gross_amount": tx.gross_amount_text,
            "currency": "IDR",
            "payment_type": tx.payment_type,
            "transaction_time": tx.transaction_time,
            "transaction_status": tx.transaction_status,
            "fraud_status": tx.fraud_status,
            "signature_key": signature(tx.order_id, code, tx.gross_amount_text, self.server_key),
        }
        if tx.settlement_time:
            body["settlement_time"] = tx.settlement_time
        if tx.payment_type == "qris":
            body["acquirer"] = "gopay"
        return body

    def notification_body(self, order_id: str) -> dict[str, Any]:
        tx = self.transactions[order_id]
        body = self.status_body(tx)
        body["status_message"] = "midtrans payment notification"
        body["expiry_time"] = (datetime.now(UTC).astimezone(JAKARTA) + timedelta(days=1)).strftime(
            "%Y-%m-%d %H:%M:%S")
        return body

    def notification_urls_for(self, order_id: str | None) -> list[str]:
        tx = self.transactions.get(order_id) if order_id else None
        if tx is not None and tx.notification_urls:
            return list(tx.notification_urls)
        return [self.notification_url] if self.notification_url else []

    async def send_notification(self, body: Mapping[str, Any],
                                url: str | None = None) -> list[SentNotification]:
        """POST ``body`` as-is (forged, replayed or genuine) to ``url`` or the transaction's webhook URLs."""
        assert self._app is not None, "start the fake first"
        session = self._app[SESSION_KEY]
        order_id = body.get("order_id")
        urls = [url] if url else self.notification_urls_for(order_id if isinstance(order_id, str) else None)
        sent: list[SentNotification] = []
        for target in urls:
            try:
                async with session.post(target, data=orjson.dumps(dict(body)),
                                        headers={"Content-Type": "application/json"}) as response:
                    text = await response.text()
                    record = SentNotification(target, dict(body), response.status, text, None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                record = SentNotification(target, dict(body), None, None, f"{type(exc).__name__}: {exc}")
            self.notifications.append(record)
            sent.append(record)
        return sent

    async def transition(self, order_id: str, transaction_status: str, *, fraud_status: str | None = "accept",
                         payment_type: str | None = None,
                         send_notification: bool = True) -> tuple[dict[str, Any], list[SentNotification]]:
        """Set the transaction's state and (by default) send Midtrans' signed notification about it."""
        self.set_status(order_id, transaction_status, fraud_status=fraud_status, payment_type=payment_type)
        body = self.notification_body(order_id)
        sent = await self.send_notification(body) if send_notification else []
        return body, sent

    def _notify_later(self, order_id: str) -> None:
        """Like Midtrans: the notification of a change made through the API follows the API's answer."""
        task = asyncio.get_running_loop().create_task(self.send_notification(self.notification_body(order_id)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    # --- HTTP -------------------------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request,
                      handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_control/"):
            body = await request.read()
            self.requests.append(RecordedRequest(request.method, request.path, request.query_string,
                                                 dict(request.headers), body))
        response: web.StreamResponse = await handler(request)
        return response

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except ValueError:
            return False
        return decoded == f"{self.server_key}:"

    def _public_base(self, request: web.Request) -> str:
        return self.public_url or str(request.url.origin())

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _snap_error(401, *UNAUTHORIZED_MESSAGES)
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotent_answers:
            status, answer = self.idempotent_answers[key]
            return web.json_response(answer, status=status, dumps=_dumps)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _snap_error(400, "Request body is not valid JSON")
        errors = validate_snap_request(body)
        if errors:
            return _snap_error(400, *errors)
        order_id: str = body["transaction_details"]["order_id"]
        existing = self.transactions.get(order_id)
        if existing is not None:
            if existing.paid:
                return _snap_error(406, "order_id has been paid and utilized, please use another order ID")
            return _snap_error(400, "transaction_details.order_id sudah digunakan")
        override = request.headers.get("X-Override-Notification")
        urls = [u.strip() for u in override.split(",") if u.strip()][:3] if override else None
        token = str(uuid.uuid4())
        callbacks = body.get("callbacks") or {}
        tx = FakeTransaction(order_id=order_id, gross_amount=body["transaction_details"]["gross_amount"],
                             token=token, request=body, finish_url=callbacks.get("finish") or None,
                             notification_urls=urls)
        self.transactions[order_id] = tx
        self.by_token[token] = tx
        answer = {"token": token, "redirect_url": f"{self._public_base(request)}/snap/v4/redirection/{token}"}
        if key:
            self.idempotent_answers[key] = (201, answer)
        return web.json_response(answer, status=201, dumps=_dumps)

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status_code": "401", "status_message": UNAUTHORIZED_MESSAGES[0],
                                      "id": str(uuid.uuid4())}, status=401, dumps=_dumps)
        tx = self.transactions.get(request.match_info["order_id"])
        if tx is None or tx.transaction_status is None:
            return web.json_response({"status_code": "404", "status_message": "Transaction doesn't exist.",
                                      "id": str(uuid.uuid4())}, status=404, dumps=_dumps)
        return web.json_response(self.status_body(tx), dumps=_dumps)

    async def _expire(self, request: web.Request) -> web.Response:
        """``POST /v2/{order_id}/expire``: only a pending transaction can be expired."""
        if not self._authorized(request):
            return web.json_response({"status_code": "401", "status_message": UNAUTHORIZED_MESSAGES[0],
                                      "id": str(uuid.uuid4())}, status=401, dumps=_dumps)
        order_id = request.match_info["order_id"]
        self.expire_calls.append(order_id)
        tx = self.transactions.get(order_id)
        if tx is None or tx.transaction_status is None:  # Snap: no payment method chosen yet
            return web.json_response({"status_code": "404", "status_message": NOT_FOUND_MESSAGE,
                                      "id": str(uuid.uuid4())}, status=404, dumps=_dumps)
        if tx.transaction_status != "pending":
            return web.json_response({"status_code": "412", "status_message": CANNOT_MODIFY_MESSAGE,
                                      "id": str(uuid.uuid4())}, dumps=_dumps)
        self.set_status(order_id, "expire", fraud_status=tx.fraud_status)
        body = self.status_body(tx)
        body["status_message"] = EXPIRE_MESSAGE
        del body["signature_key"]  # the expire answer is not signed; its notification is
        self._notify_later(order_id)
        return web.json_response(body, dumps=_dumps)

    async def _payment_page(self, request: web.Request) -> web.Response:
        tx = self.by_token.get(request.match_info["token"])
        if tx is None:
            return web.Response(status=404, text="<h1>Transaction not found</h1>", content_type="text/html")
        rows = "".join(
            f"<tr><td>{html.escape(str(i.get('name')))}</td><td>{i.get('quantity')}</td>"
            f"<td>{_rupiah(int(i.get('price', 0)))}</td></tr>"
            for i in tx.request.get("item_details") or [])
        buttons = "".join(
            f'<form method="post" action="/snap/v4/redirection/{html.escape(tx.token)}/pay">'
            f'<input type="hidden" name="action" value="{action}">'
            f'<button type="submit" name="submit" value="{action}">{html.escape(label)}</button></form>'
            for action, label, _, _ in PAGE_ACTIONS)
        page = (
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Fake Midtrans payment</title></head>"
            "<body><h1>Fake Midtrans</h1>"
            f"<p>Order <code id=\"order-id\">{html.escape(tx.order_id)}</code></p>"
            f"<p>Total <strong id=\"amount\">{_rupiah(tx.gross_amount)}</strong></p>"
            f"<p>Status <span id=\"status\">{html.escape(tx.transaction_status or 'new')}</span></p>"
            f"<table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>{rows}</table>"
            f"{buttons}</body></html>")
        return web.Response(text=page, content_type="text/html")

    async def _pay(self, request: web.Request) -> web.StreamResponse:
        tx = self.by_token.get(request.match_info["token"])
        if tx is None:
            return web.Response(status=404, text="<h1>Transaction not found</h1>", content_type="text/html")
        form = await request.post()
        action = form.get("action")
        choice = next((a for a in PAGE_ACTIONS if a[0] == action), None)
        if choice is None:
            return web.Response(status=400, text="<h1>Unknown action</h1>", content_type="text/html")
        _, _, payment_type, fraud_status = choice
        await self.transition(tx.order_id, choice[0], fraud_status=fraud_status, payment_type=payment_type)
        params = {"order_id": tx.order_id, "status_code": tx.status_code,
                  "transaction_status": tx.transaction_status or ""}
        if tx.finish_url:
            separator = "&" if "?" in tx.finish_url else "?"
            raise web.HTTPSeeOther(f"{tx.finish_url}{separator}{urlencode(params)}")
        return web.Response(text=f"<h1>Payment {html.escape(choice[0])}</h1>", content_type="text/html")

    async def _control_set(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        if order_id not in self.transactions:
            return web.json_response({"error": f"unknown order_id {order_id}"}, status=404, dumps=_dumps)
        try:
            payload = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"error": "body must be JSON"}, status=400, dumps=_dumps)
        status = payload.get("transaction_status") if isinstance(payload, dict) else None
        if status not in TRANSACTION_STATUSES:
            allowed = sorted(TRANSACTION_STATUSES)
            return web.json_response({"error": f"transaction_status must be one of {allowed}"},
                                     status=400, dumps=_dumps)
        body, sent = await self.transition(
            order_id, status, fraud_status=payload.get("fraud_status", "accept"),
            payment_type=payload.get("payment_type"),
            send_notification=bool(payload.get("send_notification", True)))
        return web.json_response({"status": self.status_body(self.transactions[order_id]),
                                  "notification": body, "deliveries": [s.view() for s in sent]}, dumps=_dumps)

    async def _control_get(self, request: web.Request) -> web.Response:
        tx = self.transactions.get(request.match_info["order_id"])
        if tx is None:
            return web.json_response({"error": "unknown order_id"}, status=404, dumps=_dumps)
        view = {"order_id": tx.order_id, "token": tx.token, "gross_amount": tx.gross_amount,
                "transaction_status": tx.transaction_status, "fraud_status": tx.fraud_status,
                "payment_type": tx.payment_type, "finish_url": tx.finish_url,
                "notification_urls": self.notification_urls_for(tx.order_id), "request": tx.request}
        return web.json_response(view, dumps=_dumps)

    async def _control_notify(self, request: web.Request) -> web.Response:
        try:
            payload = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"error": "body must be JSON"}, status=400, dumps=_dumps)
        notification = payload.get("notification") if isinstance(payload, dict) else None
        if not isinstance(notification, dict):
            return web.json_response({"error": "notification must be an object"}, status=400, dumps=_dumps)
        if payload.get("sign"):
            notification["signature_key"] = signature(
                str(notification.get("order_id", "")), str(notification.get("status_code", "")),
                str(notification.get("gross_amount", "")), self.server_key)
        url = payload.get("url")
        sent = await self.send_notification(notification, url if isinstance(url, str) else None)
        return web.json_response({"deliveries": [s.view() for s in sent]}, dumps=_dumps)

    async def _control_requests(self, request: web.Request) -> web.Response:
        return web.json_response([r.view() for r in self.requests], dumps=_dumps)

    async def _control_notifications(self, request: web.Request) -> web.Response:
        return web.json_response([n.view() for n in self.notifications], dumps=_dumps)


def _rupiah(amount: int) -> str:
    return f"Rp {amount:,}".replace(",", ".")


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeMidtrans(args.server_key, notification_url=args.notification_url, public_url=args.public_url)
    base = await fake.start(args.host, args.port)
    print(f"fake midtrans listening on {base} (snap {fake.snap_base_url}, api {fake.api_base_url})",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.midtrans",
                                     description="A fake Midtrans (Snap, status, notifications) on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--server-key", required=True, help="the MIDTRANS_SERVER_KEY the app uses")
    parser.add_argument("--notification-url", default=None,
                        help="webhook URL, e.g. http://127.0.0.1:8080/api/billing/midtrans/notification")
    parser.add_argument("--public-url", default=None,
                        help="base URL browsers use for redirect_url (default: the request's own origin)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
