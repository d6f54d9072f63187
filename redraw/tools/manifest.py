"""Bulk submission (``redraw submit``): manifest rows → redraw tasks, resumably.

- ``read_manifest``: the rows of a CSV file (header row) or a JSON-lines file. Each row
  becomes a RedrawRequest-shaped dict validated with ``request.parse_request``; a bad row
  keeps its problems (row number, field names) and is never submitted.
- ``session_id_for``: a SessionId derived from the row's content, so the same manifest
  submitted twice creates nothing twice (VOD answers a repeated SessionId with
  ``InvalidParameterValue.SessionId``, reported as ``duplicate``).
- ``read_results`` and ``submit_rows``: submission through ``core.submit``, one JSON
  result per row, skipping rows an earlier run already recorded as submitted or duplicate.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ..errors import InvalidRequestError, RedrawError
from ..request import parse_request

SESSION_PREFIX = "redraw-m-"
SESSION_ID_MAX = 50

#: Statuses of a result line. ``skipped``: same request as an earlier row of the manifest.
SUBMITTED, DUPLICATE, SKIPPED, FAILED, INVALID = "submitted", "duplicate", "skipped", "failed", "invalid"
#: Recorded with one of these, a row is not submitted again.
DONE_STATUSES = (SUBMITTED, DUPLICATE)

#: Manifest column -> where it goes in the request (the API's own field names).
COLUMNS: Dict[str, Tuple[str, ...]] = {
    "url": ("FileInfo", "Url"),
    "file_id": ("FileInfo", "FileId"),
    "style": ("TaskInfo", "Style"),
    "storage_mode": ("OutputConfig", "StorageMode"),
    "media_name": ("OutputConfig", "MediaName"),
    "class_id": ("OutputConfig", "ClassId"),
    "expire_time": ("OutputConfig", "ExpireTime"),
    "priority": ("TasksPriority",),
    "session_context": ("SessionContext",),
    "session_id": ("SessionId",),
}
_INT_COLUMNS = ("class_id", "priority")
#: Top-level request fields a JSON-lines row may use instead of the columns.
API_FIELDS = ("FileInfo", "TaskInfo", "OutputConfig", "SessionId", "SessionContext", "TasksPriority",
              "ExtInfo")
_FIELD_TO_COLUMN = {".".join(path): name for name, path in COLUMNS.items()}
_FIELD_TO_COLUMN.update({"FileInfo": "url", "FileInfo.Type": "url", "TaskInfo": "style",
                         "OutputConfig": "storage_mode"})


class ManifestError(RedrawError, ValueError):
    """The manifest as a whole cannot be used (unreadable, no rows, bad header)."""


@dataclass
class Row:
    """One data row of a manifest."""

    number: int                       # 1-based among the data rows (the header is not a row)
    line: int                         # line of the file the row starts on
    request: Optional[dict] = None    # RedrawRequest-shaped, SessionId set, when valid
    problems: List[dict] = field(default_factory=list)  # [{"field", "problem"}] when invalid

    @property
    def valid(self) -> bool:
        return self.request is not None

    @property
    def session_id(self) -> Optional[str]:
        return self.request["SessionId"] if self.request else None

    def reason(self) -> str:
        return describe_problems(self.problems)


@dataclass
class Result:
    """What became of one row; ``to_dict`` is its line in the results file."""

    row: int
    status: str
    session_id: Optional[str] = None
    task_id: Optional[str] = None
    request_id: Optional[str] = None
    reason: Optional[str] = None

    def to_dict(self, target: Optional[dict] = None) -> dict:
        out = {"row": self.row, "status": self.status, "task_id": self.task_id,
               "session_id": self.session_id, "request_id": self.request_id, "reason": self.reason}
        out.update(target or {})
        return out


# --- reading ------------------------------------------------------------------------------

def describe_problems(problems: List[dict]) -> str:
    """``invalid fields: url (must be ...), class_id (must be an integer)``."""
    parts = [p["problem"] if p["field"] == "(row)" else f"{p['field']} ({p['problem']})"
             for p in problems]
    whole = all(p["field"] == "(row)" for p in problems)
    return ("invalid row: " if whole else "invalid fields: ") + ", ".join(parts)


def session_id_for(request: dict) -> str:
    """``redraw-m-`` + SHA-256 of the normalised request (SessionId excluded), 50 characters."""
    content = {k: v for k, v in request.items() if k != "SessionId"}
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return (SESSION_PREFIX + digest)[:SESSION_ID_MAX]


def _dedupe(problems: Iterable[dict]) -> List[dict]:
    seen, out = set(), []
    for p in problems:
        if p["field"] not in seen:
            seen.add(p["field"])
            out.append(p)
    return out


def _validate(data: dict, rename: bool) -> Tuple[Optional[dict], List[dict]]:
    """The normalised request (SessionId set), or the problems naming each bad field."""
    try:
        request = parse_request(data)
    except InvalidRequestError as exc:
        problems = exc.fields
        if rename:
            problems = [dict(p, field=_FIELD_TO_COLUMN.get(p["field"], p["field"])) for p in problems]
        return None, problems
    params = request.to_params(1)
    del params["SubAppId"]   # the application comes from VOD_SUB_APP_ID, never from a manifest
    if not params.get("SessionId"):
        params["SessionId"] = session_id_for(params)
    return params, []


def row_request(values: Dict[str, Any]) -> Tuple[Optional[dict], List[dict]]:
    """A manifest row (column names or the API's own field names) → ``(request, problems)``."""
    if "SubAppId" in values:
        return None, [{"field": "SubAppId", "problem": "not allowed in a manifest: the application "
                                                       "is the function's VOD_SUB_APP_ID"}]
    api_names = [k for k in values if k in API_FIELDS]
    if api_names:
        columns = [k for k in values if k not in API_FIELDS]
        if columns:
            return None, [{"field": ", ".join(columns),
                           "problem": "do not mix manifest columns with API field names "
                                      f"({', '.join(api_names)}) in one row"}]
        return _validate(dict(values), rename=False)
    problems: List[dict] = []
    data: Dict[str, Any] = {}
    for name, value in values.items():
        if name not in COLUMNS:
            problems.append({"field": name, "problem": "unknown column; known: " + ", ".join(COLUMNS)})
            continue
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            continue
        if name in _INT_COLUMNS:
            if isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    problems.append({"field": name, "problem": "must be an integer"})
                    continue
            elif isinstance(value, bool) or not isinstance(value, int):
                problems.append({"field": name, "problem": "must be an integer"})
                continue
        *parents, leaf = COLUMNS[name]
        target = data
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    source = data.get("FileInfo", {})
    if "Url" in source and "FileId" in source:
        problems.append({"field": "file_id", "problem": "give either url or file_id, not both"})
    elif "Url" in source:
        source["Type"] = "Url"
    elif "FileId" in source:
        source["Type"] = "File"
    else:
        problems.append({"field": "url", "problem": "required (or file_id)"})
    request, more = _validate(data, rename=True)
    problems = _dedupe(problems + more)
    return (None, problems) if problems else (request, [])


def _csv_rows(text: str) -> List[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: Optional[List[str]] = None
    rows: List[Row] = []
    line = 1
    for cells in reader:
        start, line = line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lower().replace(" ", "_").replace("-", "_") for c in cells]
            unknown = [h for h in header if h not in COLUMNS]
            if unknown:
                raise ManifestError(f"unknown column(s) {', '.join(unknown)} in the header "
                                    f"(line {start}); known: {', '.join(COLUMNS)}")
            if len(set(header)) != len(header):
                raise ManifestError(f"a column appears twice in the header (line {start})")
            if "url" not in header and "file_id" not in header:
                raise ManifestError(f"the header (line {start}) needs a url or a file_id column")
            continue
        row = Row(number=len(rows) + 1, line=start)
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            row.problems = [{"field": "(row)",
                             "problem": f"{len(cells)} cells, the header has {len(header)}"}]
        else:
            row.request, row.problems = row_request(dict(zip(header, cells)))
        rows.append(row)
    if header is None:
        raise ManifestError("the manifest is empty (a CSV manifest needs a header row)")
    return rows


def _jsonl_rows(text: str) -> List[Row]:
    rows: List[Row] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        row = Row(number=len(rows) + 1, line=number)
        try:
            values = json.loads(raw)
        except ValueError:
            row.problems = [{"field": "(row)", "problem": "not valid JSON"}]
        else:
            if isinstance(values, dict):
                row.request, row.problems = row_request(values)
            else:
                row.problems = [{"field": "(row)", "problem": "must be a JSON object"}]
        rows.append(row)
    return rows


def detect_format(path: str, text: str) -> str:
    """``csv`` or ``jsonl``: by extension, else by the first character."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        return "csv"
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def parse_manifest(text: str, fmt: str) -> List[Row]:
    rows = _csv_rows(text) if fmt == "csv" else _jsonl_rows(text)
    if not rows:
        raise ManifestError("the manifest has no rows")
    return rows


def read_manifest(path: str) -> List[Row]:
    """The rows of the manifest at ``path`` (``-``: standard input)."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                text = handle.read()
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_manifest(text.lstrip("\ufeff"), detect_format(path, text))


def read_results(path: str, target: Optional[dict] = None) -> Dict[str, dict]:
    """SessionId → result line, for rows an earlier run recorded as submitted or duplicate.

    With ``target`` (``{"endpoint", "sub_app_id"}``) lines recorded against another
    endpoint or application do not count. Unparseable lines (a run killed mid-write) are ignored.
    """
    done: Dict[str, dict] = {}
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return done
    with handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("status") not in DONE_STATUSES:
                continue
            session_id = record.get("session_id")
            if not isinstance(session_id, str) or not session_id:
                continue
            if target and any(k in record and record[k] != v for k, v in target.items()):
                continue
            done[session_id] = record
    return done


# --- planning and submitting --------------------------------------------------------------

@dataclass
class Plan:
    """What to do with each row: results known without a call, and rows to submit."""

    immediate: List[Result] = field(default_factory=list)
    todo: List[Row] = field(default_factory=list)
    already_done: List[Row] = field(default_factory=list)


def plan(rows: List[Row], done: Dict[str, dict]) -> Plan:
    out = Plan()
    first: Dict[str, int] = {}
    for row in rows:
        if not row.valid:
            out.immediate.append(Result(row.number, INVALID, reason=row.reason()))
            continue
        sid = row.session_id or ""
        if sid in done:
            out.already_done.append(row)
        elif sid in first:
            out.immediate.append(Result(row.number, SKIPPED, session_id=sid,
                                        reason=f"same request as row {first[sid]}"))
        else:
            first[sid] = row.number
            out.todo.append(row)
    return out


def submit_rows(rt: Any, todo: List[Row], *, concurrency: int, on_result: Callable[[Result], None],
                row_budget_ms: int = 60000) -> None:
    """Submit rows through ``core.submit`` in a thread pool; ``on_result`` runs in this thread.

    A row whose parameters the function's own checks reject (``core.prepare_request``:
    allowed hosts, defaults) is reported ``invalid``. After a failure caused by the
    configuration (credentials, SubAppId) rows not yet sent fail without a call.
    """
    from .. import core, policy
    from ..retries import Deadline

    stop = threading.Event()
    stop_reason: List[str] = []

    def one(row: Row, params: dict) -> Result:
        if stop.is_set():
            return Result(row.number, FAILED, session_id=row.session_id,
                          reason="not sent: " + stop_reason[0])
        outcome = core.submit(rt, params, Deadline(row_budget_ms, 0))
        reason = outcome.reason
        if outcome.status == core.FAILED and outcome.error is not None:
            decision = policy.decide(outcome.error.vod_code)
            if decision.hint:
                reason = f"{reason} ({decision.hint})"
            if decision.config_fault and not stop.is_set():
                stop_reason.append(f"an earlier row failed with {outcome.error.vod_code}")
                stop.set()
        return Result(row.number, outcome.status, outcome.session_id, outcome.task_id,
                      outcome.request_id, reason)

    jobs: List[Tuple[Row, dict]] = []
    for row in todo:
        try:
            params, _, _ = core.prepare_request(dict(row.request or {}), rt.settings)
        except InvalidRequestError as exc:
            on_result(Result(row.number, INVALID, session_id=row.session_id,
                             reason=describe_problems(exc.fields or [{"field": "(row)",
                                                                      "problem": exc.message}])))
            continue
        jobs.append((row, params))
    if not jobs:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(jobs))),
                              thread_name_prefix="redraw-submit")
    pending: set = set()
    try:
        futures: List[Future] = [pool.submit(one, row, params) for row, params in jobs]
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for future in finished:
                on_result(future.result())
    finally:
        # Ctrl-C: drop what has not started; calls in flight end within their deadline and
        # are safe to repeat (same SessionId) when the manifest is submitted again.
        pool.shutdown(wait=not pending, cancel_futures=True)
