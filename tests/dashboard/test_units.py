"""Pure parts of the console: money and dates, charts, the session cookie, settings, catalogues."""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webrana_dashboard import formatting
from webrana_dashboard.charts import Bar, bar_chart, nice_ceiling
from webrana_dashboard.i18n import LANGS, Translator, load_catalogues
from webrana_dashboard.middleware import content_security_policy
from webrana_dashboard.pages import safe_next
from webrana_dashboard.session import Session, SessionCodec
from webrana_dashboard.settings import DashboardSettings
from webrana_dashboard.usage_view import choose_range
from webrana_proxy.envvalues import ConfigError

PACKAGE = Path(__file__).resolve().parents[2] / "webrana_dashboard"
SECRET = "s" * 40


def test_money_is_written_the_indonesian_way() -> None:
    assert formatting.rupiah(49_000) == "Rp 49.000"
    assert formatting.rupiah(1_234_567) == "Rp 1.234.567"
    assert formatting.rupiah(0) == "Rp 0"
    assert formatting.rupiah(-500) == "-Rp 500"
    assert formatting.number(10_000) == "10.000"
    assert formatting.decimal(1234.5) == "1.234,5"


@given(st.integers(min_value=0, max_value=10**12))
def test_rupiah_round_trips_to_the_same_integer(amount: int) -> None:
    text = formatting.rupiah(amount)
    assert re.fullmatch(r"Rp \d{1,3}(\.\d{3})*", text)
    assert int(text[3:].replace(".", "")) == amount


def test_times_are_shown_in_jakarta() -> None:
    months = [str(i) for i in range(1, 13)]
    # 17:30 UTC on 31 January is already 1 February in Jakarta (UTC+7).
    assert formatting.format_datetime("2025-01-31T17:30:00+00:00", months) == "1 2 2025 00:30 WIB"
    assert formatting.format_date("2025-01-31T17:30:00+00:00", months) == "1 2 2025"
    assert formatting.format_date("2025-03-12", months) == "12 3 2025"


def test_quota_percent_caps_and_handles_zero() -> None:
    assert formatting.percent(80, 100) == 80
    assert formatting.percent(150, 100) == 100
    assert formatting.percent(5, 0) == 0


def test_chart_has_title_labels_and_escaped_text() -> None:
    bars = [Bar(f"{i} Mar", i, f"{i} Mar: {i} <requests>") for i in range(1, 31)]
    svg = str(bar_chart(bars, chart_id="c", title="Requests <per day>", description="d", y_label="requests",
                        value_format=str, empty_text="none"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert '<title id="c-title">Requests &lt;per day&gt;</title>' in svg
    assert svg.count('<rect class="bar"') == 30
    assert "&lt;requests&gt;" in svg and "<requests>" not in svg
    assert 'class="chart-title"' in svg and 'class="axis-label"' in svg
    assert len(re.findall(r'class="tick"[^>]*text-anchor="middle"', svg)) <= 11  # x labels thinned out


def test_empty_chart_says_so() -> None:
    svg = str(bar_chart([Bar("1", 0, "0")], chart_id="e", title="t", description="d", y_label="y",
                        value_format=str, empty_text="No data yet"))
    assert "No data yet" in svg


@given(st.integers(min_value=0, max_value=10**9))
def test_nice_ceiling_is_round_and_not_below(value: int) -> None:
    top = nice_ceiling(value)
    assert top >= max(1, value)
    assert str(top).lstrip("125").strip("0") == ""


def test_session_cookie_round_trips_and_rejects_tampering() -> None:
    codec = SessionCodec(SECRET.encode(), "webrana_session")
    s = Session()
    s.sign_in({"access_token": "a", "refresh_token": "r", "expires_in": 60,
               "user": {"id": "1", "email": "x@example.com", "role": "user", "plan": "free"}})
    sealed = codec.seal(s)
    assert "x@example.com" not in sealed and "refresh" not in sealed
    opened = codec.open(sealed)
    assert opened is not None and opened.refresh_token == "r" and opened.user == s.user
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert codec.open(flipped) is None
    assert SessionCodec(b"t" * 40, "webrana_session").open(sealed) is None  # another secret
    assert SessionCodec(SECRET.encode(), "other_cookie").open(sealed) is None  # bound to the cookie name
    assert codec.open("garbage!") is None and codec.open("") is None
    assert codec.open(sealed, now=time.time() + 8 * 24 * 3600) is None  # older than the refresh token


def test_settings_need_a_long_session_secret() -> None:
    with pytest.raises(ConfigError, match="WEBRANA_SESSION_SECRET is not set"):
        DashboardSettings.from_env({})
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        DashboardSettings.from_env({"WEBRANA_SESSION_SECRET": "short"})
    with pytest.raises(ConfigError, match="WEBRANA_API_URL"):
        DashboardSettings.from_env({"WEBRANA_SESSION_SECRET": SECRET, "WEBRANA_API_URL": "ftp://x"})
    s = DashboardSettings.from_env({"WEBRANA_SESSION_SECRET": SECRET})
    assert (s.host, s.port, s.api_url, s.public_api_url) == ("127.0.0.1", 8081, "http://127.0.0.1:8080",
                                                             "http://127.0.0.1:8080")
    assert not s.secure_cookies  # plain-http console URL
    assert not s.snap_enabled  # no client key


def test_snap_js_follows_production_flag_and_override() -> None:
    base = {"WEBRANA_SESSION_SECRET": SECRET, "MIDTRANS_CLIENT_KEY": "SB-Mid-client-x"}
    assert DashboardSettings.from_env(base).snap_origin == "https://app.sandbox.midtrans.com"
    prod = DashboardSettings.from_env({**base, "MIDTRANS_IS_PRODUCTION": "true"})
    assert prod.snap_js_url == "https://app.midtrans.com/snap/snap.js"
    assert not DashboardSettings.from_env({**base, "MIDTRANS_SNAP_JS_URL": "off"}).snap_enabled
    secure = DashboardSettings.from_env({**base, "WEBRANA_CONSOLE_URL": "https://console.webrana.id"})
    assert secure.secure_cookies
    assert not DashboardSettings.from_env({**base, "WEBRANA_CONSOLE_URL": "https://c.example",
                                           "WEBRANA_DEV": "true"}).secure_cookies


def test_csp_has_no_inline_scripts_and_allows_snap_only_when_asked() -> None:
    plain = content_security_policy("")
    assert "unsafe-inline" not in plain and "unsafe-eval" not in plain
    assert "script-src 'self';" in plain and "frame-ancestors 'none'" in plain
    snap = content_security_policy("https://app.sandbox.midtrans.com")
    assert "script-src 'self' https://app.sandbox.midtrans.com" in snap


# Values a browser would follow to another site (or run) if they were sent as a Location, each in the form it
# reaches safe_next (already percent-decoded by aiohttp when it came in a query string or a form).
OFF_SITE_NEXT = (
    "https://evil.example", "http:evil.example", "HTTPS://evil.example", "//evil.example", "///evil.example",
    "////evil.example", "/\\evil.example", "\\\\evil.example", "\\/evil.example", "/\\/evil.example",
    "/\t/evil.example", "\t//evil.example", "/\r\n/evil.example", "/\n/evil.example", "/\r/evil.example",
    "\t/\t/evil.example", " //evil.example", "\x00//evil.example", "/\x0c/evil.example", "/\x7f/evil.example",
    "/ /evil.example", "//\tevil.example", "javascript:alert(1)", "java\tscript:alert(1)", "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "evil.example", "evil.example/overview", "@evil.example",
    "/x\r\nSet-Cookie: a", "/\u3000/evil.example", "/\uff0f/evil.example", "", None,
)


@pytest.mark.parametrize("value", OFF_SITE_NEXT)
def test_next_that_would_leave_the_site_is_ignored(value: str | None) -> None:
    assert safe_next(value) == "/overview"
    assert safe_next(value, "/admin/users") == "/admin/users"


def test_next_keeps_a_path_on_this_site() -> None:
    for ok in ("/billing?x=1", "/overview", "/usage?range=custom&from=2025-01-01&to=2025-01-31",
               "/admin/users?q=a%40b.co&page=2", "/usage?next=//evil.example", "/a:b", "/x#frag"):
        assert safe_next(ok) == ok
    # TAB, CR and LF are dropped the way a browser drops them; what is left is judged.
    assert safe_next("/bill\ting") == "/billing"
    # Percent-encoded forms stay paths on this console: a browser never decodes them when it follows a
    # redirect (tests/dashboard/test_browser_next.py shows it lands on a 404 here).
    for encoded in ("/%09/evil.example", "/%2F/evil.example", "/%2F%2Fevil.example", "/%5Cevil.example",
                    "/%0d%0a/evil.example"):
        assert safe_next(encoded) == encoded


def test_catalogues_have_the_same_keys_and_cover_every_key_used() -> None:
    catalogues = load_catalogues()
    assert set(catalogues["id"]) == set(catalogues["en"])
    used: set[str] = set()
    for path in [*PACKAGE.joinpath("templates").rglob("*.html"), *PACKAGE.rglob("*.py")]:
        used |= set(re.findall(r"""\bt\(\s*['"]([a-z_]+\.[a-z0-9_.]+)['"]""", path.read_text()))
    # Keys built at run time: every value they can take.
    used |= {f"status.{s}" for s in ("pending", "paid", "expired", "cancelled", "denied", "refund_due", "refunded",
                                      "active", "suspended")}
    used |= {f"billing.result_{s}" for s in ("pending", "paid", "expired", "cancelled", "denied", "refund_due",
                                             "refunded")}
    used |= {f"admin.done_{a}" for a in ("suspend", "unsuspend", "plan")}
    used |= {f"provider_keys.test_{s}" for s in ("ok", "invalid_key", "unreachable")}
    used |= {f"errors.{n}.{p}" for n in (400, 403, 404, 405, 500, 503) for p in ("title", "text")}
    used |= {f"usage.chart_{m}" for m in ("requests", "cost_idr")} | {f"month.{i}" for i in range(1, 13)}
    missing = sorted(k for k in used if not k.endswith(("_", ".")) and k not in catalogues["id"])
    assert not missing, missing
    for lang in LANGS:  # placeholders match across languages
        for key, text in catalogues[lang].items():
            assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", catalogues["id"][key])), key
    t = Translator(catalogues, "en")
    assert t("overview.title") == "Overview" and Translator(catalogues, "id")("overview.title") == "Ringkasan"


def test_usage_ranges_presets_and_custom() -> None:
    today = date(2025, 3, 31)
    rng, errors = choose_range({"range": "7"}, today)
    assert (rng.first, rng.last, rng.preset, errors) == (date(2025, 3, 25), today, 7, {})
    rng, errors = choose_range({"range": "custom", "from": "2025-02-01", "to": "2025-02-10"}, today)
    assert (rng.first, rng.last, rng.preset) == (date(2025, 2, 1), date(2025, 2, 10), None)
    _, errors = choose_range({"range": "custom", "from": "2025-02-10", "to": "2025-02-01"}, today)
    assert errors == {"from": "error.invalid_range"}
    _, errors = choose_range({"range": "custom", "from": "nope", "to": ""}, today)
    assert set(errors) == {"from", "to"}


def test_small_costs_show_enough_decimals_and_never_rp_0() -> None:
    from webrana_dashboard.formatting import rupiah_micro

    assert rupiah_micro(83_100) == "Rp 0,0831"  # a short chat: fractions of a rupiah
    assert rupiah_micro(3_300) == "Rp 0,0033"  # a 10-token embedding
    assert rupiah_micro(12) == "Rp 0,000012"  # never Rp 0 for a paid call
    assert rupiah_micro(12_345_678) == "Rp 12,35"
    assert rupiah_micro(1_234_567_890_123) == "Rp 1.234.568"  # totals: whole rupiah, dot separators
    assert rupiah_micro(0) == "Rp 0" and rupiah_micro(None) == "-" and rupiah_micro(-83_100) == "-Rp 0,0831"
