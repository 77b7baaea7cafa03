"""Reading and answering JSON: bounded body reads, strict parsing, small typed field readers."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import orjson
from aiohttp import web

from webrana_proxy.errors import BadRequest, NotFound, PayloadTooLarge, RequestTimeout, ValidationFailed
from webrana_proxy.state import SETTINGS

EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
MAX_JSON_DEPTH = 64  # deeper nesting is hostile, not a real request


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes, within the body timeout setting, so a client trickling bytes
    cannot hold a handler forever."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than the {limit} byte limit")
    content = request.content
    if content.is_eof():  # the common case: a small body already received with the headers
        body = content.read_nowait()
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is larger than the {limit} byte limit")
        return body
    seconds = request.app[SETTINGS].body_timeout
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body is larger than the {limit} byte limit")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {seconds:g} s") from None
    return b"".join(chunks)


def structure_problem(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a parsed JSON value cannot be stored or trusted, or None: nesting deeper than ``limit``, or a NUL
    character in a key or string (PostgreSQL text and jsonb cannot hold one)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return f"request body is nested deeper than {limit} levels"
        if isinstance(item, str):
            if "\x00" in item:
                return "request body contains a NUL character"
        elif isinstance(item, dict):
            for k, v in item.items():
                if "\x00" in k:
                    return "request body contains a NUL character"
                stack.append((v, depth + 1))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def parse_json_object(raw: bytes, *, max_depth: int | None = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A JSON object, or ``BadRequest``. ``max_depth=None`` skips our structure walk (orjson itself refuses
    nesting deeper than 1,024 levels), for the gateway where a large prompt should not be walked twice and
    nothing of the body is stored."""
    if not raw:
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    if max_depth is not None:
        problem = structure_problem(value, max_depth)
        if problem is not None:
            raise BadRequest(problem, code="invalid_json")
    return value


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    return parse_json_object(await read_body(request, limit))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers=headers)


def req_str(body: dict[str, Any], name: str, *, max_len: int = 200, min_len: int = 1) -> str:
    value = body.get(name)
    if value is None:
        raise ValidationFailed(f"'{name}' is required", param=name, code="missing_field")
    if not isinstance(value, str):
        raise ValidationFailed(f"'{name}' must be a string", param=name, code="invalid_type")
    value = value.strip()
    if len(value) < min_len:
        raise ValidationFailed(f"'{name}' must not be empty", param=name, code="missing_field")
    if len(value) > max_len:
        raise ValidationFailed(f"'{name}' must be at most {max_len} characters", param=name)
    return value


def opt_int(body: dict[str, Any], name: str, *, minimum: int = 0, maximum: int = 10**12) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"'{name}' must be a whole number or null", param=name, code="invalid_type")
    if not minimum <= value <= maximum:
        raise ValidationFailed(f"'{name}' must be between {minimum} and {maximum}", param=name)
    return value


def req_email(body: dict[str, Any]) -> str:
    email = req_str(body, "email", max_len=254, min_len=3)
    if not EMAIL_RE.match(email):
        raise ValidationFailed("'email' is not a valid e-mail address", param="email", code="invalid_email")
    return email


def path_uuid(request: web.Request, name: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound("not found") from None
