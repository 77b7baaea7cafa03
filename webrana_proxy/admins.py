"""``create-admin``: make sure an admin account with this e-mail and password exists, without handing admin to
whoever registered the address first.

- No account: create it as an admin.
- Already an admin: idempotent (``make run`` calls this on every start). The same password changes nothing and
  keeps every session; another password is a password reset, which signs the account out everywhere.
- Any other account: refused unless ``promote`` is set. Anyone can sign up with an address operations will later
  promote, so a promotion sets the operator's password and ends every session of the account (refresh and
  access tokens) before it becomes an admin.
"""

from __future__ import annotations

import enum
import uuid

import asyncpg

from webrana_proxy.db import Conn
from webrana_proxy.passwords import Passwords
from webrana_proxy.sessions import revoke_all_sign_ins

CLI_ACTOR = "webrana-proxy create-admin"  # audit_log actor for changes made from the command line


class Outcome(enum.Enum):
    CREATED = "created"
    UNCHANGED = "already an admin; nothing changed"
    REACTIVATED = "already an admin; suspension lifted"
    RESET = "already an admin; password changed and every session signed out"
    PROMOTED = "promoted to admin; password set and every session signed out"
    REFUSED = "refused"


async def _locked(conn: Conn, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, role, status, password_hash FROM users WHERE lower(email) = lower($1) FOR UPDATE", email)


async def _audit(conn: Conn, action: str, user_id: uuid.UUID, email: str) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, action, target_user_id, details) VALUES (NULL, $1, $2, $3)",
        action, user_id, {"actor_email": CLI_ACTOR, "email": email})


async def ensure_admin(conn: Conn, passwords: Passwords, email: str, password: str, *, promote: bool) -> Outcome:
    """Run inside a transaction. ``password`` has passed the policy check."""
    row = await _locked(conn, email)
    if row is None:
        password_hash = await passwords.hash(password)
        created = await conn.fetchval(
            """INSERT INTO users (email, password_hash, role) VALUES ($1, $2, 'admin')
               ON CONFLICT ((lower(email))) DO NOTHING RETURNING id""", email, password_hash)
        if created is not None:
            return Outcome.CREATED
        row = await _locked(conn, email)  # signed up in the meantime: an existing account after all
        assert row is not None
    user_id: uuid.UUID = row["id"]
    if row["role"] != "admin":
        if not promote:
            return Outcome.REFUSED
        await revoke_all_sign_ins(conn, user_id)
        await conn.execute("UPDATE users SET role = 'admin', password_hash = $2, status = 'active' WHERE id = $1",
                           user_id, await passwords.hash(password))
        await _audit(conn, "user.promote", user_id, email)
        return Outcome.PROMOTED
    same, rehashed = await passwords.verify(row["password_hash"], password)
    if not same:
        await revoke_all_sign_ins(conn, user_id)
        await conn.execute("UPDATE users SET password_hash = $2, status = 'active' WHERE id = $1",
                           user_id, await passwords.hash(password))
        await _audit(conn, "user.password_reset", user_id, email)
        return Outcome.RESET
    if rehashed is not None:  # same password, stored with older Argon2 parameters: not a change
        await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, rehashed)
    if row["status"] != "active":
        await conn.execute("UPDATE users SET status = 'active' WHERE id = $1", user_id)
        await _audit(conn, "user.unsuspend", user_id, email)
        return Outcome.REACTIVATED
    return Outcome.UNCHANGED
