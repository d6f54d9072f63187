"""Error policy, in one place: every failure becomes one decision.

The decision drives the record status of a COS batch, the HTTP status of the
API answer, the log level, and whether the handler raises for a platform retry.
"""
from __future__ import annotations

from dataclasses import dataclass

from .decisions import DUPLICATE, RETRY, TERMINAL, UNKNOWN
from .errors import InvalidEventError, InvalidMetadataError, InvalidRequestError

#: Codes of our own for failures that never reached a VOD answer.
TRANSPORT_ERROR = "TransportError"
TIMEOUT = "Timeout"
HTTP_ERROR = "HttpError"
MALFORMED_RESPONSE = "MalformedResponse"
DEADLINE = "DeadlineExceeded"
#: Codes of our own for input that failed validation before any VOD call: the
#: log line's ``fix`` names what is wrong with it (the outcome's reason).
INVALID_EVENT = InvalidEventError.code
INVALID_REQUEST = InvalidRequestError.code
INVALID_METADATA = InvalidMetadataError.code
INPUT_CODES = (INVALID_EVENT, INVALID_REQUEST, INVALID_METADATA)
#: Failures after which VOD may have created the task anyway.
AMBIGUOUS = (TIMEOUT, TRANSPORT_ERROR, HTTP_ERROR, MALFORMED_RESPONSE)

_RETRY_EXACT = {"InternalError", TRANSPORT_ERROR, TIMEOUT, HTTP_ERROR, MALFORMED_RESPONSE,
                DEADLINE, "ServerNetworkError", "ClientNetworkError", "ServiceUnavailable"}
_RETRY_PREFIX = ("RequestLimitExceeded", "InternalError.")
_TERMINAL_EXACT = {"UnknownParameter", "UnauthorizedOperation", "FailedOperation.InvalidVodUser",
                   "InvalidAction", "NoSuchVersion", "UnsupportedOperation", "MissingParameter",
                   "InvalidCredential", INVALID_REQUEST, INVALID_EVENT, INVALID_METADATA}
_TERMINAL_PREFIX = ("AuthFailure", "InvalidParameter", "UnauthorizedOperation.", "UnknownParameter.",
                    "UnsupportedOperation.", "MissingParameter.")
#: Terminal codes that mean the function itself is misconfigured (not the caller's input).
_CONFIG_PREFIX = ("AuthFailure", "UnauthorizedOperation", "FailedOperation.InvalidVodUser",
                  "InvalidParameterValue.SubAppId", "InvalidAction", "NoSuchVersion",
                  "InvalidCredential")

_HINTS = {
    "AuthFailure.SignatureFailure": ("the secret key does not match the secret id: "
                                     "check the function's role or TENCENTCLOUD_SECRETKEY"),
    "AuthFailure.SecretIdNotFound": "the secret id is unknown: check the function's role or TENCENTCLOUD_SECRETID",
    "AuthFailure.InvalidSecretId": "the secret id is malformed: check TENCENTCLOUD_SECRETID",
    "AuthFailure.SignatureExpire": "the request timestamp is too far from VOD's clock: check the system clock",
    "AuthFailure.TokenFailure": "the session token is invalid or expired: check the run role / TENCENTCLOUD_SESSIONTOKEN",
    "AuthFailure.UnauthorizedOperation": "the credentials lack permission: grant vod:CreateAigcVideoRedrawTask to the role",
    "UnauthorizedOperation": "the credentials lack permission: grant vod:CreateAigcVideoRedrawTask to the role",
    "FailedOperation.InvalidVodUser": "VOD is not activated for this account",
    "InvalidParameterValue.SubAppId": "VOD_SUB_APP_ID does not name a VOD application of this account",
    "InvalidParameterValue.FileId": "the FileId does not exist in this VOD application",
    "InvalidParameterValue.SessionIdTooLong": "SessionId is limited to 50 characters",
    "InvalidParameterValue.SessionContextTooLong": "SessionContext is limited to 1000 characters",
    "InvalidAction": "the endpoint does not know the action: check VOD_ENDPOINT",
    "NoSuchVersion": "the endpoint does not know API version 2018-07-17: check VOD_ENDPOINT",
    INVALID_EVENT: ("the record does not have the shape the trigger sends; a retry cannot fix it: "
                    "check the event's source (a hand-written or edited test event?)"),
    INVALID_REQUEST: "the request is not a valid redraw request: fix the fields named and send it again",
    INVALID_METADATA: ("the uploader set an x-cos-meta-redraw-* header redraw cannot use; a retry cannot fix it: "
                       "upload the object again with a valid value (docs/rules.md)"),
}
#: Fallback hints by code family, longest prefix first.
_FAMILY_HINTS = (
    ("AuthFailure", "VOD refused the credentials: check the function's run role "
                    "(TENCENTCLOUD_SECRETID / SECRETKEY / SESSIONTOKEN)"),
    ("UnauthorizedOperation", "the credentials lack permission: grant vod:CreateAigcVideoRedrawTask to the role"),
    ("InvalidParameter", "VOD rejected a request parameter: check the request fields against the API reference"),
    ("UnknownParameter", "VOD does not know a request parameter: check the request fields against the API reference"),
    ("MissingParameter", "a required request parameter is missing: check the request fields"),
    ("UnsupportedOperation", "VOD does not support this operation for the account or application"),
    ("InvalidCredential", "the credentials are malformed: check TENCENTCLOUD_SECRETID / SECRETKEY"),
)
UNKNOWN_HINT = "an error code redraw does not know: see vod_message in the log line and VOD's error code list"


def _hint(code: str) -> str:
    if code in _HINTS:
        return _HINTS[code]
    for prefix, hint in _FAMILY_HINTS:
        if code.startswith(prefix):
            return hint
    return ""


@dataclass(frozen=True)
class Decision:
    kind: str           # RETRY | DUPLICATE | TERMINAL | UNKNOWN
    config_fault: bool  # terminal because of the function's configuration/credentials
    hint: str           # what to fix, for the error log line ("" when nothing to say)


def decide(code: str) -> Decision:
    """Classify a VOD error code (or one of this module's transport codes)."""
    code = code or ""
    hint = _hint(code)
    if code == "InvalidParameterValue.SessionId":
        return Decision(DUPLICATE, False, "")
    if code in _RETRY_EXACT or code.startswith(_RETRY_PREFIX):
        return Decision(RETRY, False, hint)
    if code in _TERMINAL_EXACT or code.startswith(_TERMINAL_PREFIX):
        return Decision(TERMINAL, code.startswith(_CONFIG_PREFIX), hint)
    return Decision(UNKNOWN, False, hint or UNKNOWN_HINT)


def describe(code: str) -> str:
    """A message for a VOD error code that is safe to return: VOD's own text may quote input."""
    decision = decide(code)
    if decision.hint:
        return decision.hint
    if decision.kind == DUPLICATE:
        return "the SessionId was already used within the last 3 days: the task was submitted before"
    if decision.kind == RETRY:
        return "VOD is busy or unavailable; retry later"
    if decision.kind == TERMINAL:
        return "VOD rejected the request parameters"
    return "VOD failed the request"


def max_attempts_for(decision: Decision, configured: int) -> int:
    """How many attempts a failure with this decision may use in total."""
    if decision.kind == RETRY:
        return configured
    if decision.kind == UNKNOWN:
        return min(2, configured)
    return 1


def http_status(decision: Decision) -> int:
    """The API Gateway status for a failure that ended with this decision."""
    if decision.kind == DUPLICATE:
        return 409
    if decision.kind in (RETRY, UNKNOWN):
        return 503 if decision.kind == RETRY else 502
    return 502 if decision.config_fault else 400
