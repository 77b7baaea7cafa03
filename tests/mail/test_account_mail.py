"""Sign-up verification, forgot/reset password and the account's language, end to end through the API, a real
SMTP server (aiosmtpd), PostgreSQL and Redis."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import PASSWORD, Api
from tests.fakes.smtp import MailSink
from tests.mail.conftest import CONSOLE_URL, deliver, link_token, outbox, register
from webrana_proxy.admins import ensure_admin
from webrana_proxy.migrate import apply_migrations, migrations_dir
from webrana_proxy.passwords import Passwords

NEW_PASSWORD = "N3w-Passw0rd!"


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return Api.auth(tokens)


async def me(client: TestClient[web.Request, web.Application], tokens: dict[str, Any]) -> dict[str, Any]:
    resp = await client.get("/api/auth/me", headers=bearer(tokens))
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def create_key(client: TestClient[web.Request, web.Application], tokens: dict[str, Any]) -> Any:
    return await client.post("/api/proxy-keys", json={"name": "k"}, headers=bearer(tokens))


# --- verification -----------------------------------------------------------------------------------------------


async def test_an_unverified_account_can_look_around_but_not_create_keys_or_subscribe_until_verified(
        client: TestClient[web.Request, web.Application], sink: MailSink, db: asyncpg.Connection) -> None:
    tokens = await register(client, "fresh@example.co.id")
    assert tokens["user"]["email_verified"] is False
    assert (await me(client, tokens))["email_verified"] is False
    assert (await client.get("/api/proxy-keys", headers=bearer(tokens))).status == 200  # looking is fine
    for resp in (await create_key(client, tokens),
                 await client.post("/api/billing/subscribe", json={"plan": "starter"},
                                   headers={**bearer(tokens), "Idempotency-Key": "verify-first-0001"})):
        assert resp.status == 403
        error = (await resp.json())["error"]
        assert error["code"] == "email_not_verified" and "fresh@example.co.id" in error["message"]

    await deliver(client.app)
    [msg] = await sink.wait_for(1)
    assert msg.recipients == ["fresh@example.co.id"]
    assert msg.subject == "Verifikasi alamat e-mail Webrana Anda"  # Indonesian unless asked otherwise
    [link] = [u for u in msg.links() if "/verify-email?" in u]
    assert link.startswith(CONSOLE_URL + "/verify-email?token=")
    token = link_token(msg)
    assert token in msg.html
    # Only its hash is stored; the outbox holds the link's row id, not the token.
    assert await db.fetchval("SELECT count(*) FROM email_tokens WHERE token_hash = $1", token.encode()) == 0
    assert token not in str(await db.fetch("SELECT params FROM mail_outbox"))

    resp = await client.post("/api/auth/verify-email", json={"token": token})
    assert resp.status == 200, await resp.text()
    assert (await me(client, tokens))["email_verified"] is True
    assert (await create_key(client, tokens)).status == 201
    again = await client.post("/api/auth/verify-email", json={"token": token})  # single use
    assert again.status == 400 and (await again.json())["error"]["code"] == "verification_link_invalid"


async def test_a_verification_link_expires_after_a_day(
        client: TestClient[web.Request, web.Application], sink: MailSink, db: asyncpg.Connection) -> None:
    await register(client, "late@example.co.id")
    await deliver(client.app)
    [msg] = await sink.wait_for(1)
    hours = await db.fetchval("SELECT extract(epoch FROM expires_at - created_at) / 3600 FROM email_tokens")
    assert round(float(hours)) == 24
    await db.execute("UPDATE email_tokens SET expires_at = now() - interval '1 second'")
    resp = await client.post("/api/auth/verify-email", json={"token": link_token(msg)})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "verification_link_invalid"


async def test_resend_sends_a_new_link_kills_the_old_one_and_is_rate_limited(
        client: TestClient[web.Request, web.Application], sink: MailSink) -> None:
    tokens = await register(client, "resend@example.co.id")
    resp = await client.post("/api/auth/verify-email/resend", headers=bearer(tokens))
    assert resp.status == 202, await resp.text()
    resp = await client.post("/api/auth/verify-email/resend", headers=bearer(tokens))
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "email_rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    await deliver(client.app)
    first, second = await sink.wait_for(2)
    old = await client.post("/api/auth/verify-email", json={"token": link_token(first)})
    assert old.status == 400  # only the newest link works
    assert (await client.post("/api/auth/verify-email", json={"token": link_token(second)})).status == 200
    resp = await client.post("/api/auth/verify-email/resend", headers=bearer(tokens))
    assert resp.status == 200 and (await resp.json())["verified"] is True


async def test_admins_made_by_create_admin_count_as_verified(
        client: TestClient[web.Request, web.Application], db: asyncpg.Connection) -> None:
    passwords = Passwords()
    try:
        async with db.transaction():
            await ensure_admin(db, passwords, "ops@example.co.id", PASSWORD, promote=False)
    finally:
        passwords.close()
    resp = await client.post("/api/auth/login", json={"email": "ops@example.co.id", "password": PASSWORD})
    tokens = await resp.json()
    assert tokens["user"]["email_verified"] is True
    assert (await create_key(client, tokens)).status == 201


@pytest.fixture
async def legacy_db(service_env: dict[str, str]) -> AsyncIterator[str]:
    name = f"webrana_test_{os.getpid()}_m0009"
    admin = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        for template in ("DROP DATABASE IF EXISTS %I WITH (FORCE)", "CREATE DATABASE %I"):
            await admin.execute(await admin.fetchval("SELECT format($1::text, $2::text)", template, name))
        yield urlunsplit(urlsplit(service_env["DATABASE_URL"])._replace(path=f"/{name}"))
        await admin.execute(await admin.fetchval("SELECT format($1::text, $2::text)",
                                                 "DROP DATABASE IF EXISTS %I WITH (FORCE)", name))
    finally:
        await admin.close()


async def test_accounts_made_before_0009_count_as_verified_and_new_ones_do_not(legacy_db: str,
                                                                              tmp_path: Path) -> None:
    for path in sorted(p for p in migrations_dir().glob("*.sql") if p.name < "0009_mail.sql"):
        shutil.copy(path, tmp_path / path.name)
    conn = await asyncpg.connect(legacy_db)
    try:
        await apply_migrations(conn, tmp_path)
        await conn.execute("INSERT INTO users (email, password_hash) VALUES ('old@example.co.id', 'x')")
        await apply_migrations(conn)
        await conn.execute("INSERT INTO users (email, password_hash) VALUES ('new@example.co.id', 'x')")
        rows = dict(await conn.fetch(
            "SELECT email, email_verified_at IS NOT NULL FROM users ORDER BY email"))
        assert rows == {"new@example.co.id": False, "old@example.co.id": True}
        assert await conn.fetchval("SELECT DISTINCT locale FROM users") == "id"
    finally:
        await conn.close()


# --- forgot / reset password ------------------------------------------------------------------------------------


async def test_forgot_gives_the_same_answer_for_known_and_unknown_addresses_and_mails_only_the_known(
        client: TestClient[web.Request, web.Application], sink: MailSink, db: asyncpg.Connection) -> None:
    await register(client, "known@example.co.id")
    await db.execute("TRUNCATE mail_outbox")
    answers = []
    for email in ("known@example.co.id", "nobody@example.co.id"):
        resp = await client.post("/api/auth/password/forgot", json={"email": email})
        answers.append((resp.status, await resp.json()))
    assert answers[0] == answers[1] and answers[0][0] == 202
    await deliver(client.app)
    [msg] = await sink.wait_for(1)
    assert msg.recipients == ["known@example.co.id"]
    assert [r["template"] for r in await outbox(db)] == ["password_reset"]


async def test_a_reset_link_sets_the_password_ends_every_session_and_sends_a_notice(
        client: TestClient[web.Request, web.Application], sink: MailSink, db: asyncpg.Connection) -> None:
    tokens = await register(client, "reset@example.co.id")
    other_device = await (await client.post("/api/auth/login", json={"email": "reset@example.co.id",
                                                                     "password": PASSWORD})).json()
    await client.post("/api/auth/password/forgot", json={"email": "RESET@example.co.id"})
    await deliver(client.app)
    [reset] = [m for m in await sink.wait_for(2) if "/reset-password?" in m.text]
    assert reset.subject == "Atur ulang kata sandi Webrana"
    minutes = await db.fetchval(
        "SELECT extract(epoch FROM expires_at - created_at) / 60 FROM email_tokens WHERE purpose = 'reset'")
    assert round(float(minutes)) == 30
    token = link_token(reset)

    weak = await client.post("/api/auth/password/reset", json={"token": token, "password": "short"})
    assert weak.status == 400 and (await weak.json())["error"]["code"] == "weak_password"
    resp = await client.post("/api/auth/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert resp.status == 200, await resp.text()

    for session in (tokens, other_device):  # every sign-in ended: access and refresh tokens
        assert (await client.get("/api/auth/me", headers=bearer(session))).status == 401
        refreshed = await client.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refreshed.status == 401
    old = await client.post("/api/auth/login", json={"email": "reset@example.co.id", "password": PASSWORD})
    assert old.status == 401
    new = await client.post("/api/auth/login", json={"email": "reset@example.co.id", "password": NEW_PASSWORD})
    assert new.status == 200
    assert (await new.json())["user"]["email_verified"] is True  # the link proved the address
    again = await client.post("/api/auth/password/reset", json={"token": token, "password": "An0ther-Passw0rd"})
    assert again.status == 400 and (await again.json())["error"]["code"] == "reset_link_invalid"

    await deliver(client.app)
    notices = [m for m in await sink.wait_for(3) if m.subject == "Kata sandi Webrana Anda telah diubah"]
    assert len(notices) == 1 and notices[0].recipients == ["reset@example.co.id"]
    assert CONSOLE_URL + "/forgot-password" in notices[0].text


async def test_an_expired_reset_link_is_refused_before_any_hashing(
        client: TestClient[web.Request, web.Application], sink: MailSink, db: asyncpg.Connection) -> None:
    await register(client, "slow@example.co.id")
    await client.post("/api/auth/password/forgot", json={"email": "slow@example.co.id"})
    await deliver(client.app)
    [reset] = [m for m in await sink.wait_for(2) if "/reset-password?" in m.text]
    await db.execute("UPDATE email_tokens SET expires_at = now() - interval '1 second' WHERE purpose = 'reset'")
    resp = await client.post("/api/auth/password/reset", json={"token": link_token(reset), "password": NEW_PASSWORD})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "reset_link_invalid"
    ok = await client.post("/api/auth/login", json={"email": "slow@example.co.id", "password": PASSWORD})
    assert ok.status == 200


async def test_forgot_is_rate_limited_per_email_and_per_address(
        client: TestClient[web.Request, web.Application]) -> None:
    statuses = [(await client.post("/api/auth/password/forgot", json={"email": "flood@example.co.id"})).status
                for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    other = [(await client.post("/api/auth/password/forgot", json={"email": f"f{i}@example.co.id"})).status
             for i in range(7)]
    assert other == [202] * 6 + [429]  # ten from this address this hour, the four above included


# --- the account's language -------------------------------------------------------------------------------------


async def test_the_e_mails_follow_the_language_chosen_at_sign_up_and_in_the_console(
        client: TestClient[web.Request, web.Application], sink: MailSink) -> None:
    tokens = await register(client, "english@example.co.id", locale="en")
    assert tokens["user"]["locale"] == "en"
    await deliver(client.app)
    [first] = await sink.wait_for(1)
    assert first.subject == "Verify your Webrana e-mail address" and first.message["Content-Language"] == "en"
    resp = await client.put("/api/auth/locale", json={"locale": "id"}, headers=bearer(tokens))
    assert resp.status == 200
    assert (await me(client, tokens))["locale"] == "id"
    bad = await client.put("/api/auth/locale", json={"locale": "fr"}, headers=bearer(tokens))
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid_locale"
    await client.post("/api/auth/verify-email/resend", headers=bearer(tokens))
    await deliver(client.app)
    assert (await sink.wait_for(2))[1].subject == "Verifikasi alamat e-mail Webrana Anda"
