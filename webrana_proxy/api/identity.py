"""Who is calling the management API: the bearer access token, checked against the live user row and sign-in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.alerts.banner import PENDING
from webrana_proxy.errors import Forbidden, Unauthorized
from webrana_proxy.state import POOL, TOKENS


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    role: str
    plan: str
    status: str
    created_at: datetime
    burst_per_minute_override: int | None = None
    monthly_requests_override: int | None = None
    # Read when the query selects them (``(email_verified_at IS NOT NULL OR role = 'admin') AS email_verified,
    # locale``); None: not read. Admins count as verified.
    email_verified: bool | None = None
    locale: str | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(row["id"], row["email"], row["role"], row["plan"], row["status"], row["created_at"],
                   row["burst_per_minute_override"], row["monthly_requests_override"],
                   row.get("email_verified"), row.get("locale"))

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": str(self.id), "email": self.email, "role": self.role, "plan": self.plan,
               "status": self.status, "created_at": self.created_at.isoformat()}
        if self.email_verified is not None:
            out["email_verified"] = self.email_verified
        if self.locale is not None:
            out["locale"] = self.locale
        return out


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <access_token>'",
                           code="missing_token")
    return token.strip()


# The user and, in the same read, whether the token's sign-in is still live: a family with no unrevoked row
# (logout, refresh-token reuse, a new password, a promotion) ends its access tokens too. One probe of
# refresh_tokens_live_family_idx; the user read was needed anyway (suspension, role), so no extra round trip.
# Likewise the user's undismissed alerts (one probe of alerts_pending_idx): the console's banner rides on it.
_SIGNED_IN_USER = """
    SELECT u.id, u.email, u.role, u.plan, u.status, u.created_at, u.burst_per_minute_override,
           u.monthly_requests_override, (u.email_verified_at IS NOT NULL OR u.role = 'admin') AS email_verified,
           u.locale,
           (SELECT json_agg(p)::text FROM (  -- alerts.banner: at most BANNER_ALERTS, newest first
                SELECT a.id, a.scope, a.percent, a.period, a.hard, k.name AS key_name, k.prefix AS key_prefix,
                       o.name AS team_name
                FROM alerts a LEFT JOIN proxy_api_keys k ON k.id = a.proxy_key_id
                     LEFT JOIN organisations o ON o.id = a.org_id
                WHERE a.user_id = u.id AND a.dismissed_at IS NULL
                ORDER BY a.created_at DESC, a.percent DESC LIMIT 5) p) AS pending_alerts,
           EXISTS (SELECT 1 FROM refresh_tokens r
                   WHERE r.family_id = $2 AND r.user_id = u.id AND r.revoked_at IS NULL) AS signed_in
    FROM users u WHERE u.id = $1"""


async def current_user(request: web.Request) -> User:
    claims = request.app[TOKENS].verify_access(bearer(request))
    row = await request.app[POOL].fetchrow(_SIGNED_IN_USER, claims.user_id, claims.family_id)
    if row is None:
        raise Unauthorized("account no longer exists", code="invalid_token")
    if not row["signed_in"]:
        raise Unauthorized("this sign-in has ended (signed out, or revoked for safety); sign in again",
                           code="session_revoked")
    user = User.from_row(row)
    if row["pending_alerts"]:
        request[PENDING] = row["pending_alerts"]  # the console's banner, on this answer (alerts.banner)
    if user.status != "active":
        raise Forbidden("account is suspended; contact support", code="account_suspended")
    return user


async def current_admin(request: web.Request) -> User:
    user = await current_user(request)
    if user.role != "admin":
        raise Forbidden("admin role required", code="admin_only")
    return user
