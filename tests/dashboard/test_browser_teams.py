"""Teams in a real browser (Playwright driving Debian's Chromium), with the fake Midtrans and a real SMTP server:
the owner subscribes to Team, creates the team and its provider key, invites two people; both accept from the
links in their e-mails (one signs up from the link, one signs in), each creates a team key; one calls the gateway
and the owner sees that call under that member, then sets that member's monthly request limit to the calls made,
and the member's next call is refused; the owner removes the other, whose key stops working."""

from __future__ import annotations

import re

import openai
import pytest

from tests.conftest import PASSWORD
from tests.dashboard.conftest import Stack
from tests.dashboard.flows import chat
from tests.dashboard.test_views_mail import mail_stack  # noqa: F401 - the fixture
from tests.dashboard.test_views_teams import set_plan
from tests.fakes.smtp import MailSink
from tests.gateway.conftest import PROVIDER_KEYS
from webrana_proxy.mail.job import run_once
from webrana_proxy.mail.templates import INVITE_PAGE

pytestmark = pytest.mark.browser

STEP_TIMEOUT_MS = 10_000
OWNER, ANI, BAYU = "pemilik@example.co.id", "ani@example.co.id", "bayu@example.co.id"


async def _invitation_link(stack: Stack, sink: MailSink, to: str) -> str:
    await run_once(stack.proxy.app)  # what the mail job does every two seconds
    links = [u for m in sink.to(to) for u in m.links() if INVITE_PAGE in u]
    assert links, [m.text for m in sink.to(to)]
    return links[-1]


async def test_owner_subscribes_invites_two_sees_a_members_call_and_removes_the_other(
        browser: object, mail_stack: tuple[Stack, MailSink]) -> None:  # noqa: F811
    from playwright.async_api import Browser, Page, expect

    assert isinstance(browser, Browser)
    stack, sink = mail_stack
    console = stack.console_url
    problems: list[str] = []

    async def new_page() -> Page:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        page.on("pageerror", lambda e: problems.append(str(e)))
        return page

    async def sign_in(page: Page, email: str) -> None:
        await page.fill("#email", email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit].primary")

    # The owner (address verified: paying needs it) subscribes to Team through the fake Midtrans.
    await stack.register(OWNER)
    await set_plan(stack, OWNER, "free")
    await stack.register(BAYU)  # Bayu already has an account; Ani will sign up from her link
    owner = await new_page()
    await owner.goto(console + "/login")
    await sign_in(owner, OWNER)
    await owner.wait_for_url(console + "/overview")
    await expect(owner.locator("#workspace-current")).to_have_text("Pribadi")
    await owner.goto(console + "/billing")
    await expect(owner.locator("#seat-meaning")).to_contain_text("Satu kursi di paket Team")
    await owner.click("#subscribe-team")
    await owner.wait_for_url(re.compile(r".*/snap/v4/redirection/.*"))
    await owner.click("button:has-text('Pay (settlement)')")
    await owner.wait_for_url(re.compile(re.escape(console) + r"/billing/result\?order_id=.*"))
    await expect(owner.locator("#payment-result")).to_have_attribute("data-status", "paid")

    # Creates the team, its provider key, and invites two people.
    await owner.click("nav.mainnav >> text=Tim")
    await owner.fill("#team-name", "Warung AI")
    await owner.click("#create-team")
    await expect(owner.locator("#workspace-current")).to_have_text("Warung AI")
    await expect(owner.locator("#team-seats")).to_contain_text("1 dari 10 terpakai")
    team_base = re.sub(r"/invitations$", "", owner.url)
    await owner.click("nav.mainnav >> text=Kunci provider")
    await owner.select_option("#provider", "openai")
    await owner.fill("#name", "tim")
    await owner.fill("#key", PROVIDER_KEYS["openai"])
    await owner.click("button:has-text('Simpan kunci')")
    await expect(owner.locator("#provider-keys")).to_contain_text("tim")
    await owner.click("nav.mainnav >> text=Undangan")
    for email in (ANI, BAYU):
        await owner.fill("#email", email)
        await owner.click("#invite-button")
        await expect(owner.locator(f"tr[data-invitation='{email}']")).to_be_visible()
    await expect(owner.locator("#team-seats")).to_contain_text("3 dari 10 terpakai")

    # Both accept from their e-mail links: Ani signs up from hers, Bayu signs in; each makes a team key.
    keys: dict[str, str] = {}
    for email, signs_up in ((ANI, True), (BAYU, False)):
        person = await new_page()
        await person.goto(await _invitation_link(stack, sink, email))
        if signs_up:
            await person.click("#invitation-sign-up")
            await person.fill("#email", email)
            await person.fill("#password", PASSWORD)
            await person.fill("#password_confirm", PASSWORD)
            await person.click("button[type=submit].primary")
        else:
            await person.click("#invitation-sign-in")
            await sign_in(person, email)
        await person.click("#accept-invitation")
        await expect(person.locator(".flash-ok")).to_contain_text("Anda bergabung dengan tim Warung AI")
        await expect(person.locator("#workspace-current")).to_have_text("Warung AI")
        await expect(person.locator("nav.mainnav")).not_to_contain_text("Undangan")
        await person.fill("#name", "laptop " + email.split("@")[0])
        await person.click("#create-team-key")
        keys[email] = (await person.locator("#new-key").inner_text()).strip()
        assert keys[email].startswith("wbr_")
        await person.context.close()

    # Ani calls the gateway with her team key; the owner sees that call under Ani.
    await chat(stack, keys[ANI])
    await owner.goto(team_base + "/usage")
    ani_row = owner.locator(f"#by-member tr[data-member='{ANI}'] td.num").first
    for _ in range(50):  # usage rows are written off the hot path
        if (await ani_row.inner_text()).strip() == "1":
            break
        await owner.reload()
    await expect(ani_row).to_have_text("1")
    await expect(owner.locator(f"#by-member tr[data-member='{BAYU}'] td.num").first).to_have_text("0")
    await expect(owner.locator("#chart-team-members rect.bar[data-value='1']")).to_have_count(1)

    # The owner sets Ani's monthly request limit to the one call she made: her next call is refused (429).
    await owner.click("nav.mainnav >> text=Anggota")
    await owner.click(f"tr[data-member='{ANI}'] a.limits-link")
    await owner.fill("#monthly_request_limit", "1")
    await owner.click("#save-limits")
    await expect(owner.locator(".flash-ok")).to_contain_text(f"Batas {ANI} disimpan.")
    await expect(owner.locator("#limit-requests td[data-percent]")).to_have_text("100%")
    with pytest.raises(openai.RateLimitError, match="your monthly request limit in this team"):
        await chat(stack, keys[ANI])

    # The owner removes Bayu: his team key stops working at once.
    await chat(stack, keys[BAYU])
    await owner.click("nav.mainnav >> text=Anggota")
    await owner.click(f"tr[data-member='{BAYU}'] button:has-text('Keluarkan')")
    await expect(owner.locator(".flash-ok")).to_contain_text(f"{BAYU} dikeluarkan dari tim")
    await expect(owner.locator(f"tr[data-member='{BAYU}']")).to_have_count(0)
    with pytest.raises(openai.AuthenticationError):
        await chat(stack, keys[BAYU])
    await owner.context.close()
    assert problems == []
