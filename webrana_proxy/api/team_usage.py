"""/api/orgs/{org_id}/usage: a team's usage, the personal usage API (api/usage.py) bound to the team's workspace.

Who sees what is decided by ``workspaces.authorize`` and ``Workspace.scope("usage.all")``: the owner and managers
see every member's calls in the team, a member only their own calls in it (never anyone's personal usage).

- ``GET .../usage/summary``: the personal summary (totals, per day, provider and model, from ``usage_daily``) plus
  ``by_member`` (user id, e-mail, role; from the roll-up too) and ``by_key`` (the team proxy key; from the raw rows
  of the range, on ``proxy_requests_org_time_idx``: the roll-up has no key column).
- ``GET .../usage/requests``: the request log, newest first, with the same filters and cursor as the personal one
  plus ``member`` (a user id; managers only, a member always gets their own rows); each row names its member and
  key. One index range on ``proxy_requests_org_time_idx`` (the team) or ``proxy_requests_org_user_time_idx`` (one
  member, sql/0016).
- ``GET .../usage/export.csv``: the CSV export with ``member_email``, ``member_id`` and ``proxy_key_id`` columns,
  read and streamed like the personal one (keyset pages, no connection held while the client reads).

Every statement is one complete SQL literal; ``$2`` is the member the caller is bound to, or NULL for the team.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.api.usage import (
    ANY_STATUS,
    CSV_FIELDS,
    EXPORT_CHUNK,
    EXPORT_WRITE_TIMEOUT,
    DayRange,
    _filter,
    _metrics,
    build_summary,
    csv_chunk,
    csv_value,
    decode_cursor,
    encode_cursor,
    idr,
    jakarta_today,
    parse_limit,
    parse_open_range,
    parse_range,
    parse_status,
    request_json,
)
from webrana_proxy.errors import ValidationFailed
from webrana_proxy.jsonio import json_response
from webrana_proxy.state import POOL
from webrana_proxy.usage import UNBILLED_ENDPOINTS
from webrana_proxy.workspaces import Workspace, authorize

log = logging.getLogger("webrana.api.team_usage")
routes = web.RouteTableDef()
READ, ALL = "usage.read", "usage.all"
TEAM_CSV_FIELDS = (CSV_FIELDS[0], "member_email", "member_id", "proxy_key_id", *CSV_FIELDS[1:])

# The personal SUMMARY_SQL for a team ($1), all members or one ($2), over [$3, $4], with a per-member set. GROUPING
# (day, provider, model) is the personal summary's g; gu = 0 marks the per-member rows.
SUMMARY_SQL = """
SELECT GROUPING(day, provider, model) AS g, GROUPING(user_id) AS gu, day, provider, model, user_id,
       COALESCE(sum(requests), 0)::bigint AS requests, COALESCE(sum(errors), 0)::bigint AS errors,
       COALESCE(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0)::bigint AS completion_tokens,
       COALESCE(sum(total_tokens), 0)::bigint AS total_tokens,
       COALESCE(sum(cached_tokens), 0)::bigint AS cached_tokens,
       COALESCE(sum(cache_write_tokens), 0)::bigint AS cache_write_tokens,
       COALESCE(sum(reasoning_tokens), 0)::bigint AS reasoning_tokens,
       COALESCE(sum(cost_idr::numeric * 1000000 + cost_idr_micro), 0)::bigint AS cost_idr_micro,
       COALESCE(sum(cost_usd_nano), 0)::bigint AS cost_usd_nano,
       COALESCE(sum(fallback_requests), 0)::bigint AS fallback_requests
FROM usage_daily
WHERE org_id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND day BETWEEN $3 AND $4
GROUP BY GROUPING SETS ((day), (provider), (provider, model), (user_id), ())
"""

# Who the members are: every current member (so one who made no call shows with zeros) and everyone with calls in
# the range (a member who left keeps their e-mail, role NULL). $3 the user ids seen in the roll-up.
MEMBERS_SQL = """
SELECT u.id AS user_id, u.email, m.role
FROM users u LEFT JOIN org_members m ON m.org_id = $1 AND m.user_id = u.id
WHERE (m.org_id IS NOT NULL OR u.id = ANY($3::uuid[])) AND ($2::uuid IS NULL OR u.id = $2)
"""

# Per team proxy key, counted like the roll-up (failed attempts and unbilled endpoints are no request); the key's
# name and prefix (NULL: a key deleted since).
BY_KEY_SQL = """
SELECT r.proxy_key_id, k.name, k.prefix, k.user_id AS key_user_id,
       count(*) FILTER (WHERE NOT r.failed_attempt AND r.endpoint <> ALL($5::text[]))::bigint AS requests,
       count(*) FILTER (WHERE NOT r.failed_attempt AND r.status >= 400)::bigint AS errors,
       COALESCE(sum(r.total_tokens) FILTER (WHERE NOT r.failed_attempt), 0)::bigint AS total_tokens,
       COALESCE(sum(r.cost_idr::bigint * 1000000 + r.cost_idr_micro) FILTER (WHERE NOT r.failed_attempt),
                0)::bigint AS cost_idr_micro,
       COALESCE(sum(r.cost_usd_nano) FILTER (WHERE NOT r.failed_attempt), 0)::bigint AS cost_usd_nano
FROM proxy_requests r LEFT JOIN proxy_api_keys k ON k.id = r.proxy_key_id
WHERE r.org_id = $1 AND ($2::uuid IS NULL OR r.user_id = $2) AND r.created_at >= $3 AND r.created_at < $4
GROUP BY r.proxy_key_id, k.name, k.prefix, k.user_id
"""

# One page of the whole team's log: the personal PAGE_SQL on (org_id, created_at DESC, id DESC). $1 team, [$2, $3)
# the instants, ($4, $5) the cursor, $6 provider, [$7, $8] status codes, $9 limit, $10 model (NULL = any).
TEAM_PAGE_SQL = """
SELECT r.id, r.request_id, r.created_at, r.provider, r.model, r.endpoint, r.stream, r.status, r.prompt_tokens,
       r.completion_tokens, r.total_tokens, r.cached_tokens, r.cache_write_tokens, r.reasoning_tokens,
       r.tokens_estimated, r.cost_idr::bigint * 1000000 + r.cost_idr_micro AS cost_idr_micro, r.cost_usd_nano,
       r.usd_to_idr, r.price_source, r.price_version, r.latency_ms, r.ttfb_ms, r.error_type,
       r.user_id AS member_id, u.email AS member_email, r.proxy_key_id
FROM proxy_requests r LEFT JOIN users u ON u.id = r.user_id
WHERE r.org_id = $1
  AND r.created_at >= COALESCE($2::timestamptz, '-infinity')
  AND r.created_at < COALESCE($3::timestamptz, 'infinity')
  AND (r.created_at, r.id) < (COALESCE($4::timestamptz, 'infinity'),
                              COALESCE($5::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
  AND ($6::text IS NULL OR r.provider = $6)
  AND r.status BETWEEN $7 AND $8
  AND ($10::text IS NULL OR r.model = $10)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $9
"""

# The same page for one member ($11), on proxy_requests_org_user_time_idx (sql/0016).
MEMBER_PAGE_SQL = """
SELECT r.id, r.request_id, r.created_at, r.provider, r.model, r.endpoint, r.stream, r.status, r.prompt_tokens,
       r.completion_tokens, r.total_tokens, r.cached_tokens, r.cache_write_tokens, r.reasoning_tokens,
       r.tokens_estimated, r.cost_idr::bigint * 1000000 + r.cost_idr_micro AS cost_idr_micro, r.cost_usd_nano,
       r.usd_to_idr, r.price_source, r.price_version, r.latency_ms, r.ttfb_ms, r.error_type,
       r.user_id AS member_id, u.email AS member_email, r.proxy_key_id
FROM proxy_requests r LEFT JOIN users u ON u.id = r.user_id
WHERE r.org_id = $1 AND r.user_id = $11
  AND r.created_at >= COALESCE($2::timestamptz, '-infinity')
  AND r.created_at < COALESCE($3::timestamptz, 'infinity')
  AND (r.created_at, r.id) < (COALESCE($4::timestamptz, 'infinity'),
                              COALESCE($5::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
  AND ($6::text IS NULL OR r.provider = $6)
  AND r.status BETWEEN $7 AND $8
  AND ($10::text IS NULL OR r.model = $10)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $9
"""

# One export page, oldest first: $1 team, $2 member or NULL, [$3, $4), after ($5, $6), at most $7 rows.
EXPORT_SQL = """
SELECT r.id, r.request_id, r.created_at, r.provider, r.model, r.endpoint, r.stream, r.status, r.prompt_tokens,
       r.completion_tokens, r.total_tokens, r.cached_tokens, r.cache_write_tokens, r.reasoning_tokens,
       r.tokens_estimated, r.cost_idr::bigint * 1000000 + r.cost_idr_micro AS cost_idr_micro, r.cost_usd_nano,
       r.usd_to_idr, r.price_source, r.price_version, r.latency_ms, r.ttfb_ms, r.error_type,
       r.user_id AS member_id, u.email AS member_email, r.proxy_key_id
FROM proxy_requests r LEFT JOIN users u ON u.id = r.user_id
WHERE r.org_id = $1 AND ($2::uuid IS NULL OR r.user_id = $2) AND r.created_at >= $3 AND r.created_at < $4
  AND (r.created_at, r.id) > (COALESCE($5::timestamptz, '-infinity'),
                              COALESCE($6::uuid, '00000000-0000-0000-0000-000000000000'))
ORDER BY r.created_at, r.id
LIMIT $7"""


def _member_filter(ws: Workspace, query: Mapping[str, str]) -> uuid.UUID | None:
    """The member the rows are limited to: the caller, when they may not see everyone; else ``member=`` or None."""
    _, bound = ws.scope(ALL)
    if bound is not None:
        return bound
    raw = query.get("member", "").strip()
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed("'member' must be a member's user id", param="member") from None


def _rank(entry: dict[str, Any]) -> tuple[int, int, str]:
    return (-entry["requests"], -entry["cost_idr_micro"], entry.get("email") or entry.get("id") or "")


def _row_json(row: Mapping[str, Any]) -> dict[str, Any]:
    out = request_json(row)
    out["member"] = {"user_id": str(row["member_id"]), "email": row["member_email"]}
    out["proxy_key_id"] = str(row["proxy_key_id"]) if row["proxy_key_id"] is not None else None
    return out


@routes.get("/api/orgs/{org_id}/usage/summary")
async def summary(request: web.Request) -> web.Response:
    ws = await authorize(request, READ)
    org_id, member = ws.scope(ALL)
    rng: DayRange = parse_range(request.query, jakarta_today())
    pool = request.app[POOL]
    rows = await pool.fetch(SUMMARY_SQL, org_id, member, rng.first, rng.last)
    per_member = {r["user_id"]: r for r in rows if r["gu"] == 0}
    out = build_summary(rng, (r for r in rows if r["gu"] == 1))
    people = await pool.fetch(MEMBERS_SQL, org_id, member, list(per_member))
    out["by_member"] = sorted(({"user_id": str(p["user_id"]), "email": p["email"], "role": p["role"],
                                **_metrics(per_member.get(p["user_id"]))} for p in people), key=_rank)
    start, end = rng.bounds()
    keys = await pool.fetch(BY_KEY_SQL, org_id, member, start, end, list(UNBILLED_ENDPOINTS))
    out["by_key"] = sorted((
        {"id": str(k["proxy_key_id"]) if k["proxy_key_id"] is not None else None, "name": k["name"],
         "prefix": k["prefix"], "user_id": str(k["key_user_id"]) if k["key_user_id"] is not None else None,
         **{m: int(k[m]) for m in ("requests", "errors", "total_tokens", "cost_idr_micro", "cost_usd_nano")},
         "cost_idr": idr(int(k["cost_idr_micro"]))} for k in keys), key=_rank)
    out["scope"] = "team" if member is None else "own"
    return json_response(out)


@routes.get("/api/orgs/{org_id}/usage/requests")
async def list_requests(request: web.Request) -> web.Response:
    ws = await authorize(request, READ)
    q = request.query
    member = _member_filter(ws, q)
    start, end = parse_open_range(q)
    model, provider = _filter(q, "model"), _filter(q, "provider")
    status = parse_status(q.get("status", "")) or ANY_STATUS
    raw_cursor = q.get("cursor", "").strip()
    cursor_at, cursor_id = decode_cursor(raw_cursor) if raw_cursor else (None, None)
    limit = parse_limit(q)
    args: list[Any] = [ws.org_id, start, end, cursor_at, cursor_id, provider, status.low, status.high, limit + 1,
                       model]
    if member is None:
        rows = await request.app[POOL].fetch(TEAM_PAGE_SQL, *args)
    else:
        rows = await request.app[POOL].fetch(MEMBER_PAGE_SQL, *args, member)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if len(rows) > limit else None
    return json_response({"data": [_row_json(r) for r in page], "next_cursor": next_cursor})


async def export_pages(pool: asyncpg.Pool, org_id: uuid.UUID, member: uuid.UUID | None, start: datetime,
                       end: datetime, page: int = EXPORT_CHUNK) -> AsyncGenerator[list[asyncpg.Record], None]:
    """api/usage.export_pages for a team: one query per page on a connection taken for it alone."""
    after: tuple[datetime | None, uuid.UUID | None] = (None, None)
    while True:
        rows = await pool.fetch(EXPORT_SQL, org_id, member, start, end, *after, page)
        yield rows
        if len(rows) < page:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])


@routes.get("/api/orgs/{org_id}/usage/export.csv")
async def export_csv(request: web.Request) -> web.StreamResponse:
    """Streamed exactly like api/usage.export_csv (see its comments): errors before the first byte are ordinary
    answers; after it, a failure cuts the download (an incomplete chunked body, never a short file)."""
    ws = await authorize(request, READ)
    org_id, member = ws.scope(ALL)
    assert org_id is not None
    rng = parse_range(request.query, jakarta_today())
    start, end = rng.bounds()
    end = min(end, datetime.now(UTC))
    filename = f"webrana-team-usage-{rng.first.isoformat()}-{rng.last.isoformat()}.csv"
    resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                       "Content-Disposition": f'attachment; filename="{filename}"',
                                       "Cache-Control": "no-store"})
    resp.enable_chunked_encoding()
    pages = export_pages(request.app[POOL], org_id, member, start, end)
    try:
        rows = await anext(pages)
        await resp.prepare(request)
        async with asyncio.timeout(EXPORT_WRITE_TIMEOUT):
            await resp.write(csv_chunk([TEAM_CSV_FIELDS]))
        while rows:
            async with asyncio.timeout(EXPORT_WRITE_TIMEOUT):
                await resp.write(csv_chunk([csv_value(r, name) for name in TEAM_CSV_FIELDS] for r in rows))
            rows = await anext(pages, [])
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        if not resp.prepared:
            raise
        log.warning("team usage export stopped early", extra={"org_id": str(org_id), "error": type(exc).__name__})
        if request.transport is not None:
            request.transport.close()
        return resp
    finally:
        await pages.aclose()
    await resp.write_eof()
    return resp

