"""The CSV export relayed through the console as the API streams it (the personal and the team usage export).

The console never buffers the file: each chunk the API sends is written on to the browser. Errors the API answers
before its first byte (a bad range, a non-member) are ordinary API errors, raised by ``ApiClient.stream``."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import aiohttp
from aiohttp import web

from webrana_dashboard import formatting

EXPORT_CHUNK = 64 * 1024  # bytes relayed per write while streaming the CSV
DAY_CHARS = 10  # an ISO date


def export_days(query: Mapping[str, str]) -> tuple[str, str]:
    """The export's ``from`` and ``to`` (today's date when absent; the API checks them)."""
    today = formatting.jakarta_today().isoformat()
    return query.get("from", today)[:DAY_CHARS], query.get("to", today)[:DAY_CHARS]


async def relay_csv(request: web.Request, upstream: contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse],
                    filename: str) -> web.StreamResponse:
    """Open the API's export and stream it to the browser with the API's type and file name (else ``filename``)."""
    async with upstream as answer:
        resp = web.StreamResponse(headers={
            "Content-Type": answer.headers.get("Content-Type", "text/csv; charset=utf-8"),
            "Content-Disposition": answer.headers.get("Content-Disposition", f'attachment; filename="{filename}"'),
        })
        resp.enable_chunked_encoding()
        await resp.prepare(request)  # on_prepare writes the (possibly refreshed) session cookie now
        async for chunk in answer.content.iter_chunked(EXPORT_CHUNK):
            await resp.write(chunk)
        await resp.write_eof()
    return resp
