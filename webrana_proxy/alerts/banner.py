"""The console's banner without a call of its own: every answer to a signed-in /api call carries the user's
undismissed alerts (at most ``BANNER_ALERTS``, newest first) in the ``Webrana-Alerts`` header, read in the same
statement as the user (``api.identity.current_user``'s ``pending_alerts`` column: one more probe of a partial
index, no round trip), so whatever a console page asks for brings its banner along.

The header is JSON (ASCII: other characters escaped, so a key's name cannot break a header):
``[{"id", "scope", "percent", "period", "hard", "key_name", "key_prefix", "team_name"}]`` (``team_name``: a team's
quota alert, or the user's own member limits in a team: ``member_requests`` / ``member_spend``); absent when there
are none.
"""

from __future__ import annotations

import json

from aiohttp import web

HEADER = "Webrana-Alerts"
BANNER_ALERTS = 5  # shown at once; dismissing one brings the next (the LIMIT of that column's query)
PENDING = web.RequestKey("pending_alerts", str)  # the JSON text PostgreSQL built, when there are any


def header_value(pending: str) -> str:
    return json.dumps(json.loads(pending), ensure_ascii=True, separators=(",", ":"))


async def add_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the header on answers to signed-in calls (errors included)."""
    pending = request.get(PENDING)
    if pending:
        response.headers[HEADER] = header_value(pending)
