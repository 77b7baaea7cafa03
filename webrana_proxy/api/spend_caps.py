"""/api/account/spend-cap: the account's monthly spend cap in whole rupiah (Asia/Jakarta months), set by the user.
Hard: calls stop when it is reached (429, ``x-should-retry: false``); soft: calls go on, only alerts fire. Admins
set it for any user through ``/api/admin/users/{id}/spend-cap`` (``set_user_cap`` here, audited there)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from webrana_proxy.api.identity import current_user
from webrana_proxy.db import Conn
from webrana_proxy.errors import NotFound, ValidationFailed
from webrana_proxy.gateway.runtime import GATEWAY
from webrana_proxy.jsonio import json_response, opt_int, read_json
from webrana_proxy.keyrules import MAX_CAP_IDR, MICRO_PER_IDR
from webrana_proxy.limits import user_counter
from webrana_proxy.spend import SPEND
from webrana_proxy.state import KEYCACHE, POOL, SETTINGS

routes = web.RouteTableDef()


def read_cap(body: dict[str, Any]) -> tuple[int | None, bool]:
    """``{"spend_cap_idr": int | null, "hard": bool}`` (hard by default)."""
    cap = opt_int(body, "spend_cap_idr", minimum=1, maximum=MAX_CAP_IDR)
    hard = body.get("hard", True)
    if not isinstance(hard, bool):
        raise ValidationFailed("'hard' must be true (calls stop at the cap) or false (alerts only)", param="hard",
                               code="invalid_type")
    return cap, hard


async def set_user_cap(conn: Conn, user_id: uuid.UUID, cap: int | None, hard: bool) -> tuple[int | None, bool]:
    """Store the cap; returns the one it replaced (the caller publishes the change with ``cap_changed``)."""
    before = await conn.fetchrow("SELECT spend_cap_idr, spend_cap_hard FROM users WHERE id = $1 FOR UPDATE",
                                 user_id)
    if before is None:
        raise NotFound("user not found")
    await conn.execute("UPDATE users SET spend_cap_idr = $2, spend_cap_hard = $3 WHERE id = $1", user_id, cap, hard)
    return before["spend_cap_idr"], before["spend_cap_hard"]


async def cap_changed(app: web.Application, user_id: uuid.UUID, *, was_capped: bool) -> None:
    """After the commit: every replica reloads the account's keys within a second. An account that had no cap had
    no counter kept up to date (increments skip it), so it is rebuilt from PostgreSQL at the next call; one that
    had a cap keeps its counter, which already holds the calls PostgreSQL does not have yet."""
    if not was_capped:
        month, _ = app[GATEWAY].months.at(time.time())
        await app[SPEND].forget([user_counter(user_id, month)])
    await app[KEYCACHE].invalidate_user(user_id)


async def cap_view(app: web.Application, user_id: uuid.UUID, cap: int | None, hard: bool) -> dict[str, Any]:
    month, ttl = app[GATEWAY].months.at(time.time())
    spent = await app[SPEND].user_spend(user_id, month, ttl, capped=cap is not None)
    return {"spend_cap_idr": cap, "hard": hard, "month": month, "timezone": "Asia/Jakarta",
            "spent_this_month_idr_micro": spent,
            "percent": (spent * 100 // (cap * MICRO_PER_IDR)) if cap else None}


@routes.get("/api/account/spend-cap")
async def get_cap(request: web.Request) -> web.Response:
    user = await current_user(request)
    row = await request.app[POOL].fetchrow("SELECT spend_cap_idr, spend_cap_hard FROM users WHERE id = $1", user.id)
    assert row is not None
    return json_response(await cap_view(request.app, user.id, row["spend_cap_idr"], row["spend_cap_hard"]))


@routes.put("/api/account/spend-cap")
async def put_cap(request: web.Request) -> web.Response:
    user = await current_user(request)
    cap, hard = read_cap(await read_json(request, request.app[SETTINGS].api_body_limit))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before_cap, _ = await set_user_cap(conn, user.id, cap, hard)
    await cap_changed(request.app, user.id, was_capped=before_cap is not None)
    return json_response(await cap_view(request.app, user.id, cap, hard))
