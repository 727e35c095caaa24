"""The receiver's domain errors: one base class, each with a stable ``code`` and HTTP status.

The API maps every :class:`ReceiverError` to ``{"code": ..., "message": ...}`` in one exception
handler (``api/errors.py``); nothing below the API knows about HTTP beyond the status number.
"""

from __future__ import annotations


class ReceiverError(Exception):
    """Base class; ``message`` says what is wrong and, where it helps, what to do."""

    code = "error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ReceiverError):
    code = "not_found"
    status = 404


class InvalidRequestError(ReceiverError):
    code = "invalid_request"
    status = 400


class StageUnavailableError(ReceiverError):
    """A stage exists in the contract but not for this image (say, no network loaded)."""

    code = "stage_unavailable"
    status = 404


class NotAcceptableError(ReceiverError):
    code = "not_acceptable"
    status = 406


class UnauthorizedError(ReceiverError):
    code = "unauthorized"
    status = 401


class ForbiddenError(ReceiverError):
    code = "forbidden"
    status = 403


class PayloadRejectedError(ReceiverError):
    """A payload that cannot become an image; ``reason_class`` is the metrics label."""

    code = "payload_rejected"
    status = 422

    def __init__(self, message: str, reason_class: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.reason_class = reason_class
        self.offset = offset


class RateLimitedError(ReceiverError):
    """A device past its rate (``ingest.device_images_per_s`` and ``device_bytes_per_s``)."""

    code = "rate_limited"
    status = 429


class BusyError(ReceiverError):
    """Every worker is busy and the queue for HTTP payloads is full: try again shortly."""

    code = "busy"
    status = 503
