"""Who is calling the management API: the bearer access token, checked against the live user row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

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

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(row["id"], row["email"], row["role"], row["plan"], row["status"], row["created_at"],
                   row["burst_per_minute_override"], row["monthly_requests_override"])

    def public(self) -> dict[str, Any]:
        return {"id": str(self.id), "email": self.email, "role": self.role, "plan": self.plan,
                "status": self.status, "created_at": self.created_at.isoformat()}


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <access_token>'",
                           code="missing_token")
    return token.strip()


async def load_user(pool: asyncpg.Pool, user_id: uuid.UUID) -> User | None:
    row = await pool.fetchrow(
        """SELECT id, email, role, plan, status, created_at, burst_per_minute_override, monthly_requests_override
           FROM users WHERE id = $1""", user_id)
    return User.from_row(row) if row else None


async def current_user(request: web.Request) -> User:
    claims = request.app[TOKENS].verify_access(bearer(request))
    user = await load_user(request.app[POOL], claims.user_id)
    if user is None:
        raise Unauthorized("account no longer exists", code="invalid_token")
    if user.status != "active":
        raise Forbidden("account is suspended; contact support", code="account_suspended")
    return user


async def current_admin(request: web.Request) -> User:
    user = await current_user(request)
    if user.role != "admin":
        raise Forbidden("admin role required", code="admin_only")
    return user
