"""A team's invitations (managers): invite by e-mail with a role, resend (a new link; the old one stops working),
revoke; seats used and free. And the page the invitation e-mail links to (``/invitations/accept?token=``): sign in
or sign up with the invited address, come back, accept."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from webrana_dashboard.client import ApiError
from webrana_dashboard.forms import form_text
from webrana_dashboard.pages import (
    api,
    creds,
    error_text,
    field_errors,
    redirect,
    render,
    require_user,
    session_of,
    t_of,
)
from webrana_dashboard.team_api import accept_invitation
from webrana_dashboard.views.teams import ROLES
from webrana_dashboard.workspaces import org_id_of, refresh_teams, team_api, team_with

routes = web.RouteTableDef()
EMAIL_CHARS = 320
TOKEN_MAX = 100  # a link token is 43 characters
ACCEPT_PAGE = "/invitations/accept"  # the path of the link in the invitation e-mail (the proxy's mail templates)


async def _page(request: web.Request, form: dict[str, str], errors: dict[str, str],
                status: int = 200) -> web.Response:
    team, invitations = await team_with(request, team_api(request).invitations())
    return await render(request, "team_invitations.html", {
        "nav": "team_invitations", "team": team.context(), "invitations": invitations, "roles": ROLES,
        "form": form, "errors": errors}, status=status)


@routes.get("/teams/{org_id}/invitations")
async def invitations(request: web.Request) -> web.Response:
    require_user(request)
    return await _page(request, {"email": "", "role": "member"}, {})


@routes.post("/teams/{org_id}/invitations")
async def invite(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    data = await request.post()
    form = {"email": form_text(data, "email", EMAIL_CHARS).strip(), "role": form_text(data, "role", 20)}
    if not form["email"]:
        return await _page(request, form, {"email": t("error.email_required")}, status=422)
    try:
        await team_api(request).invite(form["email"], form["role"])
    except ApiError as err:
        if err.status not in (400, 403, 409, 422, 429):
            raise
        return await _page(request, form, field_errors(t, err, ("email", "role")), status=422)
    session.flash("ok", t("invitations.sent", email=form["email"]))
    return redirect(f"/teams/{org_id_of(request)}/invitations")


async def _invitation_action(request: web.Request, resend: bool) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    email = form_text(await request.post(), "email", EMAIL_CHARS)
    bound, invitation_id = team_api(request), request.match_info["id"]
    try:
        if resend:
            await bound.resend(invitation_id)
        else:
            await bound.revoke(invitation_id)
    except ApiError as err:
        if err.status not in (400, 403, 404, 409, 429):
            raise
        session.flash("error", error_text(t, err))
    else:
        session.flash("ok", t("invitations.resent" if resend else "invitations.revoked", email=email))
    return redirect(f"/teams/{org_id_of(request)}/invitations")


@routes.post("/teams/{org_id}/invitations/{id}/resend")
async def resend(request: web.Request) -> web.Response:
    return await _invitation_action(request, resend=True)


@routes.post("/teams/{org_id}/invitations/{id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    return await _invitation_action(request, resend=False)


# --- the invitation link ------------------------------------------------------------------------------------------


@routes.get(ACCEPT_PAGE)
async def accept_page(request: web.Request) -> web.Response:
    """What the e-mail's link opens: no change on a GET; the signed-in user accepts with the button."""
    token = request.query.get("token", "")[:TOKEN_MAX]
    here = ACCEPT_PAGE + "?" + urlencode({"token": token})
    return await render(request, "invitation_accept.html", {
        "token": token, "error": "", "signed_in": session_of(request).signed_in,
        "back": urlencode({"next": here})})


@routes.post(ACCEPT_PAGE)
async def accept(request: web.Request) -> web.Response:
    session = require_user(request)
    t = t_of(request)
    token = form_text(await request.post(), "token", TOKEN_MAX)
    here = ACCEPT_PAGE + "?" + urlencode({"token": token})
    try:
        joined = await accept_invitation(api(request), creds(request), token)
    except ApiError as err:
        if err.status not in (400, 403, 409, 422, 429):
            raise
        return await render(request, "invitation_accept.html", {
            "token": token, "error": error_text(t, err), "signed_in": True,
            "other_address": err.code == "invitation_other_address", "back": urlencode({"next": here})},
            status=422)
    if session.user is not None and session.user.get("email_verified") is False:
        session.user = {**session.user, "email_verified": True}  # the link proved the address (the API says so)
    await refresh_teams(request)
    session.flash("ok", t("invitations.joined", name=joined["name"], role=t(f"role.{joined['role']}")))
    return redirect(f"/teams/{joined['org_id']}/proxy-keys")
