"""The package's exceptions: one root, a few specific kinds.

Messages name fields and variables, never the values submitted or configured,
so an exception can be logged or returned as it is.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from .decisions import RETRY, UNKNOWN


class RedrawError(Exception):
    """Root of every error this package raises on purpose."""

    #: Short machine-readable code used in logs and HTTP error bodies.
    code = "RedrawError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class ConfigError(RedrawError):
    """The function's environment variables are missing or invalid."""

    code = "ConfigurationError"


class InvalidEventError(RedrawError):
    """The event is not one this function understands."""

    code = "InvalidEvent"


class InvalidMetadataError(InvalidEventError):
    """An upload's ``x-cos-meta-redraw-*`` header holds a value redraw cannot use (that record fails alone)."""

    code = "InvalidMetadata"


class UnsupportedTriggerError(InvalidEventError):
    """The event comes from a trigger that is not a redraw source (timer, CMQ, CLS, ...)."""

    code = "UnsupportedTrigger"

    def __init__(self, trigger: str, message: str) -> None:
        super().__init__(message)
        self.trigger = trigger


class InvalidRequestError(RedrawError):
    """A redraw request failed validation; ``fields`` names each bad field."""

    code = "InvalidRequest"

    def __init__(self, message: str, fields: Optional[Sequence[dict]] = None) -> None:
        super().__init__(message)
        self.fields = list(fields or [])

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.fields:
            out["fields"] = self.fields
        return out


class PayloadTooLargeError(InvalidRequestError):
    """The HTTP body is larger than the configured limit."""

    code = "PayloadTooLarge"


class MethodNotAllowedError(InvalidRequestError):
    """The HTTP method/path pair is not served."""

    code = "MethodNotAllowed"


class NotFoundError(RedrawError):
    """The requested resource (a task) does not exist."""

    code = "NotFound"


class UnexpectedError(RedrawError):
    """A bug or an unforeseen failure inside the function (the original is chained)."""

    code = "UnexpectedError"


class UpstreamError(RedrawError):
    """VOD (or the way to it) failed; ``decision`` says what to do about it."""

    code = "UpstreamError"

    def __init__(self, vod_code: str, message: str, *, decision: str,
                 request_id: Optional[str] = None, attempts: int = 1,
                 vod_message: Optional[str] = None) -> None:
        super().__init__(message)
        self.vod_code = vod_code
        self.vod_message = vod_message  # VOD's own text: for logs only, it may quote input
        self.decision = decision
        self.request_id = request_id
        self.attempts = attempts
        self.session_id: Optional[str] = None  # set for direct callers (``for_session``)

    def to_dict(self) -> dict:
        out = {"code": self.vod_code, "message": self.message}
        if self.request_id:
            out["RequestId"] = self.request_id
        if self.session_id:
            out["SessionId"] = self.session_id
        return out

    def for_session(self, session_id: Optional[str]) -> "UpstreamError":
        """Name the request's SessionId in the error, so the caller can retry it safely."""
        self.session_id = session_id
        if session_id and self.decision in (RETRY, UNKNOWN):
            self.args = (f"{self.message} (SessionId {session_id}: send the request again with this "
                         "SessionId, VOD will not create it twice)",)
        return self


class RetryableFailuresError(RedrawError):
    """Some records of a batch still need a retry: raised so the platform redelivers.

    Those records failed in a way a retry may fix, or because of the function's
    configuration (the event then ends in the dead-letter queue, to replay once
    it is fixed). Redelivery is safe: records already submitted come back as
    ``duplicate`` because their SessionId is derived from the upload itself.
    """

    code = "RetryableFailures"

    def __init__(self, failures: Iterable[dict]) -> None:
        self.failures = list(failures)
        keys = ", ".join(repr(f.get("key")) for f in self.failures[:10])
        more = "" if len(self.failures) <= 10 else f" and {len(self.failures) - 10} more"
        super().__init__(
            f"{len(self.failures)} record(s) not submitted yet, retry the event: {keys}{more}")


class StorageError(RedrawError):
    """COS (or the way to it) failed; ``retryable`` says whether trying again may help.

    The message names the operation, the bucket and, for a refusal, the permission the
    function's role lacks; never an object's contents, a signature or a credential.
    """

    code = "StorageError"

    def __init__(self, message: str, *, retryable: bool, status: Optional[int] = None,
                 cos_code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.cos_code = cos_code
