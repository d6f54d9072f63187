"""Timer trigger events: the follow-up sweep (``REDRAW_FOLLOW_UP=true``).

``{"Type": "Timer", "TriggerName", "Time", "Message"}``: the Message is the trigger's
argument, and must be empty or ``sweep`` (serverless.yml sets ``sweep``). A raised error
makes the platform retry the event; the sweep is safe to run again and to overlap.
"""
from __future__ import annotations

from typing import Any

from ..errors import InvalidEventError
from ..retries import Deadline
from ..runtime import Runtime, ms_since

MESSAGES = ("", "sweep")


def check_event(event: dict) -> None:
    """InvalidEventError naming the field when the event is not a sweep's timer event."""
    message = event.get("Message", "")
    if message is None:
        message = ""
    if not isinstance(message, str) or message.strip().lower() not in MESSAGES:
        raise InvalidEventError("timer event Message must be empty or 'sweep' (the timer trigger's argument "
                                "in serverless.yml)")
    for name in ("TriggerName", "Time"):
        if name in event and not isinstance(event[name], str):
            raise InvalidEventError(f"timer event {name} must be a string")


def handle(rt: Runtime, event: dict, deadline: Deadline, log: Any) -> dict:
    """Sweep the followed tasks; the summary counts what happened."""
    try:
        check_event(event)
    except InvalidEventError as exc:
        log.error("event.rejected", outcome="rejected", error=exc.code, reason=exc.message,
                  duration_ms=ms_since(deadline.start))
        raise
    from ..followup.sweep import run

    return {"sweep": run(rt, deadline, log)}
