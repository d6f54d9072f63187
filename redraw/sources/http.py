"""HTTP requests: the function URL and the API Gateway trigger (integrated response).

Both triggers are served alike: POST (any path but /tasks/…) creates a task;
GET /tasks/{TaskId} reads one. The answer has the shape each trigger expects:
``{"statusCode", "headers", "body"}`` for a function URL, plus
``"isBase64Encoded": false`` for API Gateway (without it the gateway answers
403). Bodies are JSON; error bodies never carry submitted values.
``error_response`` is the one place a package error becomes an HTTP status.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any, Optional, Tuple

from .. import core, policy, sources, tasks
from ..errors import (InvalidRequestError, MethodNotAllowedError, NotFoundError,
                      PayloadTooLargeError, RedrawError, UpstreamError)
from ..retries import Deadline
from ..runtime import Runtime, ms_since

_TASK_PATH = re.compile(r"/tasks/([^/]+)/?$")
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}


def response(status: int, body: dict, headers: Optional[dict] = None, *, trigger: str = sources.APIGW) -> dict:
    """The answer in the shape the trigger expects (sources.APIGW or sources.URL)."""
    answer: dict = {"isBase64Encoded": False} if trigger == sources.APIGW else {}
    answer.update(statusCode=status, headers={**JSON_HEADERS, **(headers or {})},
                  body=json.dumps(body, ensure_ascii=False, separators=(",", ":")))
    return answer


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def route(event: dict) -> Tuple[str, Optional[str]]:
    """``("create", None)`` or ``("status", task_id)``; raises MethodNotAllowedError."""
    method = str(event.get("httpMethod") or "").upper()
    context = _as_dict(event.get("requestContext"))
    path = event.get("path")
    path = path if isinstance(path, str) else str(context.get("path") or "")
    params = _as_dict(event.get("pathParameters"))
    match = _TASK_PATH.search(path)
    task_id = params.get("TaskId") or params.get("taskId") or (match.group(1) if match else None)
    if task_id is not None:
        if method == "GET":
            return "status", str(task_id)
        raise MethodNotAllowedError(f"method {method[:16] or '(none)'} is not allowed on this path; use GET",
                                    [{"field": "httpMethod", "problem": "allowed: GET"}])
    if method == "POST":
        return "create", None
    raise MethodNotAllowedError(f"method {method[:16] or '(none)'} is not allowed on this path; use POST",
                                [{"field": "httpMethod", "problem": "allowed: POST"}])


def decode_body(event: dict, max_bytes: int) -> Any:
    """The JSON body, checked for size before it is decoded or parsed."""
    body = event.get("body")
    flag = event.get("isBase64Encoded")
    is_b64 = flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")
    if body is None or body == "":
        raise InvalidRequestError("the request body is empty; send the redraw request as JSON",
                                  [{"field": "(body)", "problem": "required"}])
    if isinstance(body, (dict, list)):  # some test tools hand the body over already parsed
        raw = json.dumps(body)
        if len(raw.encode("utf-8")) > max_bytes:
            raise _too_large(max_bytes)
        return body
    if not isinstance(body, str):
        raise InvalidRequestError("the request body must be a string",
                                  [{"field": "(body)", "problem": "must be a JSON string"}])
    limit = math.ceil(max_bytes / 3) * 4 + 8 if is_b64 else max_bytes
    if is_b64:  # line breaks of wrapped base64 are not data; past twice the limit, too large unread
        if len(body) > 2 * limit:
            raise _too_large(max_bytes)
        body = "".join(body.split())
    if len(body) > limit or len(body.encode("utf-8")) > limit:
        raise _too_large(max_bytes)
    data: Any = body
    if is_b64:
        try:
            data = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            raise InvalidRequestError("the body is marked base64 but is not valid base64",
                                      [{"field": "(body)", "problem": "invalid base64"}]) from None
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise InvalidRequestError("the request body is not valid JSON",
                                  [{"field": "(body)", "problem": "invalid JSON"}]) from None


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the request body is larger than {max_bytes} bytes",
                                [{"field": "(body)", "problem": f"larger than {max_bytes} bytes"}])


def error_response(exc: RedrawError, session_id: Optional[str] = None, *,
                   trigger: str = sources.APIGW) -> dict:
    """The one place a package error becomes an HTTP answer."""
    headers: dict = {}
    if isinstance(exc, PayloadTooLargeError):
        status = 413
    elif isinstance(exc, MethodNotAllowedError):
        status = 405
        headers["Allow"] = exc.fields[0]["problem"].split(": ", 1)[1] if exc.fields else "POST"
    elif isinstance(exc, InvalidRequestError):
        status = 400
    elif isinstance(exc, NotFoundError):
        status = 404
    elif isinstance(exc, UpstreamError):
        status = policy.http_status(policy.decide(exc.vod_code))
        if status == 503:
            headers["Retry-After"] = "1" if exc.vod_code.startswith("RequestLimitExceeded") else "5"
    else:
        status = 500
    body: dict = {"error": exc.to_dict()}
    if isinstance(exc, UpstreamError) and exc.request_id:
        body["RequestId"] = exc.request_id
        body["error"].pop("RequestId", None)
    if session_id:
        body["SessionId"] = session_id
    return response(status, body, headers, trigger=trigger)


def _status(rt: Runtime, task_id: str, deadline: Deadline, log: Any, trigger: str) -> dict:
    """GET /tasks/{TaskId}. One ``api.status`` line: ``ok``; ``rejected`` (an invalid TaskId, nothing
    sent); ``failed`` (VOD was asked: the task is unknown, or the call failed)."""
    started = deadline.start
    try:
        tasks.check_task_id(task_id)
    except InvalidRequestError as exc:
        answer = error_response(exc, trigger=trigger)
        core.log_rejection(log, "api.status", exc, answer["statusCode"], started)
        return answer
    try:
        summary = tasks.describe(rt.api, rt.settings.sub_app_id, task_id,
                                 min(rt.settings.http_timeout, max(0.1, deadline.remaining())))
    except (NotFoundError, UpstreamError) as exc:
        answer = error_response(exc, trigger=trigger)
        core.log_rejection(log, "api.status", exc, answer["statusCode"], started, outcome="failed", task_id=task_id)
        return answer
    if rt.settings.follow_up:  # the receipt's state, where the output went, and a link to it
        from ..followup import store_for
        from ..followup.records import task_answer

        summary.update(task_answer(rt.settings, store_for(rt), summary["TaskId"], deadline))
    log.info("api.status", outcome="ok", status_code=200, task_id=summary["TaskId"],
             task_status=summary["Status"], vod_request_id=summary["RequestId"],
             duration_ms=ms_since(started))
    return response(200, summary, trigger=trigger)


def handle(rt: Runtime, event: dict, deadline: Deadline, log: Any) -> dict:
    """Serve one HTTP request: create a task (POST) or report one (GET /tasks/{TaskId})."""
    started = deadline.start
    trigger = sources.detect(event)
    session_id: Optional[str] = None
    try:
        action, task_id = route(event)
        if action == "status":
            return _status(rt, task_id or "", deadline, log, trigger)
        data = decode_body(event, rt.settings.max_body_bytes)
        params, session_id, webhook = core.prepare_request(data, rt.settings)
    except RedrawError as exc:
        answer = error_response(exc, trigger=trigger)
        core.log_rejection(log, "api.request", exc, answer["statusCode"], started)
        return answer
    outcome = core.submit(rt, params, deadline, {"trigger": trigger, "webhook": webhook})
    if outcome.status == core.SUBMITTED:
        core.log_outcome(log, "api.request", outcome, status_code=200)
        return response(200, outcome.with_record({"TaskId": outcome.task_id, "RequestId": outcome.request_id,
                                                  "SessionId": session_id}, "Recorded"), trigger=trigger)
    error = outcome.error or UpstreamError("InvalidParameterValue.SessionId",
                                           outcome.reason or policy.describe("InvalidParameterValue.SessionId"),
                                           decision=policy.DUPLICATE, request_id=outcome.request_id)
    answer = error_response(error, session_id, trigger=trigger)
    core.log_outcome(log, "api.request", outcome, status_code=answer["statusCode"])
    return answer
