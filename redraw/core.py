"""The core: plan what to submit, submit it safely, and say what happened.

Knows nothing of the event sources' shapes; talks to VOD only through a
``VodApi``. The sources (``redraw.sources``) turn events into plans and
outcomes into answers; the log lines for outcomes are written here.
"""
from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple
from urllib.parse import urlsplit

from . import policy
from .config import Settings
from .errors import InvalidRequestError, RedrawError, UpstreamError
from .retries import Deadline, call_with_retries
from .runtime import Runtime, ms_since
from .vod import CREATE_ACTION

SUBMITTED, DUPLICATE, SKIPPED, FAILED = "submitted", "duplicate", "skipped", "failed"
#: Reason of a duplicate found in the accepted-SessionId memory (no VOD call was made).
REMEMBERED = ("SessionId accepted before (remembered by redraw; VOD was not asked again): "
              "this request was submitted before")


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
    recorded: Optional[bool] = None    # follow-up on: the task's record was written (None: not asked)

    @property
    def answer_lost(self) -> bool:
        """A duplicate after an ambiguous failure of this invocation: its own earlier attempt created the
        task and the answer, with the TaskId, was lost (VOD answers a repeated SessionId without it)."""
        return self.status == DUPLICATE and self.task_id is None and any(
            code in policy.AMBIGUOUS for code in self.retries)

    @property
    def retryable(self) -> bool:
        """Failed in a way a retry may fix (VOD busy, time ran out)."""
        return self.status == FAILED and self.error is not None and self.error.decision == policy.RETRY

    @property
    def redeliver(self) -> bool:
        """The event must come back: retryable, or refused because of the function's configuration
        (credentials, role, SubAppId), which a fix makes succeed; the dead-letter queue keeps it until then."""
        if self.status != FAILED or self.error is None:
            return False
        return self.retryable or policy.decide(self.error.vod_code).config_fault

    def result(self) -> dict:
        """The per-record entry of a COS invocation's result."""
        out = {"key": self.key, "status": self.status, "task_id": self.task_id,
               "session_id": self.session_id, "request_id": self.request_id, "reason": self.reason}
        return self.with_record(out)

    def with_record(self, out: dict, name: str = "recorded") -> dict:
        """``out`` plus whether the task's follow-up record was written, when the follow-up was asked."""
        if self.recorded is not None:
            out[name] = self.recorded
        return out


#: The fields of a successful CreateAigcVideoRedrawTask ``Response`` (tests/test_contract.py checks the SDK's).
CREATED_FIELDS = ("TaskId", "RequestId")


def _parse_created(response: dict) -> Tuple[str, str]:
    """``(TaskId, RequestId)`` of an answer; an answer without a TaskId is malformed (and retried)."""
    task_id, request_id = response.get("TaskId"), response.get("RequestId", "")
    if not isinstance(task_id, str) or not task_id or not isinstance(request_id, str):
        raise UpstreamError(policy.MALFORMED_RESPONSE, "VOD answer has no TaskId", decision=policy.RETRY)
    return task_id, request_id


def submit(rt: Runtime, params: dict, deadline: Deadline, source: Optional[dict] = None) -> Outcome:
    """Send one CreateAigcVideoRedrawTask with retries; never raises UpstreamError.

    With the follow-up on, a created task is recorded in the state bucket (``source`` names the
    trigger and, for uploads, the object); ``Outcome.recorded`` says whether that worked. A task
    created by an attempt whose answer was lost (its TaskId unknown) cannot be: an error line says so.
    """
    outcome = _submit(rt, params, deadline)
    if rt.settings.follow_up and outcome.status == SUBMITTED and outcome.task_id:
        from .followup.records import record_task  # loaded only with the follow-up on

        outcome.recorded = record_task(rt, params, outcome.task_id, outcome.session_id, outcome.request_id,
                                       source or {}, deadline)
    elif rt.settings.follow_up and outcome.status == DUPLICATE and outcome.answer_lost:
        from .followup.records import task_id_unknown

        outcome.recorded = task_id_unknown(outcome.session_id, source or {})
    return outcome


def _submit(rt: Runtime, params: dict, deadline: Deadline) -> Outcome:
    started = time.monotonic()
    session_id = params.get("SessionId")
    sub_app_id = params.get("SubAppId")
    retries: List[str] = []
    remembered = rt.accepted.recall(sub_app_id, session_id)
    if remembered is not None:  # the earlier task's TaskId and VOD RequestId, when they were known
        return Outcome(DUPLICATE, session_id, remembered[0], remembered[1], reason=REMEMBERED,
                       duration_ms=ms_since(started))
    try:
        created, attempts = call_with_retries(
            lambda timeout: _parse_created(rt.api.call(CREATE_ACTION, params, timeout)),
            deadline=deadline, limiter=rt.limiter, max_attempts=rt.settings.max_attempts,
            http_timeout=rt.settings.http_timeout,
            on_retry=lambda exc, n, wait: retries.append(exc.vod_code))
        rt.accepted.remember(sub_app_id, session_id, created[0], created[1])
        return Outcome(SUBMITTED, session_id, created[0], created[1] or None,
                       attempts=attempts, duration_ms=ms_since(started), retries=retries)
    except UpstreamError as exc:
        if exc.decision == policy.DUPLICATE:
            rt.accepted.remember(sub_app_id, session_id)
            duplicate = Outcome(DUPLICATE, session_id, None, exc.request_id, attempts=exc.attempts,
                                duration_ms=ms_since(started), retries=retries)
            duplicate.reason = ("submitted by an earlier attempt of this invocation whose answer was lost "
                                "(TaskId unknown; the SessionId identifies the task)" if duplicate.answer_lost else
                                "SessionId already used: this request was submitted before")
            return duplicate
        return Outcome(FAILED, session_id, None, exc.request_id,
                       reason=f"{exc.vod_code}: {exc.message}", attempts=exc.attempts,
                       duration_ms=ms_since(started), error=exc, retries=retries)


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


@dataclass
class Plan:
    """One unit of work: its outcome so far, and the params to submit (None: nothing to send)."""

    outcome: Outcome
    params: Optional[dict] = None
    source: Optional[dict] = None  # the trigger and, for uploads, the object (the follow-up's record)


def submit_all(rt: Runtime, plans: List[Plan], deadline: Deadline) -> List[Outcome]:
    """One outcome per plan, in order; plans with params are submitted concurrently."""
    todo = [p for p in plans if p.params is not None]

    def run(plan: Plan) -> None:
        done = submit(rt, plan.params, deadline, plan.source)  # type: ignore[arg-type]
        done.key, done.url = plan.outcome.key, plan.outcome.url
        plan.outcome = done

    workers = min(rt.settings.max_concurrency, len(todo))
    if workers <= 1:
        for plan in todo:
            run(plan)
    else:
        from concurrent.futures import ThreadPoolExecutor  # one-record events never need it

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redraw") as pool:
            # each worker logs with the invocation's bound context (request_id, trigger, function)
            for future in [pool.submit(contextvars.copy_context().run, run, plan) for plan in todo]:
                future.result()
    return [p.outcome for p in plans]


# --- requests from callers (HTTP, direct, queues) --------------------------------------------

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


def prepare_request(data: Any, settings: Settings,
                    derive_session: bool = False) -> Tuple[dict, str, Optional[str]]:
    """Validate caller fields and build VOD params; returns ``(params, session_id, webhook)`` (the
    request's own ``Webhook`` URL, checked, or None: it is redraw's field, never a VOD param).

    Without a caller's ``SessionId``: a fresh one, or with ``derive_session`` one
    derived from the request itself (the same request sent again names the same
    task: what a platform retry of the same event needs).
    """
    from .request import parse_request  # the request models: HTTP and direct paths only

    request = parse_request(data)
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
    if request.Webhook is not None:
        problems.extend(_webhook_problems(request.Webhook, settings))
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
        params["SessionId"] = _derived_session_id(params) if derive_session else _fresh_session_id()
    return params, params["SessionId"], request.Webhook


def _webhook_problems(url: str, settings: Settings) -> List[dict]:
    """A request's Webhook: allowed hosts only, and the SSRF rules (its host resolved); never echoed."""
    if not settings.webhook_allowed_hosts:
        return [{"field": "Webhook", "problem": "this deployment takes no per-request webhooks "
                                                "(REDRAW_WEBHOOK_ALLOWED_HOSTS is empty)"}]
    if not host_allowed(url, settings.webhook_allowed_hosts):
        return [{"field": "Webhook", "problem": "host not allowed (see REDRAW_WEBHOOK_ALLOWED_HOSTS)"}]
    from .webhooks.guard import Refused, resolve  # only when a request names a webhook

    try:
        resolve(url, settings.webhook_allow_private)
    except Refused as exc:
        return [{"field": "Webhook", "problem": exc.message}]
    return []


def _fresh_session_id() -> str:
    import uuid

    return "redraw-" + uuid.uuid4().hex


def _derived_session_id(params: dict) -> str:
    """``redraw-direct-`` + a hash of the request's parameters as VOD receives them (46 characters)."""
    import hashlib
    import json

    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "redraw-direct-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


# --- log lines ------------------------------------------------------------------------------

def log_outcome(log: Any, message: str, outcome: Outcome, **extra: Any) -> None:
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
    if outcome.recorded is not None:
        fields["recorded"] = outcome.recorded
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
            code = outcome.error.vod_code if outcome.error else ""
            fields["fix"] = (f"{outcome.reason}: {decision.hint}" if code in policy.INPUT_CODES
                             and outcome.reason else decision.hint)
        log.error(message, **fields)


def log_rejection(log: Any, message: str, exc: RedrawError, status: int, started: float,
                  outcome: str = "rejected", **extra: Any) -> None:
    """The line of a request answered with an error: ``rejected`` (refused before anything was sent)
    or ``failed`` (VOD was asked and the call failed); a VOD failure no retry can fix carries a ``fix``."""
    fields = dict(outcome=outcome, status_code=status, error=exc.code, reason=exc.message,
                  duration_ms=ms_since(started), **extra)
    if isinstance(exc, InvalidRequestError) and exc.fields:
        fields["fields"] = [f["field"] for f in exc.fields]
    if isinstance(exc, UpstreamError):
        fields.update(error=exc.vod_code, vod_request_id=exc.request_id)
        if exc.vod_message:
            fields["vod_message"] = exc.vod_message
        if exc.decision == policy.RETRY:
            log.warning(message, **fields)
            return
        hint = policy.decide(exc.vod_code).hint
        log.error(message, **fields, **({"fix": hint} if hint else {}))
        return
    log.warning(message, **fields)
