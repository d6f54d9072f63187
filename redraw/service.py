"""The core: decide what to submit, submit it safely, and say what happened.

Knows nothing of HTTP or SCF's shapes beyond the validated models; talks to
VOD only through a ``VodApi``. Results are plain dicts ready to return.
"""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from . import cos, policy
from .config import Settings
from .errors import InvalidEventError, InvalidRequestError, UpstreamError
from .events import parse_cos_record, record_key_hint
from .request import CreateTaskResponse, RedrawRequest, parse_request
from .resilience import Deadline, RateLimiter, call_with_retries
from .vod import CREATE_ACTION, VodApi

SUBMITTED, DUPLICATE, SKIPPED, FAILED = "submitted", "duplicate", "skipped", "failed"


@dataclass
class Runtime:
    """What one warm container keeps: settings, the VOD client, the shared limiter."""

    settings: Settings
    api: VodApi
    limiter: RateLimiter


@dataclass
class Outcome:
    """What became of one submission (or one COS record)."""

    status: str
    session_id: Optional[str] = None
    task_id: Optional[str] = None
    request_id: Optional[str] = None
    reason: Optional[str] = None
    key: Optional[str] = None
    attempts: int = 0
    duration_ms: int = 0
    error: Optional[UpstreamError] = None
    url: Optional[str] = None          # without query string: safe to log
    retries: List[str] = field(default_factory=list)

    @property
    def retryable(self) -> bool:
        return self.status == FAILED and self.error is not None and self.error.decision == policy.RETRY

    def result(self) -> dict:
        """The per-record entry of a COS invocation's result."""
        return {"key": self.key, "status": self.status, "task_id": self.task_id,
                "session_id": self.session_id, "request_id": self.request_id, "reason": self.reason}


def _parse_created(response: dict) -> CreateTaskResponse:
    try:
        return CreateTaskResponse.model_validate(response)
    except Exception:
        raise UpstreamError(policy.MALFORMED_RESPONSE, "VOD answer has no TaskId",
                            decision=policy.RETRY) from None


def submit(rt: Runtime, params: dict, deadline: Deadline) -> Outcome:
    """Send one CreateAigcVideoRedrawTask with retries; never raises UpstreamError."""
    started = time.monotonic()
    session_id = params.get("SessionId")
    retries: List[str] = []
    try:
        created, attempts = call_with_retries(
            lambda timeout: _parse_created(rt.api.call(CREATE_ACTION, params, timeout)),
            deadline=deadline, limiter=rt.limiter, max_attempts=rt.settings.max_attempts,
            http_timeout=rt.settings.http_timeout,
            on_retry=lambda exc, n, wait: retries.append(exc.vod_code))
        return Outcome(SUBMITTED, session_id, created.TaskId, created.RequestId or None,
                       attempts=attempts, duration_ms=_ms(started), retries=retries)
    except UpstreamError as exc:
        if exc.decision == policy.DUPLICATE:
            lost_answer = any(code in policy.AMBIGUOUS for code in retries)
            reason = ("submitted by an earlier attempt of this invocation whose answer was lost "
                      "(TaskId unknown; the SessionId identifies the task)" if lost_answer else
                      "SessionId already used: this upload was submitted before")
            return Outcome(DUPLICATE, session_id, None, exc.request_id, reason=reason,
                           attempts=exc.attempts, duration_ms=_ms(started), retries=retries)
        return Outcome(FAILED, session_id, None, exc.request_id,
                       reason=f"{exc.vod_code}: {exc.message}", attempts=exc.attempts,
                       duration_ms=_ms(started), error=exc, retries=retries)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# --- COS uploads -------------------------------------------------------------------------

@dataclass
class _Plan:
    outcome: Outcome
    params: Optional[dict] = None   # set when the record should be submitted


def _plan_record(raw: Any, settings: Settings) -> _Plan:
    try:
        record = parse_cos_record(raw)
        upload = cos.upload_of(record)
    except InvalidEventError as exc:
        hint = record_key_hint(raw)
        key = unquote(hint) if hint else None
        return _Plan(Outcome(FAILED, key=key, reason=exc.message,
                             error=UpstreamError("InvalidEvent", exc.message,
                                                 decision=policy.TERMINAL)))
    outcome = Outcome(SKIPPED, session_id=upload.session_id, key=upload.key,
                      url=cos.without_query(upload.url))
    reason = cos.skip_reason(upload, settings.video_suffixes)
    if reason:
        outcome.reason = reason
        return _Plan(outcome)
    url = upload.url
    if settings.presign_urls:
        try:
            url = cos.presigned_url(upload, settings.secret_id, settings.secret_key,
                                    settings.session_token, settings.presign_expires)
        except Exception as exc:  # missing SDK, bad region...: a configuration problem
            outcome.status, outcome.reason = FAILED, f"could not presign the object URL ({type(exc).__name__})"
            outcome.error = UpstreamError("PresignFailed", outcome.reason, decision=policy.TERMINAL)
            return _Plan(outcome)
    params = task_defaults(settings)
    params.update({
        "SubAppId": settings.sub_app_id,
        "FileInfo": {"Type": "Url", "Url": url},
        "SessionId": upload.session_id,
        "SessionContext": cos.session_context_for("cos", upload.bucket, upload.key,
                                                  {"event": upload.event_name}),
    })
    return _Plan(outcome, params)


def task_defaults(settings: Settings) -> dict:
    """Task fields from configuration (style, storage, class, priority)."""
    params: dict = {}
    if settings.style:
        params["TaskInfo"] = {"Style": settings.style}
    output = {k: v for k, v in (("StorageMode", settings.storage_mode),
                                ("ClassId", settings.class_id)) if v is not None}
    if output:
        params["OutputConfig"] = output
    if settings.tasks_priority is not None:
        params["TasksPriority"] = settings.tasks_priority
    return params


def process_cos(rt: Runtime, records: List[Any], deadline: Deadline) -> List[Outcome]:
    """One outcome per record, in record order; submits eligible records concurrently."""
    plans = [_plan_record(raw, rt.settings) for raw in records]
    todo = [p for p in plans if p.params is not None]

    def run(plan: _Plan) -> None:
        done = submit(rt, plan.params, deadline)  # type: ignore[arg-type]
        done.key, done.url = plan.outcome.key, plan.outcome.url
        plan.outcome = done

    workers = min(rt.settings.max_concurrency, len(todo))
    if workers <= 1:
        for plan in todo:
            run(plan)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redraw") as pool:
            for future in [pool.submit(run, plan) for plan in todo]:
                future.result()
    return [p.outcome for p in plans]


# --- API Gateway and direct requests --------------------------------------------------------

def host_allowed(url: str, allowed: Tuple[str, ...]) -> bool:
    if not allowed:
        return True
    host = (urlsplit(url).hostname or "").lower()
    for entry in allowed:
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
        if host == entry:
            return True
    return False


def prepare_request(data: Any, settings: Settings) -> Tuple[dict, str]:
    """Validate caller fields and build VOD params; returns ``(params, session_id)``."""
    request: RedrawRequest = parse_request(data)
    problems = []
    sub_app_id = settings.sub_app_id
    if request.SubAppId is not None:
        if request.SubAppId in settings.allowed_sub_app_ids:
            sub_app_id = request.SubAppId
        else:
            problems.append({"field": "SubAppId",
                             "problem": "not allowed: the application comes from the function's "
                                        "configuration (see VOD_ALLOWED_SUB_APP_IDS)"})
    if request.FileInfo.Url and not host_allowed(request.FileInfo.Url, settings.allowed_url_hosts):
        problems.append({"field": "FileInfo.Url",
                         "problem": "host not allowed (see REDRAW_ALLOWED_URL_HOSTS)"})
    if problems:
        names = ", ".join(p["field"] for p in problems)
        raise InvalidRequestError(f"invalid request fields: {names}", problems)
    params = request.to_params(sub_app_id)
    for name, default in task_defaults(settings).items():  # defaults fill what the request leaves out
        if isinstance(default, dict):
            params[name] = {**default, **params.get(name, {})}
        else:
            params.setdefault(name, default)
    if not params.get("SessionId"):
        params["SessionId"] = "redraw-" + uuid.uuid4().hex
    return params, params["SessionId"]
