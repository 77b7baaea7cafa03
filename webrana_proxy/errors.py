"""The one error tree. Every failure a client can see is a ``WebranaError``.

One middleware (``webrana_proxy.middleware.error_middleware``) renders them all in the OpenAI error
shape ``{"error": {"message", "type", "code", "param"}}``, so handlers raise and never build error bodies.
"""

from __future__ import annotations

from typing import Any

import orjson


class WebranaError(Exception):
    """Base of every client-visible error. Subclasses fix the HTTP status and the OpenAI error type."""

    status: int = 500
    type: str = "api_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())


class BadRequest(WebranaError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class ValidationFailed(BadRequest):
    """A field failed validation; ``param`` names the field."""

    default_code = "invalid_value"


class Unauthorized(WebranaError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class Forbidden(WebranaError):
    status = 403
    type = "permission_error"
    default_code = "forbidden"


class PlanLimitReached(Forbidden):
    default_code = "plan_limit"


class NotFound(WebranaError):
    status = 404
    type = "not_found_error"
    default_code = "not_found"


class RequestTimeout(WebranaError):
    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class PayloadTooLarge(WebranaError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(WebranaError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, headers: dict[str, str] | None = None,
                 code: str | None = None) -> None:
        merged = {"Retry-After": str(max(1, retry_after))}
        merged.update(headers or {})
        super().__init__(message, headers=merged, code=code)
        self.retry_after = retry_after


class ServiceUnavailable(WebranaError):
    status = 503
    type = "api_error"
    default_code = "service_unavailable"


class UpstreamError(WebranaError):
    """A provider answered with an error, or could not be reached. ``status`` is the mapped status."""

    type = "upstream_error"
    default_code = "upstream_error"

    def __init__(self, message: str, *, status: int, code: str | None = None,
                 headers: dict[str, str] | None = None, retryable: bool = False,
                 error_type: str | None = None) -> None:
        super().__init__(message, status=status, code=code, headers=headers)
        self.retryable = retryable
        if error_type is not None:
            self.type = error_type


class UpstreamTimeout(UpstreamError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=504, code="upstream_timeout", retryable=True, error_type="timeout")
