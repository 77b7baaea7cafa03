"""A small typed client of the proxy's management API (``/api``), over one shared ``aiohttp.ClientSession``.

Every call carries the browser's address in ``X-Forwarded-For`` so the proxy's per-IP limit counts each
visitor, not the console as one client. Signed-in calls get their bearer token from ``Credentials``, which
may refresh it once when the API answers 401 (see ``webrana_dashboard.credentials``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson

Json = dict[str, Any]
API_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)  # the API answers in milliseconds; 30 s means trouble
EXPORT_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_read=60)  # a long CSV streams for a while
META_TIMEOUT = aiohttp.ClientTimeout(total=3, connect=2)  # asked while rendering any page: never hold one up long
ERROR_BODY_LIMIT = 64 * 1024  # error bodies are small JSON; never read more
ALERTS_HEADER = "Webrana-Alerts"  # the proxy's answers to signed-in calls carry the user's undismissed alerts


class ApiError(Exception):
    """The API refused a call (4xx/5xx), with its OpenAI-shaped error fields."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(f"{status} {code or ''}: {message}")
        self.status = status
        self.message = message
        self.code = code
        self.param = param


class ApiUnavailable(ApiError):
    """The API could not be reached at all."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message, "api_unavailable")


class Credentials(Protocol):
    """Who is calling: the browser's address and, when signed in, a bearer token that can be refreshed."""

    @property
    def forwarded_for(self) -> str: ...

    async def access_token(self) -> str | None: ...

    async def refresh(self) -> bool:
        """Get a new access token after a 401; True when a retry makes sense."""
        ...

    def saw_alerts(self, alerts: list[Json]) -> None:
        """The user's undismissed alerts, carried by a signed-in answer (``Webrana-Alerts``)."""
        ...


class Anonymous:
    """A visitor who is not signed in (sign-up, sign-in, public plans)."""

    def __init__(self, forwarded_for: str) -> None:
        self._forwarded_for = forwarded_for

    @property
    def forwarded_for(self) -> str:
        return self._forwarded_for

    async def access_token(self) -> str | None:
        return None

    async def refresh(self) -> bool:
        return False

    def saw_alerts(self, alerts: list[Json]) -> None:
        return None


def _segment(value: str) -> str:
    """An id placed in a URL path, quoted so it can never become another path."""
    return quote(value, safe="")


def _alerts(header: str) -> list[Json]:
    """The ``Webrana-Alerts`` header's list; anything else is ignored (no banner rather than a broken page)."""
    try:
        value = orjson.loads(header)
    except orjson.JSONDecodeError:
        return []
    return [a for a in value if isinstance(a, dict) and isinstance(a.get("id"), str)] if isinstance(value, list) \
        else []


async def _error_from(resp: aiohttp.ClientResponse) -> ApiError:
    raw = await resp.content.read(ERROR_BODY_LIMIT)
    try:
        err = orjson.loads(raw).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        err = {}
    if not isinstance(err, dict):
        err = {}
    return ApiError(resp.status, str(err.get("message") or resp.reason or "error"), err.get("code"),
                    err.get("param"))


class ApiClient:
    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")

    async def _headers(self, creds: Credentials, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"X-Forwarded-For": creds.forwarded_for, "Accept": "application/json"}
        token = await creds.access_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(extra or {})
        return headers

    async def call(self, creds: Credentials, method: str, path: str, *, body: Json | None = None,
                   params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                   time_limit: aiohttp.ClientTimeout = API_TIMEOUT) -> Any:
        """One JSON call; a 401 on a signed-in call refreshes the token once and retries."""
        for attempt in (1, 2):
            sent = await self._headers(creds, headers)
            data = orjson.dumps(body) if body is not None else None
            if data is not None:
                sent["Content-Type"] = "application/json"
            try:
                async with self.http.request(method, self.base_url + path, data=data, params=params,
                                             headers=sent, timeout=time_limit) as resp:
                    if ALERTS_HEADER in resp.headers:
                        creds.saw_alerts(_alerts(resp.headers[ALERTS_HEADER]))
                    if resp.status == 204:  # a DELETE that answers nothing
                        return None
                    if resp.status < 400:
                        return orjson.loads(await resp.read())
                    err = await _error_from(resp)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApiUnavailable(f"the Webrana API is unreachable ({type(exc).__name__})") from None
            if (err.status == 401 and attempt == 1 and "Authorization" in sent
                    and await creds.refresh()):
                continue
            raise err
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def stream(self, creds: Credentials, path: str,
                     params: Mapping[str, str]) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose body is relayed as it arrives (the CSV export)."""
        for attempt in (1, 2):
            sent = await self._headers(creds, {"Accept": "text/csv"})
            try:
                resp = await self.http.get(self.base_url + path, params=params, headers=sent,
                                           timeout=EXPORT_TIMEOUT)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApiUnavailable(f"the Webrana API is unreachable ({type(exc).__name__})") from None
            try:
                if resp.status >= 400:
                    err = await _error_from(resp)
                    if err.status == 401 and attempt == 1 and await creds.refresh():
                        continue
                    raise err
                yield resp
                return
            finally:
                resp.release()

    # --- auth ----------------------------------------------------------------------------------------------

    async def register(self, creds: Credentials, email: str, password: str, locale: str | None = None) -> Json:
        body = {"email": email, "password": password, **({"locale": locale} if locale else {})}
        result: Json = await self.call(creds, "POST", "/api/auth/register", body=body)
        return result

    async def login(self, creds: Credentials, email: str, password: str) -> Json:
        result: Json = await self.call(creds, "POST", "/api/auth/login", body={"email": email, "password": password})
        return result

    async def refresh_tokens(self, creds: Credentials, refresh_token: str) -> Json:
        result: Json = await self.call(creds, "POST", "/api/auth/refresh", body={"refresh_token": refresh_token})
        return result

    async def logout(self, creds: Credentials, refresh_token: str) -> None:
        await self.call(creds, "POST", "/api/auth/logout", body={"refresh_token": refresh_token})

    # --- e-mail: verification, password reset, the e-mails' language ------------------------------------

    async def verify_email(self, creds: Credentials, token: str) -> Json:
        result: Json = await self.call(creds, "POST", "/api/auth/verify-email", body={"token": token})
        return result

    async def resend_verification(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "POST", "/api/auth/verify-email/resend", body={})
        return result

    async def forgot_password(self, creds: Credentials, email: str) -> None:
        await self.call(creds, "POST", "/api/auth/password/forgot", body={"email": email})

    async def reset_password(self, creds: Credentials, token: str, password: str) -> None:
        await self.call(creds, "POST", "/api/auth/password/reset", body={"token": token, "password": password})

    async def set_locale(self, creds: Credentials, locale: str) -> None:
        await self.call(creds, "PUT", "/api/auth/locale", body={"locale": locale})

    # --- what pages show -------------------------------------------------------------------------------

    async def meta(self, creds: Credentials) -> Json:
        """The deployment's facts (API version, demo flag); public and small."""
        result: Json = await self.call(creds, "GET", "/api/meta", time_limit=META_TIMEOUT)
        return result

    async def overview(self, creds: Credentials) -> Json:
        """Everything the overview page shows, in one call."""
        result: Json = await self.call(creds, "GET", "/api/overview")
        return result

    # --- provider keys ----------------------------------------------------------------------------------

    async def provider_keys(self, creds: Credentials) -> list[Json]:
        result: list[Json] = (await self.call(creds, "GET", "/api/provider-keys"))["data"]
        return result

    async def add_provider_key(self, creds: Credentials, provider: str, name: str, key: str) -> Json:
        result: Json = await self.call(creds, "POST", "/api/provider-keys",
                                       body={"provider": provider, "name": name, "key": key})
        return result

    async def delete_provider_key(self, creds: Credentials, key_id: str) -> None:
        await self.call(creds, "DELETE", f"/api/provider-keys/{_segment(key_id)}")

    async def test_provider_key(self, creds: Credentials, key_id: str) -> Json:
        result: Json = await self.call(creds, "POST", f"/api/provider-keys/{_segment(key_id)}/test")
        return result

    # --- aliases ----------------------------------------------------------------------------------------

    async def aliases(self, creds: Credentials) -> list[Json]:
        result: list[Json] = (await self.call(creds, "GET", "/api/aliases"))["data"]
        return result

    async def alias(self, creds: Credentials, alias_id: str) -> Json:
        result: Json = await self.call(creds, "GET", f"/api/aliases/{_segment(alias_id)}")
        return result

    async def save_alias(self, creds: Credentials, alias_id: str | None, name: str, hops: list[Json]) -> Json:
        """Create (``alias_id`` None) or replace an alias."""
        body = {"name": name, "hops": hops}
        if alias_id is None:
            result: Json = await self.call(creds, "POST", "/api/aliases", body=body)
        else:
            result = await self.call(creds, "PUT", f"/api/aliases/{_segment(alias_id)}", body=body)
        return result

    async def delete_alias(self, creds: Credentials, alias_id: str) -> None:
        await self.call(creds, "DELETE", f"/api/aliases/{_segment(alias_id)}")

    # --- proxy keys -------------------------------------------------------------------------------------

    async def proxy_keys(self, creds: Credentials) -> list[Json]:
        result: list[Json] = (await self.call(creds, "GET", "/api/proxy-keys"))["data"]
        return result

    async def create_proxy_key(self, creds: Credentials, name: str, rules: Json | None = None) -> Json:
        result: Json = await self.call(creds, "POST", "/api/proxy-keys", body={"name": name, **(rules or {})})
        return result

    async def update_proxy_key(self, creds: Credentials, key_id: str, changes: Json) -> Json:
        """Change a key's name or rules (only the fields given; None clears a rule)."""
        result: Json = await self.call(creds, "PATCH", f"/api/proxy-keys/{_segment(key_id)}", body=changes)
        return result

    # --- alerts and the webhook ------------------------------------------------------------------------

    async def dismiss_alert(self, creds: Credentials, alert_id: str) -> None:
        await self.call(creds, "POST", f"/api/alerts/{_segment(alert_id)}/dismiss")

    async def webhook(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "GET", "/api/webhook")
        return result

    async def set_webhook(self, creds: Credentials, url: str, rotate_secret: bool = False) -> Json:
        result: Json = await self.call(creds, "PUT", "/api/webhook", body={"url": url, "rotate_secret": rotate_secret})
        return result

    async def delete_webhook(self, creds: Credentials) -> None:
        await self.call(creds, "DELETE", "/api/webhook")

    async def test_webhook(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "POST", "/api/webhook/test")
        return result

    async def spend_cap(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "GET", "/api/account/spend-cap")
        return result

    async def set_spend_cap(self, creds: Credentials, cap_idr: int | None, hard: bool) -> Json:
        result: Json = await self.call(creds, "PUT", "/api/account/spend-cap",
                                       body={"spend_cap_idr": cap_idr, "hard": hard})
        return result

    async def revoke_proxy_key(self, creds: Credentials, key_id: str) -> None:
        await self.call(creds, "DELETE", f"/api/proxy-keys/{_segment(key_id)}")

    # --- usage ------------------------------------------------------------------------------------------

    async def usage_summary(self, creds: Credentials, first: str, last: str) -> Json:
        result: Json = await self.call(creds, "GET", "/api/usage/summary", params={"from": first, "to": last})
        return result

    async def usage_requests(self, creds: Credentials, params: Mapping[str, str]) -> Json:
        result: Json = await self.call(creds, "GET", "/api/usage/requests", params=params)
        return result

    def usage_export(self, creds: Credentials, first: str,
                     last: str) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        return self.stream(creds, "/api/usage/export.csv", {"from": first, "to": last})

    # --- plans and billing ------------------------------------------------------------------------------

    async def plans(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "GET", "/api/plans")
        return result

    async def subscription(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "GET", "/api/billing/subscription")
        return result

    async def subscribe(self, creds: Credentials, plan: str, idempotency_key: str) -> Json:
        result: Json = await self.call(creds, "POST", "/api/billing/subscribe", body={"plan": plan},
                                       headers={"Idempotency-Key": idempotency_key})
        return result

    async def cancel(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "POST", "/api/billing/cancel", body={})
        return result

    async def invoices(self, creds: Credentials) -> list[Json]:
        result: list[Json] = (await self.call(creds, "GET", "/api/billing/invoices"))["data"]
        return result

    async def invoice(self, creds: Credentials, invoice_id: str) -> Json:
        result: Json = await self.call(creds, "GET", f"/api/billing/invoices/{_segment(invoice_id)}")
        return result

    async def order(self, creds: Credentials, order_id: str) -> Json:
        result: Json = await self.call(creds, "GET", f"/api/billing/orders/{_segment(order_id)}")
        return result

    # --- admin ------------------------------------------------------------------------------------------

    async def admin_stats(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "GET", "/api/admin/stats")
        return result

    async def admin_users(self, creds: Credentials, q: str, page: int, per_page: int) -> Json:
        params = {"page": str(page), "per_page": str(per_page)}
        if q:
            params["q"] = q
        result: Json = await self.call(creds, "GET", "/api/admin/users", params=params)
        return result

    async def admin_set_status(self, creds: Credentials, user_id: str, suspend: bool) -> Json:
        action = "suspend" if suspend else "unsuspend"
        result: Json = await self.call(creds, "POST", f"/api/admin/users/{_segment(user_id)}/{action}", body={})
        return result

    async def admin_set_plan(self, creds: Credentials, user_id: str, plan: str) -> Json:
        result: Json = await self.call(creds, "PUT", f"/api/admin/users/{_segment(user_id)}/plan",
                                       body={"plan": plan})
        return result

    async def admin_set_spend_cap(self, creds: Credentials, user_id: str, cap_idr: int | None, hard: bool) -> Json:
        result: Json = await self.call(creds, "PUT", f"/api/admin/users/{_segment(user_id)}/spend-cap",
                                       body={"spend_cap_idr": cap_idr, "hard": hard})
        return result

    async def admin_audit_log(self, creds: Credentials, page: int, per_page: int) -> Json:
        result: Json = await self.call(creds, "GET", "/api/admin/audit-log",
                                       params={"page": str(page), "per_page": str(per_page)})
        return result

    async def admin_invoices(self, creds: Credentials, status: str, page: int, per_page: int) -> Json:
        result: Json = await self.call(creds, "GET", "/api/admin/invoices",
                                       params={"status": status, "page": str(page), "per_page": str(per_page)})
        return result

    async def admin_mark_refunded(self, creds: Credentials, invoice_id: str, note: str) -> Json:
        result: Json = await self.call(creds, "POST", f"/api/admin/invoices/{_segment(invoice_id)}/refunded",
                                       body={"note": note or None})
        return result

    # --- prices -----------------------------------------------------------------------------------------

    async def prices(self, creds: Credentials) -> Json:
        """The current models with their prices and context windows, and where the price data came from."""
        result: Json = await self.call(creds, "GET", "/api/prices")
        return result

    async def admin_prices(self, creds: Credentials) -> Json:
        result: Json = await self.call(creds, "GET", "/api/admin/prices")
        return result

    async def admin_create_price(self, creds: Credentials, body: Json) -> Json:
        result: Json = await self.call(creds, "POST", "/api/admin/prices", body=body)
        return result

    async def admin_update_price(self, creds: Credentials, price_id: str, body: Json) -> Json:
        result: Json = await self.call(creds, "PUT", f"/api/admin/prices/{_segment(price_id)}", body=body)
        return result

    async def admin_delete_price(self, creds: Credentials, price_id: str) -> None:
        await self.call(creds, "DELETE", f"/api/admin/prices/{_segment(price_id)}")
