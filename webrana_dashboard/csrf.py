"""CSRF protection: a per-session random token in every form (``csrf_token``) or the ``X-CSRF-Token``
header of script requests. Any unsafe request without the session's token is refused with 403."""

from __future__ import annotations

import secrets

from aiohttp import web

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def presented_token(request: web.Request) -> str:
    header = request.headers.get(HEADER, "")
    if header:
        return header
    if request.content_type in FORM_TYPES:
        form = await request.post()  # cached by aiohttp: the handler reads the same form again for free
        value = form.get(FIELD, "")
        return value if isinstance(value, str) else ""
    return ""


async def token_ok(request: web.Request, expected: str) -> bool:
    if request.method not in UNSAFE_METHODS:
        return True
    presented = await presented_token(request)
    return bool(presented) and secrets.compare_digest(presented.encode(), expected.encode())
