"""Pure parts of mail: the SMTP settings, and rendering (both languages, escaping, money and dates)."""

from __future__ import annotations

import uuid

import pytest

from webrana_proxy.envvalues import ConfigError, SmtpUrl, read_smtp_url
from webrana_proxy.mail.linktokens import LinkTokens
from webrana_proxy.mail.templates import TEMPLATES, render, rupiah
from webrana_proxy.settings import Settings

BASE = {"DATABASE_URL": "postgresql://u@127.0.0.1/db", "REDIS_URL": "redis://127.0.0.1/0",
        "MASTER_ENCRYPTION_KEY": "A" * 43 + "=", "JWT_SECRET": "j" * 40, "MIDTRANS_SERVER_KEY": "s",
        "MIDTRANS_CLIENT_KEY": "c"}


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://127.0.0.1:2525", SmtpUrl("plain", "127.0.0.1", 2525)),
    ("smtp+starttls://me%40x.co:p%3Ass@smtp.x.co", SmtpUrl("starttls", "smtp.x.co", 587, "me@x.co", "p:ss")),
    ("smtps://u:p@[::1]", SmtpUrl("tls", "::1", 465, "u", "p")),
    ("smtp://mail.local", SmtpUrl("plain", "mail.local", 25)),
])
def test_smtp_urls_are_read_with_their_security_port_and_login(url: str, expected: SmtpUrl) -> None:
    assert read_smtp_url({"WEBRANA_SMTP_URL": url}, "WEBRANA_SMTP_URL") == expected


@pytest.mark.parametrize("url", ["http://smtp.x.co", "smtp://", "smtp://u:secretpw@h:99999", "smtp://h/path",
                                 "imap://u:secretpw@h"])
def test_a_bad_smtp_url_stops_the_start_with_one_line_and_no_password(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        read_smtp_url({"WEBRANA_SMTP_URL": url}, "WEBRANA_SMTP_URL")
    assert "WEBRANA_SMTP_URL" in str(err.value) and "secretpw" not in str(err.value)
    assert "\n" not in str(err.value)


def test_the_password_never_shows_in_settings_or_the_url_s_masked_form() -> None:
    settings = Settings.from_env({**BASE, "WEBRANA_SMTP_URL": "smtps://u:hunter22@h",
                                  "WEBRANA_MAIL_FROM": "Webrana <no-reply@x.co>"})
    assert settings.mail_enabled and settings.smtp is not None
    assert "hunter22" not in repr(settings) and "hunter22" not in repr(settings.smtp)
    assert settings.smtp.masked() == "smtps://u:***@h:465"


def test_smtp_without_a_sender_or_with_a_bad_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="WEBRANA_MAIL_FROM is not set"):
        Settings.from_env({**BASE, "WEBRANA_SMTP_URL": "smtp://h"})
    with pytest.raises(ConfigError, match="WEBRANA_MAIL_FROM must be an address"):
        Settings.from_env({**BASE, "WEBRANA_SMTP_URL": "smtp://h", "WEBRANA_MAIL_FROM": "nobody"})
    assert not Settings.from_env(BASE).mail_enabled


def _token(purpose: str, token_id: str) -> str:
    return LinkTokens("j" * 40).token_for(purpose, uuid.UUID(token_id))


def test_every_template_renders_in_both_languages() -> None:
    params = {"email": "a@b.co", "token_id": str(uuid.uuid4()), "changed_at": "2025-03-01T07:30:00+00:00",
              "number": "WEB-2025-03-0001", "plan_name": "Starter", "subtotal_idr": 100000, "ppn_idr": 11000,
              "ppn_percent": 11, "total_idr": 111000, "period_end_at": "2025-03-31T17:00:00+00:00",
              "path": "/billing/invoices/x", "percent": 80, "period_month": "2025-03", "used": "8", "limit": "10",
              "spent_idr": 8, "cap_idr": 10, "key_name": "ci", "key_prefix": "wbr_ab12",  # the alerts' params
              "inviter": "owner@b.co", "org_name": "Acme", "role": "member",
              "expires_at": "2025-03-08T07:30:00+00:00"}  # a team invitation's
    for name in TEMPLATES:
        subjects = {render(name, lang, params, console_url="https://c.example", token_for=_token).subject
                    for lang in ("id", "en")}
        assert len(subjects) == 2, name


def test_receipt_amounts_dates_and_links_are_formatted_and_html_is_escaped() -> None:
    params = {"number": "WEB-2025-03-0001", "plan_name": "<b>Pro</b>", "subtotal_idr": 1234567, "ppn_idr": 135802,
              "ppn_percent": 11, "total_idr": 1370369, "path": "/billing/invoices/abc"}
    out = render("invoice_paid", "en", params, console_url="https://c.example", token_for=_token)
    assert "DPP (tax base): Rp 1.234.567" in out.text and "Total: Rp 1.370.369" in out.text
    assert "https://c.example/billing/invoices/abc" in out.text
    assert 'href="https://c.example/billing/invoices/abc"' in out.html
    assert "<b>Pro</b>" in out.text and "&lt;b&gt;Pro&lt;/b&gt;" in out.html and "<b>Pro</b>" not in out.html
    reminder = render("renewal_reminder", "id", {"plan_name": "Pro", "period_end_at": "2025-03-31T17:00:00+00:00"},
                      console_url="https://c.example", token_for=_token)
    assert reminder.subject == "Paket Pro Anda berakhir 1 April 2025 00:00 WIB"
    assert rupiah(0) == "Rp 0"


def test_a_link_token_is_the_same_each_time_and_another_for_another_row() -> None:
    links = LinkTokens("j" * 40)
    a, b = uuid.uuid4(), uuid.uuid4()
    assert links.token_for("verify", a) == links.token_for("verify", a)
    assert len({links.token_for("verify", a), links.token_for("reset", a), links.token_for("verify", b),
                LinkTokens("k" * 40).token_for("verify", a)}) == 4


def test_alert_mails_name_the_month_and_the_amounts_in_the_readers_language() -> None:
    params = {"percent": 80, "period_month": "2025-03", "spent_idr": 8123, "cap_idr": 10000, "key_name": "ci-bot",
              "key_prefix": "wbr_ab12", "path": "/proxy-keys/x/edit"}
    en = render("alert_key_spend", "en", params, console_url="https://c.example", token_for=_token)
    assert en.subject == "Webrana: key ci-bot used 80% of its spend cap"
    assert "Rp 8.123 in March 2025: 80% of its Rp 10.000 cap" in en.text
    assert "https://c.example/proxy-keys/x/edit" in en.text
    id_ = render("alert_key_spend", "id", params, console_url="https://c.example", token_for=_token)
    assert "Rp 8.123 pada Maret 2025" in id_.text
