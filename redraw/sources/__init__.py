"""Event sources: which trigger sent an event, and the module that serves it.

``detect`` looks only at each trigger's own marker (never "it has Records"),
the way Powertools' envelopes tell sources apart: COS records carry ``cos`` and
``event``, CKafka records ``Ckafka``, CMQ records ``CMQ``; the timer sends
``Type: Timer``, CLS ``clslogs``, EventBridge the CloudEvents fields, MPS an
``EventType``, CLB ``headers`` and ``payload``; API Gateway has
``requestContext``, a function URL ``httpMethod`` without it. Each redraw
source has a module here with its pydantic model, the mapping to VOD requests
and the shape of its answers. Importing this package imports no model: the
handler loads only the module the event needs.
"""
from __future__ import annotations

from typing import Any

from ..errors import InvalidEventError, UnsupportedTriggerError

#: redraw sources (each has a module in this package)
COS, APIGW, URL, CKAFKA, DIRECT = "cos", "apigw", "url", "ckafka", "direct"
#: triggers told apart but not served, with the name their error gives
TIMER, CMQ, CLS, EVENTBRIDGE, MPS, CLB, UNKNOWN = "timer", "cmq", "cls", "eventbridge", "mps", "clb", "unknown"
HTTP_TRIGGERS = (APIGW, URL)
NAMES = {COS: "COS", APIGW: "API Gateway", URL: "function URL", CKAFKA: "CKafka", DIRECT: "direct invocation",
         TIMER: "timer", CMQ: "CMQ topic", CLS: "CLS", EVENTBRIDGE: "EventBridge", MPS: "MPS", CLB: "CLB"}
#: the fields of a redraw request (request.RedrawRequest; a test keeps the two equal)
REQUEST_FIELDS = ("FileInfo", "TaskInfo", "OutputConfig", "SessionId", "SessionContext", "TasksPriority",
                  "ExtInfo", "SubAppId", "Webhook")
SERVED = ("COS uploads, CKafka messages, HTTP requests (function URL or API Gateway) "
          "and direct invocations with redraw request fields")


def unsupported(trigger: str) -> UnsupportedTriggerError:
    """The error for an event of a trigger that redraw recognises but does not serve."""
    if trigger == TIMER:
        return UnsupportedTriggerError(
            TIMER, "timer trigger events are not a redraw source while REDRAW_FOLLOW_UP is off: set "
                   "REDRAW_FOLLOW_UP=true (and REDRAW_STATE_BUCKET) to sweep the followed tasks, or remove "
                   f"this trigger; redraw serves {SERVED}")
    if trigger == UNKNOWN:
        return UnsupportedTriggerError(
            UNKNOWN, "event is from no trigger redraw knows and carries no redraw request field "
                     f"({', '.join(REQUEST_FIELDS[:3])}, ...): redraw serves {SERVED}")
    return UnsupportedTriggerError(
        trigger, f"{NAMES[trigger]} trigger events are not a redraw source: redraw serves {SERVED}; "
                 "remove this trigger from the function")


def _record_trigger(record: Any) -> str:
    if not isinstance(record, dict):
        return ""
    if "cos" in record and "event" in record:
        return COS
    if "Ckafka" in record:
        return CKAFKA
    if "CMQ" in record:
        return CMQ
    return ""


def detect(event: Any) -> str:
    """The trigger that sent the event (COS, APIGW, URL, CKAFKA, DIRECT, or TIMER for the follow-up).

    Raises UnsupportedTriggerError (an InvalidEventError) naming the trigger
    for events of other triggers, and InvalidEventError for what is no event.
    """
    if not isinstance(event, dict):
        kind = "null" if event is None else type(event).__name__
        raise InvalidEventError(f"event must be a JSON object, got {kind}")
    if "Records" in event:
        records = event["Records"]
        if not isinstance(records, list):
            raise InvalidEventError("event.Records must be a list of records")
        if not records:
            raise InvalidEventError("event.Records is empty")
        # The first record that carries a marker names the trigger; in a COS
        # batch, a record without one fails alone.
        for record in records:
            trigger = _record_trigger(record)
            if trigger == CMQ:
                raise unsupported(CMQ)
            if trigger:
                return trigger
        raise InvalidEventError("event.Records[0] carries no trigger marker: expected a COS record "
                                "(cos and event), a CKafka message (Ckafka) or a CMQ message (CMQ)")
    if "requestContext" in event:
        return APIGW
    if "httpMethod" in event and ("headers" in event or "path" in event):
        return URL
    if event.get("Type") == "Timer":
        return TIMER  # served only with the follow-up on (app decides, with the settings)
    if "clslogs" in event:
        raise unsupported(CLS)
    if "specversion" in event:
        raise unsupported(EVENTBRIDGE)
    if "EventType" in event:
        raise unsupported(MPS)
    if "headers" in event and "payload" in event:
        raise unsupported(CLB)
    if any(name in event for name in REQUEST_FIELDS):
        return DIRECT
    if not event:
        raise InvalidEventError("event is empty: expected a COS notification, a CKafka batch, an HTTP "
                                "request or redraw request fields")
    raise unsupported(UNKNOWN)
