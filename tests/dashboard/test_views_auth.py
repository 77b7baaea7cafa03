"""Sign-up, sign-in, sessions, CSRF, security headers, language, error pages: the console against a real
proxy (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from tests.conftest import PASSWORD
from tests.dashboard.conftest import SESSION_SECRET, Console, Stack, another_browser
from webrana_dashboard.session import COOKIE_NAME, Session, SessionCodec
from webrana_proxy.state import PASSWORDS


def _set_cookie(console: Console, value: str) -> None:
    """Replace the browser's session cookie (clearing the jar first, so exactly one is sent)."""
    jar = console.client.session.cookie_jar
    jar.clear()
    jar.update_cookies({COOKIE_NAME: value})


def _field_error(html: str, field: str) -> str:
    m = re.search(rf'<p class="field-error" id="{field}-error">([^<]+)</p>', html)
    assert m, f"no error next to {field!r}"
    return m.group(1)


async def test_every_response_carries_the_security_headers(console: Console) -> None:
    for path in ("/login", "/static/app.css", "/health", "/no-such-page"):
        resp = await console.client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert resp.headers["X-Frame-Options"] == "DENY"
    assert (await console.client.get("/login")).headers["Cache-Control"] == "no-store"


async def test_pages_have_no_inline_scripts_or_styles(console: Console) -> None:
    for path in ("/login", "/signup"):
        html = await console.get(path)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert " style=" not in html and "<style" not in html


async def test_session_cookie_is_httponly_samesite_and_encrypted(console: Console) -> None:
    await console.signup("cookie@example.co.id")
    resp = await console.client.get("/overview")
    assert resp.status == 200
    raw = (await console.client.get("/login", allow_redirects=False)).headers.getall("Set-Cookie", [])
    cookie = next((c for c in raw if c.startswith(COOKIE_NAME)), None)
    jar = {c.key: c for c in console.client.session.cookie_jar}
    value = jar[COOKIE_NAME].value
    assert "cookie@example.co.id" not in value and "eyJ" not in value  # no readable e-mail, no bare JWT
    assert cookie is None or ("HttpOnly" in cookie and "SameSite=Lax" in cookie)
    first = (await console.client.get("/signup")).headers.getall("Set-Cookie", [])
    assert all("HttpOnly" in c and "SameSite=Lax" in c for c in first if c.startswith(COOKIE_NAME))


async def test_sign_up_errors_appear_next_to_their_field(console: Console, stack: Stack) -> None:
    await console.get("/signup")
    resp = await console.post("/signup", {"email": "weak@example.co.id", "password": "short",
                                          "password_confirm": "short"})
    assert resp.status == 422
    assert "8" in _field_error(await resp.text(), "password")
    resp = await console.post("/signup", {"email": "x@example.co.id", "password": PASSWORD,
                                          "password_confirm": PASSWORD + "x"})
    assert _field_error(await resp.text(), "password_confirm")
    resp = await console.post("/signup", {"email": "not-an-email", "password": PASSWORD,
                                          "password_confirm": PASSWORD})
    assert _field_error(await resp.text(), "email")
    await stack.register("taken@example.co.id")
    resp = await console.post("/signup", {"email": "taken@example.co.id", "password": PASSWORD,
                                          "password_confirm": PASSWORD})
    html = await resp.text()
    assert "sudah terdaftar" in _field_error(html, "email")
    assert 'value="taken@example.co.id"' in html  # what they typed stays in the field


async def test_sign_in_and_wrong_password(console: Console, stack: Stack) -> None:
    await stack.register("login@example.co.id")
    await console.get("/login")
    resp = await console.post("/login", {"email": "login@example.co.id", "password": "Wrong-Passw0rd"})
    assert resp.status == 422
    assert _field_error(await resp.text(), "password") == "E-mail atau kata sandi salah."
    resp = await console.post("/login", {"email": "", "password": ""})
    html = await resp.text()
    assert _field_error(html, "email") and _field_error(html, "password")
    await console.get("/login?next=/usage")
    resp = await console.post("/login", {"email": "login@example.co.id", "password": PASSWORD,
                                         "next": "/usage"})
    assert resp.status == 303 and resp.headers["Location"] == "/usage"


async def test_a_tab_in_next_never_becomes_the_redirect(console: Console, stack: Stack) -> None:
    """``/\t/evil.example`` is ``//evil.example`` to a browser: every place that follows next refuses it."""
    tab = "/\t/evil.example"
    await stack.register("tab-next@example.co.id")
    html = await console.get("/login", params={"next": tab})
    assert 'name="next" value="/overview"' in html  # not even carried into the form
    resp = await console.post("/login", {"email": "tab-next@example.co.id", "password": PASSWORD, "next": tab})
    assert resp.status == 303 and resp.headers["Location"] == "/overview"
    resp = await console.client.get("/login", params={"next": tab}, allow_redirects=False)  # signed in
    assert resp.status == 303 and resp.headers["Location"] == "/overview"
    await console.get("/usage")  # the signed-in page's CSRF token
    resp = await console.post("/lang", {"lang": "en", "next": tab})
    assert resp.status == 303 and resp.headers["Location"] == "/"
    resp = await console.post("/lang", {"lang": "id", "next": "/bill\ting"})  # dropped as a browser drops it
    assert resp.status == 303 and resp.headers["Location"] == "/billing"


async def test_no_free_hashing_slot_is_a_message_on_the_form_not_an_error_page(console: Console,
                                                                               stack: Stack) -> None:
    await stack.register("sibuk@example.co.id")
    passwords = stack.proxy.app[PASSWORDS]
    await console.get("/signup")
    async with contextlib.AsyncExitStack() as held:
        for _ in range(passwords.concurrency):  # every hashing slot of the proxy is busy
            await held.enter_async_context(passwords.slot())
        resp = await console.post("/signup", {"email": "baru@example.co.id", "password": PASSWORD,
                                              "password_confirm": PASSWORD})
        assert resp.status == 422
        assert "Coba lagi sebentar lagi" in _field_error(await resp.text(), "form")
        await console.get("/login")
        resp = await console.post("/login", {"email": "sibuk@example.co.id", "password": PASSWORD})
        assert resp.status == 422
        assert "Coba lagi sebentar lagi" in _field_error(await resp.text(), "form")
    resp = await console.post("/login", {"email": "sibuk@example.co.id", "password": PASSWORD})
    assert resp.status == 303


async def test_pages_need_a_signed_in_user(console: Console) -> None:
    for path in ("/overview", "/provider-keys", "/usage", "/billing", "/admin", "/billing/invoices/x"):
        resp = await console.client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/login?next=")
    resp = await console.client.get("/", allow_redirects=False)
    assert resp.headers["Location"] == "/login"


async def test_a_form_post_without_the_csrf_token_is_refused(console: Console, stack: Stack) -> None:
    await stack.register("csrf@example.co.id")
    await console.get("/login")
    resp = await console.post("/login", {"email": "csrf@example.co.id", "password": PASSWORD}, csrf=False)
    assert resp.status == 403
    assert "Formulir ini kedaluwarsa" in await resp.text()
    resp = await console.client.post("/login", data={"email": "csrf@example.co.id", "password": PASSWORD,
                                                     "csrf_token": "forged"}, allow_redirects=False)
    assert resp.status == 403
    await console.login("csrf@example.co.id")
    for path in ("/proxy-keys", "/provider-keys", "/logout", "/billing/subscribe", "/lang"):
        resp = await console.client.post(path, data={"name": "x"}, allow_redirects=False)
        assert resp.status == 403, path
    # Another site's page cannot read this browser's token: a second browser's token is refused too.
    async with another_browser(stack) as other:
        await other.get("/login")
        resp = await console.client.post("/proxy-keys", data={"name": "x", "csrf_token": other.csrf},
                                         allow_redirects=False)
        assert resp.status == 403


async def test_sign_out_clears_the_session(console: Console) -> None:
    await console.signup("bye@example.co.id")
    await console.get("/overview")
    resp = await console.post("/logout")
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert "Anda sudah keluar" in await console.get("/login")
    resp = await console.client.get("/overview", allow_redirects=False)
    assert resp.status == 303


async def test_an_expired_access_token_is_refreshed_transparently(console: Console, stack: Stack) -> None:
    tokens = await stack.register("refresh@example.co.id")
    session = Session()
    session.sign_in(tokens)
    session.access_token = "not-a-valid-token"  # the API answers 401; the console refreshes and retries
    codec = SessionCodec(SESSION_SECRET.encode(), COOKIE_NAME)
    _set_cookie(console, codec.seal(session))
    resp = await console.client.get("/overview", allow_redirects=False)
    assert resp.status == 200, await resp.text()
    renewed = codec.open(resp.cookies[COOKIE_NAME].value)
    assert renewed is not None and renewed.access_token not in (None, "not-a-valid-token")
    assert renewed.refresh_token != tokens["refresh_token"]  # rotated
    # An access token about to expire is refreshed before the call, not after a failure.
    renewed.access_expires_at = time.time() + 5
    _set_cookie(console, codec.seal(renewed))
    resp = await console.client.get("/proxy-keys", allow_redirects=False)
    assert resp.status == 200
    again = codec.open(resp.cookies[COOKIE_NAME].value)
    assert again is not None and again.refresh_token != renewed.refresh_token


async def test_concurrent_requests_refresh_once_and_keep_the_sign_in(console: Console, stack: Stack) -> None:
    """The API revokes a whole sign-in when a rotated refresh token is presented twice; two page loads with
    the same stale cookie must therefore share one refresh."""
    tokens = await stack.register("together@example.co.id")
    session = Session()
    session.sign_in(tokens)
    session.access_token = "stale"
    codec = SessionCodec(SESSION_SECRET.encode(), COOKIE_NAME)
    _set_cookie(console, codec.seal(session))
    responses = await asyncio.gather(*(console.client.get(p, allow_redirects=False)
                                       for p in ("/overview", "/proxy-keys", "/provider-keys")))
    assert [r.status for r in responses] == [200, 200, 200]
    renewed = {codec.open(r.cookies[COOKIE_NAME].value).refresh_token for r in responses}  # type: ignore[union-attr]
    assert len(renewed) == 1  # one refresh, shared
    resp = await console.client.get("/usage", allow_redirects=False)
    assert resp.status == 200  # the sign-in was not revoked as a token replay


async def test_a_tampered_cookie_is_just_a_signed_out_visitor(console: Console) -> None:
    await console.signup("tamper@example.co.id")
    jar = {c.key: c.value for c in console.client.session.cookie_jar}
    value = jar[COOKIE_NAME]
    _set_cookie(console, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    resp = await console.client.get("/overview", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_language_switch_to_english_and_back(console: Console) -> None:
    assert "Masuk" in await console.get("/login")
    resp = await console.post("/lang", {"lang": "en", "next": "/login"})
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    html = await console.get("/login")
    assert '<html lang="en">' in html and "Sign in" in html
    await console.post("/lang", {"lang": "id", "next": "https://evil.example/"})
    html = await console.get("/login")
    assert '<html lang="id">' in html


async def test_not_found_page_is_in_the_console_style(console: Console) -> None:
    html = await console.get("/does-not-exist", status=404)
    assert "Halaman tidak ditemukan" in html and 'class="topbar"' in html


async def test_api_down_gives_a_styled_503(stack: Stack) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from tests.dashboard.conftest import free_port
    from webrana_dashboard.app import create_app
    from webrana_dashboard.settings import DashboardSettings

    settings = DashboardSettings.from_env({"WEBRANA_SESSION_SECRET": SESSION_SECRET, "WEBRANA_DEV": "true",
                                           "WEBRANA_API_URL": f"http://127.0.0.1:{free_port()}"})
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        html = await (await client.get("/login")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert token
        resp = await client.post("/login", data={"email": "a@example.co.id", "password": PASSWORD,
                                                 "csrf_token": token.group(1)})
        assert resp.status == 503
        assert "API Webrana tidak dapat dihubungi" in await resp.text()
