"""/api/usage: a user's own usage, for the console and for their scripts (JWT).

- ``GET /api/usage/summary``: totals and per-day / per-provider / per-model sums, read from the daily roll-up
  ``usage_daily`` only (never the raw rows), so it costs the same with ten rows or ten million.
- ``GET /api/usage/requests``: the raw rows, newest first, keyset-paginated on
  ``proxy_requests_user_time_idx (user_id, created_at DESC, id DESC)`` with an opaque cursor (on
  ``proxy_requests_user_model_time_idx (user_id, model, created_at DESC, id DESC)`` when filtered by model).
- ``GET /api/usage/export.csv``: the raw rows as CSV, oldest first, read in keyset pages of ``EXPORT_CHUNK`` rows,
  each on a pool connection taken for that one query and given back before the page is written, so a download
  holds no connection while the client reads (however slowly). The file is every row of the range created before
  the export started (that instant caps the range), each exactly once, in ``(created_at, id)`` order; a row that
  is committed while the download runs (the usage writer is about a second behind the calls) is in it only if its
  position is still ahead of the export's.

Days are Asia/Jakarta days (UTC+7, no daylight saving). Every query is bound to the caller's personal workspace
(``user_id`` and ``org_id IS NULL``: calls made with team keys belong to the team's workspace).
Every statement is one complete SQL literal; optional filters are parameters that may be NULL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import logging
import re
import uuid
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from webrana_proxy.api.identity import current_user
from webrana_proxy.errors import ValidationFailed
from webrana_proxy.jsonio import json_response
from webrana_proxy.state import POOL
from webrana_proxy.usage import JAKARTA

log = logging.getLogger("webrana.api.usage")
routes = web.RouteTableDef()

MAX_RANGE_DAYS = 366  # a year, leap day included: enough for a yearly report, bounded for the per-day list
MIN_DAY = date(1970, 1, 1)  # older dates are typos; also keeps UTC conversion of day bounds in range
MAX_DAY = date(9999, 12, 30)  # the day after must still be a valid date (exclusive upper bound)
DEFAULT_LIMIT = 50  # one console page
MAX_LIMIT = 200  # bounds one response; scripts page with the cursor or use the CSV export
MAX_FILTER_LEN = 200  # model and provider names are short; longer is a mistake, not a name
EXPORT_WRITE_TIMEOUT = 30.0  # seconds one chunk of the CSV may take to reach a slow client
EXPORT_CHUNK = 1_000  # rows per export page: one short query on a pool connection, then ~130 KB of CSV to send
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
STATUS_RE = re.compile(r"^[1-5]\d{2}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1  # the bounds of proxy_requests.status (INTEGER)
# Money: cost_idr_micro (micro-rupiah) and cost_usd_nano (nano-USD) are exact integers; cost_idr is the same
# rupiah amount as a decimal number for people (never rounded to 0 for a paid call). See sql/0006_prices.sql.
METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
           "cache_write_tokens", "reasoning_tokens", "cost_idr_micro", "cost_usd_nano", "fallback_requests")
REQUEST_FIELDS = ("id", "request_id", "created_at", "provider", "model", "endpoint", "stream", "status",
                  "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cache_write_tokens",
                  "reasoning_tokens", "tokens_estimated", "cost_idr", "cost_idr_micro", "cost_usd_nano",
                  "usd_to_idr", "price_source", "price_version", "latency_ms", "ttfb_ms", "error_type")
# The row's UUID means nothing to a spreadsheet (request_id identifies it); money as exact decimals.
CSV_FIELDS = (*(f for f in REQUEST_FIELDS[1:] if f not in ("cost_idr_micro", "cost_usd_nano")), "cost_usd")
MICRO = 1_000_000
CSV_INJECTION_LEADS = ("=", "+", "-", "@", "\t", "\r")  # cells a spreadsheet would read as a formula


# ---------------------------------------------------------------------------------------------- parameters

@dataclass(frozen=True, slots=True)
class DayRange:
    first: date
    last: date  # inclusive

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) instants of the range: midnight Jakarta of ``first`` to midnight after ``last``."""
        return (datetime.combine(self.first, time.min, JAKARTA),
                datetime.combine(self.last + timedelta(days=1), time.min, JAKARTA))


def jakarta_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(JAKARTA).date()


def parse_day(value: str, name: str) -> date:
    """A strict ``YYYY-MM-DD`` day, or a 400 naming the parameter."""
    try:
        if not DATE_RE.match(value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"'{name}' must be a date as YYYY-MM-DD", param=name,
                               code="invalid_date") from None
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValidationFailed(f"'{name}' must be between {MIN_DAY} and {MAX_DAY}", param=name,
                               code="invalid_date")
    return day


def _opt_day(query: Mapping[str, str], name: str) -> date | None:
    value = query.get(name, "").strip()
    return parse_day(value, name) if value else None


def _check_order(first: date | None, last: date | None) -> None:
    if first is not None and last is not None and first > last:
        raise ValidationFailed("'from' must not be after 'to'", param="from", code="invalid_range")


def parse_range(query: Mapping[str, str], today: date) -> DayRange:
    """``from``/``to`` for summaries and exports. Missing ``to`` is today (Jakarta); missing ``from`` is the
    first day of ``to``'s month, so no parameters means this month so far. At most ``MAX_RANGE_DAYS`` days."""
    first, last = _opt_day(query, "from"), _opt_day(query, "to")
    last = last or today
    first = first or last.replace(day=1)
    _check_order(first, last)
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValidationFailed(f"the range covers more than {MAX_RANGE_DAYS} days; ask for a shorter one",
                               param="to", code="range_too_long")
    return DayRange(first, last)


def parse_open_range(query: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """``from``/``to`` for the request log: either side may be open (no default, no length limit, since
    keyset pages cost the same whatever the range). Returns [start, end) instants."""
    first, last = _opt_day(query, "from"), _opt_day(query, "to")
    _check_order(first, last)
    start = datetime.combine(first, time.min, JAKARTA) if first else None
    end = datetime.combine(last + timedelta(days=1), time.min, JAKARTA) if last else None
    return start, end


def parse_limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit", "").strip()
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed(f"'limit' must be a whole number from 1 to {MAX_LIMIT}", param="limit")
    return int(raw)


@dataclass(frozen=True, slots=True)
class StatusRange:
    """Status codes from ``low`` to ``high``, both included."""
    low: int
    high: int


ANY_STATUS = StatusRange(INT4_MIN, INT4_MAX)


def parse_status(raw: str) -> StatusRange | None:
    """``200`` (an exact code), ``error`` (>= 400) or ``ok`` (< 400) as a range of codes; ``None`` when empty."""
    value = raw.strip().lower()
    if not value:
        return None
    if value == "error":
        return StatusRange(400, INT4_MAX)
    if value == "ok":
        return StatusRange(INT4_MIN, 399)
    if STATUS_RE.match(value):
        return StatusRange(int(value), int(value))
    raise ValidationFailed("'status' must be an HTTP status code (like 200 or 429), 'ok' or 'error'",
                           param="status", code="invalid_status")


def _filter(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    if len(value) > MAX_FILTER_LEN:
        raise ValidationFailed(f"'{name}' must be at most {MAX_FILTER_LEN} characters", param=name)
    return value


# ------------------------------------------------------------------------------------------------- cursor

def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """Opaque position after a row: its (created_at in epoch microseconds, id), base64url."""
    micros = (created_at - EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(orjson.dumps([micros, row_id.hex])).rstrip(b"=").decode()


def decode_cursor(raw: str) -> tuple[datetime, uuid.UUID]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        micros, hex_id = data
        if isinstance(micros, bool) or not isinstance(micros, int) or not isinstance(hex_id, str):
            raise ValueError
        return EPOCH + timedelta(microseconds=micros), uuid.UUID(hex=hex_id)
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationFailed("'cursor' is not a cursor returned by this API", param="cursor",
                               code="invalid_cursor") from None


# ---------------------------------------------------------------------------------------------------- SQL

SUMMARY_SQL = """
SELECT GROUPING(day, provider, model) AS g, day, provider, model,
       COALESCE(sum(requests), 0)::bigint AS requests, COALESCE(sum(errors), 0)::bigint AS errors,
       COALESCE(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0)::bigint AS completion_tokens,
       COALESCE(sum(total_tokens), 0)::bigint AS total_tokens,
       COALESCE(sum(cached_tokens), 0)::bigint AS cached_tokens,
       COALESCE(sum(cache_write_tokens), 0)::bigint AS cache_write_tokens,
       COALESCE(sum(reasoning_tokens), 0)::bigint AS reasoning_tokens,
       -- rows rolled up before sql/0006 hold whole rupiah in cost_idr; since then micro-rupiah in cost_idr_micro
       COALESCE(sum(cost_idr::numeric * 1000000 + cost_idr_micro), 0)::bigint AS cost_idr_micro,
       COALESCE(sum(cost_usd_nano), 0)::bigint AS cost_usd_nano,
       COALESCE(sum(fallback_requests), 0)::bigint AS fallback_requests
FROM usage_daily
WHERE user_id = $1 AND org_id IS NULL AND day BETWEEN $2 AND $3
GROUP BY GROUPING SETS ((day), (provider), (provider, model), ())
"""
# GROUPING() bits are (day, provider, model), 1 = rolled up.
G_BY_DAY, G_BY_PROVIDER, G_BY_MODEL, G_TOTAL = 0b011, 0b101, 0b100, 0b111

# One page of the request log, newest first. $1 user, [$2, $3) the instants (NULL = open end), ($4, $5) the
# keyset position of the previous page's last row (both NULL on the first page), $6 provider (NULL = any),
# [$7, $8] the status codes, $9 the row limit. The open ends and the missing cursor are COALESCEd to sentinels
# (+-infinity; created_at is never infinite) rather than written "$n IS NULL OR ...", so the range and the
# cursor stay Index Conds on (user_id, created_at DESC, id DESC) in generic plans too, and the index order is
# the page order (no Sort). The columns are REQUEST_FIELDS.
PAGE_SQL = """
SELECT id, request_id, created_at, provider, model, endpoint, stream, status, prompt_tokens, completion_tokens,
       total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, tokens_estimated,
       cost_idr::bigint * 1000000 + cost_idr_micro AS cost_idr_micro, cost_usd_nano, usd_to_idr, price_source,
       price_version, latency_ms, ttfb_ms, error_type
FROM proxy_requests
WHERE user_id = $1 AND org_id IS NULL
  AND created_at >= COALESCE($2::timestamptz, '-infinity')
  AND created_at < COALESCE($3::timestamptz, 'infinity')
  AND (created_at, id) < (COALESCE($4::timestamptz, 'infinity'),
                          COALESCE($5::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
  AND ($6::text IS NULL OR provider = $6)
  AND status BETWEEN $7 AND $8
ORDER BY created_at DESC, id DESC
LIMIT $9
"""

# The same page filtered by model ($10): an equality on the second column of
# proxy_requests_user_model_time_idx (user_id, model, created_at DESC, id DESC), so a model the user never
# used costs one index probe, not a walk through all of the user's rows (or a scan of the table).
PAGE_BY_MODEL_SQL = """
SELECT id, request_id, created_at, provider, model, endpoint, stream, status, prompt_tokens, completion_tokens,
       total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, tokens_estimated,
       cost_idr::bigint * 1000000 + cost_idr_micro AS cost_idr_micro, cost_usd_nano, usd_to_idr, price_source,
       price_version, latency_ms, ttfb_ms, error_type
FROM proxy_requests
WHERE user_id = $1 AND org_id IS NULL
  AND model = $10
  AND created_at >= COALESCE($2::timestamptz, '-infinity')
  AND created_at < COALESCE($3::timestamptz, 'infinity')
  AND (created_at, id) < (COALESCE($4::timestamptz, 'infinity'),
                          COALESCE($5::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
  AND ($6::text IS NULL OR provider = $6)
  AND status BETWEEN $7 AND $8
ORDER BY created_at DESC, id DESC
LIMIT $9
"""

# One page of the CSV export: $1 user, [$2, $3) the range, oldest first (the same index, read backwards), after the
# keyset position ($4, $5) of the previous page's last row (both NULL on the first page, COALESCEd to sentinels as
# in PAGE_SQL so the position stays an Index Cond), at most $6 rows.
EXPORT_SQL = """
SELECT id, request_id, created_at, provider, model, endpoint, stream, status, prompt_tokens, completion_tokens,
       total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, tokens_estimated,
       cost_idr::bigint * 1000000 + cost_idr_micro AS cost_idr_micro, cost_usd_nano, usd_to_idr, price_source,
       price_version, latency_ms, ttfb_ms, error_type
FROM proxy_requests WHERE user_id = $1 AND org_id IS NULL AND created_at >= $2 AND created_at < $3
  AND (created_at, id) > (COALESCE($4::timestamptz, '-infinity'),
                          COALESCE($5::uuid, '00000000-0000-0000-0000-000000000000'))
ORDER BY created_at, id
LIMIT $6"""


@dataclass(frozen=True, slots=True)
class RequestFilter:
    user_id: uuid.UUID
    start: datetime | None = None
    end: datetime | None = None
    model: str | None = None
    provider: str | None = None
    status: StatusRange | None = None


def page_query(f: RequestFilter, after: tuple[datetime, uuid.UUID] | None,
               limit: int) -> tuple[str, list[Any]]:
    """The statement for one page of ``f`` (``PAGE_SQL``, or ``PAGE_BY_MODEL_SQL`` with a model) and its
    arguments, starting after the keyset position ``after``."""
    cursor_at, cursor_id = after if after is not None else (None, None)
    status = f.status or ANY_STATUS
    args: list[Any] = [f.user_id, f.start, f.end, cursor_at, cursor_id, f.provider, status.low, status.high,
                       limit]
    if f.model is None:
        return PAGE_SQL, args
    return PAGE_BY_MODEL_SQL, [*args, f.model]


# ---------------------------------------------------------------------------------------------- rendering

def idr(micro: int) -> float:
    """Micro-rupiah as a rupiah amount (a JSON number; exact to the micro-rupiah for any real total)."""
    return micro / MICRO


def _metrics(row: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {m: int(row[m]) if row is not None else 0 for m in METRICS}
    out["cost_idr"] = idr(out["cost_idr_micro"])
    return out


def _rank(entry: dict[str, Any]) -> tuple[int, int, str, str]:
    return (-entry["requests"], -entry["cost_idr_micro"], entry["provider"], entry.get("model", ""))


def build_summary(rng: DayRange, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary document from the GROUPING SETS rows. ``by_day`` has every day of the range (zeros where
    there was no traffic); ``by_provider`` and ``by_model`` are ranked by requests, then cost."""
    days: dict[date, Mapping[str, Any]] = {}
    providers: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    total: Mapping[str, Any] | None = None
    for row in rows:
        g = row["g"]
        if g == G_BY_DAY:
            days[row["day"]] = row
        elif g == G_BY_PROVIDER:
            providers.append({"provider": row["provider"], **_metrics(row)})
        elif g == G_BY_MODEL:
            models.append({"provider": row["provider"], "model": row["model"], **_metrics(row)})
        elif g == G_TOTAL:
            total = row
    return {
        "from": rng.first.isoformat(),
        "to": rng.last.isoformat(),
        "totals": _metrics(total),
        "by_day": [{"date": d.isoformat(), **_metrics(days.get(d))} for d in rng.days()],
        "by_provider": sorted(providers, key=_rank),
        "by_model": sorted(models, key=_rank),
    }


def request_json(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {name: row[name] for name in REQUEST_FIELDS if name != "cost_idr"}
    out["cost_idr"] = idr(row["cost_idr_micro"])
    out["id"] = str(row["id"])
    out["created_at"] = row["created_at"].isoformat()
    return out


def csv_value(row: asyncpg.Record | Mapping[str, Any], name: str) -> Any:
    """Money in the CSV as exact decimals: rupiah to the micro-rupiah, dollars to the nano-dollar."""
    if name == "cost_idr":
        micro = row["cost_idr_micro"]
        return f"{micro // MICRO}.{micro % MICRO:06d}"
    if name == "cost_usd":
        nano = row["cost_usd_nano"]
        return f"{nano // 1_000_000_000}.{nano % 1_000_000_000:09d}"
    return row[name]


def csv_safe(value: Any) -> str:
    """A cell as text; text a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(JAKARTA).isoformat()
    text = str(value)
    return "'" + text if text.startswith(CSV_INJECTION_LEADS) else text


def csv_chunk(rows: Iterable[Iterable[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerows([csv_safe(v) for v in row] for row in rows)
    return buf.getvalue().encode()


# ----------------------------------------------------------------------------------------------- handlers

@routes.get("/api/usage/summary")
async def summary(request: web.Request) -> web.Response:
    user = await current_user(request)
    rng = parse_range(request.query, jakarta_today())
    rows = await request.app[POOL].fetch(SUMMARY_SQL, user.id, rng.first, rng.last)
    return json_response(build_summary(rng, rows))


@routes.get("/api/usage/requests")
async def list_requests(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = request.query
    start, end = parse_open_range(q)
    f = RequestFilter(user.id, start, end, _filter(q, "model"), _filter(q, "provider"),
                      parse_status(q.get("status", "")))
    raw_cursor = q.get("cursor", "").strip()
    after = decode_cursor(raw_cursor) if raw_cursor else None
    limit = parse_limit(q)
    sql, args = page_query(f, after, limit + 1)
    rows = await request.app[POOL].fetch(sql, *args)
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if more else None
    return json_response({"data": [request_json(r) for r in page], "next_cursor": next_cursor})


async def export_pages(pool: asyncpg.Pool, user_id: uuid.UUID, start: datetime, end: datetime,
                       page: int = EXPORT_CHUNK) -> AsyncGenerator[list[asyncpg.Record], None]:
    """The user's rows of [start, end), oldest first, a page at a time; each page is one query on a connection
    taken from the pool for it alone (nothing is held between pages). The last page may be empty."""
    after: tuple[datetime | None, uuid.UUID | None] = (None, None)
    while True:
        rows = await pool.fetch(EXPORT_SQL, user_id, start, end, *after, page)
        yield rows
        if len(rows) < page:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])


@routes.get("/api/usage/export.csv")
async def export_csv(request: web.Request) -> web.StreamResponse:
    user = await current_user(request)
    rng = parse_range(request.query, jakarta_today())
    start, end = rng.bounds()
    end = min(end, datetime.now(UTC))  # the rows up to the moment the export started
    filename = f"webrana-usage-{rng.first.isoformat()}-{rng.last.isoformat()}.csv"
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    })
    resp.enable_chunked_encoding()
    pages = export_pages(request.app[POOL], user.id, start, end)
    try:
        rows = await anext(pages)  # before the headers: a database failure here is an ordinary error answer
        await resp.prepare(request)
        # No connection is held while writing; still, a client that stops reading must not keep the handler and
        # a page in memory for ever: each chunk gets EXPORT_WRITE_TIMEOUT seconds to leave.
        async with asyncio.timeout(EXPORT_WRITE_TIMEOUT):
            await resp.write(csv_chunk([CSV_FIELDS]))
        while rows:
            async with asyncio.timeout(EXPORT_WRITE_TIMEOUT):
                await resp.write(csv_chunk([csv_value(r, name) for name in CSV_FIELDS] for r in rows))
            rows = await anext(pages, [])
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        if not resp.prepared:
            raise  # nothing sent yet: the error middleware answers in the usual shape
        # Headers are out, so the failure can only show as a cut-off body: closing the connection leaves the
        # chunked encoding unfinished, which clients report as an incomplete download (not a short file).
        log.warning("usage export stopped early",
                    extra={"user_id": str(user.id), "error": type(exc).__name__})
        if request.transport is not None:
            request.transport.close()
        return resp
    finally:
        await pages.aclose()
    await resp.write_eof()
    return resp
