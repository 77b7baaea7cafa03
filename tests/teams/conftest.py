"""Teams fixtures: the app with a real SMTP sink (the invitations go by e-mail), and steps shared by the tests."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Api
from tests.fakes.smtp import MailSink, Received
from tests.mail.conftest import db, deliver, env_overrides, link_token, register, sink

__all__ = ["db", "env_overrides", "sink"]  # the mail fixtures, used here as they are

Client = TestClient[web.Request, web.Application]


async def user(client: Client, db_url: str, plan: str = "free", email: str | None = None) -> dict[str, Any]:
    """A signed-up user (tokens) on ``plan``."""
    tokens = await register(client, email or f"u-{secrets.token_hex(4)}@example.co.id")
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE users SET plan = $1, email_verified_at = now() WHERE id = $2::uuid", plan,
                           tokens["user"]["id"])
    finally:
        await conn.close()
    return tokens


def h(tokens: dict[str, Any]) -> dict[str, str]:
    return Api.auth(tokens)


async def make_team(client: Client, owner: dict[str, Any], name: str = "Acme") -> str:
    resp = await client.post("/api/orgs", json={"name": name}, headers=h(owner))
    assert resp.status == 201, await resp.text()
    org_id: str = (await resp.json())["id"]
    return org_id


async def invite(client: Client, org_id: str, by: dict[str, Any], email: str, role: str = "member") -> Any:
    return await client.post(f"/api/orgs/{org_id}/invitations", json={"email": email, "role": role},
                             headers=h(by))


async def mailed_token(client: Client, sink: MailSink, to: str) -> str:
    """Run the mail job and return the invitation link token of the newest message to ``to``."""
    await deliver(client.app)
    mine: list[Received] = [m for m in sink.received if to in m.recipients]
    assert mine, [m.recipients for m in sink.received]
    return link_token(mine[-1])


async def join(client: Client, sink: MailSink, db_url: str, org_id: str, by: dict[str, Any],
               role: str = "member") -> dict[str, Any]:
    """A new user invited by ``by`` who accepts from the e-mail: their tokens."""
    email = f"m-{secrets.token_hex(4)}@example.co.id"
    resp = await invite(client, org_id, by, email, role)
    assert resp.status == 201, await resp.text()
    token = await mailed_token(client, sink, email)
    member = await user(client, db_url, email=email)
    resp = await client.post("/api/invitations/accept", json={"token": token}, headers=h(member))
    assert resp.status == 200, await resp.text()
    return member
