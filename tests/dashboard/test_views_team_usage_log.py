"""A team's request log and CSV export in the console, and renaming and deleting a team, against the whole stack
(real proxy, PostgreSQL, Redis, a real SMTP sink for the invitation): the owner pages through everyone's calls and
filters them by member, a member sees only their own (whatever they ask), the export is the API's team CSV relayed
as it streams; the owner renames and deletes the team, a manager is offered neither and refused both."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from html import unescape

import openai
import pytest

from tests.dashboard.conftest import Console, Stack, another_browser
from tests.dashboard.flows import chat, wait_for
from tests.dashboard.test_page_budget import addresses, api_calls  # noqa: F401 - the fixture
from tests.dashboard.test_views_mail import mail_stack  # noqa: F401 - the fixture
from tests.dashboard.test_views_teams import KEY_RE, close, invitation_link, invite, join_by_signup, team_owner
from tests.fakes.smtp import MailSink
from tests.gateway.conftest import PROVIDER_KEYS

OWNER, RINA = "log-owner@example.co.id", "log-rina@example.co.id"


def _log(html: str) -> str:
    """The request log's table."""
    return html.split('id="calls"', 1)[1].split("</table>", 1)[0]


def _rows(html: str) -> int:
    return _log(html).count("<code>gpt-4o-mini</code>")


def _link(html: str, pattern: str) -> str:
    m = re.search(pattern, html)
    assert m, pattern
    return unescape(m.group(1))


async def _team_key(console: Console, base: str, name: str) -> str:
    await console.get(base + "/proxy-keys")
    resp = await console.post(base + "/proxy-keys", {"name": name})
    assert resp.status == 200, await resp.text()
    key = KEY_RE.search(await resp.text())
    assert key
    return key.group(1)


async def _csv(console: Console, path: str) -> list[list[str]]:
    resp = await console.client.get(path)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="webrana-team-usage-' in resp.headers["Content-Disposition"]
    return list(csv.reader(io.StringIO(await resp.text())))


async def test_team_request_log_pages_filters_by_member_and_exports_csv(
        mail_stack: tuple[Stack, MailSink], addresses: Iterator[str]) -> None:  # noqa: F811
    stack, sink = mail_stack
    async with another_browser(stack) as owner:
        org_id = await team_owner(owner, stack, OWNER, "Logs")
        base = f"/teams/{org_id}"
        await owner.get(base + "/provider-keys")
        resp = await owner.post(base + "/provider-keys", {"provider": "openai", "name": "tim",
                                                          "key": PROVIDER_KEYS["openai"]})
        assert resp.status == 303
        await invite(owner, org_id, RINA)
        rina = await join_by_signup(stack, sink, await invitation_link(stack, sink, RINA), RINA)
        await chat(stack, await _team_key(rina, base, "rina-laptop"), n=2)
        await chat(stack, await _team_key(owner, base, "owner-server"), n=26)

        # The owner: everyone's calls, 25 a page, newest first, with the member's address; the provider table.
        html = await wait_for(owner, base + "/usage?range=7", r'id="usage-requests">28<')
        assert _rows(html) == 25 and f"<td class=\"member\">{OWNER}</td>" in _log(html)
        assert 'id="by-provider"' in html and "OpenAI" in html.split('id="by-provider"', 1)[1]
        older = _link(html, r'href="([^"]*cursor=[^"]+)" rel="next"')
        assert older.startswith(base + "/usage?range=7&")
        page2 = await owner.get(older)
        assert _rows(page2) == 3 and 'rel="next"' not in page2
        assert f'href="{base}/usage?range=7"' in page2  # back to the newest

        # Filtered by member: Rina's two calls only, the filter kept when paging.
        rina_id = _link(html, rf'<option value="([0-9a-f-]{{36}})" >{re.escape(RINA)}</option>')
        owner_id = _link(html, rf'<option value="([0-9a-f-]{{36}})" >{re.escape(OWNER)}</option>')
        mine = await owner.get(f"{base}/usage?range=7&member={rina_id}")
        assert _rows(mine) == 2 and _log(mine).count(f'<td class="member">{RINA}</td>') == 2
        assert f'<option value="{rina_id}" selected>' in mine
        only_owner = await owner.get(f"{base}/usage?range=7&member={owner_id}")
        assert _rows(only_owner) == 25 and RINA not in _log(only_owner)
        assert f"member={owner_id}" in _link(only_owner, r'href="([^"]*cursor=[^"]+)" rel="next"')
        refused = await owner.get(f"{base}/usage?range=7&member=not-a-member", status=422)
        assert 'id="form-error"' in refused

        # Rina: her own calls, no filter offered; asking for the owner's still gives her own (the API decides).
        own = await rina.get(base + "/usage?range=7")
        assert _rows(own) == 2 and 'id="member-filter"' not in own and OWNER not in _log(own)
        asked = await rina.get(f"{base}/usage?range=7&member={owner_id}")
        assert _rows(asked) == 2 and OWNER not in asked.split('id="request-log"', 1)[1]

        # The export: the API's team CSV (member columns), everyone's for the owner, Rina's own for her.
        export = _link(html, r'href="([^"]+/export\.csv\?[^"]+)"')
        assert export.startswith(base + "/usage/export.csv?from=")
        rows = await _csv(owner, export)
        assert rows[0][:3] == ["request_id", "member_email", "member_id"] and len(rows) == 29
        assert sorted({r[1] for r in rows[1:]}) == sorted({OWNER, RINA})
        assert sum(r[1] == RINA for r in rows[1:]) == 2 and {r[2] for r in rows[1:] if r[1] == RINA} == {rina_id}
        theirs = await _csv(rina, _link(own, r'href="([^"]+/export\.csv\?[^"]+)"'))
        assert len(theirs) == 3 and {r[1] for r in theirs[1:]} == {RINA}

        # Three calls a page, whatever the filter: the team, the summary and a page of the log.
        for path in (base + "/usage", f"{base}/usage?member={rina_id}", older):
            assert await api_calls(stack, owner, path, addresses) == (200, 3), path
        assert await api_calls(stack, rina, base + "/usage", addresses) == (200, 3)
        await close(rina)


async def test_owner_renames_and_deletes_the_team_a_manager_cannot(
        mail_stack: tuple[Stack, MailSink], addresses: Iterator[str]) -> None:  # noqa: F811
    stack, sink = mail_stack
    async with another_browser(stack) as owner:
        org_id = await team_owner(owner, stack, "del-owner@example.co.id", "Old name")
        base = f"/teams/{org_id}"
        await owner.get(base + "/provider-keys")
        resp = await owner.post(base + "/provider-keys", {"provider": "openai", "name": "tim",
                                                          "key": PROVIDER_KEYS["openai"]})
        assert resp.status == 303
        await invite(owner, org_id, "del-dewi@example.co.id", "manager")
        dewi = await join_by_signup(stack, sink, await invitation_link(stack, sink, "del-dewi@example.co.id"),
                                    "del-dewi@example.co.id")
        key = await _team_key(dewi, base, "dewi-key")
        await invite(owner, org_id, "del-open@example.co.id")  # an open invitation

        # Rename: the owner's; the page and the switcher show the new name.
        html = await owner.get(base + "/members")
        assert 'id="rename-team"' in html and 'id="delete-team-link"' in html
        resp = await owner.post(base + "/rename", {"name": "  "})
        assert resp.status == 303 and "Beri nama tim." in await owner.get(base + "/members")
        resp = await owner.post(base + "/rename", {"name": "New name"})
        assert resp.status == 303 and resp.headers["Location"] == base + "/members"
        html = await owner.get(base + "/members")
        assert "Nama tim kini New name." in html and 'id="workspace-current">New name<' in html

        # A manager is offered neither, and refused both.
        html = await dewi.get(base + "/members")
        assert 'id="team-settings"' not in html and 'id="delete-team-link"' not in html
        resp = await dewi.post(base + "/rename", {"name": "Dewi's"})
        assert resp.status == 303
        assert "<strong>New name</strong>" in await dewi.get(base + "/members")
        html = await dewi.get(base + "/delete", status=403)
        assert "Hanya pemilik yang dapat menghapus tim." in html
        resp = await dewi.post(base + "/delete", {"name": "New name"})
        assert resp.status == 303 and resp.headers["Location"] == base + "/members"
        await dewi.get(base + "/members")  # still there

        # Delete: the confirm page says what goes (one call), then the team, its keys and the switcher entry go.
        html = await owner.get(base + "/delete")
        consequences = html.split('id="delete-consequences"', 1)[1].split("</ul>", 1)[0]
        assert "Anggota lainnya (1) langsung kehilangan akses" in consequences
        assert "Undangan terbukanya (1) tidak berlaku lagi." in consequences
        assert "Semua kunci Webrana tim langsung berhenti bekerja" in consequences
        assert "Langganan tim yang berjalan kembali ke akun pribadi Anda" in consequences
        assert 'id="delete-confirm">Ya, hapus New name<' in html
        assert await api_calls(stack, owner, base + "/delete", addresses) == (200, 1)
        await chat(stack, key)  # works until the team goes
        resp = await owner.post(base + "/delete", {"name": "New name"})
        assert resp.status == 303 and resp.headers["Location"] == "/teams"
        html = await owner.get("/teams")
        assert "Tim New name dihapus." in html and f'data-team="{org_id}"' not in html
        with pytest.raises(openai.AuthenticationError):
            await chat(stack, key)
        await dewi.get(base + "/members", status=404)
        assert f'data-team="{org_id}"' not in await dewi.get("/overview")
        await close(dewi)
