"""Team pages of the console against the whole stack (real proxy, PostgreSQL, Redis, a real SMTP sink): creating a
team on the Team plan, invitations by e-mail accepted through the link's page (after sign-up or sign-in), members
and roles, team provider and proxy keys, team usage per member; what each role is offered, the switcher, and the
API's word on membership over anything the session remembers. Also: the plan page says what a seat gives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import urlencode

import asyncpg
import openai
import pytest

from tests.conftest import PASSWORD
from tests.dashboard.conftest import Console, Stack, another_browser
from tests.dashboard.flows import chat, wait_for
from tests.dashboard.test_page_budget import addresses, api_calls  # noqa: F401 - the fixture
from tests.dashboard.test_views_mail import mail_stack  # noqa: F401 - the fixture
from tests.fakes.smtp import MailSink
from tests.gateway.conftest import PROVIDER_KEYS
from webrana_dashboard.session import Session, SessionCodec
from webrana_dashboard.views.team_invitations import ACCEPT_PAGE
from webrana_dashboard.workspaces import MAX_REMEMBERED, NAME_CHARS, forget_team, remember, saw_team
from webrana_proxy.mail.job import run_once
from webrana_proxy.mail.templates import INVITE_PAGE

KEY_RE = re.compile(r'<pre id="new-key"><code>(wbr_[A-Za-z0-9_-]+)</code>')
TEAM_RE = re.compile(r"/teams/([0-9a-f-]{36})/")


async def set_plan(stack: Stack, email: str, plan: str) -> None:
    conn = await asyncpg.connect(stack.db_url)
    try:
        await conn.execute("UPDATE users SET plan = $2, email_verified_at = now() WHERE lower(email) = lower($1)",
                           email, plan)
    finally:
        await conn.close()


async def invitation_link(stack: Stack, sink: MailSink, to: str) -> str:
    """The path of the newest invitation link mailed to ``to`` (what the mail job sends)."""
    await run_once(stack.proxy.app)
    links = [u for m in sink.to(to) for u in m.links() if INVITE_PAGE in u]
    assert links, [m.text for m in sink.to(to)]
    assert links[-1].startswith(stack.console_url + ACCEPT_PAGE + "?token=")
    return links[-1].removeprefix(stack.console_url)


async def team_owner(console: Console, stack: Stack, email: str, name: str = "Acme") -> str:
    """A Team-plan user who created a team through the pages; returns the team's id."""
    await console.signup(email)
    await set_plan(stack, email, "team")
    await console.get("/overview")  # the session learns the plan
    resp = await console.post("/teams", {"name": name})
    assert resp.status == 303, await resp.text()
    m = TEAM_RE.search(resp.headers["Location"] + "/")
    assert m
    return m.group(1)


async def invite(console: Console, org_id: str, email: str, role: str = "member") -> None:
    await console.get(f"/teams/{org_id}/invitations")
    resp = await console.post(f"/teams/{org_id}/invitations", {"email": email, "role": role})
    assert resp.status == 303, await resp.text()


async def join_by_signup(stack: Stack, sink: MailSink, link: str, email: str) -> Console:
    """A new person opens the link, signs up from it, comes back and accepts: their browser (still open)."""
    cm = another_browser(stack)
    person = await cm.__aenter__()
    page = await person.get(link)
    assert 'id="invitation-sign-up"' in page
    signup = re.search(r'href="(/signup\?next=[^"]+)"', page)
    assert signup
    await person.get(unescape(signup.group(1)))
    resp = await person.post("/signup", {"email": email, "password": "Passw0rd-Team!", "password_confirm":
                                         "Passw0rd-Team!", "next": link})
    assert resp.status == 303 and resp.headers["Location"] == link
    page = await person.get(link)
    assert 'id="accept-invitation"' in page
    resp = await person.post(ACCEPT_PAGE, {"token": link.split("token=", 1)[1]})
    assert resp.status == 303, await resp.text()
    person.exit = cm  # type: ignore[attr-defined]
    return person


async def close(person: Console) -> None:
    await person.exit.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def test_creating_a_team_needs_the_team_plan(console: Console, stack: Stack) -> None:
    await console.signup("solo@example.co.id")
    html = await console.get("/teams")
    assert 'id="team-plan-needed"' in html and 'id="create-team"' not in html
    resp = await console.post("/teams", {"name": "Sneaky"})  # the API refuses whatever the page offered
    html = await resp.text()
    assert resp.status == 422
    assert '<p class="field-error" id="name-error" role="alert">Membuat tim memerlukan paket Team.</p>' in html
    await set_plan(stack, "solo@example.co.id", "team")
    await console.get("/billing")  # the plan page tells the session the plan
    html = await console.get("/teams")
    assert 'id="create-team"' in html and "10 kursi" in html


async def test_invite_accept_from_the_e_mail_after_sign_up_and_roles(
        mail_stack: tuple[Stack, MailSink]) -> None:  # noqa: F811
    stack, sink = mail_stack
    async with another_browser(stack) as owner:
        org_id = await team_owner(owner, stack, "owner@example.co.id")
        html = await owner.get(f"/teams/{org_id}/invitations")
        assert 'id="workspace-current">Acme<' in html and "1 dari 10 terpakai, 9 kosong" in html
        await invite(owner, org_id, "dewi@example.co.id", "manager")
        await invite(owner, org_id, "budi@example.co.id")
        html = await owner.get(f"/teams/{org_id}/invitations")
        assert 'data-invitation="dewi@example.co.id"' in html and "3 dari 10 terpakai, 7 kosong" in html
        resp = await owner.post(f"/teams/{org_id}/invitations", {"email": "dewi@example.co.id", "role": "member"})
        assert resp.status == 422 and "sudah punya undangan terbuka" in await resp.text()

        dewi = await join_by_signup(stack, sink, await invitation_link(stack, sink, "dewi@example.co.id"),
                                    "dewi@example.co.id")
        html = await dewi.get(f"/teams/{org_id}/proxy-keys")
        assert "Anda bergabung dengan tim Acme sebagai manajer." in html
        assert 'id="workspace-current">Acme<' in html and f'data-team="{org_id}"' in html
        assert 'id="verify-banner"' not in html  # the link proved the address
        budi_link = await invitation_link(stack, sink, "budi@example.co.id")
        budi = await join_by_signup(stack, sink, budi_link, "budi@example.co.id")
        html = await budi.get(f"/teams/{org_id}/members")
        # A member is offered neither invitations nor the team's provider keys, nor any member's controls.
        assert f'href="/teams/{org_id}/invitations"' not in html
        assert f'href="/teams/{org_id}/provider-keys"' not in html
        assert "/role" not in html and "/remove" not in html and 'id="leave-team"' in html
        await budi.get(f"/teams/{org_id}/invitations", status=403)  # and the API refuses it anyway
        again = await budi.post(ACCEPT_PAGE, {"token": budi_link.split("token=", 1)[1]})
        assert again.status == 422 and "sudah dipakai" in await again.text()

        # The manager changes Budi's role; the owner's row offers no control to a manager.
        html = await dewi.get(f"/teams/{org_id}/members")
        budi_id = re.search(r'action="/teams/[^/]+/members/([0-9a-f-]{36})/role"', html)
        assert budi_id and html.count("/role\"") == 1  # Budi's only: not the owner's, not her own
        resp = await dewi.post(f"/teams/{org_id}/members/{budi_id.group(1)}/role",
                               {"role": "manager", "email": "budi@example.co.id"})
        assert resp.status == 303
        html = await dewi.get(f"/teams/{org_id}/members")
        assert "budi@example.co.id kini manajer." in html
        assert 'id="transfer' not in html and "/transfer" not in html  # only the owner hands over the team
        assert "/transfer" in await owner.get(f"/teams/{org_id}/members")
        await close(dewi)
        await close(budi)


async def test_invitation_link_for_another_address_and_when_signed_out(
        mail_stack: tuple[Stack, MailSink]) -> None:  # noqa: F811
    stack, sink = mail_stack
    async with another_browser(stack) as owner, another_browser(stack) as other:
        org_id = await team_owner(owner, stack, "owner2@example.co.id", "Beta")
        await invite(owner, org_id, "sari@example.co.id")
        link = await invitation_link(stack, sink, "sari@example.co.id")
        await stack.register("sari@example.co.id")
        await other.signup("someone-else@example.co.id")
        await other.get(link)
        resp = await other.post(ACCEPT_PAGE, {"token": link.split("token=", 1)[1]})
        html = await resp.text()
        assert resp.status == 422 and "untuk alamat e-mail lain" in html and 'id="switch-account"' in html
        resp = await other.post("/logout", {"next": link})
        assert resp.status == 303 and resp.headers["Location"] == "/login?" + urlencode({"next": link})
        html = await other.get(link)
        assert 'id="invitation-sign-in"' in html and "/login?" + urlencode({"next": link}) in unescape(html)
        await other.get("/login")
        resp = await other.post("/login", {"email": "sari@example.co.id", "password": PASSWORD, "next": link})
        assert resp.status == 303 and resp.headers["Location"] == link
        await other.get(link)
        resp = await other.post(ACCEPT_PAGE, {"token": link.split("token=", 1)[1]})
        assert resp.status == 303 and resp.headers["Location"] == f"/teams/{org_id}/proxy-keys"


async def test_resend_gives_a_new_link_and_revoke_frees_the_seat(
        mail_stack: tuple[Stack, MailSink]) -> None:  # noqa: F811
    stack, sink = mail_stack
    async with another_browser(stack) as owner:
        org_id = await team_owner(owner, stack, "owner3@example.co.id", "Gamma")
        await invite(owner, org_id, "tono@example.co.id")
        first = await invitation_link(stack, sink, "tono@example.co.id")
        html = await owner.get(f"/teams/{org_id}/invitations")
        inv = re.search(r'action="(/teams/[^"]+/invitations/[0-9a-f-]{36})/resend"', html)
        assert inv
        resp = await owner.post(inv.group(1) + "/resend", {"email": "tono@example.co.id"})
        assert resp.status == 303
        assert "Tautan baru sedang dikirim ke tono@example.co.id." in await owner.get(f"/teams/{org_id}/invitations")
        second = await invitation_link(stack, sink, "tono@example.co.id")
        assert second != first
        async with another_browser(stack) as tono:
            await tono.signup("tono@example.co.id")
            await tono.get(first)
            resp = await tono.post(ACCEPT_PAGE, {"token": first.split("token=", 1)[1]})
            assert resp.status == 422 and "tidak dikenal, sudah dipakai, dicabut" in await resp.text()
            resp = await owner.post(inv.group(1) + "/revoke", {"email": "tono@example.co.id"})
            assert resp.status == 303
            html = await owner.get(f"/teams/{org_id}/invitations")
            assert "Undangan untuk tono@example.co.id dicabut." in html and "1 dari 10 terpakai" in html
            resp = await tono.post(ACCEPT_PAGE, {"token": second.split("token=", 1)[1]})
            assert resp.status == 422


async def test_team_keys_usage_per_member_and_removal(
        mail_stack: tuple[Stack, MailSink], addresses: Iterator[str]) -> None:  # noqa: F811
    stack, sink = mail_stack
    async with another_browser(stack) as owner:
        org_id = await team_owner(owner, stack, "owner4@example.co.id", "Delta")
        base = f"/teams/{org_id}"
        await owner.get(base + "/provider-keys")
        resp = await owner.post(base + "/provider-keys", {"provider": "openai", "name": "tim",
                                                          "key": PROVIDER_KEYS["openai"]})
        assert resp.status == 303
        html = await owner.get(base + "/provider-keys")
        assert "tim" in html and PROVIDER_KEYS["openai"] not in html and 'class="masked"' in html
        await invite(owner, org_id, "rina@example.co.id")
        rina = await join_by_signup(stack, sink, await invitation_link(stack, sink, "rina@example.co.id"),
                                    "rina@example.co.id")
        # Rina's own team key, with a rule, through the personal pages' rule fields.
        await rina.get(base + "/proxy-keys")
        assert await rina.get(base + "/provider-keys", status=403)
        resp = await rina.post(base + "/proxy-keys", {"name": "rina-laptop", "rpm_limit": "30"})
        assert resp.status == 200
        created = await resp.text()
        key = KEY_RE.search(created)
        assert key and f'href="{base}/proxy-keys"' in created
        html = await rina.get(base + "/proxy-keys")
        assert "rina-laptop" in html and "30/menit" in html
        edit = re.search(rf'href="({base}/proxy-keys/[0-9a-f-]{{36}}/edit)"', html)
        assert edit
        assert f'action="{edit.group(1)}"' in await rina.get(edit.group(1))
        await chat(stack, key.group(1))

        # The owner sees the call under Rina; Rina sees only her own usage.
        html = await wait_for(owner, base + "/usage",
                              r'data-member="rina@example.co.id"><td>rina@example.co.id</td><td>anggota</td>'
                              r'<td class="num">1<')
        assert 'id="chart-team-members"' in html and 'id="chart-team-requests"' in html
        holders = await owner.get(base + "/proxy-keys")
        assert "rina-laptop" in holders and "rina@example.co.id" in holders
        mine = await rina.get(base + "/usage")
        assert 'id="usage-scope"' in mine and "owner4@example.co.id</td>" not in mine
        assert 'id="chart-team-members"' not in mine

        # What the team pages cost at the proxy: the team's own answer and the page's.
        costs = {p: await api_calls(stack, owner, p, addresses)
                 for p in (base + "/members", base + "/invitations", base + "/provider-keys", base + "/usage",
                           base + "/proxy-keys", "/teams")}
        assert costs == {base + "/members": (200, 2), base + "/invitations": (200, 2),
                         base + "/provider-keys": (200, 2), base + "/usage": (200, 3),  # the team, summary, log
                         base + "/proxy-keys": (200, 3),  # the holders' e-mails for the owner
                         "/teams": (200, 1)}
        assert await api_calls(stack, rina, base + "/proxy-keys", addresses) == (200, 2)

        # Removed: her key stops, her team pages are gone and the switcher forgets the team.
        html = await owner.get(base + "/members")
        rina_id = re.search(r'action="/teams/[^/]+/members/([0-9a-f-]{36})/remove"', html)
        assert rina_id
        resp = await owner.post(f"{base}/members/{rina_id.group(1)}/remove", {"email": "rina@example.co.id"})
        assert resp.status == 303
        assert "rina@example.co.id dikeluarkan dari tim" in await owner.get(base + "/members")
        with pytest.raises(openai.AuthenticationError):
            await chat(stack, key.group(1))
        assert f'data-team="{org_id}"' in await rina.get("/overview")  # remembered, a hint only
        await rina.get(base + "/usage", status=404)
        assert f'data-team="{org_id}"' not in await rina.get("/overview")
        await close(rina)


async def test_a_stranger_cannot_open_a_team(console: Console, stack: Stack) -> None:
    async with another_browser(stack) as owner:
        org_id = await team_owner(owner, stack, "owner5@example.co.id", "Epsilon")
    await console.signup("stranger@example.co.id")
    for page in ("/members", "/invitations", "/provider-keys", "/proxy-keys", "/usage"):
        await console.get(f"/teams/{org_id}{page}", status=404)
    await console.get("/teams/not-a-uuid/members", status=404)
    resp = await console.post(f"/teams/{org_id}/invitations", {"email": "x@example.co.id", "role": "member"})
    assert resp.status == 404


async def test_the_plan_page_says_exactly_what_a_seat_gives(console: Console) -> None:
    await console.signup("seats@example.co.id")
    html = await console.get("/billing")
    seat = re.search(r'<p id="seat-meaning">([^<]+)</p>', html)
    assert seat
    assert unescape(seat.group(1)) == (
        "Satu kursi di paket Team (10 kursi, pemilik termasuk) adalah satu akun anggota tim: anggota itu memanggil "
        "gateway lewat kunci provider tim dan memakai kuota bulanan tim (dalam batas permintaan atau pengeluaran "
        "bulanan yang mungkin diatur pemilik atau manajer untuknya), membuat kunci Webrana tim miliknya sendiri, dan "
        "melihat pemakaiannya sendiri di tim. Pemilik dan manajer juga mengundang dan mengeluarkan anggota, "
        "mengelola kunci provider tim dan melihat pemakaian semua anggota. Undangan terbuka memakai satu kursi "
        "sampai diterima, dicabut atau kedaluwarsa. Langganannya milik tim: langganan pindah ke tim saat pembelinya "
        "membuat tim, pemiliknya membayar di halaman tagihan tim, dan ruang kerja pribadi pemilik memakai paket "
        "Free.")
    await console.post("/lang", {"lang": "en", "next": "/billing"})
    html = await console.get("/billing")
    assert ("One seat on the Team plan (10 seats, the owner included) is one member account in the team: that "
            "member calls the gateway through the team&#39;s provider keys within the team&#39;s monthly quota (and "
            "within any monthly request or spend limit the owner or a manager sets for them), creates their own "
            "team Webrana keys, and sees their own usage in the team.") in html
    assert ("The subscription is the team&#39;s: it moves to the team when its buyer creates it, the owner pays for "
            "it on the team&#39;s billing page, and the owner&#39;s own workspace is on Free.") in html


def test_the_switcher_list_in_the_cookie_is_short_and_follows_the_api() -> None:
    session = Session(user={"id": "u"}, refresh_token="r")
    orgs = [{"id": f"00000000-0000-0000-0000-{i:012d}", "name": "N" * 100, "role": "member"} for i in range(20)]
    remember(session, orgs)
    assert session.teams is not None and len(session.teams) == MAX_REMEMBERED
    assert all(len(t["name"]) == NAME_CHARS for t in session.teams)
    codec = SessionCodec(b"s" * 32, "webrana_session")
    opened = codec.open(codec.seal(session))
    assert opened is not None and opened.teams == session.teams and len(codec.seal(session)) < 2000
    saw_team(session, {"id": orgs[0]["id"], "name": "Renamed", "role": "manager"})
    assert {"id": orgs[0]["id"], "name": "Renamed", "role": "manager"} in session.teams
    forget_team(session, orgs[0]["id"])
    assert all(t["id"] != orgs[0]["id"] for t in session.teams)
    old = codec.open(codec.seal(Session()))  # a cookie from before teams: not known, not empty
    assert old is not None and old.teams is None
