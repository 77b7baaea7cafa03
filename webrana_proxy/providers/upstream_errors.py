"""Turning a provider's error answer into an ``UpstreamError`` the OpenAI SDK maps to the right exception."""

from __future__ import annotations

from collections.abc import Mapping

from webrana_proxy.errors import UpstreamError

PASSED_HEADERS = ("retry-after", "retry-after-ms")  # the SDK honours these when it retries
MAX_MESSAGE_CHARS = 500  # a non-JSON error page is cut to this, so no HTML essay reaches the client

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type_for(status: int) -> str:
    """The OpenAI error type name for a status."""
    if status >= 500:
        return "api_error"
    return _TYPE_BY_STATUS.get(status, "invalid_request_error")


def is_retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def passed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in PASSED_HEADERS:
            out["Retry-After" if lower == "retry-after" else "Retry-After-Ms"] = value
    return out


def text_of(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text[:MAX_MESSAGE_CHARS] if text else "no error body"


def build(provider_name: str, status: int, message: str, *, code: str | None,
          headers: Mapping[str, str], error_type: str | None = None) -> UpstreamError:
    if status < 400:  # an error answer with a success status: something is wrong upstream
        status = 502
    return UpstreamError(
        f"{provider_name}: {message}",
        status=status,
        code=code,
        headers=passed_headers(headers),
        retryable=is_retryable(status),
        error_type=error_type or error_type_for(status),
    )


def malformed(provider_name: str, what: str = "answer") -> UpstreamError:
    """The upstream said 2xx but sent something we cannot read."""
    return UpstreamError(f"{provider_name}: malformed {what} from the provider", status=502,
                         code="upstream_malformed", retryable=True, error_type="api_error")
