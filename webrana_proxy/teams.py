"""Seats of an organisation: how many it has, how many are taken, and the refusals that keep them honest.

The seat limit is the plan's ``team_seats`` (the owner included). The plan is the organisation's own
(``organisations.plan``, sql/0017: the Team subscription moved to it when the team was created): ``seat_plan`` is
the one place that reads it for seats. Members and open invitations (pending, not expired) both take a seat. Every
path that adds a member or an invitation takes ``lock_org`` and counts in the same transaction, so two of them never
both take the last seat.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from webrana_proxy.billing.plans import Plan, get_plan
from webrana_proxy.db import Conn
from webrana_proxy.errors import PlanLimitReached

INVITATION_DAYS = 7  # an invitation link works this long, once


@dataclass(frozen=True, slots=True)
class Seats:
    limit: int
    members: int
    pending: int  # open invitations

    @property
    def used(self) -> int:
        return self.members + self.pending

    def public(self) -> dict[str, Any]:
        return {"limit": self.limit, "members": self.members, "pending_invitations": self.pending,
                "used": self.used, "free": max(0, self.limit - self.used)}


async def seat_plan(conn: Conn | asyncpg.Pool, org_id: uuid.UUID) -> Plan:
    plan_id = await conn.fetchval("SELECT plan FROM organisations WHERE id = $1", org_id)
    return get_plan(plan_id or "free")


async def seats(conn: Conn | asyncpg.Pool, org_id: uuid.UUID) -> Seats:
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM org_members WHERE org_id = $1) AS members,
                  (SELECT count(*) FROM org_invitations WHERE org_id = $1 AND accepted_at IS NULL
                          AND revoked_at IS NULL AND expires_at > now()) AS pending""", org_id)
    assert row is not None
    return Seats((await seat_plan(conn, org_id)).team_seats, row["members"], row["pending"])


async def lock_org(conn: Conn, org_id: uuid.UUID) -> None:
    """Serialise seat changes of one organisation (invite, accept, transfer) inside the caller's transaction."""
    await conn.execute("SELECT 1 FROM organisations WHERE id = $1 FOR UPDATE", org_id)


def refuse_below(taken: int, plan: Plan, what: str) -> None:
    """Refuse ``what`` (a plan change, a transfer) that would leave fewer seats than are taken."""
    if plan.team_seats >= taken:
        return
    must_leave = taken - plan.team_seats
    raise PlanLimitReached(
        f"{what}: the {plan.name} plan has {plan.team_seats} seat(s) but the team uses {taken} (members and open "
        f"invitations); {must_leave} must leave or be revoked first", code="seats_in_use")


async def check_plan_change(conn: Conn | asyncpg.Pool, org_id: uuid.UUID, plan: Plan) -> None:
    """A team's plan change (or cancel: ``plan`` Free) must keep a seat for everyone in it."""
    refuse_below((await seats(conn, org_id)).used, plan, f"cannot change to the {plan.name} plan")
