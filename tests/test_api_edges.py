"""Cross-cutting behaviour of /api: per-IP limit, body limits, unknown routes, the OpenAPI document."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from webrana_proxy.api.openapi import document


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {"WEBRANA_IP_RATE_LIMIT": "5", "WEBRANA_API_BODY_LIMIT": "2048"}


async def test_per_ip_limit_answers_429_with_headers(client: TestClient[web.Request, web.Application]) -> None:
    statuses = []
    for _ in range(6):
        resp = await client.get("/api/openapi.json")
        statuses.append(resp.status)
    assert statuses == [200] * 5 + [429]
    assert resp.headers["X-RateLimit-Limit"] == "5" and resp.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert (await resp.json())["error"]["type"] == "rate_limit_error"
    # Another address forwarded by a trusted proxy (the test client is on loopback) has its own budget.
    resp = await client.get("/api/openapi.json", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "4"
    # Health probes are not limited.
    assert (await client.get("/health")).status == 200


async def test_oversized_body_is_413(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.post("/api/auth/register", data=b"{" + b" " * 4096 + b"}",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "request_too_large"


async def test_unknown_route_is_404_in_error_shape(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/api/nope")
    assert resp.status == 404
    assert (await resp.json())["error"]["type"] == "not_found_error"
    assert resp.headers["x-request-id"].startswith("req_")


async def test_openapi_document_matches_the_router(client: TestClient[web.Request, web.Application]) -> None:
    served = await (await client.get("/api/openapi.json")).json()
    assert served == document()
    documented = {(path, method.upper()) for path, ops in served["paths"].items() for method in ops}
    routed = set()
    for resource in client.app.router.resources():
        path = resource.canonical
        if not path.startswith("/api/"):
            continue
        for route in resource:
            if route.method not in ("HEAD", "OPTIONS"):
                routed.add((path, route.method))
    assert documented == routed
