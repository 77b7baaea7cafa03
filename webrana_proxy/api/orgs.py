"""/api/orgs: organisations (teams), their members and roles, invitations by e-mail, leaving and ownership.

Every route under ``/api/orgs/{org_id}`` asks ``workspaces.authorize`` first with the action it takes; nothing here
checks a role. An organisation the caller is not in answers 404, like one that does not exist.

* ``POST /api/orgs`` ``{name}``: a user whose plan has more than one seat (Team) creates their organisation; their
  subscription moves to it (it runs on the Team plan, they on Free). Its billing: api/org_billing.py.
* ``GET /api/orgs``: the caller's organisations and role in each (the console's workspace switcher).
* ``POST /api/orgs/{org_id}/invitations`` ``{email, role}``: a link by e-mail, bound to that address, single use,
  7 days; a pending invitation takes a seat. ``POST /api/invitations/accept`` ``{token}`` by the signed-in user
  with that address (which the link proves: the address counts as verified from then on).
* Leaving, removing a member, changing a role and transferring ownership are written to ``audit_log``.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.api.identity import current_user
from webrana_proxy.billing import subscriptions
from webrana_proxy.billing.plans import get_plan
from webrana_proxy.db import Conn
from webrana_proxy.errors import BadRequest, Forbidden, NotFound, PlanLimitReached, ValidationFailed, WebranaError
from webrana_proxy.jsonio import json_response, path_uuid, read_json, req_email, req_str
from webrana_proxy.mail.linktokens import MAX_TOKEN_CHARS
from webrana_proxy.mail.mailer import MAILER
from webrana_proxy.mail.outbox import enqueue_to_address
from webrana_proxy.state import KEYCACHE, POOL, SETTINGS
from webrana_proxy.teams import INVITATION_DAYS, lock_org, seats
from webrana_proxy.workspaces import INVITABLE_ROLES, MANAGER, OWNER, Workspace, authorize, may_change

routes = web.RouteTableDef()
INVITE = "invite"  # the link token's purpose
NAME_MAX = 100


class Conflict(WebranaError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _audit(conn: Conn, ws: Workspace, action: str, target: uuid.UUID | None, details: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, action, target_user_id, details, org_id) VALUES ($1, $2, $3, $4, $5)",
        ws.user.id, action, target, {"actor_email": ws.user.email, "org_name": ws.name, **details}, ws.org_id)


def _org_view(ws: Workspace, owner_email: str, created_at: datetime, seat_info: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(ws.org_id), "name": ws.name, "role": ws.role, "owner_email": owner_email,
            "plan": ws.plan, "created_at": created_at.isoformat(), "seats": seat_info}


def _member_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"user_id": str(row["user_id"]), "email": row["email"], "role": row["role"],
            "joined_at": row["created_at"].isoformat()}


def _invitation_view(row: asyncpg.Record, now: datetime) -> dict[str, Any]:
    return {"id": str(row["id"]), "email": row["email"], "role": row["role"],
            "invited_by": row["invited_by_email"], "created_at": row["created_at"].isoformat(),
            "expires_at": row["expires_at"].isoformat(), "expired": row["expires_at"] <= now}


def _role(body: dict[str, Any]) -> str:
    role = req_str(body, "role", max_len=20)
    if role not in INVITABLE_ROLES:
        raise ValidationFailed(f"'role' must be one of {', '.join(INVITABLE_ROLES)} (ownership moves only by "
                               "POST /api/orgs/{org_id}/transfer)", param="role", code="invalid_role")
    return role


# --- organisations --------------------------------------------------------------------------------------------


@routes.post("/api/orgs")
async def create(request: web.Request) -> web.Response:
    """The Team subscriber's organisation. In the same transaction the subscription moves to it: the organisation
    runs on the creator's plan, its running subscription and open invoices become the organisation's, and the
    creator's own account falls to Free (``subscriptions.move_to_organisation``)."""
    user = await current_user(request)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    name = req_str(body, "name", max_len=NAME_MAX)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM organisations WHERE owner_id = $1", user.id):
            raise Conflict("you already own a team; one Team subscription runs one team", code="org_exists")
        plan = get_plan(await subscriptions.lock_for_move(conn, user.id))
        if plan.team_seats < 2:
            raise PlanLimitReached(f"the {plan.name} plan has no team seats; subscribe to the Team plan to create "
                                   "a team", code="team_plan_required")
        try:
            org_id = await conn.fetchval("INSERT INTO organisations (name, owner_id) VALUES ($1, $2) RETURNING id",
                                         name, user.id)
        except asyncpg.UniqueViolationError:
            raise Conflict("you already own a team; one Team subscription runs one team",
                           code="org_exists") from None
        await conn.execute("INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, 'owner')",
                           org_id, user.id)
        await subscriptions.move_to_organisation(conn, user.id, org_id, plan.id, _now())
        ws = Workspace(org_id, user, OWNER, org_id, name, plan.id)
        await _audit(conn, ws, "org.create", user.id, {"plan": plan.id})
        created_at = await conn.fetchval("SELECT created_at FROM organisations WHERE id = $1", org_id)
        seat_info = (await seats(conn, org_id)).public()
    await request.app[KEYCACHE].invalidate_user(user.id)  # their personal keys now run on Free
    return json_response(_org_view(ws, user.email, created_at, seat_info), status=201)


@routes.get("/api/orgs")
async def list_orgs(request: web.Request) -> web.Response:
    user = await current_user(request)
    rows = await request.app[POOL].fetch(
        """SELECT o.id, o.name, m.role, o.created_at FROM org_members m JOIN organisations o ON o.id = m.org_id
           WHERE m.user_id = $1 ORDER BY o.name, o.id""", user.id)
    return json_response({"data": [{"id": str(r["id"]), "name": r["name"], "role": r["role"],
                                    "created_at": r["created_at"].isoformat()} for r in rows]})


@routes.get("/api/orgs/{org_id}")
async def get_org(request: web.Request) -> web.Response:
    ws = await authorize(request, "org.read")
    pool = request.app[POOL]
    row = await pool.fetchrow("""SELECT o.created_at, u.email FROM organisations o JOIN users u ON u.id = o.owner_id
                                 WHERE o.id = $1""", ws.org_id)
    if row is None:
        raise NotFound("organisation not found")
    assert ws.org_id is not None
    return json_response(_org_view(ws, row["email"], row["created_at"], (await seats(pool, ws.org_id)).public()))


@routes.patch("/api/orgs/{org_id}")
async def rename(request: web.Request) -> web.Response:
    ws = await authorize(request, "org.rename")
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    name = req_str(body, "name", max_len=NAME_MAX)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("UPDATE organisations SET name = $2 WHERE id = $1", ws.org_id, name)
        await _audit(conn, ws, "org.rename", None, {"name": name})
    return json_response({"id": str(ws.org_id), "name": name})


@routes.delete("/api/orgs/{org_id}")
async def delete(request: web.Request) -> web.Response:
    """Delete the team and its keys. Its running subscription goes back to the owner's own account (with the plan
    it pays for) unless they have one of their own; its invoices stay, as the payers' records."""
    ws = await authorize(request, "org.delete")
    assert ws.org_id is not None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        members = await conn.fetchval("SELECT count(*) FROM org_members WHERE org_id = $1", ws.org_id)
        plan = await subscriptions.hand_back(conn, ws.org_id, ws.user.id, _now())
        await conn.execute("DELETE FROM organisations WHERE id = $1", ws.org_id)  # its keys go with it
        await _audit(conn, ws, "org.delete", None, {"members": members, "subscription_to_owner": plan})
    await request.app[KEYCACHE].invalidate_user(ws.org_id)  # its proxy keys stop at once on every replica
    if plan is not None:
        await request.app[KEYCACHE].invalidate_user(ws.user.id)
    return json_response({"id": str(ws.org_id), "deleted": True})


@routes.post("/api/orgs/{org_id}/transfer")
async def transfer(request: web.Request) -> web.Response:
    """Make another member the owner; the old owner stays as a manager. The team keeps its plan and subscription;
    from now on the new owner pays, changes plan or cancels. They may not own another team."""
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    try:
        target = uuid.UUID(req_str(body, "user_id", max_len=40))
    except ValueError:
        raise ValidationFailed("'user_id' must be a member's user id", param="user_id") from None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ws = await authorize(request, "org.transfer", conn)
        assert ws.org_id is not None
        await lock_org(conn, ws.org_id)
        row = await conn.fetchrow(
            """SELECT m.role, u.email FROM org_members m JOIN users u ON u.id = m.user_id
               WHERE m.org_id = $1 AND m.user_id = $2 FOR UPDATE OF m""", ws.org_id, target)
        if row is None:
            raise NotFound("member not found")
        if target == ws.user.id:
            raise BadRequest("you already own this team", param="user_id", code="already_owner")
        if await conn.fetchval("SELECT 1 FROM organisations WHERE owner_id = $1", target):
            raise Conflict(f"{row['email']} already owns a team; one person owns at most one", code="org_exists")
        await conn.execute("UPDATE org_members SET role = 'manager' WHERE org_id = $1 AND user_id = $2",
                           ws.org_id, ws.user.id)
        await conn.execute("UPDATE org_members SET role = 'owner' WHERE org_id = $1 AND user_id = $2",
                           ws.org_id, target)
        await conn.execute("UPDATE organisations SET owner_id = $2 WHERE id = $1", ws.org_id, target)
        # Who pays moves with the ownership: the team's subscriptions are the new owner's to renew or cancel.
        await subscriptions.lock_user_billing(conn, ws.org_id)
        await conn.execute("""UPDATE subscriptions SET user_id = $2
                              WHERE org_id = $1 AND status IN ('active', 'pending')""", ws.org_id, target)
        await _audit(conn, ws, "org.transfer", target, {"new_owner_email": row["email"]})
    return json_response({"id": str(ws.org_id), "owner_id": str(target), "your_role": MANAGER})


@routes.post("/api/orgs/{org_id}/leave")
async def leave(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ws = await authorize(request, "org.leave", conn)
        if ws.role == OWNER:
            raise Conflict("the owner cannot leave; transfer ownership first (POST /api/orgs/{org_id}/transfer) "
                           "or delete the team", code="owner_cannot_leave")
        await conn.execute("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2", ws.org_id, ws.user.id)
        revoked = await _revoke_member_keys(conn, ws, ws.user.id)
        await _audit(conn, ws, "org.leave", ws.user.id, {"role": ws.role, "keys_revoked": revoked})
    await request.app[KEYCACHE].invalidate_user(ws.id)
    return json_response({"id": str(ws.org_id), "left": True})


# --- members ----------------------------------------------------------------------------------------------------


@routes.get("/api/orgs/{org_id}/members")
async def list_members(request: web.Request) -> web.Response:
    ws = await authorize(request, "members.read")
    rows = await request.app[POOL].fetch(
        """SELECT m.user_id, u.email, m.role, m.created_at FROM org_members m JOIN users u ON u.id = m.user_id
           WHERE m.org_id = $1
           ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'manager' THEN 1 ELSE 2 END, u.email""", ws.org_id)
    return json_response({"data": [_member_view(r) for r in rows]})


async def _target(conn: Conn, ws: Workspace, user_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT m.user_id, u.email, m.role, m.created_at FROM org_members m JOIN users u ON u.id = m.user_id
           WHERE m.org_id = $1 AND m.user_id = $2 FOR UPDATE OF m""", ws.org_id, user_id)
    if row is None:
        raise NotFound("member not found")
    if row["user_id"] == ws.user.id:
        raise BadRequest("to leave the team use POST /api/orgs/{org_id}/leave; your own role changes only by a "
                         "transfer", code="own_membership")
    if not may_change(ws.role, row["role"]):
        raise Forbidden("the owner's membership changes only by a transfer of ownership", code="org_role_required")
    return row


async def _revoke_member_keys(conn: Conn, ws: Workspace, user_id: uuid.UUID) -> int:
    """Revoke the team proxy keys a leaving member holds (the caller invalidates the key cache after commit)."""
    revoked = await conn.fetch("""UPDATE proxy_api_keys SET revoked_at = now()
                                  WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id""",
                               ws.org_id, user_id)
    return len(revoked)


@routes.patch("/api/orgs/{org_id}/members/{user_id}")
async def change_role(request: web.Request) -> web.Response:
    user_id = path_uuid(request, "user_id")
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    role = _role(body)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ws = await authorize(request, "members.manage", conn)
        row = await _target(conn, ws, user_id)
        await conn.execute("UPDATE org_members SET role = $3 WHERE org_id = $1 AND user_id = $2",
                           ws.org_id, user_id, role)
        await _audit(conn, ws, "org.member_role", user_id, {"email": row["email"], "from": row["role"], "to": role})
    return json_response({"user_id": str(user_id), "email": row["email"], "role": role,
                          "joined_at": row["created_at"].isoformat()})


@routes.delete("/api/orgs/{org_id}/members/{user_id}")
async def remove_member(request: web.Request) -> web.Response:
    user_id = path_uuid(request, "user_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ws = await authorize(request, "members.manage", conn)
        row = await _target(conn, ws, user_id)
        await conn.execute("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2", ws.org_id, user_id)
        revoked = await _revoke_member_keys(conn, ws, user_id)
        await _audit(conn, ws, "org.member_remove", user_id, {"email": row["email"], "role": row["role"],
                                                             "keys_revoked": revoked})
    await request.app[KEYCACHE].invalidate_user(ws.id)  # their team keys stop at once on every replica
    return json_response({"user_id": str(user_id), "removed": True})


# --- invitations ------------------------------------------------------------------------------------------------

_INVITATIONS = """SELECT i.id, i.email, i.role, i.created_at, i.expires_at, u.email AS invited_by_email
                  FROM org_invitations i LEFT JOIN users u ON u.id = i.invited_by"""


async def _send_invitation(conn: Conn, ws: Workspace, token_id: uuid.UUID, email: str, role: str,
                           expires_at: datetime) -> None:
    locale = await conn.fetchval("SELECT locale FROM users WHERE lower(email) = lower($1)", email)
    await enqueue_to_address(conn, email, locale or ws.user.locale or "id", "team_invitation", {
        "token_id": str(token_id), "email": email, "inviter": ws.user.email, "org_name": ws.name,
        "role": role, "expires_at": expires_at.isoformat()})


def _token_hash(request: web.Request, token_id: uuid.UUID) -> bytes:
    return _hash(request.app[MAILER].links.token_for(INVITE, token_id))


@routes.get("/api/orgs/{org_id}/invitations")
async def list_invitations(request: web.Request) -> web.Response:
    ws = await authorize(request, "invitations.manage")
    rows = await request.app[POOL].fetch(
        _INVITATIONS + """ WHERE i.org_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL
                           ORDER BY i.created_at, i.id""", ws.org_id)
    now = _now()
    return json_response({"data": [_invitation_view(r, now) for r in rows]})


@routes.post("/api/orgs/{org_id}/invitations")
async def invite(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    email = req_email(body).strip()
    role = _role(body)
    now = _now()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ws = await authorize(request, "invitations.manage", conn)
        assert ws.org_id is not None
        await lock_org(conn, ws.org_id)
        if await conn.fetchval("""SELECT 1 FROM org_members m JOIN users u ON u.id = m.user_id
                                  WHERE m.org_id = $1 AND lower(u.email) = lower($2)""", ws.org_id, email):
            raise Conflict(f"{email} is already in this team", param="email", code="already_member")
        if await conn.fetchval("""SELECT 1 FROM org_invitations WHERE org_id = $1 AND lower(email) = lower($2)
                                  AND accepted_at IS NULL AND revoked_at IS NULL""", ws.org_id, email):
            raise Conflict(f"{email} already has an open invitation; resend or revoke it", param="email",
                           code="already_invited")
        taken = await seats(conn, ws.org_id)
        if taken.used >= taken.limit:
            raise PlanLimitReached(f"all {taken.limit} seats are taken ({taken.members} members, {taken.pending} "
                                   "open invitations); remove a member or revoke an invitation first",
                                   code="no_free_seat")
        token_id = uuid.uuid4()
        expires_at = now + timedelta(days=INVITATION_DAYS)
        invitation_id = await conn.fetchval(
            """INSERT INTO org_invitations (org_id, email, role, token_id, token_hash, invited_by, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
            ws.org_id, email, role, token_id, _token_hash(request, token_id), ws.user.id, expires_at)
        await _send_invitation(conn, ws, token_id, email, role, expires_at)
        await _audit(conn, ws, "org.invite", None, {"email": email, "role": role})
        row = await conn.fetchrow(_INVITATIONS + " WHERE i.id = $1", invitation_id)
    assert row is not None
    return json_response(_invitation_view(row, now), status=201)


async def _open_invitation(conn: Conn, ws: Workspace, invitation_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        _INVITATIONS + """ WHERE i.id = $1 AND i.org_id = $2 AND i.accepted_at IS NULL AND i.revoked_at IS NULL
                           FOR UPDATE OF i""", invitation_id, ws.org_id)
    if row is None:
        raise NotFound("invitation not found")
    return row


@routes.post("/api/orgs/{org_id}/invitations/{id}/resend")
async def resend(request: web.Request) -> web.Response:
    """A new link, valid 7 days from now; the earlier link stops working."""
    invitation_id = path_uuid(request)
    now = _now()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ws = await authorize(request, "invitations.manage", conn)
        assert ws.org_id is not None
        await lock_org(conn, ws.org_id)
        row = await _open_invitation(conn, ws, invitation_id)
        if row["expires_at"] <= now:  # an expired invitation no longer holds a seat: renewing takes one again
            taken = await seats(conn, ws.org_id)
            if taken.used >= taken.limit:
                raise PlanLimitReached(f"all {taken.limit} seats are taken; remove a member or revoke an "
                                       "invitation first", code="no_free_seat")
        # A fresh token id gives a fresh token (an HMAC of it): the old link stops working.
        token_id = uuid.uuid4()
        expires_at = now + timedelta(days=INVITATION_DAYS)
        await conn.execute("UPDATE org_invitations SET token_id = $2, token_hash = $3, expires_at = $4 WHERE id = $1",
                           invitation_id, token_id, _token_hash(request, token_id), expires_at)
        await _send_invitation(conn, ws, token_id, row["email"], row["role"], expires_at)
        updated = await conn.fetchrow(_INVITATIONS + " WHERE i.id = $1", invitation_id)
    assert updated is not None
    return json_response(_invitation_view(updated, now))


@routes.delete("/api/orgs/{org_id}/invitations/{id}")
async def revoke(request: web.Request) -> web.Response:
    invitation_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ws = await authorize(request, "invitations.manage", conn)
        row = await _open_invitation(conn, ws, invitation_id)
        await conn.execute("UPDATE org_invitations SET revoked_at = now() WHERE id = $1", invitation_id)
        await _audit(conn, ws, "org.invitation_revoke", None, {"email": row["email"]})
    return json_response({"id": str(invitation_id), "revoked": True})


@routes.post("/api/invitations/accept")
async def accept(request: web.Request) -> web.Response:
    """Join the team of the invitation link ``token``, as the signed-in user with the invited address."""
    user = await current_user(request)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    token = req_str(body, "token", max_len=MAX_TOKEN_CHARS)
    now = _now()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """SELECT i.id, i.org_id, i.email, i.role, o.name FROM org_invitations i
               JOIN organisations o ON o.id = i.org_id
               WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > $2
               FOR UPDATE OF i""", _hash(token), now)
        if row is None:
            raise BadRequest("this invitation link is unknown, used, revoked or expired; ask the team for a new one",
                             param="token", code="invitation_invalid")
        if row["email"].lower() != user.email.lower():
            raise Forbidden(f"this invitation is for another e-mail address; sign in as that address to accept it "
                            f"(you are signed in as {user.email})", code="invitation_other_address")
        await lock_org(conn, row["org_id"])
        if await conn.fetchval("SELECT 1 FROM org_members WHERE org_id = $1 AND user_id = $2", row["org_id"], user.id):
            raise Conflict("you are already in this team", code="already_member")
        taken = await seats(conn, row["org_id"])
        if taken.members >= taken.limit:  # this invitation's own seat is among `pending`
            raise PlanLimitReached(f"the team {row['name']!r} has no free seat any more; ask its owner",
                                   code="no_free_seat")
        await conn.execute("UPDATE org_invitations SET accepted_at = $2, accepted_by = $3 WHERE id = $1",
                           row["id"], now, user.id)
        await conn.execute("INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, $3)",
                           row["org_id"], user.id, row["role"])
        # The link reached this address: it is proven, as a verification link would prove it.
        await conn.execute("UPDATE users SET email_verified_at = coalesce(email_verified_at, $2) WHERE id = $1",
                           user.id, now)
        ws = Workspace(row["org_id"], user, row["role"], row["org_id"], row["name"])
        await _audit(conn, ws, "org.join", user.id, {"role": row["role"]})
    return json_response({"org_id": str(row["org_id"]), "name": row["name"], "role": row["role"]})
