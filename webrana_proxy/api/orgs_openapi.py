"""The OpenAPI operations of /api/orgs and /api/invitations (merged into ``openapi.paths()``).

The workspace a call acts in is explicit in its path: ``/api/orgs/{org_id}/...`` acts in that organisation (the
caller must be a member: otherwise 404, as for an organisation that does not exist; a role below the one the
action needs: 403 ``org_role_required``); every other route acts in the caller's personal workspace.
"""

from __future__ import annotations

from typing import Any

from webrana_proxy.api.openapi import (
    INT,
    MONEY,
    RANGE_PARAMS,
    STR,
    USAGE_REQUEST_PARAMS,
    USAGE_ROW,
    USAGE_SUMMARY,
    USAGE_SUMS,
    UUID,
    _obj,
    _op,
    _path_id,
    _query,
)

DATETIME = {"type": "string", "format": "date-time"}
ROLE = {"type": "string", "enum": ["owner", "manager", "member"]}
INVITABLE = {"type": "string", "enum": ["manager", "member"]}
ORG_ID = {"name": "org_id", "in": "path", "required": True, "schema": UUID,
          "description": "the organisation (team) whose workspace this call acts in"}
USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": UUID, "description": "a member's user id"}
SEATS = _obj(["limit", "members", "pending_invitations", "used", "free"], limit=INT, members=INT,
             pending_invitations=INT, used=INT, free=INT)
ORG = _obj(["id", "name", "role", "owner_email", "plan", "created_at", "seats"], id=UUID, name=STR, role=ROLE,
           owner_email=STR, plan={"type": "string", "enum": ["free", "starter", "pro", "team"],
                                  "description": "the team's own plan: its seats, quota and burst"},
           created_at=DATETIME, seats=SEATS)
ORG_ITEM = _obj(["id", "name", "role", "created_at"], id=UUID, name=STR, role=ROLE, created_at=DATETIME)
MEMBER = _obj(["user_id", "email", "role", "joined_at"], user_id=UUID, email=STR, role=ROLE, joined_at=DATETIME)
INVITATION = _obj(["id", "email", "role", "invited_by", "created_at", "expires_at", "expired"], id=UUID, email=STR,
                  role=INVITABLE, invited_by={"type": ["string", "null"]}, created_at=DATETIME,
                  expires_at=DATETIME, expired={"type": "boolean"})
NULL_INT = {"type": ["integer", "null"]}
MEMBER_LIMITS_BODY = _obj([], monthly_request_limit={"type": ["integer", "null"], "minimum": 1,
                                                     "maximum": 1_000_000_000},
                          monthly_spend_limit_idr={"type": ["integer", "null"], "minimum": 1,
                                                   "maximum": 1_000_000_000_000})
MEMBER_LIMITS = _obj(["user_id", "email", "role", "month", "timezone", "monthly_request_limit",
                      "monthly_spend_limit_idr", "requests_this_month", "spent_this_month_idr_micro",
                      "requests_percent", "spend_percent"],
                     user_id=UUID, email=STR, role=ROLE, month=STR, timezone=STR, monthly_request_limit=NULL_INT,
                     monthly_spend_limit_idr=NULL_INT, requests_this_month=INT, spent_this_month_idr_micro=INT,
                     requests_percent=NULL_INT, spend_percent=NULL_INT)
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


NULLABLE_STR = {"type": ["string", "null"]}
TEAM_USAGE_SUMMARY = {"allOf": [USAGE_SUMMARY, _obj(
    ["scope", "by_member", "by_key"],
    scope={"type": "string", "enum": ["team", "own"],
           "description": "team: every member's calls (owner, manager); own: the caller's calls in the team"},
    by_member={"type": "array", "items": {"allOf": [USAGE_SUMS, _obj(
        ["user_id", "email", "role"], user_id=UUID, email=STR,
        role={"type": ["string", "null"], "enum": ["owner", "manager", "member", None],
              "description": "null: no longer a member"})]}},
    by_key={"type": "array", "items": _obj(
        ["id", "name", "prefix", "user_id", "requests", "errors", "total_tokens", "cost_idr", "cost_idr_micro",
         "cost_usd_nano"], id={"type": ["string", "null"], "description": "the team proxy key (null: deleted)"},
        name=NULLABLE_STR, prefix=NULLABLE_STR, user_id={"type": ["string", "null"]}, requests=INT, errors=INT,
        total_tokens=INT, **MONEY)})]}
TEAM_USAGE_ROW = {"allOf": [USAGE_ROW, _obj(
    ["member", "proxy_key_id"], member=_obj(["user_id", "email"], user_id=UUID, email=NULLABLE_STR),
    proxy_key_id={"type": ["string", "null"]})]}
TEAM_USAGE_PAGE = _obj(["data", "next_cursor"], data={"type": "array", "items": TEAM_USAGE_ROW},
                       next_cursor={"type": ["string", "null"]})
MEMBER_PARAM = _query("member", UUID, "only this member's calls (owner, manager; a member always gets their own)")


def team_usage_paths() -> dict[str, dict[str, Any]]:
    """The team's usage: the personal /api/usage routes in the team's workspace, with per-member and per-key
    breakdowns. The owner and managers see every member's calls; a member only their own calls in the team."""
    org = [ORG_ID]
    return {
        "/api/orgs/{org_id}/usage/summary": {"get": _op(
            "The team's usage: totals, per day, provider, model, member (user id and e-mail) and team proxy key "
            "(Asia/Jakarta days; default this month so far; at most 366 days). Owner and managers: the whole "
            "team; a member: their own calls in the team (member)", params=[*org, *RANGE_PARAMS],
            response=TEAM_USAGE_SUMMARY)},
        "/api/orgs/{org_id}/usage/requests": {"get": _op(
            "The team's request log, newest first (cursor pagination); each row names its member and key. "
            "Owner and managers: every member's calls; a member: their own (member)",
            params=[*org, *USAGE_REQUEST_PARAMS, MEMBER_PARAM], response=TEAM_USAGE_PAGE)},
        "/api/orgs/{org_id}/usage/export.csv": {"get": _op(
            "The team's request log as CSV with member_email, member_id and proxy_key_id columns, streamed "
            "(default this month so far; at most 366 days). Owner and managers: every member's calls; a member: "
            "their own (member)", params=[*org, *RANGE_PARAMS], response=STR, content_type="text/csv")},
    }


def team_billing_paths() -> dict[str, dict[str, Any]]:
    """The team's billing: the personal /api/billing routes bound to the team's account, the owner's alone."""
    from webrana_proxy.api.billing_openapi import CHECKOUT, IDEMPOTENCY, INVOICE, INVOICE_SUMMARY, SUBSCRIPTION_STATE

    org = [ORG_ID]
    return {
        "/api/orgs/{org_id}/billing/subscription": {"get": _op(
            "The team's plan and running subscription (owner)", params=org, response=SUBSCRIPTION_STATE)},
        "/api/orgs/{org_id}/billing/subscribe": {"post": _op(
            "Pay for the team's plan (new, renewal, prorated upgrade, or downgrade at the period end) like "
            "/api/billing/subscribe; a plan with fewer seats than the team uses (members and open invitations) is "
            "refused naming how many must leave first (403 seats_in_use); Snap returns to the console's "
            "/teams/{org_id}/billing/result (owner)", ok=201, params=[*org, IDEMPOTENCY],
            body=_obj(["plan"], plan={"type": "string", "enum": ["starter", "pro", "team"]}), response=CHECKOUT)},
        "/api/orgs/{org_id}/billing/cancel": {"post": _op(
            "Stop renewing the team's subscription: the plan stays until the period ends, then Free (one seat: "
            "refused while others are in the team) (owner)", params=org, response=SUBSCRIPTION_STATE)},
        "/api/orgs/{org_id}/billing/invoices": {"get": _op(
            "The team's invoices, newest first, whoever paid them (owner)", params=org,
            response=_list(INVOICE_SUMMARY))},
        "/api/orgs/{org_id}/billing/invoices/{id}": {"get": _op(
            "One of the team's invoices with seller, buyer, lines, PPN and total (owner)",
            params=[ORG_ID, _path_id("invoice id")], response=INVOICE)},
        "/api/orgs/{org_id}/billing/orders/{order_id}": {"get": _op(
            "The team invoice of a Midtrans order id (the team's Snap finish page) (owner)", response=INVOICE,
            params=[ORG_ID, {"name": "order_id", "in": "path", "required": True, "schema": STR,
                             "description": "Midtrans order id"}])},
    }


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return _obj(["data"], data={"type": "array", "items": item})


def orgs_paths() -> dict[str, dict[str, Any]]:
    org = [ORG_ID]
    return {
        "/api/orgs": {
            "get": _op("The caller's teams and their role in each (the workspace switcher)", response=_list(ORG_ITEM)),
            "post": _op("Create the caller's team (a plan with team seats: Team); the caller is its owner. The "
                        "caller's running subscription and its open invoices move to the team, which runs on the "
                        "caller's plan; the caller's own account falls to Free", ok=201, body=NAME, response=ORG),
        },
        "/api/orgs/{org_id}": {
            "get": _op("A team: name, the caller's role, the owner, seats (the plan's team_seats, the owner "
                       "included; open invitations take a seat) (member)", params=org, response=ORG),
            "patch": _op("Rename the team (owner; audited)", params=org, body=NAME),
            "delete": _op("Delete the team (owner; audited). Its running subscription goes back to the owner's own "
                          "account unless they have one", params=org),
        },
        "/api/orgs/{org_id}/transfer": {
            "post": _op("Make another member the owner; the old owner becomes a manager. The team keeps its plan "
                        "and subscription; the new owner pays, changes plan and cancels from now on (owner; "
                        "audited)", params=org, body=_obj(["user_id"], user_id=UUID)),
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
        **team_usage_paths(),
        **team_billing_paths(),
        "/api/orgs/{org_id}/members/{user_id}/limits": {
            "get": _op("A member's monthly request and spend limits in the team and their use this month "
                       "(Asia/Jakarta); a member reads only their own (member)", params=[ORG_ID, USER_ID],
                       response=MEMBER_LIMITS),
            "put": _op("Set a member's monthly request and spend limits in the team (null: none; a missing field is "
                       "null). They apply to the member's team proxy keys on the gateway: at the limit, 429 "
                       "member_request_limit_reached / member_spend_limit_reached until the month ends (manager; "
                       "never the owner's but by the owner; audited)", params=[ORG_ID, USER_ID],
                       body=MEMBER_LIMITS_BODY, response=MEMBER_LIMITS),
        },
        "/api/invitations/accept": {
            "post": _op("Accept an invitation link as the signed-in user with the invited address (that address "
                        "counts as verified from then on)",
                        body=_obj(["token"], token={"type": "string", "minLength": 1, "maxLength": 100}),
                        response=_obj(["org_id", "name", "role"], org_id=UUID, name=STR, role=INVITABLE)),
        },
    }
