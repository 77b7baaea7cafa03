"""Teams through the API, with real PostgreSQL and a real SMTP sink: creating a team, invitations by e-mail
(bound to the address, single use, 7 days), seats, roles, leaving, removal, ownership transfer, the audit trail."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.fakes.smtp import MailSink
from tests.mail.conftest import CONSOLE_URL
from tests.teams.conftest import Client, h, invite, join, mailed_token, make_team, user


async def test_a_team_subscriber_creates_one_team_and_a_plan_without_seats_cannot(client: Client,
                                                                                  migrated: str) -> None:
    free = await user(client, migrated, "pro")
    resp = await client.post("/api/orgs", json={"name": "Solo"}, headers=h(free))
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "team_plan_required"

    owner = await user(client, migrated, "team")
    resp = await client.post("/api/orgs", json={"name": "Acme"}, headers=h(owner))
    assert resp.status == 201, await resp.text()
    org = await resp.json()
    assert org["role"] == "owner" and org["seats"] == {"limit": 10, "members": 1, "pending_invitations": 0,
                                                       "used": 1, "free": 9}
    again = await client.post("/api/orgs", json={"name": "Acme 2"}, headers=h(owner))
    assert again.status == 409 and (await again.json())["error"]["code"] == "org_exists"
    listed = await (await client.get("/api/orgs", headers=h(owner))).json()
    assert [(o["id"], o["role"]) for o in listed["data"]] == [(org["id"], "owner")]


async def test_an_invitation_goes_by_email_and_only_that_address_accepts_it_once(
        client: Client, migrated: str, sink: MailSink) -> None:
    owner = await user(client, migrated, "team")
    org_id = await make_team(client, owner, "Acme")
    resp = await invite(client, org_id, owner, "Dewi@Example.co.id", "manager")
    assert resp.status == 201, await resp.text()
    token = await mailed_token(client, sink, "Dewi@Example.co.id")
    [msg] = [m for m in sink.received if "Dewi@Example.co.id" in m.recipients]
    assert "Acme" in msg.subject and f"{CONSOLE_URL}/invitations/accept?token={token}" in msg.text

    conn = await asyncpg.connect(migrated)
    try:  # only the token's hash is stored; the outbox holds no usable link
        assert token.encode() not in b"".join(r["token_hash"] for r in await conn.fetch(
            "SELECT token_hash FROM org_invitations"))
        assert token not in str(await conn.fetch("SELECT params FROM mail_outbox"))
    finally:
        await conn.close()

    stranger = await user(client, migrated)
    resp = await client.post("/api/invitations/accept", json={"token": token}, headers=h(stranger))
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "invitation_other_address"

    dewi = await user(client, migrated, email="dewi@example.co.id")  # signs up with the address, any case
    resp = await client.post("/api/invitations/accept", json={"token": token}, headers=h(dewi))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["role"] == "manager"
    again = await client.post("/api/invitations/accept", json={"token": token}, headers=h(dewi))
    assert again.status == 400 and (await again.json())["error"]["code"] == "invitation_invalid"
    members = (await (await client.get(f"/api/orgs/{org_id}/members", headers=h(dewi))).json())["data"]
    assert [(m["email"], m["role"]) for m in members] == [(owner["user"]["email"], "owner"),
                                                          ("dewi@example.co.id", "manager")]


async def test_an_expired_revoked_or_resent_link_no_longer_works(client: Client, migrated: str,
                                                                sink: MailSink) -> None:
    owner = await user(client, migrated, "team")
    org_id = await make_team(client, owner)
    invited = await user(client, migrated)
    email = invited["user"]["email"]
    created = await (await invite(client, org_id, owner, email)).json()
    first = await mailed_token(client, sink, email)
    resent = await client.post(f"/api/orgs/{org_id}/invitations/{created['id']}/resend", headers=h(owner))
    assert resent.status == 200, await resent.text()
    second = await mailed_token(client, sink, email)
    assert first != second
    resp = await client.post("/api/invitations/accept", json={"token": first}, headers=h(invited))
    assert resp.status == 400

    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("UPDATE org_invitations SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    resp = await client.post("/api/invitations/accept", json={"token": second}, headers=h(invited))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invitation_invalid"
    seats = (await (await client.get(f"/api/orgs/{org_id}", headers=h(owner))).json())["seats"]
    assert seats["pending_invitations"] == 0  # an expired invitation holds no seat

    await client.post(f"/api/orgs/{org_id}/invitations/{created['id']}/resend", headers=h(owner))
    third = await mailed_token(client, sink, email)
    assert (await client.delete(f"/api/orgs/{org_id}/invitations/{created['id']}", headers=h(owner))).status == 200
    resp = await client.post("/api/invitations/accept", json={"token": third}, headers=h(invited))
    assert resp.status == 400
    assert (await (await client.get(f"/api/orgs/{org_id}/invitations", headers=h(owner))).json())["data"] == []


async def test_seats_include_the_owner_and_open_invitations(client: Client, migrated: str, sink: MailSink) -> None:
    owner = await user(client, migrated, "team")
    org_id = await make_team(client, owner)
    for i in range(9):
        assert (await invite(client, org_id, owner, f"seat{i}@example.co.id")).status == 201
    resp = await invite(client, org_id, owner, "tenth@example.co.id")
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "no_free_seat" and "10 seats" in error["message"]
    dup = await invite(client, org_id, owner, "SEAT0@example.co.id")
    assert dup.status == 409 and (await dup.json())["error"]["code"] == "already_invited"
    pending = (await (await client.get(f"/api/orgs/{org_id}/invitations", headers=h(owner))).json())["data"]
    await client.delete(f"/api/orgs/{org_id}/invitations/{pending[0]['id']}", headers=h(owner))
    assert (await invite(client, org_id, owner, "tenth@example.co.id")).status == 201


async def test_a_downgrade_below_the_member_count_is_refused_naming_how_many_must_leave(
        client: Client, migrated: str, sink: MailSink) -> None:
    owner = await user(client, migrated, "team")
    org_id = await make_team(client, owner)
    a = await join(client, sink, migrated, org_id, owner)
    await join(client, sink, migrated, org_id, owner)
    await invite(client, org_id, owner, "pending@example.co.id")
    resp = await client.post(f"/api/orgs/{org_id}/billing/subscribe", json={"plan": "pro"},
                             headers={**h(owner), "Idempotency-Key": "downgrade-0001"})
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "seats_in_use"
    assert "Pro plan has 1 seat(s) but the team uses 4" in error["message"] and "3 must leave" in error["message"]
    resp = await client.post(f"/api/orgs/{org_id}/billing/cancel", headers=h(owner))
    assert resp.status == 403 and "3 must leave" in (await resp.json())["error"]["message"]
    # The owner's own account is on Free now: its plan changes are no business of the team's seats.
    assert (await client.post("/api/billing/cancel", headers=h(owner))).status == 404

    # Down to the owner alone: the seat check passes (and cancel says there is nothing to cancel).
    for m in (await (await client.get(f"/api/orgs/{org_id}/members", headers=h(owner))).json())["data"][1:]:
        assert (await client.delete(f"/api/orgs/{org_id}/members/{m['user_id']}", headers=h(owner))).status == 200
    for i in (await (await client.get(f"/api/orgs/{org_id}/invitations", headers=h(owner))).json())["data"]:
        await client.delete(f"/api/orgs/{org_id}/invitations/{i['id']}", headers=h(owner))
    resp = await client.post(f"/api/orgs/{org_id}/billing/cancel", headers=h(owner))
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "no_subscription"
    assert (await client.get(f"/api/orgs/{org_id}", headers=h(a))).status == 404  # removed: no longer sees it


async def test_roles_decide_who_may_invite_remove_rename_delete_and_transfer(
        client: Client, migrated: str, sink: MailSink) -> None:
    owner = await user(client, migrated, "team")
    org_id = await make_team(client, owner)
    manager = await join(client, sink, migrated, org_id, owner, "manager")
    member = await join(client, sink, migrated, org_id, manager)  # a manager invites
    other = await join(client, sink, migrated, org_id, manager)
    owner_id, member_id, other_id = owner["user"]["id"], member["user"]["id"], other["user"]["id"]

    def refused_for_role(status: int, body: dict[str, object]) -> bool:
        return status == 403 and body["error"]["code"] == "org_role_required"  # type: ignore[index]

    for method, path, body in [
            ("POST", f"/api/orgs/{org_id}/invitations", {"email": "x@example.co.id", "role": "member"}),
            ("GET", f"/api/orgs/{org_id}/invitations", None),
            ("DELETE", f"/api/orgs/{org_id}/members/{other_id}", None),
            ("PATCH", f"/api/orgs/{org_id}/members/{other_id}", {"role": "manager"})]:
        resp = await client.request(method, path, json=body, headers=h(member))
        assert refused_for_role(resp.status, await resp.json()), (method, path, await resp.text())
    for method, path, body in [("PATCH", f"/api/orgs/{org_id}", {"name": "Taken"}),
                               ("DELETE", f"/api/orgs/{org_id}", None),
                               ("POST", f"/api/orgs/{org_id}/transfer", {"user_id": member_id}),
                               ("DELETE", f"/api/orgs/{org_id}/members/{owner_id}", None)]:
        resp = await client.request(method, path, json=body, headers=h(manager))
        assert refused_for_role(resp.status, await resp.json()), (method, path, await resp.text())

    resp = await client.patch(f"/api/orgs/{org_id}/members/{member_id}", json={"role": "owner"}, headers=h(manager))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_role"
    resp = await client.patch(f"/api/orgs/{org_id}/members/{member_id}", json={"role": "manager"},
                              headers=h(manager))
    assert resp.status == 200 and (await resp.json())["role"] == "manager"
    assert (await client.delete(f"/api/orgs/{org_id}/members/{other_id}", headers=h(manager))).status == 200
    assert (await client.get(f"/api/orgs/{org_id}/members", headers=h(other))).status == 404

    resp = await client.post(f"/api/orgs/{org_id}/leave", headers=h(owner))
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "owner_cannot_leave"
    assert (await client.post(f"/api/orgs/{org_id}/leave", headers=h(member))).status == 200

    # Transfer: the team keeps its own plan, so the new owner (on Free) needs none of theirs.
    resp = await client.post(f"/api/orgs/{org_id}/transfer", json={"user_id": manager["user"]["id"]},
                             headers=h(owner))
    assert resp.status == 200, await resp.text()
    roles = {m["email"]: m["role"] for m in
             (await (await client.get(f"/api/orgs/{org_id}/members", headers=h(owner))).json())["data"]}
    assert roles == {owner["user"]["email"]: "manager", manager["user"]["email"]: "owner"}
    assert (await client.delete(f"/api/orgs/{org_id}", headers=h(owner))).status == 403

    conn = await asyncpg.connect(migrated)
    try:
        trail = [(r["action"], str(r["actor_id"]), str(r["target_user_id"])) for r in await conn.fetch(
            "SELECT action, actor_id, target_user_id FROM audit_log WHERE org_id = $1::uuid "
            "AND action IN ('org.member_remove', 'org.leave', 'org.transfer', 'org.member_role') "
            "ORDER BY created_at, id", org_id)]
    finally:
        await conn.close()
    manager_id = manager["user"]["id"]
    assert trail == [("org.member_role", manager_id, member_id), ("org.member_remove", manager_id, other_id),
                     ("org.leave", member_id, member_id), ("org.transfer", owner_id, manager_id)]
    assert (await client.delete(f"/api/orgs/{org_id}", headers=h(manager))).status == 200
    assert (await client.get("/api/orgs", headers=h(owner))).status == 200
    assert (await (await client.get("/api/orgs", headers=h(owner))).json())["data"] == []


async def test_parallel_invitations_for_the_last_seat_take_it_exactly_once(
        client: Client, migrated: str, sink: MailSink) -> None:
    """Six invitations and the renewal of an expired one race for the one free seat: every path that adds a member
    or an invitation counts the seats under the organisation's row lock in its own transaction, so exactly one
    wins and the others are refused naming the seats."""
    owner = await user(client, migrated, "team")
    org_id = await make_team(client, owner)
    for i in range(7):
        assert (await invite(client, org_id, owner, f"held{i}@example.co.id")).status == 201
    lapsed = await (await invite(client, org_id, owner, "lapsed@example.co.id")).json()
    conn = await asyncpg.connect(migrated)
    try:  # an expired invitation holds no seat: 1 owner + 7 open invitations of 10 seats, and the lapsed one
        await conn.execute("UPDATE org_invitations SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
                           lapsed["id"])
        assert (await invite(client, org_id, owner, "ninth@example.co.id")).status == 201  # 9 of 10 taken
    finally:
        await conn.close()

    async def resend() -> int:
        resp = await client.post(f"/api/orgs/{org_id}/invitations/{lapsed['id']}/resend", headers=h(owner))
        return resp.status

    async def new_invite(email: str) -> int:
        return (await invite(client, org_id, owner, email)).status

    statuses = await asyncio.gather(resend(), *(new_invite(f"racer{i}@example.co.id") for i in range(8)))
    assert sorted(statuses) == [200 if statuses[0] == 200 else 201] + [403] * 8, statuses
    for round_ in range(3):  # the seat freed again (the winner revoked), and raced for again
        pending = (await (await client.get(f"/api/orgs/{org_id}/invitations", headers=h(owner))).json())["data"]
        winner = pending[-1] if statuses[0] != 200 else next(p for p in pending if p["id"] == lapsed["id"])
        assert (await client.delete(f"/api/orgs/{org_id}/invitations/{winner['id']}", headers=h(owner))).status == 200
        statuses = await asyncio.gather(*(new_invite(f"round{round_}-{i}@example.co.id") for i in range(8)))
        assert sorted(statuses) == [201] + [403] * 7, statuses
    seats = (await (await client.get(f"/api/orgs/{org_id}", headers=h(owner))).json())["seats"]
    assert seats == {"limit": 10, "members": 1, "pending_invitations": 9, "used": 10, "free": 0}
