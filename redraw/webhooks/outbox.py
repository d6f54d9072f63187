"""The outbox: one object per webhook message in the state bucket, sent by the sweep on a schedule.

::

    redraw/outbox/<TaskId>.<endpoint>.json        a message not yet delivered (endpoint: deployment | request)
    redraw/outbox-claims/<TaskId>.<endpoint>/<n>  who makes attempt n (create-only, until its deadline)

- **First attempt, no object.** The sweep that finishes a task sends its message(s) right after the
  ``task.finished`` line, before it tidies the task up: the done record holds the message and the
  pending record, still there, says the task may not have been told yet. Delivered at once (the
  usual case), a message costs no COS request. The ``webhook-id`` is derived from the TaskId and
  the endpoint: the same for every attempt and every copy.
- **The outbox keeps what is left.** A first attempt that failed, or that the finisher had no time
  for, is written to ``outbox/`` (create-only); a finisher that stopped before tidying (killed after
  sending, perhaps) is recovered by a later sweep, which writes the task's messages there too.
  Every sweep lists ``outbox/`` and sends what is due.
- **One attempt, one sender.** An attempt from the outbox is made by whoever creates its claim.
  Its result is written back to the message (``attempts``, ``next_at``); a delivered or abandoned
  message is removed, with its claims, so the list stays short.
- **At least once.** A sweep that dies after sending, before recording, leaves the message to be sent
  again: by the recovery of its task (a first attempt), or once its claim has expired (a later one),
  the attempt counted as unconfirmed. The copy carries the same ``webhook-id``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import threading
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
MIN_SEND_S = 1.0        # less time than this for an attempt: the next sweep makes it
RECORD_RESERVE_S = 1.0  # kept after an attempt to write its result down (a COS write takes milliseconds)
MAX_RETRY_AFTER_S = 86400.0
BREAK_AFTER = 3         # failures in a row to one host in a sweep: its other messages wait for the next
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
        # failures in a row per receiver host in this sweep: past BREAK_AFTER, its messages wait for the
        # next sweep instead of holding this one's workers for a timeout each
        self._streak: Dict[str, int] = {}
        self._streak_lock = threading.Lock()

    def key(self, task_id: str, endpoint: str) -> str:
        return f"{self.prefix}{task_id}.{endpoint}.json"

    # --- writing, before the done record ------------------------------------------------------

    def messages(self, record: dict, final: dict, source: Dict[str, Any]) -> List[Tuple[str, dict]]:
        """A finished task's messages, one per endpoint, as ``(outbox key, message)`` (nothing written)."""
        out = []
        for endpoint in endpoints_for(self.settings, record):
            entry = {"version": VERSION, "webhook_id": webhook_id(final["task_id"], endpoint),
                     "task_id": final["task_id"], "endpoint": endpoint,
                     "type": TYPES.get(str(final.get("state")), "task.failed"),
                     "timestamp": final.get("finished_at"), "data": message_data(final, source),
                     "download": download_of(final), "attempts": 0}
            if endpoint == REQUEST:
                entry["url"] = record["webhook"]  # the full URL: the state bucket is private, logs never see it
            out.append((self.key(final["task_id"], endpoint), entry))
        return out

    def park(self, key: str, entry: dict, unconfirmed: int = 0) -> Optional[dict]:
        """Put a message in the outbox, due now (create-only: one that is there already is kept, and
        None is returned). ``unconfirmed``: attempts that may have been made without being recorded."""
        parked = {**entry, "attempts": unconfirmed, "unconfirmed": unconfirmed, "claims_from": unconfirmed + 1,
                  "created": round(time.time(), 3), "next_at": round(time.time(), 3)}
        return parked if self.store.put_json(self.bucket, self.region, key, parked, self.deadline,
                                             create_only=True) else None

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

    def send_first(self, key: str, entry: dict) -> bool:
        """The first attempt of a message its finisher has just built (its task's claim is this sweep's:
        no other sweep sends it); a failure, or no time for it, puts it in the outbox. False when that
        could not be written: the task must then not be tidied (its recovery sends the message)."""
        try:
            if self._budget() < MIN_SEND_S or self._broken(entry):
                self.count("webhook_left")
                self.park(key, entry)
            else:
                self._send(key, entry, 1, first=True)
        except StorageError as exc:
            self._unrecorded(entry, exc)
            return False
        return True

    def _budget(self) -> float:
        """Seconds an attempt may take now: what is left of the deadline, less the time to record it.
        A sweep stopped mid-attempt loses nothing (the attempt is unconfirmed: sent again)."""
        return self.deadline.remaining() - RECORD_RESERVE_S - MIN_ATTEMPT_TIME

    def _host(self, entry: dict) -> str:
        url = self.settings.webhook_url if entry.get("endpoint") == DEPLOYMENT else entry.get("url")
        return str(guard.safe_url(url) or "").split("/", 3)[2] if url else ""

    def _broken(self, entry: dict) -> bool:
        with self._streak_lock:
            return self._streak.get(self._host(entry), 0) >= BREAK_AFTER

    def _note(self, entry: dict, ok: bool) -> None:
        host = self._host(entry)
        with self._streak_lock:
            self._streak[host] = 0 if ok else self._streak.get(host, 0) + 1

    def within(self, deadline: Deadline) -> "Outbox":
        """This outbox, bounded by another deadline (the sweep's share for sending from the outbox)."""
        bounded = copy.copy(self)
        bounded.deadline = deadline
        return bounded

    def attempt(self, key: str, entry: dict) -> None:
        """Claim the next attempt, make it, record it; never raises StorageError (the next sweep retries)."""
        try:
            self._attempt(key, entry)
        except StorageError as exc:
            self._unrecorded(entry, exc)

    def _unrecorded(self, entry: dict, exc: StorageError) -> None:
        self.count("webhook_storage_errors")
        self.log.warning("webhook.unrecorded", outcome="retry", webhook_id=entry.get("webhook_id"),
                         task_id=entry.get("task_id"), error=exc.cos_code or exc.code, reason=exc.message)

    def _attempt(self, key: str, entry: dict) -> None:
        if self._budget() < MIN_SEND_S + MIN_ATTEMPT_TIME or self._broken(entry):  # a claim, then the attempt
            self.count("webhook_left")
            return
        read = int(entry.get("attempts") or 0)  # as this sweep read the message
        number = read + 1
        claim = self._claim(entry, number)
        if claim is None:  # another sweep is at it, or sweeps died before recording their attempts
            recorded, number, read = self._after_lost_claims(key, entry)
            if recorded is None:
                return
            entry = recorded
            claim = self._claim(entry, number)
            if claim is None:
                self.count("webhook_claimed_elsewhere")
                return
        # Claimed: is the message still as it was read? Another sweep may have delivered it (and removed
        # its claims, so that this number was free) or recorded an attempt since.
        current = self.store.get_json(self.bucket, self.region, key, self.deadline)
        if not isinstance(current, dict):
            self.store.delete(self.bucket, self.region, claim, self.deadline)
            self.count("webhook_delivered_elsewhere")
            return
        if int(current.get("attempts") or 0) != read:
            self.count("webhook_claimed_elsewhere")
            return  # our claim stays (numbers are never reused); the message's removal deletes it
        self._send(key, entry, number)

    def _claims_of(self, entry: dict) -> str:
        return f"{self.claims}{entry['task_id']}.{entry['endpoint']}/"

    def _claim(self, entry: dict, number: int) -> Optional[str]:
        key = f"{self._claims_of(entry)}{number:03d}"
        body = {"webhook_id": entry["webhook_id"], "attempt": number, "request_id": self.request_id,
                "expires": time.time() + self.deadline.remaining() + CLAIM_MARGIN_S}
        return key if self.store.put_json(self.bucket, self.region, key, body, self.deadline,
                                          create_only=True) else None

    def _after_lost_claims(self, key: str, entry: dict) -> Tuple[Optional[dict], int, int]:
        """The next attempt is claimed already. While the last claim lives, its sweep is at work:
        ``(None, 0, 0)``. Once it has expired, the message as recorded says which attempts were
        recorded; the claimed ones that were not died between sending and recording: they are counted
        as unconfirmed, and ``(message, next attempt, attempts recorded)`` lets the caller claim the one
        after the last (the receiver may then get this message once more per such attempt, always with
        the same webhook-id)."""
        prefix = self._claims_of(entry)
        numbers = sorted(int(k[len(prefix):]) for k, _ in self.store.list(self.bucket, self.region, prefix,
                                                                        self.deadline) if k[len(prefix):].isdigit())
        if not numbers:
            return None, 0, 0
        last = numbers[-1]
        held = self.store.get_json(self.bucket, self.region, f"{prefix}{last:03d}", self.deadline)
        if isinstance(held, dict) and float(held.get("expires") or 0) > time.time():
            self.count("webhook_claimed_elsewhere")
            return None, 0, 0
        current = self.store.get_json(self.bucket, self.region, key, self.deadline)
        if not isinstance(current, dict):
            return None, 0, 0  # delivered meanwhile
        recorded = int(current.get("attempts") or 0)
        if recorded >= last:
            return None, 0, 0  # every claimed attempt is recorded: the next one is made when it is due
        self.count("webhook_unconfirmed")
        current.update(attempts=last, unconfirmed=int(current.get("unconfirmed") or 0) + last - recorded)
        return current, last + 1, recorded

    def _target(self, entry: dict) -> guard.Target:
        url = self.settings.webhook_url if entry.get("endpoint") == DEPLOYMENT else entry.get("url")
        if not url:
            raise guard.Refused("REDRAW_WEBHOOK_URL is no longer set")
        return guard.resolve(str(url), self.settings.webhook_allow_private)

    def _send(self, key: str, entry: dict, number: int, first: bool = False) -> None:
        """Make attempt ``number`` and record its result (``first``: the message is in no outbox object)."""
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
            answer = sender.post(target, headers, body, min(self.settings.webhook_timeout, self._budget()))
        fields.update(status=answer.status, duration_ms=int((time.monotonic() - started) * 1000))
        self._note(entry, answer.status is not None and answer.status < 500 and answer.status != 429)
        if answer.status is not None and 200 <= answer.status < 300:
            self.count("webhook_sent")
            self.log.info("webhook.sent", outcome="sent", next_attempt=None, **fields)
            if not first:
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
            if not first:
                self._remove(key, entry, number)
            return
        next_at = time.time() + delay
        self.count("webhook_failed")
        self.log.warning("webhook.failed", outcome="retry", reason=reason, next_attempt=iso(next_at), **fields)
        entry.update(attempts=number, next_at=round(next_at, 3), last_status=answer.status, last_error=reason)
        if first:
            entry.update(created=round(time.time(), 3), claims_from=number + 1, unconfirmed=0)
        self.store.put_json(self.bucket, self.region, key, entry, self.deadline, create_only=first)

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
        """The message first (it is done), then its claims: numbered from the first attempt made from
        the outbox (``claims_from``) to ``number`` (no other exists)."""
        self.store.delete(self.bucket, self.region, key, self.deadline)
        for n in range(int(entry.get("claims_from") or 1), number + 1):
            self.store.delete(self.bucket, self.region, f"{self._claims_of(entry)}{n:03d}", self.deadline)


def _status_reason(status: Optional[int]) -> str:
    if status is None:
        return "no answer"
    if 300 <= status < 400:
        return f"the receiver answered HTTP {status} (redirects are not followed)"
    return f"the receiver answered HTTP {status}"
