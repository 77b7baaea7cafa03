"""Who may act in which workspace: the one place that decides it.

A workspace is a user's own (personal; its id is the user's id, so every row keyed by a user before teams existed
is already keyed by its workspace) or an organisation (its id is the organisation's). A route names the
organisation in its path (``/api/orgs/{org_id}/...``); a route without ``org_id`` acts in the caller's personal
workspace, where the caller is the owner.

``authorize(request, action)`` returns the ``Workspace`` the call acts in, or raises: 404 for an organisation the
caller is not a member of (the same answer as for one that does not exist, so ids are no oracle), 403 for a
member whose role is below what ``action`` needs. Handlers never check roles themselves: they name an action.
Rules about whom an actor may change (a manager cannot touch the owner) live here too (``may_change``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from webrana_proxy.api.identity import User, current_user
from webrana_proxy.db import Conn
from webrana_proxy.errors import Forbidden, NotFound
from webrana_proxy.state import POOL

OWNER: Final = "owner"
MANAGER: Final = "manager"
MEMBER: Final = "member"
RANK: Final = {MEMBER: 1, MANAGER: 2, OWNER: 3}
INVITABLE_ROLES: Final = (MANAGER, MEMBER)  # the owner is made by creating or transferring, never by invitation

# Every action a route may ask for, and the least role that may take it.
ACTIONS: Final = {
    "org.read": MEMBER,  # the organisation's name, seats and the caller's role
    "org.leave": MEMBER,
    "members.read": MEMBER,
    "members.manage": MANAGER,  # change roles, remove members
    "invitations.manage": MANAGER,  # invite, list, resend, revoke
    "provider_keys.manage": MANAGER,  # the team's provider keys: add, list (masked), test, delete
    "proxy_keys.use": MEMBER,  # the caller's own team proxy keys: create within the team's plan, change, revoke
    "proxy_keys.all": MANAGER,  # every member's team proxy keys: see, change rules, revoke
    "usage.read": MEMBER,  # the team's usage: a member sees their own calls in the team
    "usage.all": MANAGER,  # every member's calls, broken down per member, key, model and provider
    "org.rename": OWNER,
    "org.delete": OWNER,
    "org.transfer": OWNER,
    "billing.manage": OWNER,  # the team's subscription and invoices: see, pay, change plan, cancel
    "limits.own": MEMBER,  # the caller's own monthly limits in the team and their use
    "limits.manage": MANAGER,  # set any member's monthly request and spend limits (not the owner's, like roles)
}


@dataclass(frozen=True, slots=True)
class Workspace:
    id: uuid.UUID  # the user's id (personal) or the organisation's
    user: User  # who is acting
    role: str  # the caller's role here: always "owner" in a personal workspace
    org_id: uuid.UUID | None = None
    name: str = ""  # the organisation's name ("" for a personal workspace)
    plan: str = "free"  # the plan whose limits apply here: the user's own, or the team's (``organisations.plan``)

    @property
    def personal(self) -> bool:
        return self.org_id is None

    def scope(self, all_members_action: str) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        """``(org_id, user_id)`` binding a query to this workspace, written as
        ``org_id IS NOT DISTINCT FROM $a AND ($b::uuid IS NULL OR user_id = $b)``: the caller's own rows in their
        personal workspace; in a team every member's rows when the caller may take ``all_members_action``, else
        only the caller's."""
        if self.org_id is None:
            return None, self.user.id
        return self.org_id, None if allowed(self.role, all_members_action) else self.user.id


def allowed(role: str, action: str) -> bool:
    return RANK[role] >= RANK[ACTIONS[action]]


def may_change(actor_role: str, target_role: str) -> bool:
    """Whether ``actor_role`` may change the role of, or remove, a member holding ``target_role``: the owner may
    change anyone but themselves (ownership moves only by transfer); a manager anyone but the owner."""
    return target_role != OWNER and RANK[actor_role] >= RANK[MANAGER]


def may_limit(actor_role: str, target_role: str) -> bool:
    """Whether ``actor_role`` may set the monthly limits of a member holding ``target_role``: the owner anyone's; a
    manager anyone's but the owner's."""
    return target_role != OWNER or actor_role == OWNER


def _org_id(request: web.Request) -> uuid.UUID | None:
    raw = request.match_info.get("org_id")
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("organisation not found") from None


# The team's plan is the organisation's own (sql/0017; teams.seat_plan reads the same column for seats).
_MEMBERSHIP = """SELECT m.role, o.name, o.plan FROM org_members m JOIN organisations o ON o.id = m.org_id
                 WHERE m.org_id = $1 AND m.user_id = $2"""


async def authorize(request: web.Request, action: str, conn: Conn | None = None) -> Workspace:
    """The workspace this call acts in, if the caller may take ``action`` there. With ``conn`` (inside the
    caller's transaction), the membership row is locked against a concurrent change until the transaction ends."""
    if action not in ACTIONS:
        raise ValueError(f"unknown workspace action {action!r}")
    user = await current_user(request)
    org_id = _org_id(request)
    if org_id is None:
        return Workspace(user.id, user, OWNER, plan=user.plan)
    if conn is None:
        row = await request.app[POOL].fetchrow(_MEMBERSHIP, org_id, user.id)
    else:
        row = await conn.fetchrow(_MEMBERSHIP + " FOR SHARE OF m", org_id, user.id)
    if row is None:
        raise NotFound("organisation not found")
    role: str = row["role"]
    if not allowed(role, action):
        raise Forbidden(f"this needs the {ACTIONS[action]} role in {row['name']!r}; you are a {role}",
                        code="org_role_required")
    return Workspace(org_id, user, role, org_id, row["name"], row["plan"])
