"""A team's billing and its members' monthly limits in the console, against the whole stack (real proxy,
PostgreSQL, Redis, the fake Midtrans, a real SMTP sink): the Team subscription a user paid for moves to the team
they create and the personal billing page points there; the team's billing page is its owner's (Snap checkout back
to the team's result page, invoices, cancel), a plan or cancel the team's seats do not fit is refused with the
numbers; the owner and managers set a member's monthly request and spend limits, a member reads their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlsplit

from tests.dashboard.conftest import Console, Stack, another_browser
from tests.dashboard.test_page_budget import addresses, api_calls  # noqa: F401 - the fixture
from tests.dashboard.test_views_billing import pay_on_fake_midtrans, subscribe
from tests.dashboard.test_views_mail import mail_stack  # noqa: F401 - the fixture
from tests.dashboard.test_views_teams import TEAM_RE, close, invitation_link, invite, join_by_signup, team_owner
from tests.fakes.smtp import MailSink

UUID = r"[0-9a-f-]{36}"


def flash_texts(html: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'<p class="flash flash-\w+" role="\w+">([^<]*)</p>', html)]


async def test_team_paid_then_created_moves_the_subscription_and_the_owner_pays_on_the_teams_page(
        console: Console, stack: Stack, addresses: Iterator[str]) -> None:  # noqa: F811
    await console.signup("buyer@example.co.id")
    # Paid for Team, settled while the browser was elsewhere: the session still says Free, /teams asks the API.
    back = await pay_on_fake_midtrans(await subscribe(console, "team"), action="pending")
    await stack.midtrans.transition(parse_qs(urlsplit(back).query)["order_id"][0], "settlement")
    html = await console.get("/teams")
    assert 'id="create-team"' in html and 'id="team-plan-needed"' not in html
    resp = await console.post("/teams", {"name": "Kopi"})
    assert resp.status == 303
    m = TEAM_RE.search(resp.headers["Location"] + "/")
    assert m
    org_id, team_base = m.group(1), f"/teams/{m.group(1)}/billing"
    html = await console.get(resp.headers["Location"])
    assert ("Tim Kopi dibuat. Langganan Team Anda kini milik tim (lihat Tagihan tim); ruang kerja pribadi Anda "
            "memakai paket Free. Undang anggota Anda.") in flash_texts(html)
    assert f'href="{team_base}" id="team-billing-link"' in html  # the owner's team menu offers the billing
    html = await console.get("/teams")
    assert 'id="create-team"' not in html and 'id="team-plan-needed"' not in html

    # The personal page: Free, and where the Team subscription went (not a lost subscription).
    personal = await console.get("/billing")
    assert 'id="plan-name">Free<' in personal and "Tidak ada langganan berbayar. Pilih paket" not in personal
    pointer = re.search(r'<p class="notice" id="team-subscription-pointer">(.*?)</p>', personal, re.S)
    assert pointer and "Langganan Team Anda kini milik tim Anda Kopi" in unescape(pointer.group(1))
    assert f'<a href="{team_base}">Tagihan Kopi</a>' in pointer.group(1)
    past = re.search(rf'href="/billing/invoices/({UUID})"', personal)
    assert past  # the Team invoice paid for the running period stays in the buyer's personal history

    # The team's page: the Team plan and its period; a renewal through Snap comes back to the team's result page.
    html = await console.get(team_base)
    assert 'id="plan-name">Team<' in html and "Periode " in html and f'href="{team_base}/cancel"' in html
    assert 'id="subscribe-team"' not in html and 'id="team-header"' in html
    assert "Belum ada faktur." in html
    key = re.search(r'name="idempotency_key" value="([^"]+-pro)"', html)
    assert key and 'id="subscribe-pro"' in html  # the owner alone: every plan fits
    resp = await console.post(team_base + "/subscribe", {"plan": "team", "idempotency_key": key.group(1)[:-3] + "team"})
    assert resp.status == 303
    back = await pay_on_fake_midtrans(resp.headers["Location"])
    assert back.startswith(f"{stack.console_url}{team_base}/result?order_id=")
    result = await console.get(back.removeprefix(stack.console_url))
    assert 'data-status="paid"' in result and "Paket Team aktif" in result and 'id="team-header"' in result
    invoice_link = re.search(rf'href="({team_base}/invoices/({UUID}))"', result)
    assert invoice_link and f'<a class="button" href="{team_base}">' in result
    html = await console.get(team_base)
    assert f'href="{invoice_link.group(1)}"' in html
    invoice = await console.get(invoice_link.group(1))
    assert re.search(r"WEB-\d{4}-\d{2}-\d{4}", invoice) and "Lunas" in invoice
    assert 'id="invoice-total">Rp 331.890<' in invoice and f'<a class="button" href="{team_base}">' in invoice
    await console.get(f"/billing/invoices/{invoice_link.group(2)}", status=404)  # not a personal invoice
    await console.get(f"{team_base}/invoices/{past.group(1)}", status=404)  # nor the personal one the team's

    # What these pages cost at the proxy: the team's own answer and the page's (two for the billing page).
    costs = {p: await api_calls(stack, console, p, addresses)
             for p in (team_base, back.removeprefix(stack.console_url), invoice_link.group(1), team_base + "/cancel",
                       "/teams", "/billing")}
    assert costs == {team_base: (200, 3), back.removeprefix(stack.console_url): (200, 3),
                     invoice_link.group(1): (200, 2), team_base + "/cancel": (200, 2), "/teams": (200, 1),
                     "/billing": (200, 2)}

    # Cancel at the period's end: asked first, the owner alone may.
    confirm = await console.get(team_base + "/cancel")
    assert "lalu turun ke paket Free: satu kursi, pemilik saja." in confirm and 'id="cancel-confirm"' in confirm
    resp = await console.post(team_base + "/cancel")
    assert resp.status == 303 and resp.headers["Location"] == team_base
    html = await console.get(team_base)
    assert any(f.startswith("Perpanjangan dihentikan. Tim tetap memakai paket Team sampai") for f in flash_texts(html))
    assert 'id="plan-name">Team<' in html and "tidak diperpanjang" in html
    assert org_id in html


async def test_seats_in_use_other_roles_and_member_limits(mail_stack: tuple[Stack, MailSink]) -> None:  # noqa: F811
    stack, sink = mail_stack
    async with another_browser(stack) as owner:
        org_id = await team_owner(owner, stack, "pemilik@example.co.id", "Sigma")
        base = f"/teams/{org_id}"
        await invite(owner, org_id, "dewi@example.co.id", "manager")
        await invite(owner, org_id, "budi@example.co.id")
        dewi = await join_by_signup(stack, sink, await invitation_link(stack, sink, "dewi@example.co.id"),
                                    "dewi@example.co.id")
        budi = await join_by_signup(stack, sink, await invitation_link(stack, sink, "budi@example.co.id"),
                                    "budi@example.co.id")

        # Three seats in use: Starter and Pro (one seat) are not offered, and the API's refusal says the numbers.
        html = await owner.get(base + "/billing")
        short = re.search(r'id="seats-short-starter">([^<]+)<', html)
        assert short and unescape(short.group(1)) == (
            "Paket Starter punya 1 kursi tetapi tim memakai 3 (anggota dan undangan terbuka): 2 harus keluar atau "
            "undangannya dicabut lebih dulu.")
        assert 'id="subscribe-starter"' not in html and 'id="subscribe-pro"' not in html
        resp = await owner.post(base + "/billing/subscribe", {"plan": "starter", "idempotency_key": "k" * 20})
        assert resp.status == 303 and resp.headers["Location"] == base + "/billing"
        assert unescape(short.group(1)) in flash_texts(await owner.get(base + "/billing"))
        resp = await owner.post(base + "/billing/cancel")
        assert resp.status == 303
        assert ("Berhenti berlangganan ditolak selama ada orang lain di tim: paket Free punya satu kursi tetapi tim "
                "memakai 3 (anggota dan undangan terbuka), jadi 2 harus keluar atau undangannya dicabut lebih dulu."
                ) in flash_texts(await owner.get(base + "/billing"))

        # The team's billing is the owner's: not in a manager's or member's menu, and the API refuses them.
        for person in (dewi, budi):
            assert 'id="team-billing-link"' not in await person.get(base + "/members")
            await person.get(base + "/billing", status=403)
            resp = await person.post(base + "/billing/subscribe", {"plan": "team", "idempotency_key": "k" * 20})
            assert resp.status == 303
            assert "Peran Anda di tim ini tidak mengizinkan tindakan tersebut." in flash_texts(
                await person.get(base + "/members"))

        # The owner sets Budi's limits from the members page; use against them in percent.
        members = await owner.get(base + "/members")
        ids = dict(re.findall(rf'<tr data-member="([^"]+)">.*?href="{base}/members/({UUID})/limits"', members, re.S))
        assert set(ids) == {"pemilik@example.co.id", "dewi@example.co.id", "budi@example.co.id"}
        budi_limits, owner_limits = f"{base}/members/{ids['budi@example.co.id']}/limits", \
            f"{base}/members/{ids['pemilik@example.co.id']}/limits"
        html = await owner.get(budi_limits)
        assert 'id="limits-form"' in html and "Batas bulanan budi@example.co.id" in html
        resp = await owner.post(budi_limits, {"monthly_request_limit": "5", "monthly_spend_limit_idr": "Rp 10.000"})
        assert resp.status == 303 and resp.headers["Location"] == budi_limits
        html = await owner.get(budi_limits)
        assert "Batas budi@example.co.id disimpan." in flash_texts(html)
        assert re.search(r'id="limit-requests">.*?<td class="num">0</td>\s*<td class="num">5</td>\s*'
                         r'<td class="num" data-percent="0">0%</td>', html, re.S)
        assert re.search(r'id="limit-spend">.*?<td class="num">Rp 10.000</td>\s*<td class="num" data-percent="0">',
                         html, re.S)
        resp = await owner.post(budi_limits, {"monthly_request_limit": "lima", "monthly_spend_limit_idr": ""})
        html = await resp.text()
        assert resp.status == 422 and 'id="monthly_request_limit-error">Masukkan bilangan bulat' in html
        assert 'value="lima"' in html

        # Budi sees his own limits (from the usage page too), without a form; he may not set them, nor see others'.
        usage = await budi.get(base + "/usage")
        assert f'href="{budi_limits}" id="my-limits"' in usage
        members = await budi.get(base + "/members")
        assert members.count("/limits\"") == 1 and f'href="{budi_limits}"' in members
        html = await budi.get(budi_limits)
        assert "Batas bulanan Anda di tim ini" in html and 'id="limits-form"' not in html
        assert '<td class="num">5</td>' in html
        resp = await budi.post(budi_limits, {"monthly_request_limit": "", "monthly_spend_limit_idr": ""})
        html = await resp.text()
        assert resp.status == 422 and "Peran Anda di tim ini tidak mengizinkan tindakan tersebut." in html
        await budi.get(owner_limits, status=404)
        await budi.get(f"{base}/members/not-a-uuid/limits", status=404)

        # A manager reads the owner's limits but may not set them; clears Budi's.
        html = await dewi.get(owner_limits)
        assert 'id="limits-form"' not in html
        resp = await dewi.post(owner_limits, {"monthly_request_limit": "1", "monthly_spend_limit_idr": ""})
        assert resp.status == 422 and "Peran Anda di tim ini tidak mengizinkan tindakan tersebut." in await resp.text()
        resp = await dewi.post(budi_limits, {"monthly_request_limit": "", "monthly_spend_limit_idr": ""})
        assert resp.status == 303
        html = await budi.get(budi_limits)
        assert html.count("<td class=\"num\">tidak ada</td>") == 2
        await close(dewi)
        await close(budi)
