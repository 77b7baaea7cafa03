"""The messages, in Indonesian and English: a subject, paragraphs, at most one button, rendered as plain text
plus simple HTML (inline styles only; mail clients ignore the rest).

A template is data: adding one (the alerts add theirs) is one entry in ``TEMPLATES``. Paragraphs are
``str.format`` texts over the message's params, which are formatted first by their names: ``*_idr`` as rupiah,
``*_at`` (ISO time) as a Jakarta date and time, ``*_month`` (YYYY-MM) as a month's name, everything else as
text. In HTML every value is escaped.

A button's link is one of: ``verify`` / ``reset`` / ``invite`` (the single-use link rebuilt from
``params["token_id"]``) or ``path`` (``params["path"]``, or the template's fixed path, on the console).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

JAKARTA = timezone(timedelta(hours=7))
LOCALES = ("id", "en")
MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
           "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}
FOOTER = {
    "id": "Anda menerima e-mail ini karena akun Webrana Anda. Webrana: gateway API AI untuk developer Indonesia.",
    "en": "You receive this e-mail because of your Webrana account. Webrana: the AI API gateway for developers "
          "in Indonesia.",
}
GREETING = {"id": "Halo,", "en": "Hello,"}


@dataclass(frozen=True, slots=True)
class Template:
    subject: Mapping[str, str]
    paragraphs: Mapping[str, tuple[str, ...]]
    button: Mapping[str, str] | None = None  # its label per locale
    link: str = ""  # "verify" | "reset" | "invite" | "path"
    path: str = ""  # the console path of a "path" link when params have none


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


ALERT_TEMPLATES: Mapping[str, Template] = {  # 80 % and 100 % of a quota or cap (webrana_proxy.alerts)
    "alert_quota": Template(
        subject={"id": "Webrana: {percent}% kuota request bulanan terpakai",
                 "en": "Webrana: {percent}% of your monthly request quota used"},
        paragraphs={
            "id": ("Akun Anda telah memakai {percent}% kuota request bulan {period_month}: {used} dari {limit} "
                   "request.",
                   "Saat kuota habis, panggilan ditolak (429) sampai bulan berganti (WIB). Tingkatkan paket untuk "
                   "kuota lebih besar."),
            "en": ("Your account has used {percent}% of its request quota for {period_month}: {used} of {limit} "
                   "requests.",
                   "Once the quota is used up, calls are refused (429) until the month ends (Asia/Jakarta). "
                   "Upgrade your plan for a larger quota."),
        },
        button={"id": "Lihat paket", "en": "See plans"}, link="path", path="/billing"),
    "alert_team_quota": Template(
        subject={"id": "Webrana: {percent}% kuota request bulanan tim {org_name} terpakai",
                 "en": "Webrana: {percent}% of team {org_name}'s monthly request quota used"},
        paragraphs={
            "id": ("Tim {org_name} telah memakai {percent}% kuota request bulan {period_month}: {used} dari "
                   "{limit} request, dihitung dari semua anggota dan kunci tim.",
                   "Saat kuota habis, panggilan dengan kunci tim ditolak (429) sampai bulan berganti (WIB)."),
            "en": ("Team {org_name} has used {percent}% of its request quota for {period_month}: {used} of "
                   "{limit} requests, counted across all its members and keys.",
                   "Once the quota is used up, calls with the team's keys are refused (429) until the month ends "
                   "(Asia/Jakarta)."),
        },
        button={"id": "Lihat paket", "en": "See plans"}, link="path", path="/billing"),
    "alert_user_spend": Template(
        subject={"id": "Webrana: {percent}% batas belanja bulanan akun terpakai",
                 "en": "Webrana: {percent}% of your account's monthly spend cap used"},
        paragraphs={
            "id": ("Akun Anda telah membelanjakan {spent_idr} pada {period_month}: {percent}% dari batas "
                   "{cap_idr}.",
                   "Saat batas tercapai, semua panggilan ditolak sampai bulan berganti (WIB) atau batas dinaikkan "
                   "di pengaturan."),
            "en": ("Your account has spent {spent_idr} in {period_month}: {percent}% of its {cap_idr} cap.",
                   "Once the cap is reached, every call is refused until the month ends (Asia/Jakarta) or the cap "
                   "is raised in the settings."),
        },
        button={"id": "Buka pengaturan", "en": "Open settings"}, link="path", path="/settings"),
    "alert_user_spend_soft": Template(
        subject={"id": "Webrana: {percent}% batas belanja bulanan akun terpakai",
                 "en": "Webrana: {percent}% of your account's monthly spend cap used"},
        paragraphs={
            "id": ("Akun Anda telah membelanjakan {spent_idr} pada {period_month}: {percent}% dari batas "
                   "{cap_idr}.",
                   "Batas ini hanya peringatan: panggilan tetap berjalan."),
            "en": ("Your account has spent {spent_idr} in {period_month}: {percent}% of its {cap_idr} cap.",
                   "This cap only warns: calls go on."),
        },
        button={"id": "Buka pengaturan", "en": "Open settings"}, link="path", path="/settings"),
    "alert_key_spend": Template(
        subject={"id": "Webrana: kunci {key_name} memakai {percent}% batas belanjanya",
                 "en": "Webrana: key {key_name} used {percent}% of its spend cap"},
        paragraphs={
            "id": ("Kunci API {key_name} ({key_prefix}...) telah membelanjakan {spent_idr} pada {period_month}: "
                   "{percent}% dari batasnya {cap_idr}.",
                   "Saat batas tercapai, panggilan dengan kunci ini ditolak sampai bulan berganti (WIB) atau batas "
                   "kunci dinaikkan."),
            "en": ("The API key {key_name} ({key_prefix}...) has spent {spent_idr} in {period_month}: {percent}% "
                   "of its {cap_idr} cap.",
                   "Once the cap is reached, calls with this key are refused until the month ends (Asia/Jakarta) "
                   "or the key's cap is raised."),
        },
        button={"id": "Atur kunci", "en": "Edit the key"}, link="path", path="/proxy-keys"),
    # A team member's own limits in a team (set by the team's owner or a manager): to the member, and to the owner
    # (``email`` is the member's address); ``path`` is the team's usage page or its members page.
    "alert_member_requests": Template(
        subject={"id": "Webrana: {percent}% batas request bulanan Anda di tim {org_name} terpakai",
                 "en": "Webrana: {percent}% of your monthly request limit in team {org_name} used"},
        paragraphs={
            "id": ("Anda telah memakai {percent}% batas request bulanan Anda di tim {org_name} untuk bulan "
                   "{period_month}: {used} dari {limit} request dengan kunci tim.",
                   "Batas ini ditetapkan oleh pemilik atau manajer tim. Saat batas tercapai, panggilan Anda dengan "
                   "kunci tim ditolak (429) sampai bulan berganti (WIB) atau mereka menaikkannya."),
            "en": ("You have used {percent}% of your monthly request limit in team {org_name} for "
                   "{period_month}: {used} of {limit} requests with the team's keys.",
                   "The team's owner or a manager set this limit. Once it is reached, your calls with the team's "
                   "keys are refused (429) until the month ends (Asia/Jakarta) or they raise it."),
        },
        button={"id": "Lihat pemakaian tim", "en": "See team usage"}, link="path", path="/teams"),
    "alert_member_requests_owner": Template(
        subject={"id": "Webrana: {email} memakai {percent}% batas request bulanannya di tim {org_name}",
                 "en": "Webrana: {email} used {percent}% of their monthly request limit in team {org_name}"},
        paragraphs={
            "id": ("Anggota {email} telah memakai {percent}% batas request bulanannya di tim {org_name} untuk "
                   "bulan {period_month}: {used} dari {limit} request.",
                   "Saat batas tercapai, panggilan anggota ini dengan kunci tim ditolak (429) sampai bulan berganti "
                   "(WIB) atau batasnya dinaikkan di halaman anggota tim."),
            "en": ("The member {email} has used {percent}% of their monthly request limit in team {org_name} "
                   "for {period_month}: {used} of {limit} requests.",
                   "Once the limit is reached, this member's calls with the team's keys are refused (429) until the "
                   "month ends (Asia/Jakarta) or the limit is raised on the team's members page."),
        },
        button={"id": "Atur anggota", "en": "Manage members"}, link="path", path="/teams"),
    "alert_member_spend": Template(
        subject={"id": "Webrana: {percent}% batas belanja bulanan Anda di tim {org_name} terpakai",
                 "en": "Webrana: {percent}% of your monthly spend limit in team {org_name} used"},
        paragraphs={
            "id": ("Anda telah membelanjakan {spent_idr} dengan kunci tim {org_name} pada {period_month}: "
                   "{percent}% dari batas Anda {cap_idr}.",
                   "Batas ini ditetapkan oleh pemilik atau manajer tim. Saat batas tercapai, panggilan Anda dengan "
                   "kunci tim ditolak sampai bulan berganti (WIB) atau mereka menaikkannya."),
            "en": ("You have spent {spent_idr} with team {org_name}'s keys in {period_month}: {percent}% of your "
                   "{cap_idr} limit.",
                   "The team's owner or a manager set this limit. Once it is reached, your calls with the team's "
                   "keys are refused until the month ends (Asia/Jakarta) or they raise it."),
        },
        button={"id": "Lihat pemakaian tim", "en": "See team usage"}, link="path", path="/teams"),
    "alert_member_spend_owner": Template(
        subject={"id": "Webrana: {email} memakai {percent}% batas belanja bulanannya di tim {org_name}",
                 "en": "Webrana: {email} used {percent}% of their monthly spend limit in team {org_name}"},
        paragraphs={
            "id": ("Anggota {email} telah membelanjakan {spent_idr} dengan kunci tim {org_name} pada "
                   "{period_month}: {percent}% dari batasnya {cap_idr}.",
                   "Saat batas tercapai, panggilan anggota ini dengan kunci tim ditolak sampai bulan berganti (WIB) "
                   "atau batasnya dinaikkan di halaman anggota tim."),
            "en": ("The member {email} has spent {spent_idr} with team {org_name}'s keys in {period_month}: "
                   "{percent}% of their {cap_idr} limit.",
                   "Once the limit is reached, this member's calls with the team's keys are refused until the month "
                   "ends (Asia/Jakarta) or the limit is raised on the team's members page."),
        },
        button={"id": "Atur anggota", "en": "Manage members"}, link="path", path="/teams"),
}

TEMPLATES: Mapping[str, Template] = {
    "verify_email": Template(
        subject={"id": "Verifikasi alamat e-mail Webrana Anda", "en": "Verify your Webrana e-mail address"},
        paragraphs={
            "id": ("Satu langkah lagi: buka tautan di bawah untuk memverifikasi {email} sebagai alamat akun Webrana "
                   "Anda. Tautan ini berlaku 24 jam dan hanya bisa dipakai sekali.",
                   "Bukan Anda yang mendaftar? Abaikan saja e-mail ini."),
            "en": ("One more step: open the link below to verify {email} as the address of your Webrana account. "
                   "The link works for 24 hours, once.",
                   "Did not sign up? Simply ignore this e-mail."),
        },
        button={"id": "Verifikasi e-mail", "en": "Verify e-mail"}, link="verify"),
    "password_reset": Template(
        subject={"id": "Atur ulang kata sandi Webrana", "en": "Reset your Webrana password"},
        paragraphs={
            "id": ("Seseorang (semoga Anda) meminta pengaturan ulang kata sandi akun Webrana {email}. Buka tautan di "
                   "bawah dalam 30 menit untuk memilih kata sandi baru; tautan hanya bisa dipakai sekali.",
                   "Tidak meminta? Abaikan e-mail ini: kata sandi Anda tetap sama."),
            "en": ("Someone (hopefully you) asked to reset the password of the Webrana account {email}. Open the link "
                   "below within 30 minutes to choose a new password; it works once.",
                   "Did not ask? Ignore this e-mail: your password stays as it is."),
        },
        button={"id": "Atur ulang kata sandi", "en": "Reset password"}, link="reset"),
    "password_changed": Template(
        subject={"id": "Kata sandi Webrana Anda telah diubah", "en": "Your Webrana password was changed"},
        paragraphs={
            "id": ("Kata sandi akun Webrana {email} diubah pada {changed_at}. Semua sesi masuk telah diakhiri; "
                   "kunci proxy Anda tetap berlaku.",
                   "Bukan Anda? Atur ulang kata sandi sekarang dan hubungi dukungan kami."),
            "en": ("The password of the Webrana account {email} was changed on {changed_at}. Every sign-in was "
                   "ended; your proxy keys keep working.",
                   "Was it not you? Reset your password now and contact our support."),
        },
        button={"id": "Atur ulang kata sandi", "en": "Reset password"}, link="path", path="/forgot-password"),
    "invoice_paid": Template(
        subject={"id": "Pembayaran diterima: faktur {number}", "en": "Payment received: invoice {number}"},
        paragraphs={
            "id": ("Terima kasih! Pembayaran untuk paket {plan_name} sudah kami terima.",
                   "Faktur: {number}\nDPP: {subtotal_idr}\nPPN {ppn_percent}%: {ppn_idr}\nTotal: {total_idr}",
                   "Faktur lengkap untuk dicetak ada di konsol."),
            "en": ("Thank you! We received the payment for the {plan_name} plan.",
                   "Invoice: {number}\nDPP (tax base): {subtotal_idr}\nPPN (VAT) {ppn_percent}%: {ppn_idr}\n"
                   "Total: {total_idr}",
                   "The full printable invoice is in the console."),
        },
        button={"id": "Lihat faktur", "en": "View invoice"}, link="path"),
    "renewal_reminder": Template(
        subject={"id": "Paket {plan_name} Anda berakhir {period_end_at}",
                 "en": "Your {plan_name} plan ends {period_end_at}"},
        paragraphs={
            "id": ("Paket {plan_name} Anda berakhir pada {period_end_at}. Paket tidak diperpanjang otomatis: "
                   "setelah tanggal itu akun kembali ke paket Free.",
                   "Perpanjang sekarang agar batas dan kunci Anda tetap seperti sekarang."),
            "en": ("Your {plan_name} plan ends on {period_end_at}. Plans do not renew by themselves: after that "
                   "date the account returns to the Free plan.",
                   "Renew now to keep your limits and keys as they are."),
        },
        button={"id": "Perpanjang paket", "en": "Renew plan"}, link="path", path="/billing"),
    "payment_failed": Template(
        subject={"id": "Pembayaran faktur {number} gagal", "en": "Payment for invoice {number} failed"},
        paragraphs={
            "id": ("Pembayaran faktur {number} ({total_idr}, paket {plan_name}) ditolak. Tidak ada dana yang "
                   "ditagih untuk faktur ini.",
                   "Anda bisa mencoba lagi dengan metode pembayaran lain."),
            "en": ("The payment for invoice {number} ({total_idr}, {plan_name} plan) was declined. Nothing was "
                   "charged for this invoice.",
                   "You can try again with another payment method."),
        },
        button={"id": "Coba lagi", "en": "Try again"}, link="path", path="/billing"),
    "payment_expired": Template(
        subject={"id": "Faktur {number} kedaluwarsa", "en": "Invoice {number} expired"},
        paragraphs={
            "id": ("Faktur {number} ({total_idr}, paket {plan_name}) tidak dibayar tepat waktu dan kini "
                   "kedaluwarsa. Tidak ada dana yang ditagih.",
                   "Jika Anda masih menginginkan paket ini, buat pembayaran baru di konsol."),
            "en": ("Invoice {number} ({total_idr}, {plan_name} plan) was not paid in time and has expired. Nothing "
                   "was charged.",
                   "If you still want this plan, start a new payment in the console."),
        },
        button={"id": "Bayar lagi", "en": "Pay again"}, link="path", path="/billing"),
    **ALERT_TEMPLATES,
    "team_invitation": Template(
        subject={"id": "{inviter} mengundang Anda ke tim {org_name} di Webrana",
                 "en": "{inviter} invited you to the {org_name} team on Webrana"},
        paragraphs={
            "id": ("{inviter} mengundang {email} bergabung dengan tim {org_name} di Webrana sebagai {role}.",
                   "Buka tautan di bawah, lalu masuk atau daftar dengan alamat {email}. Undangan berlaku sampai "
                   "{expires_at} dan hanya bisa dipakai sekali.",
                   "Tidak mengenal pengirimnya? Abaikan saja e-mail ini."),
            "en": ("{inviter} invited {email} to join the {org_name} team on Webrana as a {role}.",
                   "Open the link below, then sign in or sign up with the address {email}. The invitation works "
                   "until {expires_at}, once.",
                   "Do not know the sender? Simply ignore this e-mail."),
        },
        button={"id": "Terima undangan", "en": "Accept invitation"}, link="invite"),
}
INVITE_PAGE = "/invitations/accept"  # the console page of an invitation link


def rupiah(amount: int) -> str:
    """``1234567`` -> ``Rp 1.234.567`` (Indonesian grouping, in both languages: it is the currency's own)."""
    sign = "-" if amount < 0 else ""
    return f"{sign}Rp {abs(amount):,}".replace(",", ".")


def jakarta_time(iso: str, locale: str) -> str:
    """An ISO time as ``12 Maret 2025 14:05 WIB`` (the Jakarta clock)."""
    at = datetime.fromisoformat(iso).astimezone(JAKARTA)
    return f"{at.day} {MONTHS[locale][at.month - 1]} {at.year} {at:%H:%M} WIB"


def month_name(period: str, locale: str) -> str:
    """``2025-06`` as ``Juni 2025`` / ``June 2025``."""
    year, month = period.split("-")
    return f"{MONTHS[locale][int(month) - 1]} {int(year)}"


def _values(params: Mapping[str, Any], locale: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in params.items():
        if name.endswith("_idr") and isinstance(value, int):
            out[name] = rupiah(value)
        elif name.endswith("_at") and isinstance(value, str):
            out[name] = jakarta_time(value, locale)
        elif name.endswith("_month") and isinstance(value, str):
            out[name] = month_name(value, locale)
        else:
            out[name] = str(value)
    return out


def link_of(template: Template, params: Mapping[str, Any], console_url: str,
            token_for: Callable[[str, str], str]) -> str:
    """The button's absolute URL on the console. ``token_for(purpose, token_id)`` rebuilds a link token."""
    if template.link in ("verify", "reset", "invite"):
        page = {"verify": "/verify-email", "reset": "/reset-password", "invite": INVITE_PAGE}[template.link]
        token = token_for(template.link, str(params["token_id"]))
        return f"{console_url}{page}?token={quote(token, safe='')}"
    if template.link == "path":
        path = str(params.get("path") or template.path)
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"a link path must be a path on the console, got {path!r}")
        return console_url + quote(path, safe="/?=&-_.~")
    return ""


def render(name: str, locale: str, params: Mapping[str, Any], *, console_url: str,
           token_for: Callable[[str, str], str]) -> Rendered:
    """The subject, plain text and HTML of one message. Pure: the same inputs give the same bytes."""
    template = TEMPLATES[name]
    lang = locale if locale in LOCALES else LOCALES[0]
    plain = _values(params, lang)
    escaped = {k: html.escape(v) for k, v in plain.items()}
    subject = " ".join(template.subject[lang].format(**plain).split())  # never a line break in a header
    paragraphs = [p.format(**plain) for p in template.paragraphs[lang]]
    url = link_of(template, params, console_url, token_for)
    label = template.button[lang] if template.button else ""
    text_parts = [GREETING[lang], *paragraphs]
    if url:
        text_parts.append(f"{label}:\n{url}")
    text_parts += ["--", FOOTER[lang]]
    text = "\n\n".join(text_parts) + "\n"
    html_paragraphs = "".join(f'<p style="margin:0 0 16px">{"<br>".join(p.format(**escaped).splitlines())}</p>'
                              for p in template.paragraphs[lang])
    button = (f'<p style="margin:24px 0"><a href="{html.escape(url)}" style="background:#0f766e;color:#ffffff;'
              f'padding:10px 18px;border-radius:6px;text-decoration:none;display:inline-block">'
              f'{html.escape(label)}</a></p><p style="margin:0 0 16px;font-size:13px;color:#555555">'
              f'{html.escape(url)}</p>') if url else ""
    body = (f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(subject)}</title>'
            '</head><body style="margin:0;padding:24px;background:#f6f7f9">'
            '<div style="max-width:560px;margin:0 auto;background:#ffffff;padding:24px;border-radius:8px;'
            'font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#1f2933">'
            f'<p style="margin:0 0 16px">{html.escape(GREETING[lang])}</p>{html_paragraphs}{button}'
            f'<p style="margin:24px 0 0;font-size:12px;color:#6b7280">{html.escape(FOOTER[lang])}</p>'
            "</div></body></html>\n")
    return Rendered(subject, text, body)
