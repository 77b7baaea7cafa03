"""Midtrans: the Snap/Core API client, notification signatures and order ids.

The client is a thin async wrapper over a ``aiohttp.ClientSession`` that the caller owns (one per process,
opened in ``cleanup_ctx``). Errors come out as the project's error tree:

* Midtrans refused the request (HTTP >= 400 or a body ``status_code`` >= 400 other than 407 "expired") ->
  :class:`MidtransError`, an ``UpstreamError`` answered as 502 with the Midtrans codes and messages attached;
* Midtrans could not be reached, timed out or failed on its side (5xx) -> :class:`MidtransUnavailable`, a
  ``ServiceUnavailable`` (503).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import orjson

from webrana_proxy.billing.money import ItemDetail
from webrana_proxy.errors import ServiceUnavailable, UpstreamError

ORDER_ID_MAX = 50  # Midtrans: order_id is String(50)
ORDER_ID_RE = re.compile(r"[A-Za-z0-9\-_.~]{1,50}")
EXPIRED_STATUS_CODE = 407  # a 4xx body status that is an answer ("expired"), not an error
DEFAULT_TIMEOUT_SECONDS = 15.0  # Midtrans answers within seconds; the webhook itself must answer within 15 s
# QRIS / GoPay, the common bank virtual accounts, Mandiri bill and cards.
DEFAULT_ENABLED_PAYMENTS: tuple[str, ...] = (
    "qris", "gopay", "bca_va", "bni_va", "bri_va", "permata_va", "echannel", "other_va", "credit_card",
)
_SIGNED_FIELDS = ("order_id", "status_code", "gross_amount")


@dataclass(frozen=True, slots=True)
class SnapTransaction:
    token: str
    redirect_url: str


class MidtransError(UpstreamError):
    """Midtrans answered, and said no; ``http_status``, ``status_code``, ``response_body`` are its own."""

    def __init__(self, message: str, *, http_status: int, status_code: str | None,
                 messages: Sequence[str] = (), body: Any = None) -> None:
        super().__init__(message, status=502, code="payment_provider_error", error_type="upstream_error")
        self.http_status = http_status
        self.status_code = status_code
        self.messages = list(messages)
        self.response_body = body

    @property
    def not_found(self) -> bool:
        """The order is unknown to Midtrans (never created, or created but no payment method chosen yet)."""
        return self.http_status == 404 or self.status_code == "404"


class MidtransUnavailable(ServiceUnavailable):
    """Midtrans could not be reached, timed out, or failed on its side. Safe to retry later."""

    default_code = "payment_provider_unavailable"


# --- order ids and signatures (pure) ------------------------------------------------------------------------


def is_valid_order_id(order_id: str) -> bool:
    return ORDER_ID_RE.fullmatch(order_id) is not None


def new_order_id(prefix: str = "WBR") -> str:
    """A fresh, unguessable Midtrans order id, e.g. ``WBR-q3Zx...`` (<= 50 chars of ``[A-Za-z0-9-_.~]``)."""
    order_id = f"{prefix}-{secrets.token_urlsafe(18)}"  # 24 url-safe characters, 144 random bits
    if not is_valid_order_id(order_id):
        raise ValueError(f"prefix {prefix!r} makes an invalid order_id")
    return order_id


def compute_signature(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """``sha512(order_id + status_code + gross_amount + server_key)`` as lowercase hex."""
    data = (order_id + status_code + gross_amount + server_key).encode()
    return hashlib.sha512(data).hexdigest()


def verify_signature(notification: Mapping[str, Any], server_key: str) -> bool:
    """Whether ``notification['signature_key']`` is genuine; ``False`` for malformed bodies, never raises.

    The fields are used exactly as received (``gross_amount`` stays ``"54390.00"``); a field that is not a
    string cannot have been signed by Midtrans and fails. The comparison is constant-time.
    """
    fields: list[str] = []
    for name in (*_SIGNED_FIELDS, "signature_key"):
        value = notification.get(name)
        if not isinstance(value, str) or not value:
            return False
        fields.append(value)
    order_id, status_code, gross_amount, given = fields
    expected = compute_signature(order_id, status_code, gross_amount, server_key)
    return hmac.compare_digest(expected.encode(), given.lower().encode())


def parse_gross_amount(value: object) -> int:
    """Midtrans' ``gross_amount`` (``"54390.00"``, ``"54390"`` or ``54390``) as integer rupiah.

    Raises ``ValueError`` for anything else, including a non-zero fraction: rupiah amounts here are whole.
    """
    if isinstance(value, bool):
        raise ValueError("gross_amount is not an amount")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("gross_amount must not be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("gross_amount is not an amount")
    whole, dot, fraction = value.partition(".")
    if not (whole.isascii() and whole.isdigit()):
        raise ValueError(f"gross_amount {value!r} is not a whole rupiah amount")
    if dot and not (fraction.isascii() and fraction.isdigit() and set(fraction) == {"0"}):
        raise ValueError(f"gross_amount {value!r} is not a whole rupiah amount")
    return int(whole)


def status_code_of(body: Mapping[str, Any]) -> int | None:
    """The body's ``status_code`` (a string on the wire) as an int, or ``None`` when absent or not numeric."""
    raw = body.get("status_code")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None


MIDTRANS_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # Midtrans times are Asia/Jakarta wall-clock time
JAKARTA = timezone(timedelta(hours=7))


def parse_midtrans_time(value: object) -> datetime | None:
    """``"2025-01-31 13:45:00"`` (Jakarta time) as an aware datetime; ``None`` when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, MIDTRANS_TIME_FORMAT).replace(tzinfo=JAKARTA)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    """The fields of a status answer (or notification) that billing acts on, typed and checked."""

    order_id: str
    status_code: str
    transaction_status: str
    fraud_status: str | None
    payment_type: str | None
    gross_amount_idr: int
    transaction_id: str | None
    transaction_time: datetime | None
    settlement_time: datetime | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TransactionStatus:
        """Raises ``ValueError`` when a field billing needs is missing or malformed."""
        order_id, status, code = body.get("order_id"), body.get("transaction_status"), body.get("status_code")
        if not isinstance(order_id, str) or not is_valid_order_id(order_id):
            raise ValueError("order_id is missing or invalid")
        if not isinstance(status, str) or not status:
            raise ValueError("transaction_status is missing")
        if status_code_of(body) is None:
            raise ValueError("status_code is missing")
        fraud, payment, tx_id = body.get("fraud_status"), body.get("payment_type"), body.get("transaction_id")
        return cls(
            order_id=order_id,
            status_code=str(code),
            transaction_status=status,
            fraud_status=fraud if isinstance(fraud, str) else None,
            payment_type=payment if isinstance(payment, str) else None,
            gross_amount_idr=parse_gross_amount(body.get("gross_amount")),
            transaction_id=tx_id if isinstance(tx_id, str) else None,
            transaction_time=parse_midtrans_time(body.get("transaction_time")),
            settlement_time=parse_midtrans_time(body.get("settlement_time")),
        )

    @property
    def paid_at(self) -> datetime | None:
        """When the money arrived: the settlement time, else the transaction (capture) time."""
        return self.settlement_time or self.transaction_time


def build_snap_request(*, order_id: str, gross_amount: int, item_details: Sequence[ItemDetail],
                       customer_email: str, customer_first_name: str | None = None,
                       enabled_payments: Sequence[str] = DEFAULT_ENABLED_PAYMENTS,
                       finish_url: str | None = None, expiry_minutes: int | None = None) -> dict[str, Any]:
    """The JSON body of a Snap create call; refuses what Midtrans would refuse, before sending it."""
    if not is_valid_order_id(order_id):
        raise ValueError(f"order_id must be 1..{ORDER_ID_MAX} characters of [A-Za-z0-9-_.~]")
    if gross_amount <= 0:
        raise ValueError("gross_amount must be positive")
    if sum(item["price"] * item["quantity"] for item in item_details) != gross_amount:
        raise ValueError("gross_amount must equal the sum of item_details price * quantity")
    customer: dict[str, str] = {"email": customer_email}
    customer["first_name"] = customer_first_name or customer_email.split("@", 1)[0]
    body: dict[str, Any] = {
        "transaction_details": {"order_id": order_id, "gross_amount": gross_amount},
        "item_details": [dict(item) for item in item_details],
        "customer_details": customer,
        "enabled_payments": list(enabled_payments),
    }
    if finish_url:
        body["callbacks"] = {"finish": finish_url}
    if expiry_minutes is not None:
        body["expiry"] = {"unit": "minutes", "duration": expiry_minutes}
    return body


def basic_authorization(server_key: str) -> str:
    """The ``Authorization`` header Midtrans wants: Basic, server key as user name, empty password."""
    return "Basic " + base64.b64encode(f"{server_key}:".encode()).decode("ascii")


def _error_messages(body: Any) -> list[str]:
    if isinstance(body, Mapping):
        messages = body.get("error_messages")
        if isinstance(messages, list):
            return [str(m) for m in messages]
        if isinstance(body.get("status_message"), str):
            return [body["status_message"]]
    return []


# --- the client ---------------------------------------------------------------------------------------------


class MidtransClient:
    """Snap create, Core API status and expire; authenticated with the server key (Basic, empty password)."""

    def __init__(self, session: aiohttp.ClientSession, *, server_key: str, snap_base_url: str,
                 api_base_url: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._session = session
        self._authorization = basic_authorization(server_key)
        self._snap_base = snap_base_url.rstrip("/")
        self._api_base = api_base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def create_snap_transaction(
        self, *, order_id: str, gross_amount: int, item_details: Sequence[ItemDetail], customer_email: str,
        customer_first_name: str | None = None, enabled_payments: Sequence[str] = DEFAULT_ENABLED_PAYMENTS,
        finish_url: str | None = None, expiry_minutes: int | None = None, idempotency_key: str | None = None,
        notification_url: str | None = None,
    ) -> SnapTransaction:
        """``POST {snap}/transactions``. ``idempotency_key`` makes a retry return the first answer;
        ``notification_url`` overrides the dashboard's webhook URL for this transaction."""
        body = build_snap_request(order_id=order_id, gross_amount=gross_amount, item_details=item_details,
                                  customer_email=customer_email, customer_first_name=customer_first_name,
                                  enabled_payments=enabled_payments, finish_url=finish_url,
                                  expiry_minutes=expiry_minutes)
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if notification_url is not None:
            headers["X-Override-Notification"] = notification_url
        answer = await self._request("POST", f"{self._snap_base}/transactions", body, headers)
        token, redirect_url = answer.get("token"), answer.get("redirect_url")
        if not isinstance(token, str) or not isinstance(redirect_url, str):
            raise MidtransError("Midtrans Snap answered without a token", http_status=200,
                                status_code=None, body=answer)
        return SnapTransaction(token=token, redirect_url=redirect_url)

    async def get_status(self, order_id: str) -> dict[str, Any]:
        """``GET {core}/v2/{order_id}/status``: the transaction as Midtrans knows it (the source of truth).

        An unknown order raises :class:`MidtransError` with ``not_found`` true; an expired one (407) answers.
        """
        if not is_valid_order_id(order_id):
            raise ValueError("invalid order_id")
        return await self._request("GET", f"{self._api_base}/v2/{order_id}/status", None, {})

    async def expire(self, order_id: str) -> dict[str, Any]:
        """``POST {core}/v2/{order_id}/expire``: a pending transaction can no longer be paid. Answers the
        transaction, now ``expire`` (status_code 407). Raises :class:`MidtransError`: ``not_found`` when the
        order is unknown (Snap: no payment method chosen yet), ``status_code`` 412 when it is no longer
        pending (paid, or closed already): then ask :meth:`get_status` what it is."""
        if not is_valid_order_id(order_id):
            raise ValueError("invalid order_id")
        return await self._request("POST", f"{self._api_base}/v2/{order_id}/expire", None, {})

    async def _request(self, method: str, url: str, body: dict[str, Any] | None,
                       headers: dict[str, str]) -> dict[str, Any]:
        send_headers = {"Accept": "application/json", "Authorization": self._authorization, **headers}
        data: bytes | None = None
        if body is not None:
            data = orjson.dumps(body)
            send_headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, url, data=data, headers=send_headers,
                                             timeout=self._timeout, raise_for_status=False) as response:
                raw = await response.read()
                http_status = response.status
        except TimeoutError as exc:
            raise MidtransUnavailable("Midtrans did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise MidtransUnavailable(f"Midtrans is unreachable ({type(exc).__name__})") from exc
        try:
            parsed: Any = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            parsed = None
        if http_status >= 500:
            raise MidtransUnavailable(f"Midtrans failed with HTTP {http_status}")
        if not isinstance(parsed, dict):
            if http_status >= 400:
                raise MidtransError(f"Midtrans refused the request (HTTP {http_status})",
                                    http_status=http_status, status_code=None)
            raise MidtransUnavailable("Midtrans answered with something that is not JSON")
        code = status_code_of(parsed)
        if code is not None and code >= 500:
            raise MidtransUnavailable(f"Midtrans failed with status_code {code}")
        if http_status >= 400 or (code is not None and code >= 400 and code != EXPIRED_STATUS_CODE):
            messages = _error_messages(parsed)
            detail = "; ".join(messages) or f"HTTP {http_status}"
            raise MidtransError(f"Midtrans refused the request: {detail}", http_status=http_status,
                                status_code=None if code is None else str(code), messages=messages,
                                body=parsed)
        return parsed
