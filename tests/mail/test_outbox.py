"""The outbox and the mail job against a real SMTP server (aiosmtpd on loopback), PostgreSQL and Redis:
nothing is lost while the server is down, a resend keeps its Message-ID, one replica sends at a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import serve_app
from tests.fakes.smtp import MailSink
from tests.mail.conftest import MAIL_FROM, deliver, later, outbox, register
from webrana_proxy.app import create_app
from webrana_proxy.mail.job import BACKOFF_FIRST
from webrana_proxy.settings import Settings


async def test_messages_wait_while_the_smtp_server_is_down_and_go_out_when_it_is_back(
        client: TestClient[web.Request, web.Application], sink: MailSink, db: asyncpg.Connection) -> None:
    port = sink.port
    await sink.close()  # the SMTP server is down
    await register(client, "down@example.co.id")
    await register(client, "down2@example.co.id")
    report = await deliver(client.app)
    assert (report.sent, report.retrying) == (0, 2)
    rows = await outbox(db)
    assert [(r["status"], r["attempts"]) for r in rows] == [("queued", 1), ("queued", 1)]
    assert all(r["next_attempt_at"] > datetime.now(UTC) + BACKOFF_FIRST * 0.9 for r in rows)
    assert "cannot reach the SMTP server" in rows[0]["last_error"]

    await sink.start(port=port)  # back up
    assert (await deliver(client.app)).sent == 0  # nothing is due before its backoff
    report = await deliver(client.app, now=later(1))
    assert (report.sent, report.retrying) == (2, 0)
    assert sorted(r.recipients[0] for r in sink.received) == ["down2@example.co.id", "down@example.co.id"]
    assert [r["status"] for r in await outbox(db)] == ["sent", "sent"]
    assert (await deliver(client.app, now=later(600))).sent == 0  # sent once, never again


async def test_a_message_whose_acceptance_was_lost_is_sent_again_with_the_same_message_id(
        client: TestClient[web.Request, web.Application], sink: MailSink, db: asyncpg.Connection) -> None:
    await register(client, "lost@example.co.id")
    sink.drop_after_data = 1  # the server keeps the message but the answer never reaches the sender
    report = await deliver(client.app)
    assert (report.sent, report.retrying) == (0, 1)
    [row] = await outbox(db)
    assert row["status"] == "queued" and row["message_id"].endswith("@webrana.test>")
    report = await deliver(client.app, now=later(1))
    assert report.sent == 1
    first, second = await sink.wait_for(2)
    assert first.message_id == second.message_id == row["message_id"]
    assert first.raw == second.raw  # the same message, byte for byte (Date included)
    assert (await outbox(db))[0]["status"] == "sent"


async def test_one_replica_sends_at_a_time_and_each_message_goes_out_once(
        client: TestClient[web.Request, web.Application], settings: Settings, sink: MailSink,
        db: asyncpg.Connection) -> None:
    for i in range(4):
        await register(client, f"pair{i}@example.co.id")
    sink.delay = 0.2  # a slow server: the first replica's run is still going when the second one starts
    async with serve_app(create_app(settings)) as other:
        first, second = await asyncio.gather(deliver(client.app), deliver(other.app))
        assert sorted([first.ran, second.ran]) == [False, True]
        assert first.sent + second.sent == 4
        again = await asyncio.gather(deliver(client.app, now=later(600)), deliver(other.app, now=later(600)))
        assert sum(r.sent for r in again) == 0
    ids = [r.message_id for r in sink.received]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert {r["status"] for r in await outbox(db)} == {"sent"}


async def test_a_recipient_refused_for_good_is_given_up_not_retried(
        client: TestClient[web.Request, web.Application], sink: MailSink, db: asyncpg.Connection) -> None:
    await register(client, "refused@example.co.id")
    sink.refuse.add("refused@example.co.id")
    report = await deliver(client.app)
    assert (report.sent, report.failed) == (0, 1)
    [row] = await outbox(db)
    assert row["status"] == "failed" and "550" in row["last_error"]
    assert sink.received == []


async def test_the_message_is_plain_text_plus_html_from_the_configured_sender(
        client: TestClient[web.Request, web.Application], sink: MailSink) -> None:
    await register(client, "parts@example.co.id")
    await deliver(client.app)
    [msg] = await sink.wait_for(1)
    assert msg.envelope_from == "no-reply@webrana.test"
    assert str(msg.message["From"]) == MAIL_FROM
    assert msg.message.get_content_type() == "multipart/alternative"
    assert "parts@example.co.id" in msg.text and "parts@example.co.id" in msg.html
    assert msg.message["Content-Language"] == "id"


async def test_the_smtp_login_from_the_url_is_used(clean: None, base_env: dict[str, str],
                                                  db: asyncpg.Connection) -> None:
    async with MailSink(login=("mailer", "p@ss:word")) as sink:  # AUTH without TLS: fine on loopback
        good = sink.url.replace("p@ss:word", "p%40ss%3Aword")
        settings = Settings.from_env({**base_env, "WEBRANA_SMTP_URL": good, "WEBRANA_MAIL_FROM": MAIL_FROM})
        async with serve_app(create_app(settings)) as c:
            await register(c, "login@example.co.id")
            assert (await deliver(c.app)).sent == 1
        [msg] = await sink.wait_for(1)
        assert msg.login == "mailer"
        wrong = Settings.from_env({**base_env, "WEBRANA_SMTP_URL": f"smtp://mailer:nope@127.0.0.1:{sink.port}",
                                   "WEBRANA_MAIL_FROM": MAIL_FROM})
        async with serve_app(create_app(wrong)) as c:
            await register(c, "login2@example.co.id")
            report = await deliver(c.app)
        assert (report.sent, report.retrying) == (0, 1)  # a login refused is a setting to fix: kept, retried
        assert len(sink.received) == 1
