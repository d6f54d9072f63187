"""Event sources: which trigger sent an event, and the module that serves it.

``detect`` looks only at each trigger's own marker (never "it has Records");
each redraw source has a module here with its pydantic model, the mapping
to VOD requests, and the shape of its answers. Importing this package
imports no model: the handler loads only the module the event needs.
"""
from __future__ import annotations

from typing import Any

from ..errors import InvalidEventError

COS, APIGW, DIRECT = "cos", "apigw", "direct"


def detect(event: Any) -> str:
    """Tell which source sent the event: COS, APIGW or DIRECT; raise on anything else."""
    if not isinstance(event, dict):
        kind = "null" if event is None else type(event).__name__
        raise InvalidEventError(f"event must be a JSON object, got {kind}")
    if "Records" in event:
        records = event["Records"]
        if not isinstance(records, list):
            raise InvalidEventError("event.Records must be a list of COS records")
        if not records:
            raise InvalidEventError("event.Records is empty")
        return COS
    if "requestContext" in event and "httpMethod" in event:
        return APIGW
    if not event:
        raise InvalidEventError("event is empty: expected a COS notification, an API Gateway "
                                "request or redraw request fields")
    return DIRECT
