"""Direct invocations: the event is the redraw request itself (console, SDK Invoke, tccli).

Answers ``{"TaskId", "RequestId", "SessionId", "Status"}``; invalid fields and
failed submissions raise, so the caller sees the error (and SCF retries an
asynchronous invocation). A request without a SessionId gets one derived from
its parameters, so a retry of the same event creates nothing twice.
"""
from __future__ import annotations

from typing import Any

from .. import core
from ..errors import InvalidRequestError
from ..retries import Deadline
from ..runtime import Runtime


def handle(rt: Runtime, event: dict, deadline: Deadline, log: Any) -> dict:
    """Submit the event's own request fields; raise the failure for the caller to see."""
    started = deadline.start
    try:
        # SCF retries an asynchronous invocation that raised with the same event: a SessionId derived
        # from the request makes that retry name the same task
        params, session_id, webhook = core.prepare_request(event, rt.settings, derive_session=True)
    except InvalidRequestError as exc:
        core.log_rejection(log, "direct.request", exc, 400, started)
        raise
    outcome = core.submit(rt, params, deadline, {"trigger": "direct", "webhook": webhook})
    core.log_outcome(log, "direct.request", outcome)
    if outcome.status == core.FAILED and outcome.error is not None:
        raise outcome.error.for_session(session_id)
    return outcome.with_record({"TaskId": outcome.task_id, "RequestId": outcome.request_id,
                                "SessionId": session_id, "Status": outcome.status}, "Recorded")
