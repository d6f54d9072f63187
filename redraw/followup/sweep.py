"""The sweep: what the timer trigger runs. It checks the pending tasks that are due and finishes
the ones that ended, each exactly once.

- **Schedule by VOD's word** (``schedule``, ``book``). A pending record's key carries its creation
  time, its LastModified the last check, its ``seen`` field what VOD said then (Progress,
  BeginProcessTime). A running task is checked just after the end its Progress predicts, else by
  its age (never later than the old ladder: as long as its age, up to ``REDRAW_POLL_MAX_INTERVAL_S``;
  0: every task at every pass). With ``REDRAW_SWEEP_WINDOW_S`` the sweep keeps working through its
  invocation: it lists again every few seconds and checks each task when it is due; the warm
  container's book remembers the records it read. More due than the budget allows: the tasks
  predicted to have ended go first; what the invocation's time does not reach waits for the next.
- **Paced.** DescribeTaskDetail goes through a pacer of its own (``REDRAW_DESCRIBE_RPS``, the API's
  100/s), RequestLimitExceeded handled as on the create path.
- **Exactly once.** An ended task is finished by whoever creates its claim
  (``claims/<TaskId>/<n>``, a COS create-only write) while no earlier claim is alive (a claim lives
  until its invocation's deadline; a claim let go of an unfinished task is rewritten as expired, not
  deleted, so no claim number is taken twice). The claimer reads ``done/<TaskId>.json``; if it is
  not there, it delivers the output, writes it, then logs ``task.finished``; the receipt is updated,
  the task's claims and, last, its pending record removed after that. Overlapping sweeps, a timer
  retry, or a sweep killed half-way find the claim or the done record and neither deliver nor log
  twice. A done record whose pending record outlives its finisher (``finisher_gone_at``) gets a
  ``task.recovered`` line: that finisher may have died before its own line.
- **Webhooks** (``redraw.webhooks.outbox``): the finisher sends a task's webhooks right after its
  line, before tidying; what fails, and the messages of a recovered task, go to the outbox, which
  every sweep sends from when due.
"""
from __future__ import annotations

import contextvars
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Optional, Tuple

from .. import policy, tasks
from ..errors import RedrawError, StorageError, UpstreamError
from ..pacing import pacer_for
from ..retries import MIN_ATTEMPT_TIME, Deadline, call_with_retries
from ..runtime import Runtime, ms_since
from ..vod import DESCRIBE_ACTION
from . import book as books
from . import records, schedule, store_for
from .schedule import Seen
from .delivery import DeliveryDeferred, OutputUnavailable, deliver

#: A task VOD does not know is declared lost only this long after its creation (VOD may not
#: list a task at once); older ones end with a ``task.lost`` line instead of being retried forever.
LOST_AFTER_S = 600
CLAIM_MARGIN_S = 5.0
#: the part of a sweep's time it may spend sending webhooks from the outbox, before its checks
OUTBOX_SHARE, OUTBOX_MIN_S = 0.3, 3.0
ENDED = ("FINISH", "ABORTED")


@dataclass(frozen=True)
class Pending:
    key: str
    created: int
    task_id: str
    last_checked: float


class BadAnswer(RedrawError):
    """DescribeTaskDetail answered without the fields a redraw task has."""

    code = "MalformedTaskDetail"


@dataclass
class Ending:
    """How an ended task ended, read from DescribeTaskDetail."""

    outcome: str                      # succeeded | failed | lost
    status: str = ""
    error_code: Optional[str] = None
    message: Optional[str] = None
    file_url: Optional[str] = None
    file_id: Optional[str] = None
    file_type: Optional[str] = None
    expire_time: Optional[str] = None
    session_context: Optional[str] = None
    finish_time: Optional[str] = None


def read_detail(response: Any) -> Optional[Ending]:
    """The task's ending, or None while it runs; BadAnswer naming the field that is missing or wrong."""
    if not isinstance(response, dict):
        raise BadAnswer("DescribeTaskDetail answered without a Response object")
    detail = response.get("AigcVideoRedrawTask")
    if not isinstance(detail, dict):
        raise BadAnswer("DescribeTaskDetail answered without AigcVideoRedrawTask "
                        f"(TaskType {str(response.get('TaskType'))[:40]!r})")
    status = detail.get("Status") if isinstance(detail.get("Status"), str) else response.get("Status")
    top = response.get("Status") if isinstance(response.get("Status"), str) else status
    if not isinstance(status, str) or not status:
        raise BadAnswer("DescribeTaskDetail answered without AigcVideoRedrawTask.Status")
    if status not in ENDED and top not in ENDED:
        return None
    err = detail.get("ErrCode", 0)
    if err is None:
        err = 0
    if not isinstance(err, int) or isinstance(err, bool):
        raise BadAnswer("AigcVideoRedrawTask.ErrCode is not an integer")
    output: dict = detail["Output"] if isinstance(detail.get("Output"), dict) else {}
    info: dict = output["FileInfo"] if isinstance(output.get("FileInfo"), dict) else {}
    context = detail.get("SessionContext") if isinstance(detail.get("SessionContext"), str) else None
    message = detail.get("Message") if isinstance(detail.get("Message"), str) else None
    ending = Ending("succeeded", status=status if status in ENDED else str(top), session_context=context,
                    finish_time=response.get("FinishTime") if isinstance(response.get("FinishTime"), str) else None,
                    message=message)
    if "ABORTED" in (status, top) or err != 0:
        ending.outcome = "failed"
        ext = detail.get("ErrCodeExt")
        ending.error_code = ext if isinstance(ext, str) and ext else str(err if err else "ABORTED")
        return ending
    ending.file_url = info.get("FileUrl") if isinstance(info.get("FileUrl"), str) and info.get("FileUrl") else None
    ending.file_id = info.get("FileId") if isinstance(info.get("FileId"), str) and info.get("FileId") else None
    ending.file_type = info.get("FileType") if isinstance(info.get("FileType"), str) else None
    ending.expire_time = info.get("ExpireTime") if isinstance(info.get("ExpireTime"), str) else None
    if not (ending.file_url or ending.file_id):
        ending.outcome, ending.error_code = "failed", "NoOutput"
        ending.message = "VOD reported the task finished without an output file"
    return ending


def _epoch(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def without_query(url: Optional[str]) -> Optional[str]:
    return url.split("?", 1)[0].split("#", 1)[0] if url else None


def parse_context(text: Optional[str]) -> Dict[str, Any]:
    """An upload's bucket and key, parsed back from the SessionContext redraw sent."""
    try:
        value = json.loads(text or "")
    except ValueError:
        return {}
    if not isinstance(value, dict) or value.get("trigger") != "cos":
        return {}
    return {f"source_{k}": value[k] for k in ("bucket", "key") if isinstance(value.get(k), str)}


class Sweep:
    """One sweep over the state bucket's pending records, within one invocation's deadline."""

    def __init__(self, rt: Runtime, deadline: Deadline, log: Any) -> None:
        self.rt, self.settings, self.deadline, self.log = rt, rt.settings, deadline, log
        self.store = store_for(rt)
        self.layout = records.layout_of(rt.settings)
        self.bucket: str = rt.settings.state_bucket or ""
        self.region: str = rt.settings.state_region
        self.pacer = pacer_for(rt.settings, DESCRIBE_ACTION)
        self.counts: Counter = Counter()
        self._lock = threading.Lock()
        self.outbox = _outbox_for(self)

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    # --- the sweep --------------------------------------------------------------------------

    def run(self) -> dict:
        """List, then check what is due: once (``REDRAW_SWEEP_WINDOW_S`` 0: each task at most once), or
        again and again until the window or the invocation's time is over, listing anew every few
        seconds; a window whose listing finds nothing pending ends at once."""
        self.started_at = time.time()
        self._send_outbox()  # messages left by earlier sweeps first (a bounded share of the time)
        book = books.book_for(self.rt, self.bucket, self.layout.prefix)
        knobs = books.knobs_of(self.settings)
        every = self.settings.poll_max_interval_s <= 0
        window = float(self.settings.sweep_window_s)
        reserve = 2 * MIN_ATTEMPT_TIME + self.settings.http_timeout + CLAIM_MARGIN_S
        if self.deadline.remaining() <= reserve:
            window = 0.0  # an invocation too short for a window: one pass
        relist = max(2.5 * knobs.min_gap, 1.0)
        workers = max(1, self.settings.sweep_concurrency)
        wake = threading.Event()
        running: set = set()
        visited: Optional[set] = set() if window <= 0 else None  # one pass: each task once
        passes, listed = 1, self._list(book, knobs)
        load = book.load(self.settings.describe_rps)
        next_list = time.time() + relist
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redraw-sweep") as pool:
            while True:
                running = {f for f in running if not f.done()}
                now = time.time()
                in_window = window > 0 and now - self.started_at < window and self.deadline.remaining() > reserve
                if in_window and now >= next_list:
                    listed = self._list(book, knobs, first=False)
                    load = book.load(self.settings.describe_rps)
                    next_list, passes = now + relist, passes + 1
                chosen = book.due(now, every, 2 * workers - len(running), visited) \
                    if in_window or window <= 0 else []
                for entry in chosen:
                    if visited is not None:
                        visited.add(entry.key)
                    future = pool.submit(contextvars.copy_context().run, self._visit, book, entry, knobs, load)
                    future.add_done_callback(lambda _: wake.set())
                    running.add(future)
                if chosen:
                    continue
                if not running and (window <= 0 or not in_window or not listed):
                    break
                upcoming = book.next_due() if in_window else None
                wait = min(next_list - now, window - (now - self.started_at),
                           float("inf") if upcoming is None else upcoming - now) if in_window else 0.05
                wake.wait(max(0.005, wait))
                wake.clear()
        summary = {"pending": listed, "due": self.counts["visits"], **({"passes": passes} if window > 0 else {}),
                   **{k: self.counts[k] for k in sorted(self.counts) if k != "visits"}}
        self.log.info("sweep.done", outcome="done", duration_ms=ms_since(self.deadline.start), **summary)
        return summary

    def _list(self, book: "books.Book", knobs: Any, first: bool = True) -> int:
        """List the pending records into the book; the count listed. A key that is not a pending
        record's is said once per container."""
        listed = []
        try:
            for key, modified in self.store.list(self.bucket, self.region, self.layout.pending_prefix(), self.deadline):
                parsed = self.layout.parse_pending(key)
                if parsed is None:
                    if book.first_sight(key):
                        self.count("invalid")
                        self.log.error("task.record_invalid", outcome="failed", record=key[:300],
                                       reason="not a redraw pending record (expected <created>-<TaskId>.json)",
                                       fix="remove objects that are not redraw's from this prefix")
                    continue
                listed.append((key, parsed[0], parsed[1], modified))
        except StorageError as exc:
            if not first:  # a later listing in the window: keep the book as it is
                self.count("storage_errors")
                return len(book.entries)
            self.log.error("sweep.failed", outcome="failed", error=exc.cos_code or exc.code, reason=exc.message,
                           duration_ms=ms_since(self.deadline.start))
            raise
        return book.update(listed, books.Load(0, self.settings.describe_rps), knobs)

    def _visit(self, book: "books.Book", entry: "books.Entry", knobs: Any, load: Any) -> None:
        """Check one task; afterwards the book drops it (gone, finished) or schedules its next check."""
        pending = Pending(entry.key, entry.created, entry.task_id, entry.modified)
        outcome = self.check(pending, entry, knobs, load)
        if outcome in ("gone", "ended"):
            book.drop(entry.key, entry.ended_at if outcome == "ended" else None)
        else:
            book.release(entry, load, knobs)

    def check(self, pending: Pending, entry: Optional["books.Entry"] = None, knobs: Any = None,
              load: Any = None) -> str:
        """Check one task (its book entry holds the record once read); what became of it: ``gone`` (no
        longer pending), ``ended`` (finished, or left to another finisher or to later), else ``kept``."""
        if self.deadline.remaining() < 2 * MIN_ATTEMPT_TIME + self.settings.http_timeout:
            self.count("left")  # the next sweep checks it
            return "kept"
        entry = entry or books.Entry(pending.key, pending.created, pending.task_id, pending.last_checked)
        try:
            return self._check(pending, entry, knobs or books.knobs_of(self.settings),
                               load or books.Load(1, self.settings.describe_rps))
        except StorageError as exc:
            self.count("storage_errors")
            self.log.warning("task.check_failed", outcome="retry", task_id=pending.task_id, error=exc.cos_code or exc.code,
                             reason=exc.message, retryable=exc.retryable)
        except Exception as exc:  # noqa: BLE001 - one task's bug must not stop the sweep
            self.count("errors")
            self.log.exception("task.check_failed", outcome="failed", task_id=pending.task_id,
                               error=type(exc).__name__)
        return "kept"

    def _read(self, pending: Pending, entry: "books.Entry") -> str:
        """Read the task's record into its book entry: ``read``, ``gone`` or ``invalid`` (said once)."""
        try:
            record = self.store.get_json(self.bucket, self.region, pending.key, self.deadline)
        except (ValueError, UnicodeDecodeError):
            record = "not JSON"
        if record is None:
            self.count("gone")  # finished meanwhile by another sweep
            return "gone"
        problem = _record_problem(record, pending)
        if problem:
            self.count("invalid")
            entry.ignored = True  # until it is rewritten
            self.log.error("task.record_invalid", outcome="failed", record=pending.key[:300], task_id=pending.task_id,
                           reason=problem, fix="remove objects that are not redraw's from this prefix")
            return "invalid"
        entry.record, entry.seen = record, books.seen_of(record)
        return "read"

    def _check(self, pending: Pending, entry: "books.Entry", knobs: Any, load: Any) -> str:
        if entry.record is None:
            read = self._read(pending, entry)
            if read != "read":
                return "gone" if read == "gone" else "kept"
            if self.settings.poll_max_interval_s > 0 and entry.ended_at is None:
                due_at, _ = schedule.next_check(entry.created, entry.seen, load, knobs, last_checked=entry.modified)
                if due_at > time.time():
                    return "kept"  # read, not due yet: the book schedules it
        record = entry.record
        if record is None:  # read by _read above; never None here
            return "kept"
        self.count("checked")
        self.count("visits")
        try:
            ending, response = self._describe(record)
        except tasks.NotFoundError:
            if time.time() - pending.created < LOST_AFTER_S:
                self.count("not_yet_known")
                self.log.warning("task.check_failed", outcome="retry", task_id=pending.task_id,
                                 reason="VOD does not know this task yet")
                return "kept"
            ending, response = Ending("lost", error_code="TaskNotFound",
                                      message="VOD no longer knows this task (older than 3 days, or unknown)"), None
        except UpstreamError as exc:
            self.count("vod_errors")
            fields: Dict[str, Any] = dict(task_id=pending.task_id, error=exc.vod_code, reason=exc.message,
                                          vod_request_id=exc.request_id)
            hint = policy.decide(exc.vod_code).hint
            if exc.decision == policy.RETRY:
                self.log.warning("task.check_failed", outcome="retry", **fields)
            else:
                self.log.error("task.check_failed", outcome="failed", **fields, **({"fix": hint} if hint else {}))
            return "kept"
        except BadAnswer as exc:
            self.count("vod_errors")
            self.log.error("task.check_failed", outcome="failed", task_id=pending.task_id, error=exc.code,
                           reason=exc.message)
            return "kept"
        if ending is None:
            self.count("running")
            self._running(pending, entry, response, knobs)
            return "kept"
        entry.ended_at = time.time()
        self.finish(pending, record, ending)
        return "ended"  # the next listing says whether its record is gone

    def _running(self, pending: Pending, entry: "books.Entry", response: Any, knobs: Any) -> None:
        """The task runs: remember what VOD said (the schedule's input). The record keeps it too, for other
        instances and a new container, rewritten when the status changed or ``persist`` has passed
        since its last writing (a rewrite per check would cost a COS PUT per DescribeTaskDetail)."""
        now = time.time()
        status, progress, begin = books.observed(response, now)
        before = entry.seen
        entry.seen = before.then(now, status, progress, begin) if before else Seen(now, status, progress, begin)
        record = entry.record or {}
        record.update(checks=int(record.get("checks") or 0) + 1, last_checked_at=records.iso(now),
                      seen=books.seen_field(entry.seen))
        if before is None or before.status != status or now - max(entry.written, entry.modified) >= knobs.persist:
            self.store.put_json(self.bucket, self.region, pending.key, record, self.deadline)
            entry.written = time.time()
            self.count("recorded")

    def _describe(self, record: dict) -> Tuple[Optional[Ending], Any]:
        params = {"TaskId": record["task_id"], "SubAppId": record["sub_app_id"]}
        try:
            response, _ = call_with_retries(
                lambda timeout: self.rt.api.call(DESCRIBE_ACTION, params, timeout),
                deadline=self.deadline, limiter=self.pacer, max_attempts=self.settings.max_attempts,
                http_timeout=self.settings.http_timeout)
        except UpstreamError as exc:
            if exc.vod_code.startswith(tasks.NOT_FOUND_CODES):
                raise tasks.NotFoundError("task not found") from None
            raise
        return read_detail(response), response

    # --- finishing, exactly once -------------------------------------------------------------

    def finish(self, pending: Pending, record: dict, ending: Ending) -> None:
        task_id = record["task_id"]
        done_key = self.layout.done_key(task_id)
        claim = self._claim(task_id)  # the claim first: a finisher at work holds a live one
        if claim is None:
            self.count("claimed_elsewhere")
            return
        final = self.store.get_json(self.bucket, self.region, done_key, self.deadline)
        if final is not None:  # finished before: only the tidying was left
            if self._recover_or_wait(final):
                self.count("tidied")
                self._park_outbox(record, final)
                self._tidy(pending, record, final)
            else:
                self.count("finishing_elsewhere")
                # the task is done: every later claimer finds done/ after claiming, so our claim can go
                # (released claims are kept only while a task is unfinished, for their numbers)
                self._drop(claim)
            return
        try:
            delivered = self._deliver(record, ending)
        except DeliveryDeferred:
            self._release(task_id, claim)
            self.count("left")  # this instance's delivery streams were busy: the next sweep delivers it
            return
        except (OutputUnavailable, StorageError) as exc:  # not delivered (nothing visible): the next sweep retries
            self._release(task_id, claim)
            self.count("delivery_retry")
            self.log.warning("task.delivery_failed", outcome="retry", task_id=task_id, error=exc.code,
                             reason=exc.message)
            return
        if self.deadline.remaining() < self.store.timeout + MIN_ATTEMPT_TIME:
            # The platform ends the invocation at its time limit: a kill between the done record and the
            # line would lose the line, so both happen only while there is time for them. The next sweep
            # finds the delivery in place (it is not copied again) and finishes the task.
            self._release(task_id, claim)
            self.count("left")
            return
        final = self._final(record, ending, delivered)
        try:
            self.store.put_json(self.bucket, self.region, done_key, final, self.deadline)
        except BaseException:
            self._release(task_id, claim)  # not finished (no line yet): the next sweep finds the delivery and says so
            raise
        self._log_finished(final, ending)
        self.count(final["state"])
        if self._send_now(record, final):  # else the pending record stays: the task's recovery sends them
            self._tidy(pending, record, final)

    # --- webhooks (redraw.webhooks.outbox) -----------------------------------------------------

    def _messages(self, record: dict, final: dict) -> list:
        return self.outbox.messages(record, final, parse_context(final.get("session_context"))) \
            if self.outbox is not None else []

    def _send_now(self, record: dict, final: dict) -> bool:
        """The task's webhooks, sent right after its task.finished line (what fails goes to the outbox);
        False when one could not be recorded."""
        return all([self.outbox.send_first(key, entry) for key, entry in self._messages(record, final)])

    def _park_outbox(self, record: dict, final: dict) -> None:
        """A recovered task: its finisher stopped before tidying, perhaps before (or after) sending its
        webhooks: they go to the outbox, due now (one already there is kept), and are sent at once.
        The done record then says so, so that a later recovery (this sweep stopped too) does not put
        them there again once they are delivered."""
        messages = self._messages(record, final)
        if not messages or final.get("webhooks_parked"):
            return
        parked = [(key, self.outbox.park(key, entry, unconfirmed=1)) for key, entry in messages]
        final["webhooks_parked"] = True
        self.store.put_json(self.bucket, self.region, self.layout.done_key(record["task_id"]), final, self.deadline)
        for key, entry in parked:
            if entry is not None:
                self.outbox.attempt(key, entry)

    def _send_outbox(self) -> None:
        """Every sweep first sends the webhooks that are due (earlier failures, a finisher that stopped),
        within ``OUTBOX_SHARE`` of its time: a receiver that is down cannot starve the checks, and busy
        checks cannot starve the outbox."""
        if self.outbox is None:
            return
        left_ms = self.deadline.remaining() * 1000
        outbox = self.outbox.within(Deadline(left_ms, 0, cap_ms=max(left_ms * OUTBOX_SHARE, OUTBOX_MIN_S * 1000)))
        if outbox.deadline.remaining() < MIN_ATTEMPT_TIME * 5:
            return
        try:
            keys = outbox.pending()
        except StorageError as exc:
            self.log.warning("webhook.outbox_unread", outcome="retry", error=exc.cos_code or exc.code,
                             reason=exc.message)
            return
        if not keys:
            return
        workers = max(1, min(self.settings.sweep_concurrency, len(keys)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redraw-webhook") as pool:
            for future in [pool.submit(contextvars.copy_context().run, outbox.send_listed, k) for k in keys]:
                future.result()

    def _deliver(self, record: dict, ending: Ending) -> Optional[str]:
        if ending.outcome != "succeeded" or not record.get("deliver_to") or not ending.file_url:
            return None
        expires = _epoch(ending.expire_time)
        try:
            if expires is not None and expires <= time.time():
                raise OutputUnavailable("the output URL expired before it could be delivered", expired=True)
            return deliver(self.store, record, ending.file_url, ending.file_type, self.deadline)
        except OutputUnavailable as exc:
            if not exc.expired:
                raise
            ending.outcome, ending.error_code, ending.message = "failed", "OutputExpired", exc.message
            return None

    def _claim(self, task_id: str) -> Optional[str]:
        """Our claim's key, or None while another sweep's claim is alive (or it won the race)."""
        prefix = self.layout.claims_prefix(task_id)
        keys = sorted(key for key, _ in self.store.list(self.bucket, self.region, prefix, self.deadline))
        number = 0
        if keys:
            last = keys[-1]
            tail = last[len(prefix):]
            number = int(tail) + 1 if tail.isdigit() else len(keys)
            try:
                held = self.store.get_json(self.bucket, self.region, last, self.deadline)
            except (ValueError, UnicodeDecodeError):
                held = None
            if isinstance(held, dict) and float(held.get("expires", 0) or 0) > time.time():
                return None
        key = f"{prefix}{number:06d}"
        body = {"task_id": task_id, "claimed_at": records.iso(time.time()),
                "expires": time.time() + self.deadline.remaining() + CLAIM_MARGIN_S,
                "request_id": _request_id()}
        if not self.store.put_json(self.bucket, self.region, key, body, self.deadline, create_only=True):
            return None
        return key

    def _release(self, task_id: str, claim: str) -> None:
        """Let the task go before it is finished: the claim is rewritten as expired, never deleted. Claim
        numbers are then never reused, so two sweeps that listed the claims before and after this cannot
        both take the next one (one would create ``n+1``, the other ``n`` again)."""
        body = {"task_id": task_id, "released_at": records.iso(time.time()), "expires": 0,
                "request_id": _request_id()}
        try:
            self.store.put_json(self.bucket, self.region, claim, body, self.deadline)
        except StorageError:
            pass  # it expires with this invocation's deadline

    def _drop(self, claim: str) -> None:
        try:
            self.store.delete(self.bucket, self.region, claim, self.deadline)
        except StorageError:
            pass  # an expired claim of a finished task: harmless, the lifecycle rule removes it

    def _drop_claims(self, task_id: str) -> None:
        """Once done/<TaskId>.json exists, the task's claims are no longer needed (every claimer looks
        for the done record after claiming): all of them go, released and abandoned ones too."""
        prefix = self.layout.claims_prefix(task_id)
        for key, _ in list(self.store.list(self.bucket, self.region, prefix, self.deadline)):
            self.store.delete(self.bucket, self.region, key, self.deadline)

    def _final(self, record: dict, ending: Ending, delivered: Optional[str]) -> dict:
        finished = _epoch(ending.finish_time) or time.time()
        final = dict(record)
        final.pop("checks", None)
        final.update(state=records.LOST if ending.outcome == "lost" else ending.outcome,
                     finished_at=records.iso(finished),
                     duration_s=round(max(0.0, finished - float(record.get("created") or finished)), 1),
                     vod_status=ending.status or None, error_code=ending.error_code, message=ending.message,
                     output_url=without_query(ending.file_url), file_id=ending.file_id,
                     output_expires_at=ending.expire_time, delivered_to=delivered,
                     session_context=ending.session_context,
                     finished_by=_request_id(),  # the invocation whose task.finished line this is
                     # after this, that invocation cannot be running (its claim has expired): a pending record
                     # still there means it stopped before tidying, perhaps before its line
                     finisher_gone_at=round(time.time() + self.deadline.remaining() + CLAIM_MARGIN_S, 3))
        if final.get("webhook"):  # the done record and the receipt show it without its query
            final["webhook"] = records.shown_webhook(final["webhook"])
        return final

    def _recover_or_wait(self, final: dict) -> bool:
        """The task has its done record but still a pending record. True (after a ``task.recovered``
        line) when the sweep that wrote the record can no longer be running: it stopped after the
        record, maybe before its task.finished line; the caller tidies. False while it may still be at
        work: it logs and tidies itself, or a later sweep recovers it. ``task.recovered`` carries the
        same fields, so a reader who keeps, per TaskId, the task.finished line or else this one misses
        no task (one may then be seen under both names)."""
        gone_at = final.get("finisher_gone_at")
        if not isinstance(gone_at, (int, float)):
            return True  # a done record of an older version: tidy it
        if time.time() < gone_at:
            return False  # the finisher may still be at work: it logs and tidies, or a later sweep recovers it
        context = final.get("session_context") if isinstance(final.get("session_context"), str) else None
        self.count("recovered")
        self.log.warning("task.recovered", outcome=final.get("state"), task_id=final.get("task_id"),
                         session_id=final.get("session_id"), session_context=context, trigger=final.get("trigger"),
                         duration_s=final.get("duration_s"), output_url=final.get("output_url"),
                         file_id=final.get("file_id"), delivered_to=final.get("delivered_to"),
                         error_code=final.get("error_code"), message=final.get("message"),
                         receipt=final.get("receipt"), finished_by=final.get("finished_by"),
                         reason="the sweep that finished this task stopped before tidying it up; its "
                                "task.finished line may be missing", **parse_context(context))
        return True

    def _log_finished(self, final: dict, ending: Ending) -> None:
        fields = dict(task_id=final["task_id"], session_id=final.get("session_id"),
                      session_context=ending.session_context, trigger=final.get("trigger"),
                      duration_s=final["duration_s"], output_url=final["output_url"], file_id=final["file_id"],
                      delivered_to=final["delivered_to"], receipt=final.get("receipt"),
                      **parse_context(ending.session_context))
        if ending.outcome == "lost":
            self.log.error("task.lost", outcome="lost", error_code=ending.error_code, message=ending.message,
                           fix="the task cannot be followed any more; look it up in the VOD console", **fields)
        elif ending.outcome == "failed":
            self.log.warning("task.finished", outcome="failed", error_code=ending.error_code,
                             message=ending.message, **fields)
        else:
            self.log.info("task.finished", outcome="succeeded", **fields)

    def _tidy(self, pending: Pending, record: dict, final: dict) -> None:
        """The receipt shows the final state; the pending record and the task's claims go."""
        receipt = record.get("receipt")
        if isinstance(receipt, str) and final:
            current = self.store.get_json(self.bucket, self.region, receipt, self.deadline) \
                if receipt != self.layout.task_receipt(record["task_id"]) else None
            newer = isinstance(current, dict) and current.get("task_id") != record["task_id"] \
                and int(current.get("created") or 0) > int(record.get("created") or 0)
            if not newer:  # an upload receipt shows the latest upload of its key
                self.store.put_json(self.bucket, self.region, receipt, final, self.deadline)
        self._drop_claims(record["task_id"])
        # the pending record goes last: while it is there, the next sweep tidies again (a sweep killed or
        # refused half-way through tidying leaves nothing behind for good)
        self.store.delete(self.bucket, self.region, pending.key, self.deadline)


def _record_problem(record: Any, pending: Pending) -> Optional[str]:
    if not isinstance(record, dict):
        return "the record is not a JSON object"
    if record.get("task_id") != pending.task_id:
        return "the record's task_id does not match its key"
    sub_app_id = record.get("sub_app_id")
    if not isinstance(sub_app_id, int) or isinstance(sub_app_id, bool) or sub_app_id <= 0:
        return "the record has no valid sub_app_id"
    return None


def _outbox_for(sweep: Sweep) -> Any:
    """The webhook outbox when webhooks are configured (the module is not loaded otherwise)."""
    if not sweep.settings.webhook_secret:
        return None
    from ..webhooks.outbox import Outbox

    return Outbox(sweep.settings, sweep.store, sweep.deadline, sweep.log, sweep.count, _request_id())


def _request_id() -> Optional[str]:
    import structlog

    return structlog.contextvars.get_contextvars().get("request_id")


def run(rt: Runtime, deadline: Deadline, log: Any) -> dict:
    """Sweep once; the summary counts what happened (also logged as ``sweep.done``)."""
    return Sweep(rt, deadline, log).run()
