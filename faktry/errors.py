"""Errors that cross package boundaries.

Every error the product shows to a client is a `FaktryError` with a stable `code`
(machine readable, never reworded) and an HTTP `status`. Job failures store the same
code on the job. Adapters turn vendor and library errors into these.
"""

from __future__ import annotations

from typing import Any


class FaktryError(Exception):
    code = "error"
    status = 400
    #: A transient error may succeed when tried again; workers retry it with backoff.
    transient = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return body


class ValidationError(FaktryError):
    code = "invalid_request"
    status = 422

    def __init__(self, message: str, *, field: str | None = None, **kw: Any) -> None:
        details = kw.pop("details", None) or {}
        if field is not None:
            details["field"] = field
        super().__init__(message, details=details, **kw)
        self.field = field


class NotFound(FaktryError):
    code = "not_found"
    status = 404


class Unauthorized(FaktryError):
    code = "unauthorized"
    status = 401


class Forbidden(FaktryError):
    code = "forbidden"
    status = 403


class Conflict(FaktryError):
    code = "conflict"
    status = 409


class Gone(FaktryError):
    """What was asked for existed but is no longer kept (an expired export archive)."""

    code = "gone"
    status = 410


class PayloadTooLarge(FaktryError):
    code = "payload_too_large"
    status = 413


class UnsupportedFormat(FaktryError):
    """The content is not a kind of media faktry accepts (decided from the bytes)."""

    code = "unsupported_format"
    status = 415


class InvalidMedia(FaktryError):
    """The bytes claim a supported format but cannot be decoded."""

    code = "invalid_media"
    status = 422


class MediaTooLarge(FaktryError):
    """Dimensions or duration beyond what faktry will decode (decompression bombs)."""

    code = "media_too_large"
    status = 422


class OutputTooLarge(MediaTooLarge):
    """The asked-for output is larger than its format or this deployment allows (a sprite
    sheet beyond JPEG's 65,500 pixels, a resize box beyond the image pixel limit)."""

    code = "output_too_large"


class ResourceLimitExceeded(FaktryError):
    """A media tool ran out of the memory a job may use. Trying again gives the same result."""

    code = "resource_limit_exceeded"
    status = 422


class ProcessingTimeout(FaktryError):
    code = "processing_timeout"
    status = 500
    transient = True


class ProcessingFailed(FaktryError):
    code = "processing_failed"
    status = 500
    transient = True


class Canceled(FaktryError):
    code = "canceled"
    status = 409


class RateLimited(FaktryError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}


class TransientError(FaktryError):
    code = "temporarily_unavailable"
    status = 503
    transient = True
