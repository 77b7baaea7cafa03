"""The OpenAPI operations of /api/orgs and /api/invitations (merged into ``openapi.paths()``).

The workspace a call acts in is explicit in its path: ``/api/orgs/{org_id}/...`` acts in that organisation (the
caller must be a member: otherwise 404, as for an organisation that does not exist; a role below the one the
action needs: 403 ``org_role_required``); every other route acts in the caller's personal workspace.
"""

from __future__ import annotations

from typing import Any

from webrana_proxy.api.openapi import INT, STR, UUID, _obj, _op, _path_id

DATETIME = {"type": "string", "format": "date-time"}
ROLE = {"type": "string", "enum": ["owner", "manager", "member"]}
INVITABLE = {"type": "string", "enum": ["manager", "member"]}
ORG_ID = {"name": "org_id", "in": "path", "required": True, "schema": UUID,
          "description": "the organisation (team) whose workspace this call acts in"}
USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": UUID, "description": "a member's user id"}
SEATS = _obj(["limit", "members", "pending_invitations", "used", "free"], limit=INT, members=INT,
             pending_invitations=INT, used=INT, free=INT)
ORG = _obj(["id", "name", "role", "owner_email", "created_at", "seats"], id=UUID, name=STR, role=ROLE,
           owner_email=STR, created_at=DATETIME, seats=SEATS)
ORG_ITEM = _obj(["id", "name", "role", "created_at"], id=UUID, name=STR, role=ROLE, created_at=DATETIME)
MEMBER = _obj(["user_id", "email", "role", "joined_at"], user_id=UUID, email=STR, role=ROLE, joined_at=DATETIME)
INVITATION = _obj(["id", "email", "role", "invited_by", "created_at", "expires_at", "expired"], id=UUID, email=STR,
                  role=INVITABLE, invited_by={"type": ["string", "null"]}, created_at=DATETIME,
                  expires_at=DATETIME, expired={"type": "boolean"})
NAME = _obj(["name"], name={"type": "string", "minLength": 1, "maxLength": 100})


TEAM_KEY_ROUTES = {  # personal route -> who may use its team twin
    "/api/provider-keys": "manager; members use the team's provider keys only through their team proxy keys",
    "/api/provider-keys/{id}": "manager",
    "/api/provider-keys/{id}/test": "manager",
    "/api/proxy-keys": "member: their own keys, counted against the team's plan; a manager sees every member's",
    "/api/proxy-keys/{id}": "member: their own key; a manager: any member's",
}


def team_key_paths(personal: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The team's twins of the personal key routes: the same operations under /api/orgs/{org_id}, acting in the
    team's workspace (keys sealed with the team bound; calls through them count against the team)."""
    out: dict[str, dict[str, Any]] = {}
    for path, who in TEAM_KEY_ROUTES.items():
        ops = {}
        for method, op in personal[path].items():
            ops[method] = {**op, "summary": f"{op['summary']}, in a team's workspace ({who})",
                           "parameters": [ORG_ID, *op.get("parameters", [])]}
        out["/api/orgs/{org_id}" + path.removeprefix("/api")] = ops
    return out


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return _obj(["data"], data={"type": "array", "items": item})


def orgs_paths() -> dict[str, dict[str, Any]]:
    org = [ORG_ID]
    return {
        "/api/orgs": {
            "get": _op("The caller's teams and their role in each (the workspace switcher)", response=_list(ORG_ITEM)),
            "post": _op("Create the caller's team (a plan with team seats: Team); the caller is its owner",
                        ok=201, body=NAME, response=ORG),
        },
        "/api/orgs/{org_id}": {
            "get": _op("A team: name, the caller's role, the owner, seats (the plan's team_seats, the owner "
                       "included; open invitations take a seat) (member)", params=org, response=ORG),
            "patch": _op("Rename the team (owner; audited)", params=org, body=NAME),
            "delete": _op("Delete the team (owner; audited)", params=org),
        },
        "/api/orgs/{org_id}/transfer": {
            "post": _op("Make another member the owner; the old owner becomes a manager. Refused when the new "
                        "owner's plan has fewer seats than are taken (owner; audited)", params=org,
                        body=_obj(["user_id"], user_id=UUID)),
        },
        "/api/orgs/{org_id}/leave": {
            "post": _op("Leave the team (any member but the owner; audited)", params=org),
        },
        "/api/orgs/{org_id}/members": {
            "get": _op("The team's members and roles (member)", params=org, response=_list(MEMBER)),
        },
        "/api/orgs/{org_id}/members/{user_id}": {
            "patch": _op("Change a member's role: manager or member (manager; never the owner; audited)",
                         params=[ORG_ID, USER_ID], body=_obj(["role"], role=INVITABLE), response=MEMBER),
            "delete": _op("Remove a member (manager; never the owner; audited)", params=[ORG_ID, USER_ID]),
        },
        "/api/orgs/{org_id}/invitations": {
            "get": _op("Open invitations (manager)", params=org, response=_list(INVITATION)),
            "post": _op("Invite an address by e-mail: a link bound to that address, single use, valid 7 days; "
                        "takes a seat while open (manager; audited)", params=org, ok=201,
                        body=_obj(["email", "role"], email={"type": "string", "format": "email", "maxLength": 254},
                                  role=INVITABLE), response=INVITATION),
        },
        "/api/orgs/{org_id}/invitations/{id}/resend": {
            "post": _op("Send the invitation again with a new link valid 7 days; the old link stops working "
                        "(manager)", params=[ORG_ID, _path_id("invitation id")], response=INVITATION),
        },
        "/api/orgs/{org_id}/invitations/{id}": {
            "delete": _op("Revoke an open invitation (manager; audited)", params=[ORG_ID, _path_id("invitation id")]),
        },
        "/api/invitations/accept": {
            "post": _op("Accept an invitation link as the signed-in user with the invited address (that address "
                        "counts as verified from then on)",
                        body=_obj(["token"], token={"type": "string", "minLength": 1, "maxLength": 100}),
                        response=_obj(["org_id", "name", "role"], org_id=UUID, name=STR, role=INVITABLE)),
        },
    }
