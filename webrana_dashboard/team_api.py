"""The proxy's team API (``/api/orgs``), as the console calls it: the caller's teams, and ``TeamApi``, every call
bound to one team's path (``/api/orgs/{org_id}/...``), where the API checks the caller's membership and role."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from urllib.parse import quote

import aiohttp

from webrana_dashboard.client import ApiClient, Credentials, Json


def _segment(value: str) -> str:
    """An id placed in a URL path, quoted so it can never become another path."""
    return quote(value, safe="")


async def my_teams(client: ApiClient, creds: Credentials) -> list[Json]:
    """The caller's teams with their role in each (``GET /api/orgs``)."""
    result: list[Json] = (await client.call(creds, "GET", "/api/orgs"))["data"]
    return result


async def create_team(client: ApiClient, creds: Credentials, name: str) -> Json:
    result: Json = await client.call(creds, "POST", "/api/orgs", body={"name": name})
    return result


async def accept_invitation(client: ApiClient, creds: Credentials, token: str) -> Json:
    result: Json = await client.call(creds, "POST", "/api/invitations/accept", body={"token": token})
    return result


class TeamApi:
    def __init__(self, client: ApiClient, creds: Credentials, org_id: str) -> None:
        self._client = client
        self._creds = creds
        self._base = f"/api/orgs/{_segment(org_id)}"

    async def _call(self, method: str, path: str = "", body: Json | None = None,
                    params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Json:
        result: Json = await self._client.call(self._creds, method, self._base + path, body=body, params=params,
                                               headers=headers)
        return result

    async def _data(self, path: str) -> list[Json]:
        result: list[Json] = (await self._call("GET", path))["data"]
        return result

    # --- the team, its members ------------------------------------------------------------------------------

    async def get(self) -> Json:
        """Name, the caller's role, owner and seats; 404 when the caller is not a member."""
        return await self._call("GET")

    async def rename(self, name: str) -> Json:
        """The owner renames the team."""
        return await self._call("PATCH", body={"name": name})

    async def delete(self) -> Json:
        """The owner deletes the team: its members lose it, its keys go, its running subscription goes back to the
        owner's own account (unless they run one of their own)."""
        return await self._call("DELETE")

    async def members(self) -> list[Json]:
        return await self._data("/members")

    async def change_role(self, user_id: str, role: str) -> Json:
        return await self._call("PATCH", f"/members/{_segment(user_id)}", {"role": role})

    async def remove(self, user_id: str) -> Json:
        return await self._call("DELETE", f"/members/{_segment(user_id)}")

    async def transfer(self, user_id: str) -> Json:
        return await self._call("POST", "/transfer", {"user_id": user_id})

    async def leave(self) -> Json:
        return await self._call("POST", "/leave")

    async def member_limits(self, user_id: str) -> Json:
        """A member's monthly request and spend limits in the team and this month's use (a member: their own)."""
        return await self._call("GET", f"/members/{_segment(user_id)}/limits")

    async def set_member_limits(self, user_id: str, requests: int | None, spend_idr: int | None) -> Json:
        return await self._call("PUT", f"/members/{_segment(user_id)}/limits",
                                {"monthly_request_limit": requests, "monthly_spend_limit_idr": spend_idr})

    # --- invitations ------------------------------------------------------------------------------------------

    async def invitations(self) -> list[Json]:
        return await self._data("/invitations")

    async def invite(self, email: str, role: str) -> Json:
        return await self._call("POST", "/invitations", {"email": email, "role": role})

    async def resend(self, invitation_id: str) -> Json:
        return await self._call("POST", f"/invitations/{_segment(invitation_id)}/resend")

    async def revoke(self, invitation_id: str) -> Json:
        return await self._call("DELETE", f"/invitations/{_segment(invitation_id)}")

    # --- the team's provider keys (managers) and proxy keys -------------------------------------------------

    async def provider_keys(self) -> list[Json]:
        return await self._data("/provider-keys")

    async def add_provider_key(self, provider: str, name: str, key: str) -> Json:
        return await self._call("POST", "/provider-keys", {"provider": provider, "name": name, "key": key})

    async def delete_provider_key(self, key_id: str) -> Json:
        return await self._call("DELETE", f"/provider-keys/{_segment(key_id)}")

    async def test_provider_key(self, key_id: str) -> Json:
        return await self._call("POST", f"/provider-keys/{_segment(key_id)}/test")

    async def proxy_keys(self) -> list[Json]:
        """The caller's own team keys; a manager's list holds every member's."""
        return await self._data("/proxy-keys")

    async def create_proxy_key(self, name: str, rules: Json | None = None) -> Json:
        return await self._call("POST", "/proxy-keys", {"name": name, **(rules or {})})

    async def update_proxy_key(self, key_id: str, changes: Json) -> Json:
        return await self._call("PATCH", f"/proxy-keys/{_segment(key_id)}", changes)

    async def revoke_proxy_key(self, key_id: str) -> Json:
        return await self._call("DELETE", f"/proxy-keys/{_segment(key_id)}")

    # --- usage ------------------------------------------------------------------------------------------------

    async def usage_summary(self, first: str, last: str) -> Json:
        """Totals, per day, provider, model, member and key; a member's own calls only (``scope`` says which)."""
        return await self._call("GET", "/usage/summary", params={"from": first, "to": last})

    async def usage_requests(self, params: Mapping[str, str]) -> Json:
        """A page of the request log, newest first; ``member`` filters for managers (a member gets their own)."""
        return await self._call("GET", "/usage/requests", params=dict(params))

    def usage_export(self, first: str, last: str) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """The CSV export (every member's rows for managers, a member's own), streamed as the API sends it."""
        return self._client.stream(self._creds, self._base + "/usage/export.csv", {"from": first, "to": last})

    # --- the team's billing (the owner's alone) ---------------------------------------------------------------

    async def subscription(self) -> Json:
        return await self._call("GET", "/billing/subscription")

    async def subscribe(self, plan: str, idempotency_key: str) -> Json:
        return await self._call("POST", "/billing/subscribe", {"plan": plan},
                                headers={"Idempotency-Key": idempotency_key})

    async def cancel(self) -> Json:
        return await self._call("POST", "/billing/cancel", {})

    async def invoices(self) -> list[Json]:
        return await self._data("/billing/invoices")

    async def invoice(self, invoice_id: str) -> Json:
        return await self._call("GET", f"/billing/invoices/{_segment(invoice_id)}")

    async def order(self, order_id: str) -> Json:
        return await self._call("GET", f"/billing/orders/{_segment(order_id)}")
