"""Task records: the state bucket's layout, and the record written when a task is created.

Everything lives under ``REDRAW_STATE_PREFIX`` (default ``redraw/``) in ``REDRAW_STATE_BUCKET``::

    redraw/uploads/<bucket>/<upload key>.json   an upload's receipt (the latest task of that key)
    redraw/tasks/<TaskId>.json                  the receipt of a task from any other trigger
    redraw/pending/<created>-<TaskId>.json      the record of a task that has not ended (the sweep's list)
    redraw/claims/<TaskId>/<n>                  who finishes an ended task (create-only, until its deadline)
    redraw/done/<TaskId>.json                   the final state, written once when the task is finished
    redraw/outbox/<TaskId>.<endpoint>.json      a webhook message not delivered at once (redraw.webhooks.outbox)
    redraw/outbox-claims/<TaskId>.<endpoint>/<n> who makes attempt n of that message (create-only)

A receipt is small, indented JSON a person reads without a tool. Creating a task costs two
PUTs (its pending record and its receipt) and never a second VOD call.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional, Tuple

from .. import logs
from ..config import Settings
from ..errors import StorageError
from ..retries import Deadline

PENDING, SUCCEEDED, FAILED, LOST = "pending", "succeeded", "failed", "lost"
VERSION = 1
#: a pending record's key: ``<created unix seconds>-<TaskId>.json``
_PENDING_RE = re.compile(r"^(\d{9,11})-([A-Za-z0-9][A-Za-z0-9_.-]{0,127})\.json$")
RECORD_ATTEMPTS = 8  # recording a created task retries longer than other COS calls (within the deadline)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Layout:
    """Keys of the state bucket, under one prefix."""

    prefix: str

    def pending_prefix(self) -> str:
        return f"{self.prefix}pending/"

    def pending_key(self, created: float, task_id: str) -> str:
        return f"{self.prefix}pending/{int(created)}-{task_id}.json"

    def parse_pending(self, key: str) -> Optional[Tuple[int, str]]:
        """``(created, TaskId)`` of a pending record's key; None for a key that is not one."""
        match = _PENDING_RE.match(key[len(self.pending_prefix()):]) if key.startswith(self.pending_prefix()) else None
        return (int(match.group(1)), match.group(2)) if match else None

    def upload_receipt(self, bucket: str, key: str) -> str:
        return f"{self.prefix}uploads/{bucket}/{key}.json"

    def task_receipt(self, task_id: str) -> str:
        return f"{self.prefix}tasks/{task_id}.json"

    def claims_prefix(self, task_id: str) -> str:
        return f"{self.prefix}claims/{task_id}/"

    def done_key(self, task_id: str) -> str:
        return f"{self.prefix}done/{task_id}.json"


def layout_of(settings: Settings) -> Layout:
    return Layout(settings.state_prefix)


def source_of(params: dict, source: dict) -> dict:
    """Where the task's input came from: the upload's bucket and key, or the URL (no query) / FileId."""
    if source.get("bucket") and source.get("key"):
        return {k: source[k] for k in ("bucket", "region", "key") if source.get(k)}
    info = params.get("FileInfo") or {}
    if info.get("FileId"):
        return {"file_id": info["FileId"]}
    url = str(info.get("Url") or "")
    return {"url": url.split("?", 1)[0].split("#", 1)[0]} if url else {}


def deliver_target(settings: Settings, src: dict, task_id: str, prefix: Optional[str] = None) -> Optional[dict]:
    """Where the output goes: beside the upload (``<prefix><key>`` in its bucket), else the state bucket
    (``<prefix><TaskId>``, the file type appended once known); None without a prefix (``prefix``: an
    upload rule's, "" for none; default REDRAW_DELIVER_PREFIX)."""
    prefix = settings.deliver_prefix if prefix is None else prefix
    if not prefix:
        return None
    if src.get("bucket") and src.get("key"):
        return {"bucket": src["bucket"], "region": src.get("region") or settings.state_region,
                "key": prefix + src["key"]}
    return {"bucket": settings.state_bucket, "region": settings.state_region, "key": prefix + task_id,
            "append_file_type": True}


def new_record(settings: Settings, params: dict, task_id: str, session_id: Optional[str], request_id: Optional[str],
               source: dict, created: float) -> dict:
    layout = layout_of(settings)
    src = source_of(params, source)
    receipt = (layout.upload_receipt(src["bucket"], src["key"]) if src.get("bucket") and src.get("key")
               else layout.task_receipt(task_id))
    record = {
        "version": VERSION, "state": PENDING, "task_id": task_id, "session_id": session_id,
        "vod_request_id": request_id, "sub_app_id": params.get("SubAppId", settings.sub_app_id),
        "trigger": source.get("trigger"), "created_at": iso(created), "created": int(created),
        "source": src, "deliver_to": deliver_target(settings, src, task_id, source.get("deliver_prefix")),
        "receipt": receipt,
        **({"webhook": source["webhook"]} if source.get("webhook") else {}),
    }
    if "applied" in source:  # an upload: the rule that matched and the settings sent (docs/rules.md)
        record.update(rule=source.get("rule"), applied=source["applied"])
    return record


def shown_webhook(url: str) -> str:
    """A request's Webhook as receipts show it: without its query (it may carry a token)."""
    return url.split("?", 1)[0].split("#", 1)[0]


def receipt_of(record: dict) -> dict:
    """The record as its receipt shows it (the webhook without its query)."""
    return {**record, "webhook": shown_webhook(record["webhook"])} if record.get("webhook") else record


def download_of(final: dict) -> Optional[dict]:
    """``{bucket, region, key}`` of a finished task's delivered output (None when nothing was delivered)."""
    target, delivered = final.get("deliver_to"), final.get("delivered_to")
    if not (isinstance(target, dict) and isinstance(delivered, str) and delivered.startswith("cos://")):
        return None
    bucket, _, key = delivered[len("cos://"):].partition("/")
    return {"bucket": bucket, "region": target.get("region") or "", "key": key}


def task_answer(settings: Settings, store: Any, task_id: str, deadline: Deadline) -> dict:
    """What ``GET /tasks/{TaskId}`` and ``redraw status`` add with the follow-up on: the receipt's
    ``State`` (``pending`` until the sweep finishes the task), ``DeliveredTo`` and a presigned
    ``DownloadUrl`` of the delivered object (signed here, no request; ``REDRAW_DOWNLOAD_URL_EXPIRES``)."""
    try:
        final = store.get_json(settings.state_bucket or "", settings.state_region,
                               layout_of(settings).done_key(task_id), deadline)
    except (StorageError, ValueError, UnicodeDecodeError):
        return {"State": None, "DeliveredTo": None, "DownloadUrl": None,
                "StateUnavailable": "the state bucket could not be read; try again"}
    if not isinstance(final, dict):
        return {"State": PENDING, "DeliveredTo": None, "DownloadUrl": None}
    download = download_of(final)
    url = store.presign(download["bucket"], download["region"] or settings.state_region, download["key"],
                        settings.download_url_expires) if download else None
    return {"State": final.get("state"), "DeliveredTo": final.get("delivered_to"), "DownloadUrl": url}


def record_task(rt: Any, params: dict, task_id: str, session_id: Optional[str], request_id: Optional[str],
                source: dict, deadline: Deadline) -> bool:
    """Write the new task's pending record and receipt; False (after an error line naming the TaskId)
    when COS still refuses or fails at the end of the retries."""
    from . import store_for

    settings = rt.settings
    created = time.time()
    record = new_record(settings, params, task_id, session_id, request_id, source, created)
    store, bucket, region = store_for(rt), settings.state_bucket or "", settings.state_region
    try:
        store.put_json(bucket, region, layout_of(settings).pending_key(created, task_id), record, deadline,
                       attempts=RECORD_ATTEMPTS)
        store.put_json(bucket, region, record["receipt"], receipt_of(record), deadline, attempts=RECORD_ATTEMPTS)
    except StorageError as exc:
        logs.get_logger().error(
            "task.unrecorded", outcome="failed", task_id=task_id, session_id=session_id, error=exc.cos_code or exc.code,
            reason=exc.message, fix="the task was created but will not be followed: record it by hand "
                                    "(docs/followup.md) or fix the state bucket's permissions")
        return False
    return True


def task_id_unknown(session_id: Optional[str], source: dict) -> bool:
    """A task VOD created whose answer was lost: without its TaskId it cannot be recorded (VOD answers
    a repeated SessionId without it, and lists no AIGC tasks). The error line names what identifies it;
    returns False (not recorded)."""
    where = {f"source_{k}": source[k] for k in ("bucket", "key") if source.get(k)}
    logs.get_logger().error(
        "task.unrecorded", outcome="failed", task_id=None, session_id=session_id, error="TaskIdUnknown",
        reason="VOD created the task but its answer, with the TaskId, was lost; VOD answers the retry's "
               "repeated SessionId without the TaskId, so the task will not be followed",
        fix="find the task in the VOD console by its SessionId (its SessionContext names the upload) "
            "and record it by hand (docs/followup.md)", **where)
    return False
