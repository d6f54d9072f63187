"""The outbox: one object per webhook message in the state bucket, sent by the sweep on a schedule.

::

    redraw/outbox/<TaskId>.<endpoint>.json        a message not yet delivered (endpoint: deployment | request)
    redraw/outbox-claims/<TaskId>.<endpoint>/<n>  who makes attempt n (create-only, until its deadline)

- **Written once.** The finishing sweep writes a task's messages create-only *before* its done
  record, so a retry of finishing never resets one; its ``webhook-id`` is derived from the TaskId
  and the endpoint, the same for every attempt.
- **Sent within seconds.** The finisher sends right after the ``task.finished`` line; every sweep
  also lists ``outbox/`` and sends what is due.
- **One attempt, one sender.** A new message is held for its finisher (``next_at`` is past that
  sweep's deadline): its first attempt needs no claim. Every later attempt ``n`` is made by whoever
  creates its claim. Its result is
  written back to the message (``attempts``, ``next_at``); a delivered or abandoned message is
  removed, with its claims, so the list stays short.
- **At least once.** A finisher that dies after sending leaves its message due once its hold has
  passed; a sweep that dies after sending a later attempt leaves its claim behind, and once that
  claim has expired, the next sweep counts the attempt as unconfirmed. Either way the message is sent
  again, with the same ``webhook-id``: the only way a message arrives twice.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..config import Settings
from ..cosclient import CosStore
from ..errors import StorageError
from ..followup.records import download_of, iso
from ..retries import MIN_ATTEMPT_TIME, Deadline
from . import guard, sender, signing

DEPLOYMENT, REQUEST = "deployment", "request"
TYPES = {"succeeded": "task.succeeded", "failed": "task.failed", "lost": "task.lost"}
#: answers that ask for Retry-After to be honoured; 410 stops the message
RETRY_AFTER_STATUSES = (429, 502, 503, 504)
GONE = 410
CLAIM_MARGIN_S = 5.0
MIN_SEND_S = 1.0        # less time than this left for an attempt: the next sweep makes it
MAX_RETRY_AFTER_S = 86400.0
VERSION = 1


def webhook_id(task_id: str, endpoint: str) -> str:
    """Stable across every attempt and every retry of finishing: derived from the TaskId and endpoint."""
    return "msg_" + hashlib.sha256(f"{task_id}/{endpoint}".encode()).hexdigest()[:32]


def endpoints_for(settings: Settings, record: dict) -> List[str]:
    """Where a task's end is told: the deployment's URL and/or the request's own Webhook."""
    return [e for e, on in ((DEPLOYMENT, bool(settings.webhook_url)), (REQUEST, bool(record.get("webhook"))))
            if on]


def message_data(final: dict, source: Dict[str, Any]) -> dict:
    """What the ``task.finished`` line holds (``download_url`` is added when the message is sent)."""
    return {"task_id": final.get("task_id"), "session_id": final.get("session_id"),
            "session_context": final.get("session_context"), **source, "trigger": final.get("trigger"),
            "outcome": final.get("state"), "error_code": final.get("error_code"), "message": final.get("message"),
            "duration_s": final.get("duration_s"), "finished_at": final.get("finished_at"),
            "output_url": final.get("output_url"), "file_id": final.get("file_id"),
            "delivered_to": final.get("delivered_to")}


class Outbox:
    """The outbox of one sweep: writing a finished task's messages, and sending what is due."""

    def __init__(self, settings: Settings, store: CosStore, deadline: Deadline, log: Any,
                 count: Callable[[str], None], request_id: Optional[str] = None) -> None:
        self.settings, self.store, self.deadline, self.log, self.count = settings, store, deadline, log, count
        self.bucket, self.region = settings.state_bucket or "", settings.state_region
        self.prefix = f"{settings.state_prefix}outbox/"
        self.claims = f"{settings.state_prefix}outbox-claims/"
        self.request_id = request_id
        self._key = signing.key_of(settings.webhook_secret) if settings.webhook_secret else b""

    def key(self, task_id: str, endpoint: str) -> str:
        return f"{self.prefix}{task_id}.{endpoint}.json"

    # --- writing, before the done record ------------------------------------------------------

    def write(self, record: dict, final: dict, source: Dict[str, Any]) -> List[Tuple[str, dict]]:
        """Create the task's messages (create-only: an existing one is kept as it is). Returns the
        messages this call created, to send at once; StorageError when one cannot be written."""
        created = []
        now = time.time()
        for endpoint in endpoints_for(self.settings, record):
            entry = {"version": VERSION, "webhook_id": webhook_id(final["task_id"], endpoint),
                     "task_id": final["task_id"], "endpoint": endpoint,
                     "type": TYPES.get(str(final.get("state")), "task.failed"),
                     "timestamp": final.get("finished_at"), "data": message_data(final, source),
                     "download": download_of(final), "created": round(now, 3), "attempts": 0,
                     # held for this sweep's first attempt: no other sweep sends it before this one has ended
                     "next_at": round(now + self.deadline.remaining() + CLAIM_MARGIN_S, 3),
                     "reserved_by": self.request_id}
            if endpoint == REQUEST:
                entry["url"] = record["webhook"]  # the full URL: the state bucket is private, logs never see it
            key = self.key(final["task_id"], endpoint)
            if self.store.put_json(self.bucket, self.region, key, entry, self.deadline, create_only=True):
                created.append((key, entry))
        return created

    # --- sending --------------------------------------------------------------------------------

    def pending(self) -> List[str]:
        """The keys of the messages not yet delivered."""
        return [key for key, _ in self.store.list(self.bucket, self.region, self.prefix, self.deadline)
                if key.endswith(".json")]

    def send_listed(self, key: str) -> None:
        """Read one listed message and make its next attempt if it is due."""
        try:
            entry = self.store.get_json(self.bucket, self.region, key, self.deadline)
        except (ValueError, UnicodeDecodeError):
            entry = None
        except StorageError:
            self.count("webhook_read_failed")
            return
        if not isinstance(entry, dict) or "webhook_id" not in entry:
            return  # delivered meanwhile (or not a message: left alone)
        if float(entry.get("next_at") or 0) > time.time():
            self.count("webhook_waiting")
            return
        self.attempt(key, entry)

    def send_reserved(self, key: str, entry: dict) -> None:
        """The first attempt of a message this sweep has just written (it is held for this sweep until its
        deadline has passed: no claim is needed); never raises StorageError."""
        if self.deadline.remaining() < MIN_SEND_S + self.store.timeout + MIN_ATTEMPT_TIME:  # send, record
            self.count("webhook_left")  # sent by a later sweep, once the hold has passed
            return
        self.attempt(key, entry, reserved=True)

    def attempt(self, key: str, entry: dict, reserved: bool = False) -> None:
        """Claim the next attempt, make it, record it; never raises StorageError (the next sweep retries)."""
        try:
            if reserved:
                self._send(key, entry, 1)
            else:
                self._attempt(key, entry)
        except StorageError as exc:
            self.count("webhook_storage_errors")
            self.log.warning("webhook.unrecorded", outcome="retry", webhook_id=entry.get("webhook_id"),
                             task_id=entry.get("task_id"), error=exc.cos_code or exc.code, reason=exc.message)

    def _attempt(self, key: str, entry: dict) -> None:
        if self.deadline.remaining() < MIN_SEND_S + 2 * self.store.timeout + MIN_ATTEMPT_TIME:  # claim, send, record
            self.count("webhook_left")
            return
        if not entry.get("attempts") and entry.get("reserved_by"):
            # its finisher's hold has passed with nothing recorded: that sweep stopped, maybe after sending
            entry = {**entry, "attempts": 1, "unconfirmed": int(entry.get("unconfirmed") or 0) + 1}
        number = int(entry.get("attempts") or 0) + 1
        claim = self._claim(entry, number)
        if claim is None:  # another sweep is at it, or sweeps died before recording their attempts
            entry, number = self._after_lost_claims(key, entry)
            if entry is None:
                return
            claim = self._claim(entry, number)
            if claim is None:
                self.count("webhook_claimed_elsewhere")
                return
        self._send(key, entry, number)

    def _claims_of(self, entry: dict) -> str:
        return f"{self.claims}{entry['task_id']}.{entry['endpoint']}/"

    def _claim(self, entry: dict, number: int) -> Optional[str]:
        key = f"{self._claims_of(entry)}{number:03d}"
        body = {"webhook_id": entry["webhook_id"], "attempt": number, "request_id": self.request_id,
                "expires": time.time() + self.deadline.remaining() + CLAIM_MARGIN_S}
        return key if self.store.put_json(self.bucket, self.region, key, body, self.deadline,
                                          create_only=True) else None

    def _after_lost_claims(self, key: str, entry: dict) -> Tuple[Optional[dict], int]:
        """The next attempt is claimed already. While the last claim lives, its sweep is at work:
        ``(None, 0)``. Once it has expired, the message as recorded says which attempts were recorded;
        the claimed ones that were not died between sending and recording: they are counted as
        unconfirmed and the caller claims the one after the last (the receiver may then get this
        message once more per such attempt, always with the same webhook-id)."""
        prefix = self._claims_of(entry)
        numbers = sorted(int(k[len(prefix):]) for k, _ in self.store.list(self.bucket, self.region, prefix,
                                                                        self.deadline) if k[len(prefix):].isdigit())
        if not numbers:
            return None, 0
        last = numbers[-1]
        held = self.store.get_json(self.bucket, self.region, f"{prefix}{last:03d}", self.deadline)
        if isinstance(held, dict) and float(held.get("expires") or 0) > time.time():
            self.count("webhook_claimed_elsewhere")
            return None, 0
        current = self.store.get_json(self.bucket, self.region, key, self.deadline)
        if not isinstance(current, dict):
            return None, 0  # delivered meanwhile
        recorded = int(current.get("attempts") or 0)
        if recorded >= last:
            return None, 0  # every claimed attempt is recorded: the next one is made when it is due
        self.count("webhook_unconfirmed")
        current.update(attempts=last, unconfirmed=int(current.get("unconfirmed") or 0) + last - recorded)
        return current, last + 1

    def _target(self, entry: dict) -> guard.Target:
        url = self.settings.webhook_url if entry.get("endpoint") == DEPLOYMENT else entry.get("url")
        if not url:
            raise guard.Refused("REDRAW_WEBHOOK_URL is no longer set")
        return guard.resolve(str(url), self.settings.webhook_allow_private)

    def _send(self, key: str, entry: dict, number: int) -> None:
        started = time.monotonic()
        url = self.settings.webhook_url if entry.get("endpoint") == DEPLOYMENT else entry.get("url")
        fields = dict(webhook_id=entry["webhook_id"], task_id=entry["task_id"], type=entry["type"],
                      endpoint=entry["endpoint"], url=guard.safe_url(url), attempt=number)
        try:
            target = self._target(entry)
        except guard.Refused as exc:
            answer = sender.Answer(None, exc.message)
        else:
            body = self._body(entry)
            sent_at = int(time.time())
            headers = {"content-type": "application/json", "user-agent": "redraw-webhooks/1",
                       "webhook-id": entry["webhook_id"], "webhook-timestamp": str(sent_at),
                       "webhook-signature": signing.sign(self._key, entry["webhook_id"], sent_at, body)}
            budget = self.deadline.remaining() - 2 * self.store.timeout - MIN_ATTEMPT_TIME
            answer = sender.post(target, headers, body, min(self.settings.webhook_timeout, budget))
        fields.update(status=answer.status, duration_ms=int((time.monotonic() - started) * 1000))
        if answer.status is not None and 200 <= answer.status < 300:
            self.count("webhook_sent")
            self.log.info("webhook.sent", outcome="sent", next_attempt=None, **fields)
            self._remove(key, entry, number)
            return
        reason = answer.error or _status_reason(answer.status)
        delay = self._next_delay(entry, number, answer)
        if delay is None:
            self.count("webhook_failed")
            self.log.warning("webhook.failed", outcome="failed", reason=reason, next_attempt=None, **fields)
            self.count("webhook_abandoned")
            self.log.error("webhook.abandoned", outcome="abandoned", webhook_id=entry["webhook_id"],
                           task_id=entry["task_id"], type=entry["type"], endpoint=entry["endpoint"],
                           url=fields["url"], attempts=number, reason=reason,
                           fix="the receiver answered 410 Gone: it wants no more messages" if answer.status == GONE
                           else "the receiver did not accept this message on any attempt of the schedule; "
                                "the task's receipt and its task.finished line still hold its end")
            self._remove(key, entry, number)
            return
        next_at = time.time() + delay
        self.count("webhook_failed")
        self.log.warning("webhook.failed", outcome="retry", reason=reason, next_attempt=iso(next_at), **fields)
        entry.update(attempts=number, next_at=round(next_at, 3), last_status=answer.status, last_error=reason)
        self.store.put_json(self.bucket, self.region, key, entry, self.deadline)

    def _next_delay(self, entry: dict, number: int, answer: sender.Answer) -> Optional[float]:
        """Seconds until the next attempt; None: the message ends (410, or the schedule is used up;
        an unconfirmed attempt does not use up a place in it)."""
        if answer.status == GONE:
            return None
        schedule = self.settings.webhook_schedule
        place = number - int(entry.get("unconfirmed") or 0)
        if place >= len(schedule):
            return None
        if answer.status in RETRY_AFTER_STATUSES and answer.retry_after is not None:
            return min(MAX_RETRY_AFTER_S, answer.retry_after)
        return schedule[place]

    def _body(self, entry: dict) -> bytes:
        data = dict(entry.get("data") or {})
        download = entry.get("download")
        if isinstance(download, dict):  # made when the message is sent: its lifetime starts now
            data["download_url"] = self.store.presign(download["bucket"], download["region"], download["key"],
                                                      self.settings.download_url_expires)
        message = {"type": entry["type"], "timestamp": entry.get("timestamp") or iso(time.time()), "data": data}
        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _remove(self, key: str, entry: dict, number: int) -> None:
        """The message first (it is done), then its claims, numbered 1..number (no other exists; a
        message delivered by its finisher's own first attempt has none)."""
        self.store.delete(self.bucket, self.region, key, self.deadline)
        for n in range(1, number + 1 if number > 1 else 1):
            self.store.delete(self.bucket, self.region, f"{self._claims_of(entry)}{n:03d}", self.deadline)


def _status_reason(status: Optional[int]) -> str:
    if status is None:
        return "no answer"
    if 300 <= status < 400:
        return f"the receiver answered HTTP {status} (redirects are not followed)"
    return f"the receiver answered HTTP {status}"
