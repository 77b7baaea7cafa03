"""Which workspace a page shows: the personal one, or a team's under ``/teams/{org_id}/...``.

The path names the workspace, so every page says which one it is in and two tabs can show two workspaces. Every
team page asks the API first (``GET /api/orgs/{org_id}``): the API checks the membership and answers 404 to
anyone else, and its answer (name, the caller's role, seats) is what the page trusts. The session keeps a short
list of the user's teams for the switcher only (``remember``); it is refreshed at sign-in, on /teams, after
joining, leaving or creating a team, and by every team page's answer, and it never grants anything.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiohttp import web

from webrana_dashboard.client import ApiError, Json
from webrana_dashboard.pages import api, creds, require_user
from webrana_dashboard.session import Session
from webrana_dashboard.team_api import TeamApi, my_teams

T = TypeVar("T")
MAX_REMEMBERED: Final = 8  # teams the switcher lists from the cookie (the cookie stays well under 4 KB)
NAME_CHARS: Final = 40  # a remembered name is cut to this; pages show the API's full name
RANK: Final = {"member": 1, "manager": 2, "owner": 3}
# What the console offers to which role (the API's own table decides; this only hides what would be refused).
OFFERS: Final = {
    "members.manage": "manager", "invitations.manage": "manager", "provider_keys.manage": "manager",
    "proxy_keys.all": "manager", "usage.all": "manager", "org.transfer": "owner", "org.leave": "member",
    "billing.manage": "owner", "limits.manage": "manager", "org.rename": "owner", "org.delete": "owner",
}


@dataclass(frozen=True, slots=True)
class Team:
    """One team page's workspace, as the API described it to this caller."""

    id: str
    name: str
    role: str
    owner_email: str
    seats: dict[str, int]
    api: TeamApi

    def can(self, action: str) -> bool:
        return RANK.get(self.role, 0) >= RANK[OFFERS[action]]

    @property
    def base(self) -> str:
        return f"/teams/{self.id}"

    def context(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role, "owner_email": self.owner_email,
                "seats": self.seats, "base": self.base, "can": self.can}


def _entry(org: Json) -> dict[str, str]:
    return {"id": str(org["id"]), "name": str(org["name"])[:NAME_CHARS], "role": str(org["role"])}


def remember(session: Session, orgs: list[Json]) -> None:
    """The switcher's list: the user's teams as the API just listed them."""
    teams = [_entry(o) for o in orgs[:MAX_REMEMBERED]]
    if session.teams != teams:
        session.teams = teams
        session.changed = True


def saw_team(session: Session, org: Json) -> None:
    """A team page's answer: the team's current name and the caller's role in it."""
    entry = _entry(org)
    teams = [t for t in session.teams or [] if t["id"] != entry["id"]]
    if len(teams) < MAX_REMEMBERED:
        teams.append(entry)
    teams.sort(key=lambda t: (t["name"], t["id"]))
    if session.teams != teams:
        session.teams = teams
        session.changed = True


def forget_team(session: Session, org_id: str) -> None:
    if session.teams and any(t["id"] == org_id for t in session.teams):
        session.teams = [t for t in session.teams if t["id"] != org_id]
        session.changed = True


async def refresh_teams(request: web.Request) -> list[Json]:
    """Ask the API for the user's teams and remember them for the switcher."""
    orgs = await my_teams(api(request), creds(request))
    remember(require_user(request), orgs)
    return orgs


def org_id_of(request: web.Request) -> str:
    """The team id in the page's path; anything but a UUID is a page that does not exist."""
    raw = request.match_info["org_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise web.HTTPNotFound from None


def team_api(request: web.Request) -> TeamApi:
    """The API bound to the path's team, for form posts (the API checks membership and role on each call)."""
    require_user(request)
    return TeamApi(api(request), creds(request), org_id_of(request))


async def team_of(request: web.Request) -> Team:
    """The path's team as the API describes it to the caller: 404 (and gone from the switcher) if not a member."""
    session = require_user(request)
    org_id = org_id_of(request)
    bound = TeamApi(api(request), creds(request), org_id)
    try:
        org = await bound.get()
    except ApiError as err:
        if err.status == 404:
            forget_team(session, org_id)
        raise
    saw_team(session, org)
    return Team(org_id, str(org["name"]), str(org["role"]), str(org.get("owner_email") or ""),
                dict(org.get("seats") or {}), bound)


async def team_with(request: web.Request, page_call: Awaitable[T]) -> tuple[Team, T]:
    """The team and the page's own call, asked together; both finish before either's error is raised (the team's
    first), so a 404 always reaches ``team_of`` and the switcher forgets the team."""
    team, answer = await asyncio.gather(team_of(request), page_call, return_exceptions=True)
    for outcome in (team, answer):
        if isinstance(outcome, BaseException):
            raise outcome
    assert isinstance(team, Team)
    return team, answer  # type: ignore[return-value]
