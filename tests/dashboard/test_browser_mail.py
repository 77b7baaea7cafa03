"""The e-mail flows in a real browser (Playwright driving Debian's Chromium): sign up, open the verification
link from the e-mail that arrived at the SMTP server (aiosmtpd), create a key; forget the password and reset it
from the e-mail's link, then sign in with the new one."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.dashboard.conftest import Stack
from tests.dashboard.test_views_mail import mail_stack  # noqa: F401 - the fixture
from tests.fakes.smtp import MailSink
from webrana_proxy.mail.job import run_once

pytestmark = pytest.mark.browser

STEP_TIMEOUT_MS = 10_000
NEW_PASSWORD = "N3w-Passw0rd!"


async def _link_from_mail(stack: Stack, sink: MailSink, to: str, page: str) -> str:
    await run_once(stack.proxy.app)  # what the mail job does every two seconds
    for message in reversed(sink.to(to)):
        for link in message.links():
            if page in link:
                return link
    raise AssertionError(f"no {page} link in the mail to {to}: {[m.text for m in sink.to(to)]}")


async def test_sign_up_verify_from_the_e_mail_and_reset_the_password_from_the_e_mail(
        browser: object, mail_stack: tuple[Stack, MailSink]) -> None:  # noqa: F811
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    stack, sink = mail_stack
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    console = stack.console_url
    email = "browser-mail@example.co.id"

    # Sign up: the console asks to verify the address, and creating a key waits for it.
    await page.goto(console + "/signup")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.fill("#password_confirm", PASSWORD)
    await page.click("button[type=submit].primary")
    await page.wait_for_url(console + "/overview")
    await expect(page.locator("#verify-banner")).to_contain_text(email)

    # The link in the e-mail that arrived at the SMTP server, opened in the browser.
    await page.goto(await _link_from_mail(stack, sink, email, "/verify-email?"))
    await expect(page.locator("#verify-ok")).to_be_visible()
    await page.goto(console + "/proxy-keys")
    await expect(page.locator("#verify-banner")).to_have_count(0)
    await page.fill("#name", "laptop")
    await page.click("button:has-text('Buat kunci')")
    await expect(page.locator("#new-key")).to_contain_text("wbr_")

    # Forgot password, in a fresh browser: the reset link from the e-mail, a new password, sign in with it.
    await context.close()
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    await page.goto(console + "/login")
    await page.click("#forgot-link")
    await page.fill("#email", email)
    await page.click("button[type=submit].primary")
    await expect(page.locator("#forgot-sent")).to_be_visible()
    await page.goto(await _link_from_mail(stack, sink, email, "/reset-password?"))
    await page.fill("#password", NEW_PASSWORD)
    await page.fill("#password_confirm", NEW_PASSWORD)
    await page.click("button[type=submit].primary")
    await page.wait_for_url(console + "/login")
    await page.fill("#email", email)
    await page.fill("#password", NEW_PASSWORD)
    await page.click("button[type=submit].primary")
    await page.wait_for_url(console + "/overview")
    assert [m.subject for m in sink.to(email)][-1] == "Atur ulang kata sandi Webrana"
    await run_once(stack.proxy.app)
    assert sink.to(email)[-1].subject == "Kata sandi Webrana Anda telah diubah"
    await context.close()
    assert problems == []
