"""A team member's monthly limits in the team (``/teams/{org_id}/members/{user_id}/limits``): requests and spend in
rupiah (blank: none), and this month's use against them. The owner and managers set anyone's (a manager not the
owner's); every member sees their own. The API decides: another member's limits are a 404 to a member, and a
member's form post is refused (403)."""

from __future__ import annotations

import uuid

from aiohttp import web

from webrana_dashboard.client import ApiError, Json
from webrana_dashboard.forms import NotAWholeNumber, form_amount, form_text
from webrana_dashboard.pages import field_errors, redirect, render, require_user, t_of
from webrana_dashboard.workspaces import Team, org_id_of, team_api, team_with

routes = web.RouteTableDef()
FIELDS = ("monthly_request_limit", "monthly_spend_limit_idr")


def may_set(team: Team, limits: Json) -> bool:
    """Whether the form is offered: a manager sets a member's or manager's limits, only the owner the owner's."""
    return team.can("limits.manage") and (limits.get("role") != "owner" or team.role == "owner")


def _user_id(request: web.Request) -> str:
    """The member in the path; anything but a UUID is a page that does not exist."""
    try:
        return str(uuid.UUID(request.match_info["user_id"]))
    except ValueError:
        raise web.HTTPNotFound from None


def _shown(limits: Json) -> dict[str, str]:
    return {f: "" if limits.get(f) is None else str(limits[f]) for f in FIELDS}


async def _page(request: web.Request, form: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                status: int = 200) -> web.Response:
    user_id = _user_id(request)
    team, limits = await team_with(request, team_api(request).member_limits(user_id))
    me = str((require_user(request).user or {}).get("id") or "")
    return await render(request, "team_limits.html", {
        "nav": "team_members", "team": team.context(), "limits": limits, "own": limits.get("user_id") == me,
        "may_set": may_set(team, limits), "form": form or _shown(limits), "errors": errors or {}}, status=status)


@routes.get("/teams/{org_id}/members/{user_id}/limits")
async def limits(request: web.Request) -> web.Response:
    require_user(request)
    return await _page(request)


@routes.post("/teams/{org_id}/members/{user_id}/limits")
async def set_limits(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    user_id = _user_id(request)
    data = await request.post()
    form = {f: form_text(data, f, 40) for f in FIELDS}
    try:
        values = [form_amount(data, f) for f in FIELDS]
    except NotAWholeNumber as bad:
        return await _page(request, form, {str(bad): t("error.whole_number")}, status=422)
    try:
        answer = await team_api(request).set_member_limits(user_id, values[0], values[1])
    except ApiError as err:
        if err.status not in (400, 403, 422):
            raise
        return await _page(request, form, field_errors(t, err, FIELDS), status=422)
    session.flash("ok", t("limits.saved", email=answer.get("email", "")))
    return redirect(f"/teams/{org_id_of(request)}/members/{user_id}/limits")
