"""The console's picture of the tasks, built from the function's own JSON log lines (a tool, never shipped).

``TaskBoard.feed(line)`` takes each line ``redraw serve`` relays from its instances. A row per task:

- ``cos.record`` names the upload's key and its TaskId (``submitted``/``duplicate``: pending; ``skipped``
  or ``failed`` without a TaskId: a row that says why no task was made);
- ``task.finished`` / ``task.recovered`` end it (``succeeded`` or ``failed``, with the error code and
  message), ``task.lost`` too (``lost``);
- any other line carrying the ``task_id`` is one of its lines, and so are the lines of the invocation
  (``request_id``) that created it, logged before its ``cos.record``.

An upload the console wrote itself (``note_upload``) has a row at once, before the COS trigger fires; the
trigger's ``cos.record`` for that key fills it in. Everything is bounded: ``max_tasks`` rows (the oldest
go first), ``max_lines`` lines per row, and lines waiting for their task. Lines are scrubbed again with
``redraw.logs.redact`` (they already are when logged; the console never shows more than the log does).
"""
from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import Any, Deque, Dict, List, Optional

from ..logs import redact

UPLOADED, PENDING, SUCCEEDED, FAILED, LOST, NO_TASK = "uploaded", "pending", "succeeded", "failed", "lost", "no task"
ENDED = (SUCCEEDED, FAILED, LOST)
_LOOSE_LINES = 200  # lines without a task yet, kept for the task their invocation creates


def delivered_key(delivered_to: Any, bucket: Optional[str]) -> Optional[str]:
    """``redrawn/uploads/a.mp4`` of ``cos://<bucket>/redrawn/uploads/a.mp4`` (None for another bucket)."""
    if not isinstance(delivered_to, str) or not delivered_to.startswith("cos://"):
        return None
    where, _, key = delivered_to[len("cos://"):].partition("/")
    return key if key and (bucket is None or where == bucket) else None


class TaskBoard:
    def __init__(self, *, bucket: Optional[str] = None, max_tasks: int = 500, max_lines: int = 200) -> None:
        self.bucket = bucket
        self.max_tasks, self.max_lines = max_tasks, max_lines
        self._rows: "collections.OrderedDict[str, Dict[str, Any]]" = collections.OrderedDict()
        self._lines: Dict[str, Deque[dict]] = {}
        self._by_request: Dict[str, str] = {}        # request_id of a creating invocation -> row id
        self._loose: Deque[dict] = collections.deque(maxlen=_LOOSE_LINES)
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self.version = 0

    # --- input --------------------------------------------------------------------------------

    def note_upload(self, key: str, size: int) -> str:
        """A file the console wrote into the folder: its row, until the trigger's ``cos.record``."""
        with self._cond:
            row_id = f"upload-{next(self._ids)}"
            self._add(row_id, {"key": key, "task_id": None, "state": UPLOADED, "size": size,
                               "created_at": _now(), "reason": "written into the folder; waiting for the COS trigger"})
            self._changed()
            return row_id

    def forget(self, row_id: str) -> None:
        """Drop a row (an upload that could not be moved into the folder after all)."""
        with self._cond:
            if self._rows.pop(row_id, None) is not None:
                self._lines.pop(row_id, None)
                self._changed()

    def seed(self, receipts: List[dict]) -> int:
        """Rows for tasks of an earlier run, from their receipts (oldest first); a task already on the
        board is left as it is. The count added."""
        added = 0
        with self._cond:
            for receipt in receipts:
                task_id = receipt.get("task_id")
                state = receipt.get("state")
                if not isinstance(task_id, str) or task_id in self._rows or state not in (PENDING, *ENDED):
                    continue
                source = receipt.get("source")
                source = source if isinstance(source, dict) else {}
                row = {"key": source.get("key"), "task_id": task_id, "state": state,
                       "created_at": receipt.get("created_at"), "from_receipt": True}
                if state in ENDED:
                    row.update(finished_at=receipt.get("finished_at"), duration_s=receipt.get("duration_s"),
                               error_code=receipt.get("error_code"),
                               message=receipt.get("message") if state != SUCCEEDED else None,
                               output=delivered_key(receipt.get("delivered_to"), self.bucket),
                               delivered_to=receipt.get("delivered_to"))
                self._add(task_id, redact(row))
                added += 1
            if added:
                self._changed()
        return added

    def feed(self, line: Any) -> None:
        """One of the function's JSON log lines (anything else is ignored)."""
        if not isinstance(line, dict) or not isinstance(line.get("event"), str):
            return
        line = redact(line)
        with self._cond:
            row_id = self._row_for(line)
            if row_id is None:
                self._loose.append(line)
                return
            self._lines.setdefault(row_id, collections.deque(maxlen=self.max_lines)).append(line)
            self._update(self._rows[row_id], line)
            self._changed()

    # --- output -------------------------------------------------------------------------------

    def rows(self) -> List[Dict[str, Any]]:
        """The rows, newest first (copies)."""
        with self._cond:
            return [dict(row, id=row_id, lines=len(self._lines.get(row_id, ())))
                    for row_id, row in reversed(self._rows.items())]

    def lines(self, row_id: str) -> Optional[List[dict]]:
        with self._cond:
            if row_id not in self._rows:
                return None
            return list(self._lines.get(row_id, ()))

    def wait_taken(self, row_id: str, timeout: float) -> bool:
        """True once an upload's row was taken over by the trigger's ``cos.record`` (within ``timeout`` s)."""
        with self._cond:
            return self._cond.wait_for(lambda: row_id not in self._rows, timeout)

    def wait(self, version: int, timeout: float) -> int:
        """The version once it differs from ``version``, or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != version, timeout)
            return self.version

    # --- inside -------------------------------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1
        self._cond.notify_all()

    def _add(self, row_id: str, row: Dict[str, Any]) -> None:
        self._rows[row_id] = row
        while len(self._rows) > self.max_tasks:
            old, _ = self._rows.popitem(last=False)
            self._lines.pop(old, None)
            for request, target in list(self._by_request.items()):
                if target == old:
                    del self._by_request[request]

    def _row_for(self, line: dict) -> Optional[str]:
        task_id = line.get("task_id")
        if isinstance(task_id, str) and task_id:
            if task_id in self._rows:
                return task_id
            return self._new_task(line, task_id)
        if line["event"] == "cos.record" and isinstance(line.get("key"), str):
            return self._new_task(line, None)  # skipped or failed: no task, the row says why
        request = line.get("request_id")
        return self._by_request.get(request) if isinstance(request, str) else None

    def _new_task(self, line: dict, task_id: Optional[str]) -> str:
        key = line.get("key") if line["event"] == "cos.record" else _source_key(line)
        waiting = next((rid for rid, row in self._rows.items()
                        if row["state"] == UPLOADED and key is not None and row["key"] == key), None)
        row: Dict[str, Any] = {"key": key, "task_id": task_id, "state": PENDING if task_id else NO_TASK,
                               "created_at": line.get("timestamp") or _now()}
        if waiting is not None:  # the console's own upload: its row becomes the task's, in place
            old = self._rows.pop(waiting)
            row["size"] = old.get("size")
        row_id = task_id or f"record-{next(self._ids)}"
        self._add(row_id, row)
        if waiting is not None:
            self._lines[row_id] = self._lines.pop(waiting, collections.deque(maxlen=self.max_lines))
            row["was"] = waiting
        request = line.get("request_id")
        if isinstance(request, str):
            self._by_request[request] = row_id
            lines = self._lines.setdefault(row_id, collections.deque(maxlen=self.max_lines))
            earlier = [item for item in self._loose if item.get("request_id") == request]
            for item in earlier:
                self._loose.remove(item)
            lines.extend(earlier)
            while len(self._by_request) > 4 * self.max_tasks:
                self._by_request.pop(next(iter(self._by_request)))
        return row_id

    def _update(self, row: Dict[str, Any], line: dict) -> None:
        event, outcome = line["event"], line.get("outcome")
        if event == "cos.record":
            row["key"] = line.get("key") or row.get("key")
            if outcome in ("skipped", "failed") and not row.get("task_id"):
                row["state"] = NO_TASK
                row["reason"] = line.get("reason") or line.get("fix") or outcome
                row["error_code"] = line.get("error_code")
            elif row.get("state") not in ENDED:
                row["state"] = PENDING
                row.pop("reason", None)
            return
        if event in ("task.finished", "task.recovered", "task.lost"):
            state = LOST if event == "task.lost" else outcome
            if state not in ENDED:
                return
            row.update(state=state, finished_at=line.get("timestamp"), duration_s=line.get("duration_s"),
                       error_code=line.get("error_code"), message=line.get("message"),
                       output=delivered_key(line.get("delivered_to"), self.bucket),
                       delivered_to=line.get("delivered_to"))
            row["key"] = row.get("key") or _source_key(line)
            row.pop("reason", None)


def load_receipts(state_dir: str, prefix: str, limit: int = 500) -> List[dict]:
    """The receipts under ``<state_dir>/<prefix>uploads/`` and ``tasks/`` (the local state bucket's folder),
    the newest ``limit`` by creation, oldest first; unreadable files are passed over."""
    import json
    import os

    found = []
    for part in ("uploads", "tasks"):
        top = os.path.join(state_dir, *f"{prefix}{part}".split("/"))
        for base, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [os.path.join(base, name) for name in files if name.endswith(".json")]
    receipts = []
    for path in found:
        try:
            with open(path, encoding="utf-8") as handle:
                value = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(value, dict) and isinstance(value.get("created"), (int, float)):
            receipts.append(value)
    receipts.sort(key=lambda r: r["created"])
    return receipts[-limit:]


def _source_key(line: dict) -> Optional[str]:
    key = line.get("source_key")
    return key if isinstance(key, str) else None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
