"""CKafka batches: bulk ingestion through a queue, one task per message.

Each message's ``msgBody`` is a redraw request as JSON (the direct-invocation
fields). Messages are validated one by one: an invalid one fails alone, with
the names of its bad fields. A message without a SessionId gets one derived
from its topic, partition, offset and body, so a redelivered batch creates
nothing twice and a recreated topic's reused offsets name new messages. The
CKafka trigger invokes synchronously and retries the whole batch when the
function raises: the handler raises only when some message still has a
retryable failure or was refused because of the function's configuration.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, List, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import core, policy
from ..config import Settings
from ..errors import InvalidEventError, InvalidRequestError, RetryableFailuresError, UpstreamError
from ..request import field_errors
from ..retries import Deadline
from ..runtime import Runtime

SESSION_ID_PREFIX = "redraw-kafka-"
SESSION_ID_MAX = 50
_TOPIC_IN_CONTEXT = 200


class CkafkaMessage(BaseModel):
    """One message of a CKafka trigger event (``Records[].Ckafka``)."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)
    topic: str = Field(min_length=1, max_length=1024)
    partition: Union[int, str] = ""     # the console's test template sends ""
    offset: Union[int, str]
    msgKey: Optional[Any] = None
    msgBody: Any = None

    @field_validator("partition", "offset", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("must be an integer")
        if isinstance(value, str) and value.strip() and not value.strip().lstrip("-").isdigit():
            raise ValueError("must be an integer")
        return value.strip() if isinstance(value, str) else value

    @property
    def position(self) -> str:
        """``topic/partition/offset``: names the message in results and errors."""
        return f"{self.topic}/{self.partition}/{self.offset}"


def _body_digest(body: Any) -> str:
    """SHA-256 of the message body as delivered (text, bytes, or an object already parsed)."""
    if isinstance(body, str):
        raw = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, bytes):
        raw = body
    else:
        try:
            raw = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                             default=str).encode("utf-8", "surrogatepass")
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            raise InvalidRequestError(
                "msgBody is nested too deeply",
                [{"field": "msgBody", "problem": "must be a JSON object of redraw request fields"}]) from None
    return hashlib.sha256(raw).hexdigest()


def session_id_for(message: CkafkaMessage) -> str:
    """Deterministic SessionId: the same message delivered again names the same id (≤ 50 chars).

    The body's digest is part of it: a topic recreated within VOD's 3-day dedup
    window restarts its offsets, and its new messages must not be taken for old ones.
    """
    identity = "\x1f".join((message.topic, str(message.partition), str(message.offset),
                            _body_digest(message.msgBody)))
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
    return (SESSION_ID_PREFIX + digest)[:SESSION_ID_MAX]


def _context_for(message: CkafkaMessage) -> str:
    return json.dumps({"trigger": "ckafka", "topic": message.topic[:_TOPIC_IN_CONTEXT],
                       "partition": message.partition, "offset": message.offset},
                      ensure_ascii=False, separators=(",", ":"))


def parse_message(raw: Any) -> CkafkaMessage:
    """Validate one record's ``Ckafka`` envelope; raise InvalidEventError naming the bad fields."""
    if not isinstance(raw, dict) or "Ckafka" not in raw:
        raise InvalidEventError("record carries no CKafka message (Ckafka)")
    try:
        return CkafkaMessage.model_validate(raw["Ckafka"])
    except ValidationError as exc:
        names = ", ".join(f"{f['field']} ({f['problem']})" for f in field_errors(exc, prefix="Ckafka"))
        raise InvalidEventError(f"invalid CKafka message: {names}") from None


def request_of(message: CkafkaMessage) -> Any:
    """The redraw request in the message body (JSON text, or an object already parsed)."""
    body = message.msgBody
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
            raise InvalidRequestError(
                "msgBody is not JSON: each message must be a redraw request as a JSON object",
                [{"field": "msgBody", "problem": "must be a JSON object of redraw request fields"}]) from None
    if not isinstance(body, dict):
        raise InvalidRequestError(
            "msgBody is not a JSON object: each message must be a redraw request as a JSON object",
            [{"field": "msgBody", "problem": "must be a JSON object of redraw request fields"}])
    return body


def _failed(reason: str, code: str, fields: Optional[List[str]] = None) -> Tuple[core.Plan, List[str]]:
    return (core.Plan(core.Outcome(core.FAILED, reason=reason,
                                   error=UpstreamError(code, reason, decision=policy.TERMINAL))),
            fields or [])


def plan_message(raw: Any, settings: Settings) -> Tuple[Optional[CkafkaMessage], core.Plan, List[str]]:
    """``(message, plan, invalid field names)`` for one raw record."""
    try:
        message = parse_message(raw)
    except InvalidEventError as exc:
        plan, fields = _failed(exc.message, policy.INVALID_EVENT, ["Ckafka"])
        return None, plan, fields
    try:
        data = dict(request_of(message))
        if data.get("SessionId") in (None, ""):
            data["SessionId"] = session_id_for(message)
        if data.get("SessionContext") is None:
            data["SessionContext"] = _context_for(message)
        params, session_id, webhook = core.prepare_request(data, settings)
    except InvalidRequestError as exc:
        plan, fields = _failed(exc.message, policy.INVALID_REQUEST, [f["field"] for f in exc.fields])
        return message, plan, fields
    return message, core.Plan(core.Outcome(core.SKIPPED, session_id=session_id), params,
                              {"trigger": "ckafka", "webhook": webhook}), []


def _result(message: Optional[CkafkaMessage], outcome: core.Outcome, fields: List[str]) -> dict:
    out: dict = {"topic": message.topic if message else None,
                 "partition": message.partition if message else None,
                 "offset": message.offset if message else None,
                 "status": outcome.status, "task_id": outcome.task_id, "session_id": outcome.session_id,
                 "request_id": outcome.request_id, "reason": outcome.reason}
    if fields:
        out["fields"] = fields
    return outcome.with_record(out)


def handle(rt: Runtime, event: dict, deadline: Deadline, log: Any) -> dict:
    """``{"results": [...]}``, one entry per message in order; raises for messages to redeliver."""
    planned = [plan_message(raw, rt.settings) for raw in event["Records"]]
    outcomes = core.submit_all(rt, [plan for _, plan, _ in planned], deadline)
    results, retry = [], []
    for index, ((message, _, fields), outcome) in enumerate(zip(planned, outcomes)):
        where = {"topic": message.topic, "partition": message.partition, "offset": message.offset} \
            if message else {}
        core.log_outcome(log, "ckafka.message", outcome, record=index, **where,
                         **({"fields": fields} if fields else {}))
        results.append(_result(message, outcome, fields))
        if outcome.redeliver:
            retry.append({**results[-1], "key": message.position if message else f"record {index}"})
    if retry:
        raise RetryableFailuresError(retry)
    return {"results": results}
