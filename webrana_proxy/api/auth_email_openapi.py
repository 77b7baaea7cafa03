"""The OpenAPI entries of ``api.auth_email`` (verify, resend, forgot, reset, locale)."""

from __future__ import annotations

from typing import Any

from webrana_proxy.api.openapi import _obj, _op

LINK_TOKEN = {"type": "string", "minLength": 1, "maxLength": 100}
LOCALE = {"type": "string", "enum": ["id", "en"]}


def auth_email_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api/auth/verify-email": {"post": _op(
            "Verify the account's e-mail address with the token of the link in the sign-up e-mail (single use, "
            "24 h); 400 verification_link_invalid", body=_obj(["token"], token=LINK_TOKEN), auth=False)},
        "/api/auth/verify-email/resend": {"post": _op(
            "Send a new verification link (the previous one stops working); rate-limited per account "
            "(429 email_rate_limited)", ok=202)},
        "/api/auth/password/forgot": {"post": _op(
            "Send a password-reset link if an account uses this address; the same 202 answer either way; "
            "rate-limited per client address and per e-mail",
            body=_obj(["email"], email={"type": "string", "format": "email", "maxLength": 254}), ok=202,
            auth=False)},
        "/api/auth/password/reset": {"post": _op(
            "Set a new password with the token of the reset link (single use, 30 min); ends every sign-in of the "
            "account and sends a 'password changed' notice; 400 reset_link_invalid",
            body=_obj(["token", "password"], token=LINK_TOKEN,
                      password={"type": "string", "minLength": 8, "maxLength": 256}), auth=False)},
        "/api/auth/locale": {"put": _op(
            "The language of the account's e-mails (the console sets it from its language switch)",
            body=_obj(["locale"], locale=LOCALE))},
    }
