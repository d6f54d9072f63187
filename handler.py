"""SCF entry point: ``handler.main_handler`` (see serverless.yml)."""
from typing import Any

from redraw.app import handle


def main_handler(event: Any, context: Any) -> Any:
    """Turn a COS upload, an API Gateway request or a direct invocation into a redraw task.

    Returns ``{"results": [...]}`` for COS events, an integrated-response dict for API Gateway,
    and ``{"TaskId", "RequestId", "SessionId", "Status"}`` for direct invocations; raises a
    ``redraw.errors.RedrawError`` for unusable events and for records that need a platform retry.
    """
    return handle(event, context)
