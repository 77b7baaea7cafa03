"""Schemathesis fuzz of /api from its own OpenAPI document: positive and negative cases for every operation,
sent through the aiohttp test client as a normal user (admin routes also as an admin, negative cases also with
schemathesis' own made-up credentials). No answer may be a 5xx or carry a traceback; every 4xx is in the error
shape ``{"error": {message, type, code, param}}``.

Cases are drawn synchronously with Hypothesis first (schemathesis' pytest integration would run a live server in
the same event loop and deadlock), then sent. Bounded: a dozen cases per operation and mode."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import aiohttp
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.gateway.conftest import Account
from tests.hardening.conftest import api_operations, bearer, error_shape_problems, has_traceback, register

CASES_PER_MODE = 12
TIME_BUDGET = 35.0  # seconds for sending; the test fails loudly rather than run on


def draw_cases(operation: Any, mode: GenerationMode, count: int) -> list[schemathesis.Case[Any]]:
    cases: list[schemathesis.Case[Any]] = []

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode))
    def collect(case: schemathesis.Case[Any]) -> None:
        cases.append(case)

    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no parameters, no body)
        collect()
    return cases


def all_cases() -> list[tuple[GenerationMode, schemathesis.Case[Any]]]:
    out: list[tuple[GenerationMode, schemathesis.Case[Any]]] = []
    for operation in api_operations():
        for mode in GenerationMode:
            out += [(mode, c) for c in draw_cases(operation, mode, CASES_PER_MODE)]
    return out


def query_pairs(params: Any) -> list[tuple[str, str]]:
    def text(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return "" if v is None else str(v)

    pairs: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        for v in value if isinstance(value, list) else [value]:
            pairs.append((str(name), text(v)))
    return pairs


def describe(kwargs: dict[str, Any]) -> str:
    body = kwargs.get("json", kwargs.get("data"))
    return f"{kwargs['method']} {kwargs['url']} params={kwargs.get('params')} body={body!r:.300}"


@pytest.mark.slow
async def test_openapi_fuzz_never_5xx_and_errors_keep_their_shape(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str) -> None:
    admin = bearer(await register(gw, migrated, admin=True))
    user = account.headers
    cases = all_cases()
    assert len(cases) > 200, "schemathesis drew too few cases; is the document empty?"
    base = str(gw.make_url("")).rstrip("/")
    failures: list[str] = []
    statuses: dict[int, int] = {}
    started = time.monotonic()
    for i, (mode, case) in enumerate(cases):
        assert time.monotonic() - started < TIME_BUDGET, f"fuzzing ran past {TIME_BUDGET}s after {i} cases"
        kwargs = case.as_transport_kwargs(base_url=base)
        headers = dict(kwargs.get("headers") or {})
        headers.pop("X-Schemathesis-TestCaseId", None)
        if mode is GenerationMode.POSITIVE or i % 2 == 0:  # odd negative cases keep schemathesis' credentials
            headers.update(admin if case.path.startswith("/api/admin/") else user)
        kwargs["headers"] = headers
        kwargs["params"] = query_pairs(kwargs.get("params"))
        kwargs.pop("cookies", None)
        try:
            async with gw.session.request(**kwargs) as resp:
                raw = await resp.read()
                status, content_type = resp.status, resp.headers.get("Content-Type", "")
        except (ValueError, TypeError):  # the client itself refuses to send it (e.g. a header it cannot encode)
            continue
        except aiohttp.ClientError as exc:
            failures.append(f"{describe(kwargs)} -> connection failed: {exc!r}")
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            failures.append(f"{describe(kwargs)} -> {status} {raw[:300]!r}")
        if has_traceback(raw):
            failures.append(f"{describe(kwargs)} -> traceback in the answer: {raw[:300]!r}")
        if 400 <= status < 500:
            failures += [f"{describe(kwargs)} -> {p}" for p in error_shape_problems(status, content_type, raw)]
    assert not failures, f"{len(failures)} bad answers (statuses {statuses}):\n" + "\n".join(failures[:25])
    assert sum(v for k, v in statuses.items() if k < 300) > 20, f"too few cases got past validation: {statuses}"


def with_nul(value: Any) -> Any:
    """Every string (keys included) with a NUL inside: PostgreSQL text and JSONB cannot store U+0000."""
    if isinstance(value, str):
        return value[:1] + "\x00" + value[1:]
    if isinstance(value, list):
        return [with_nul(v) for v in value]
    if isinstance(value, dict):
        return {with_nul(k): with_nul(v) for k, v in value.items()}
    return value


async def test_nul_characters_anywhere_are_a_4xx_not_a_500(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str) -> None:
    admin = bearer(await register(gw, migrated, admin=True))
    base = str(gw.make_url("")).rstrip("/")
    failures: list[str] = []
    for operation in api_operations():
        for case in draw_cases(operation, GenerationMode.POSITIVE, 3):
            kwargs = case.as_transport_kwargs(base_url=base)
            headers = dict(kwargs.get("headers") or {})
            headers.update(admin if case.path.startswith("/api/admin/") else account.headers)
            kwargs["headers"] = headers
            kwargs["params"] = [(k, with_nul(v)) for k, v in query_pairs(kwargs.get("params"))]
            kwargs.pop("cookies", None)
            if "json" in kwargs:
                kwargs["json"] = with_nul(kwargs["json"])
            async with gw.session.request(**kwargs) as resp:
                raw = await resp.read()
                if resp.status >= 500 or has_traceback(raw):
                    failures.append(f"{describe(kwargs)} -> {resp.status} {raw[:200]!r}")
        query = [p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "query"]
        path = draw_cases(operation, GenerationMode.POSITIVE, 1)[0].formatted_path if query else ""
        headers = admin if operation.path.startswith("/api/admin/") else account.headers
        for name in query:  # each documented query parameter alone (others would fail validation first)
            async with gw.session.request(operation.method.upper(), base + path, headers=headers,
                                          params=[(name, "a\x00")]) as resp:
                raw = await resp.read()
                if resp.status >= 500 or has_traceback(raw):
                    failures.append(f"{operation.method.upper()} {path}?{name}=a%00 -> {resp.status} "
                                    f"{raw[:200]!r}")
        if "{" in operation.path:  # every path parameter holding a NUL
            path = re.sub(r"\{\w+\}", "a%00", operation.path)
            async with gw.session.request(operation.method.upper(), base + path, headers=headers,
                                          json={}) as resp:
                raw = await resp.read()
                if resp.status >= 500 or has_traceback(raw):
                    failures.append(f"{operation.method.upper()} {path} -> {resp.status} {raw[:200]!r}")
    assert not failures, f"{len(failures)} answers were 5xx:\n" + "\n".join(failures[:25])
