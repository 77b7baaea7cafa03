"""Signing out of the console ends that browser's API tokens, access token included, and no other browser's."""

from __future__ import annotations

from tests.dashboard.conftest import SESSION_SECRET, Console, Stack, another_browser
from webrana_dashboard.session import COOKIE_NAME, SessionCodec


def _access_token(console: Console) -> str:
    """The access token inside this browser's (encrypted) session cookie, as a thief of the cookie would use it."""
    cookies = {c.key: c.value for c in console.client.session.cookie_jar}
    session = SessionCodec(SESSION_SECRET.encode(), COOKIE_NAME).open(cookies[COOKIE_NAME])
    assert session is not None and session.access_token
    return session.access_token


async def test_console_sign_out_revokes_the_access_token_and_keeps_other_browsers_signed_in(
        console: Console, stack: Stack) -> None:
    await console.signup("keluar@example.co.id")
    await console.get("/overview")
    copied = _access_token(console)
    resp = await stack.proxy.get("/api/auth/me", headers={"Authorization": f"Bearer {copied}"})
    assert resp.status == 200

    async with another_browser(stack) as phone:
        await phone.login("keluar@example.co.id")
        await phone.get("/overview")

        resp = await console.post("/logout")
        assert resp.status == 303 and resp.headers["Location"] == "/login"
        resp = await stack.proxy.get("/api/auth/me", headers={"Authorization": f"Bearer {copied}"})
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "session_revoked"

        await phone.get("/overview", allow_redirects=False)  # still signed in: 200, not a redirect to /login
