"""Teams: the user's teams and creating one (Team plan), a team's members and roles (change a role, remove,
transfer ownership, leave), renaming and deleting the team (its owner). What a role cannot do is not offered; the
API refuses it anyway."""

from __future__ import annotations

import asyncio

from aiohttp import web

from webrana_dashboard.client import ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.middleware import error_page
from webrana_dashboard.pages import api, creds, error_text, plans, redirect, render, require_user, t_of
from webrana_dashboard.session import Session
from webrana_dashboard.team_api import create_team
from webrana_dashboard.workspaces import forget_team, org_id_of, refresh_teams, team_api, team_of, team_with

routes = web.RouteTableDef()
NAME_CHARS = 100  # the API's limit on a team's name
ROLES = ("manager", "member")  # what a role may be changed to (ownership moves only by a transfer)


async def _seats_of_plan(request: web.Request, plan_id: str) -> int:
    """The team seats of the user's plan (from the plans every visitor shares, kept by the console)."""
    offers = await plans(request)
    return next((int(p.get("team_seats") or 1) for p in offers["data"] if p["id"] == plan_id), 1)


def _set_plan(session: Session, plan: str) -> None:
    if session.user is not None and session.user.get("plan") != plan:
        session.user = {**session.user, "plan": plan}
        session.changed = True


async def _teams_page(request: web.Request, name: str = "", error: str = "", status: int = 200) -> web.Response:
    session = require_user(request)
    if any(t.get("role") == "owner" for t in session.teams or []):  # one Team subscription runs one team
        orgs, seats = await refresh_teams(request), 0
    elif (seats := await _seats_of_plan(request, str((session.user or {}).get("plan") or "free"))) > 1:
        orgs = await refresh_teams(request)
    else:  # the session may not know yet of a Team plan paid since (settled later, in another tab): ask
        orgs, sub = await asyncio.gather(refresh_teams(request), api(request).subscription(creds(request)))
        _set_plan(session, str(sub["plan"]))
        seats = await _seats_of_plan(request, str(sub["plan"]))
    owns_team = any(o["role"] == "owner" for o in orgs)
    if not owns_team and seats == 0:  # the remembered team is no longer the user's own: what their plan gives
        seats = await _seats_of_plan(request, str((session.user or {}).get("plan") or "free"))
    return await render(request, "teams.html", {
        "nav": "teams", "orgs": orgs, "owns_team": owns_team, "plan_seats": 0 if owns_team else seats,
        "name": name, "error": error}, status=status)


@routes.get("/teams")
async def teams(request: web.Request) -> web.Response:
    return await _teams_page(request)


@routes.post("/teams")
async def create(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    name = form_text(await request.post(), "name", NAME_CHARS + 1).strip()
    if not name:
        return await _teams_page(request, name, t("error.name_required"), status=422)
    try:
        org = await create_team(api(request), creds(request), name)
    except ApiError as err:
        if err.status not in (400, 402, 403, 409, 422, 429):
            raise
        return await _teams_page(request, name, error_text(t, err), status=422)
    await refresh_teams(request)
    # The Team subscription moved to the team with it: the creator's own workspace is on Free from now on.
    _set_plan(session, "free")
    session.flash("ok", t("teams.created_moved", name=org["name"]))
    return redirect(f"/teams/{org['id']}/invitations")


@routes.get("/teams/{org_id}")
async def team_home(request: web.Request) -> web.Response:
    require_user(request)
    return redirect(f"/teams/{org_id_of(request)}/members")


@routes.get("/teams/{org_id}/members")
async def members(request: web.Request) -> web.Response:
    session = require_user(request)
    team, people = await team_with(request, team_api(request).members())
    me = str((session.user or {}).get("id") or "")
    return await render(request, "team_members.html", {
        "nav": "team_members", "team": team.context(), "members": people, "me": me, "roles": ROLES})


async def _member_action(request: web.Request, done_key: str, action: str) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    bound = team_api(request)
    user_id = request.match_info["user_id"]
    form = await request.post()
    email = form_text(form, "email", 320)
    try:
        if action == "role":
            role = form_text(form, "role", 20)
            await bound.change_role(user_id, role)
            session.flash("ok", t(done_key, email=email, role=t(f"role.{role}")))
        elif action == "remove":
            await bound.remove(user_id)
            session.flash("ok", t(done_key, email=email))
        else:
            await bound.transfer(user_id)
            await refresh_teams(request)  # the caller is a manager now
            session.flash("ok", t(done_key, email=email))
    except ApiError as err:
        if err.status not in (400, 402, 403, 404, 409, 422):
            raise
        session.flash("error", error_text(t, err))
    return redirect(f"/teams/{org_id_of(request)}/members")


@routes.post("/teams/{org_id}/members/{user_id}/role")
async def change_role(request: web.Request) -> web.Response:
    return await _member_action(request, "teams.role_changed", "role")


@routes.post("/teams/{org_id}/members/{user_id}/remove")
async def remove(request: web.Request) -> web.Response:
    return await _member_action(request, "teams.removed", "remove")


@routes.post("/teams/{org_id}/members/{user_id}/transfer")
async def transfer(request: web.Request) -> web.Response:
    return await _member_action(request, "teams.transferred", "transfer")


@routes.post("/teams/{org_id}/leave")
async def leave(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    org_id = org_id_of(request)
    try:
        await team_api(request).leave()
    except ApiError as err:
        if err.status not in (400, 403, 409):
            raise
        session.flash("error", error_text(t, err))
        return redirect(f"/teams/{org_id}/members")
    forget_team(session, org_id)
    session.flash("ok", t("teams.left"))
    return redirect("/teams")


@routes.post("/teams/{org_id}/rename")
async def rename(request: web.Request) -> web.Response:
    """The owner renames the team (the API's ``org.rename``); the next page's answer renames it in the switcher."""
    session = require_user(request)
    t = t_of(request)
    org_id = org_id_of(request)
    name = form_text(await request.post(), "name", NAME_CHARS + 1).strip()
    if not name:
        session.flash("error", t("teams.team_name_required"))
        return redirect(f"/teams/{org_id}/members")
    try:
        answer = await team_api(request).rename(name)
    except ApiError as err:
        if err.status not in (400, 403, 422):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("teams.renamed", name=answer["name"]))
    return redirect(f"/teams/{org_id}/members")


@routes.get("/teams/{org_id}/delete")
async def confirm_delete(request: web.Request) -> web.Response:
    """What deleting the team takes with it, in the team's own numbers (one call: the team)."""
    require_user(request)
    team = await team_of(request)
    if not team.can("org.delete"):
        return await error_page(request, 403, t_of(request)("teams.delete_owner_only"))
    return await render(request, "team_delete.html", {
        "nav": "team_members", "team": team.context(),
        "others": max(0, int(team.seats.get("members") or 1) - 1),
        "invitations": int(team.seats.get("pending_invitations") or 0)})


@routes.post("/teams/{org_id}/delete")
async def delete(request: web.Request) -> web.Response:
    """The owner deletes the team; the API hands its running subscription back to the owner's own account."""
    session = require_user(request)
    t = t_of(request)
    org_id = org_id_of(request)
    name = form_text(await request.post(), "name", NAME_CHARS + 1)
    try:
        await team_api(request).delete()
    except ApiError as err:
        if err.status not in (403, 409):
            raise
        session.flash("error", error_text(t, err))
        return redirect(f"/teams/{org_id}/members")
    forget_team(session, org_id)
    session.flash("ok", t("teams.deleted", name=name))
    return redirect("/teams")
