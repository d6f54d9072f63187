"""The imperative shell: per-container state, per-invocation context, logging, dispatch.

``handle(event, context)`` is what ``handler.main_handler`` calls. Settings and
the VOD client are built on the first invocation of a container and reused.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any, Optional

import structlog

from . import apigw, events, logs, policy, service, tasks
from .config import load_settings
from .errors import (ConfigError, InvalidEventError, InvalidRequestError, RedrawError,
                     RetryableFailuresError, UnexpectedError, UpstreamError)
from .resilience import Deadline, shared_limiter
from .service import FAILED, Runtime

_runtime: Optional[Runtime] = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """The container's Runtime, built once (config validated here, not at import)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                from .vod import VodClient

                settings = load_settings()
                _runtime = Runtime(settings, VodClient(settings), shared_limiter(settings.max_rps))
    return _runtime


def reset() -> None:
    """Forget the container state (tests, and the CLI when it changes the environment)."""
    global _runtime
    with _runtime_lock:
        _runtime = None


def _context_dict(context: Any) -> dict:
    if isinstance(context, dict):
        return context
    if context is None:
        return {}
    return {k: getattr(context, k) for k in ("request_id", "function_name", "time_limit_in_ms")
            if hasattr(context, k)}


def _time_limit_ms(ctx: dict, default_ms: int) -> float:
    raw = ctx.get("time_limit_in_ms")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float(default_ms)
    return value if value > 0 else float(default_ms)


def handle(event: Any, context: Any) -> Any:
    started = time.monotonic()
    ctx = _context_dict(context)
    env = os.environ
    logs.configure((env.get("REDRAW_LOG_LEVEL") or "INFO").upper(),
                   (env.get("TENCENTCLOUD_SECRETKEY", ""), env.get("TENCENTCLOUD_SESSIONTOKEN", "")))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=str(ctx.get("request_id") or uuid.uuid4()))
    function = ctx.get("function_name") or env.get("SCF_FUNCTIONNAME")
    if function:
        structlog.contextvars.bind_contextvars(function=str(function))
    log = logs.get_logger()
    try:
        trigger = events.detect(event)
    except InvalidEventError as exc:
        log.error("event.rejected", outcome="rejected", error=exc.code, reason=exc.message,
                  duration_ms=_ms(started))
        raise
    structlog.contextvars.bind_contextvars(trigger=trigger)
    try:
        rt = runtime()
    except ConfigError as exc:
        log.error("config.invalid", outcome="failed", error=exc.code, reason=exc.message,
                  fix="set the function's environment variables (see README, Configuration)")
        if trigger == events.APIGW:
            return apigw.error_response(exc)
        raise
    deadline = Deadline(_time_limit_ms(ctx, rt.settings.default_time_limit_ms),
                        rt.settings.safety_margin_ms, start=started)
    try:
        if trigger == events.COS:
            return _cos(rt, event, deadline, log)
        if trigger == events.APIGW:
            return _api(rt, event, deadline, log, started)
        return _direct(rt, event, deadline, log, started)
    except RedrawError:
        raise
    except Exception as exc:  # a bug: log it (redacted), answer in the package's terms
        log.exception("handler.crashed", outcome="failed", error=type(exc).__name__, duration_ms=_ms(started))
        failure = UnexpectedError(f"unexpected {type(exc).__name__} while handling the event; "
                                  "see the log line handler.crashed")
        if trigger == events.APIGW:
            return apigw.error_response(failure)
        raise failure from exc


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _log_outcome(log: Any, message: str, outcome: service.Outcome, **extra: Any) -> None:
    fields = dict(outcome=outcome.status, session_id=outcome.session_id, task_id=outcome.task_id,
                  vod_request_id=outcome.request_id, duration_ms=outcome.duration_ms,
                  attempts=outcome.attempts, **extra)
    if outcome.key is not None:
        fields["key"] = outcome.key
    if outcome.url:
        fields["url"] = outcome.url
    if outcome.reason:
        fields["reason"] = outcome.reason
    if outcome.retries:
        fields["retried_after"] = outcome.retries
    if outcome.status != FAILED:
        log.info(message, **fields)
        return
    decision = policy.decide(outcome.error.vod_code) if outcome.error else None
    fields["error_code"] = outcome.error.vod_code if outcome.error else None
    if outcome.error is not None and outcome.error.vod_message:
        fields["vod_message"] = outcome.error.vod_message
    fields["retryable"] = outcome.retryable
    if outcome.retryable:
        log.warning(message, **fields)
    else:
        if decision is not None and decision.hint:
            fields["fix"] = decision.hint
        log.error(message, **fields)


def _cos(rt: Runtime, event: dict, deadline: Deadline, log: Any) -> dict:
    outcomes = service.process_cos(rt, event["Records"], deadline)
    for index, outcome in enumerate(outcomes):
        _log_outcome(log, "cos.record", outcome, record=index)
    results = [o.result() for o in outcomes]
    counts = {s: sum(1 for r in results if r["status"] == s)
              for s in (service.SUBMITTED, service.DUPLICATE, service.SKIPPED, FAILED)}
    retry = [o.result() for o in outcomes if o.retryable]
    log.debug("cos.event", outcome="retry" if retry else "done", records=len(results),
             duration_ms=deadline.elapsed_ms(), **counts)
    if retry:
        raise RetryableFailuresError(retry)
    return {"results": results}


def _api(rt: Runtime, event: dict, deadline: Deadline, log: Any, started: float) -> dict:
    session_id: Optional[str] = None
    try:
        action, task_id = apigw.route(event)
        if action == "status":
            summary = tasks.describe(rt.api, rt.settings.sub_app_id, task_id or "",
                                     min(rt.settings.http_timeout, max(0.1, deadline.remaining())))
            log.info("api.status", outcome="ok", status_code=200, task_id=summary["TaskId"],
                     task_status=summary["Status"], vod_request_id=summary["RequestId"],
                     duration_ms=_ms(started))
            return apigw.response(200, summary)
        data = apigw.decode_body(event, rt.settings.max_body_bytes)
        params, session_id = service.prepare_request(data, rt.settings)
    except RedrawError as exc:
        answer = apigw.error_response(exc)
        _log_rejection(log, "api.request", exc, answer["statusCode"], started)
        return answer
    outcome = service.submit(rt, params, deadline)
    if outcome.status == service.SUBMITTED:
        _log_outcome(log, "api.request", outcome, status_code=200)
        return apigw.response(200, {"TaskId": outcome.task_id, "RequestId": outcome.request_id,
                                    "SessionId": session_id})
    error = outcome.error or UpstreamError("InvalidParameterValue.SessionId",
                                           outcome.reason or policy.describe("InvalidParameterValue.SessionId"),
                                           decision=policy.DUPLICATE, request_id=outcome.request_id)
    answer = apigw.error_response(error, session_id)
    _log_outcome(log, "api.request", outcome, status_code=answer["statusCode"])
    return answer


def _log_rejection(log: Any, message: str, exc: RedrawError, status: int, started: float) -> None:
    fields = dict(outcome="rejected", status_code=status, error=exc.code, reason=exc.message,
                  duration_ms=_ms(started))
    if isinstance(exc, InvalidRequestError) and exc.fields:
        fields["fields"] = [f["field"] for f in exc.fields]
    if isinstance(exc, UpstreamError):
        fields.update(error=exc.vod_code, vod_request_id=exc.request_id)
        if exc.vod_message:
            fields["vod_message"] = exc.vod_message
        log.warning(message, **fields) if exc.decision == policy.RETRY else log.error(message, **fields)
        return
    log.warning(message, **fields)


def _direct(rt: Runtime, event: dict, deadline: Deadline, log: Any, started: float) -> dict:
    try:
        params, session_id = service.prepare_request(event, rt.settings)
    except InvalidRequestError as exc:
        _log_rejection(log, "direct.request", exc, 400, started)
        raise
    outcome = service.submit(rt, params, deadline)
    _log_outcome(log, "direct.request", outcome)
    if outcome.status == FAILED and outcome.error is not None:
        raise outcome.error
    return {"TaskId": outcome.task_id, "RequestId": outcome.request_id, "SessionId": session_id,
            "Status": outcome.status}
