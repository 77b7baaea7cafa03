"""The console's e-mail pages against the whole stack and a real SMTP server (aiosmtpd): the unverified
banner with its resend button, the verification page, forgot and reset, the language switch telling the API,
the dev mailbox (dev mode only), and the mail-off notice."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest_asyncio
from aiohttp.test_utils import TestClient

from tests.dashboard.conftest import Console, Stack, another_browser, running_stack
from tests.fakes.smtp import MailSink
from webrana_proxy.mail.job import run_once

MAIL_ENV = {"WEBRANA_MAIL_FROM": "Webrana <no-reply@webrana.test>"}
NEW_PASSWORD = "N3w-Passw0rd!"


@pytest_asyncio.fixture(loop_scope="session")
async def mail_stack(clean: None, base_env: dict[str, str], migrated: str,
                     tmp_path: Path) -> AsyncIterator[tuple[Stack, MailSink]]:
    async with MailSink(tmp_path / "mail") as sink:
        env = {**base_env, **MAIL_ENV, "WEBRANA_SMTP_URL": sink.url}
        async with running_stack(env, migrated, {"WEBRANA_DEV_MAIL_DIR": str(tmp_path / "mail")}) as stack:
            yield stack, sink


@pytest_asyncio.fixture(loop_scope="session")
async def browser_console(mail_stack: tuple[Stack, MailSink]) -> AsyncIterator[Console]:
    client: TestClient = TestClient(mail_stack[0].console_server)  # type: ignore[type-arg]
    try:
        yield Console(client)
    finally:
        await client.close()


async def _link(stack: Stack, sink: MailSink, count: int, page: str) -> str:
    await run_once(stack.proxy.app)
    messages = await sink.wait_for(count)
    links = [u for m in messages for u in m.links() if page in u]
    assert links, [m.text for m in messages]
    return links[-1]


async def test_sign_up_shows_the_verify_banner_until_the_e_mailed_link_is_opened(
        mail_stack: tuple[Stack, MailSink], browser_console: Console) -> None:
    stack, sink = mail_stack
    console = browser_console
    await console.signup("banner@example.co.id")
    html = await console.get("/overview")
    assert 'id="verify-banner"' in html and "banner@example.co.id" in html
    resp = await console.post("/proxy-keys", {"name": "k"})
    assert resp.status == 422 and "Verifikasi alamat e-mail Anda dulu" in await resp.text()

    resp = await console.post("/verify-email/resend", {"next": "/proxy-keys"})  # the banner's button
    assert resp.status == 303 and resp.headers["Location"] == "/proxy-keys"
    assert "Tautan verifikasi baru sedang dikirim" in await console.get("/proxy-keys")
    await console.post("/verify-email/resend", {"next": "/overview"})
    assert "Terlalu banyak permintaan e-mail" in await console.get("/overview")  # rate-limited

    link = await _link(stack, sink, 2, "/verify-email?")
    assert link.startswith(stack.console_url + "/verify-email?token=")
    html = await console.get(link.removeprefix(stack.console_url))
    assert 'id="verify-ok"' in html and 'id="verify-banner"' not in html
    assert 'id="verify-banner"' not in await console.get("/proxy-keys")
    resp = await console.post("/proxy-keys", {"name": "k"})
    assert resp.status == 200 and "wbr_" in await resp.text()
    html = await console.get(link.removeprefix(stack.console_url), status=400)  # single use
    assert 'id="verify-error"' in html


async def test_forgot_and_reset_through_the_pages(mail_stack: tuple[Stack, MailSink]) -> None:
    stack, sink = mail_stack
    await stack.register("forgot@example.co.id")
    async with another_browser(stack) as console:
        assert 'href="/forgot-password"' in await console.get("/login")
        assert 'id="mail-off"' not in await console.get("/forgot-password")
        for email in ("forgot@example.co.id", "nobody@example.co.id"):
            resp = await console.post("/forgot-password", {"email": email})
            assert resp.status == 200 and 'id="forgot-sent"' in await resp.text()
        link = await _link(stack, sink, 2, "/reset-password?")
        path = link.removeprefix(stack.console_url)
        await console.get(path)
        resp = await console.post("/reset-password", {"token": re.sub(r".*token=", "", path),
                                                      "password": NEW_PASSWORD, "password_confirm": "other"})
        assert resp.status == 422 and 'id="password_confirm-error"' in await resp.text()
        resp = await console.post("/reset-password", {"token": re.sub(r".*token=", "", path),
                                                      "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
        assert resp.status == 303 and resp.headers["Location"] == "/login"
        await console.login("forgot@example.co.id", NEW_PASSWORD)
        await console.get(path)  # a new sign-in has a new CSRF token
        again = await console.post("/reset-password", {"token": re.sub(r".*token=", "", path),
                                                       "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
        assert again.status == 422 and 'id="token-error"' in await again.text()


async def test_the_language_switch_sets_the_language_of_the_account_s_e_mails(
        mail_stack: tuple[Stack, MailSink], browser_console: Console) -> None:
    stack, _ = mail_stack
    await browser_console.signup("lang@example.co.id")
    await browser_console.get("/overview")  # the signed-in page's CSRF token
    resp = await browser_console.post("/lang", {"lang": "en", "next": "/overview"})
    assert resp.status == 303
    conn = await asyncpg.connect(stack.db_url)
    try:
        assert await conn.fetchval("SELECT locale FROM users WHERE email = 'lang@example.co.id'") == "en"
    finally:
        await conn.close()


async def test_the_dev_mailbox_lists_and_shows_what_the_sink_saved(mail_stack: tuple[Stack, MailSink],
                                                                   browser_console: Console) -> None:
    stack, sink = mail_stack
    await stack.register("devbox@example.co.id")
    await run_once(stack.proxy.app)
    await sink.wait_for(1)
    html = await browser_console.get("/login")
    assert 'id="dev-mailbox-link"' in html
    box = await browser_console.get("/dev/mail")
    m = re.search(r'href="(/dev/mail/[^"]+\.eml)">([^<]+)</a>', box)
    assert m and m.group(2) == "Verifikasi alamat e-mail Webrana Anda"
    message = await browser_console.get(m.group(1))
    assert 'id="dev-mail-links"' in message and "/verify-email?token=" in message
    await browser_console.get("/dev/mail/..%2F..%2Fetc%2Fpasswd", status=404)


async def test_outside_dev_mode_the_mailbox_does_not_exist(clean: None, base_env: dict[str, str],
                                                           migrated: str) -> None:
    async with running_stack(base_env, migrated, {"WEBRANA_DEV": "false"}) as stack, \
            another_browser(stack) as console:
        assert 'id="dev-mailbox-link"' not in await console.get("/login")
        await console.get("/dev/mail", status=404)
        # No SMTP on this stack: the forgot page says mail is off; sign-up is not held back.
        assert 'id="mail-off"' in await console.get("/forgot-password")
        await console.signup("nomail@example.co.id")
        assert 'id="verify-banner"' not in await console.get("/overview")
        resp = await console.post("/proxy-keys", {"name": "k"})
        assert resp.status == 200 and "wbr_" in await resp.text()


async def test_the_verify_page_with_a_bad_link_offers_sign_in(mail_stack: tuple[Stack, MailSink]) -> None:
    async with another_browser(mail_stack[0]) as console:
        html = await console.get("/verify-email?token=nope", status=400)
        assert 'id="verify-error"' in html and 'href="/login"' in html
