"""The container's book of pending tasks: what the sweep knows of each (its record, VOD's last
observation) and when it checks it next (``schedule.next_check``).

The book lives as long as the warm container, so a sweep that starts where the last one ended
reads no record twice: a task's record is read (GET) once, when the book first meets it or when
its LastModified shows that another instance rewrote it. A running task's record keeps VOD's last
observation (``seen``), so a new container, or another instance, schedules it as this one would.
"""
from __future__ import annotations

import heapq
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import schedule
from .schedule import Knobs, Load, Seen

#: a record rewritten by another instance shows a LastModified this much after our own write
_WRITE_SLACK_S = 1.5


@dataclass
class Entry:
    key: str
    created: int
    task_id: str
    modified: float                   # LastModified in the latest listing: the last check's time
    record: Optional[dict] = None     # None: not read yet in this container
    seen: Optional[Seen] = None
    written: float = 0.0              # when this container last wrote the record
    due: float = 0.0
    why: str = schedule.BY_AGE
    busy: bool = False                # a check of it is running
    ended_at: Optional[float] = None  # VOD said it ended, but it is still pending (finished elsewhere?)
    ignored: bool = False             # its record is not redraw's: said once, then left alone
    version: int = 0                  # bumped at each (re)scheduling: older heap items are stale


def knobs_of(settings: Any) -> Knobs:
    """The schedule's constants from the settings: every time derives from the shortest gap
    (REDRAW_CHECK_MIN_GAP_S) and the longest (REDRAW_POLL_MAX_INTERVAL_S), so both scale together."""
    gap, longest = float(settings.check_min_gap_s), float(settings.poll_max_interval_s or 300)
    return Knobs(min_gap=gap, first_check=5 * gap, max_interval=longest, margin=gap / 4,
                 tight_spacing=longest / 5, persist=longest / 2)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _epoch(value: Any) -> Optional[float]:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def observed(response: Any, at: float) -> Tuple[str, Optional[float], Optional[float]]:
    """(status, Progress, BeginProcessTime) of a running task's DescribeTaskDetail answer; a field
    that is missing or of the wrong type is None (the schedule then falls back to the task's age)."""
    detail = response.get("AigcVideoRedrawTask") if isinstance(response, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    status = detail.get("Status") if isinstance(detail.get("Status"), str) else response.get("Status", "")
    begin = _epoch(response.get("BeginProcessTime")) if isinstance(response, dict) else None
    return (status if isinstance(status, str) else ""), _number(detail.get("Progress")), begin


def seen_of(record: dict) -> Optional[Seen]:
    """The observation a record keeps (``seen``), or None when it has none or a malformed one."""
    raw = record.get("seen")
    if not isinstance(raw, dict) or _number(raw.get("at")) is None:
        return None
    text = {k: str(raw[k]) if isinstance(raw.get(k), str) else "" for k in ("status", "prev_status")}
    return Seen(at=float(raw["at"]), status=text["status"], progress=_number(raw.get("progress")),
                begin=_number(raw.get("begin")), prev_at=_number(raw.get("prev_at")),
                prev_progress=_number(raw.get("prev_progress")), prev_status=text["prev_status"])


def seen_field(seen: Seen) -> Dict[str, Any]:
    """A record's ``seen`` field (epoch seconds, as the schedule takes them)."""
    return {k: v for k, v in seen.__dict__.items() if v not in (None, "")}


class Book:
    """Pending tasks by record key; thread-safe."""

    def __init__(self) -> None:
        self.entries: Dict[str, Entry] = {}
        self.lock = threading.Lock()
        self._strangers: set = set()  # keys under the prefix that are not pending records
        self._ended: Dict[str, float] = {}  # tasks seen ended, dropped, but maybe listed again
        # idle tasks by kind (unread, predicted, by age) and due time; stale items are skipped when met.
        # Tasks due by age wait in _ready by creation: when more is due than the budget allows, the
        # oldest (the likeliest to have ended) go first.
        self._heaps: Tuple[list, list, list] = ([], [], [])
        self._ready: list = []
        self._seq = 0

    def first_sight(self, key: str) -> bool:
        """True the first time this container lists a key that is not a pending record's."""
        with self.lock:
            new = key not in self._strangers
            if len(self._strangers) < 10_000:
                self._strangers.add(key)
            return new

    def update(self, listed: Iterable[Tuple[str, int, str, float]], load: Load, knobs: Knobs) -> int:
        """Take a fresh listing ``(key, created, TaskId, LastModified)``: new tasks are added, tasks no
        longer listed dropped, records rewritten elsewhere read again, and every idle task scheduled
        again for the new load. Returns the count listed."""
        fresh: Dict[str, Entry] = {}
        with self.lock:
            for key, created, task_id, modified in listed:
                entry = self.entries.get(key)
                if entry is None:
                    entry = Entry(key, created, task_id, modified, ended_at=self._ended.get(key))
                elif modified > max(entry.written + _WRITE_SLACK_S, entry.modified):  # rewritten elsewhere
                    entry.record, entry.seen, entry.modified, entry.ignored = None, None, modified, False
                fresh[key] = entry
            self.entries = fresh
            self._ended = {k: v for k, v in self._ended.items() if k in fresh}
            self._heaps, self._ready = ([], [], []), []
            load = Load(len(fresh), load.rps)
            for entry in fresh.values():
                if not entry.busy:
                    self._schedule(entry, load, knobs)
            return len(fresh)

    def load(self, rps: float) -> Load:
        return Load(len(self.entries), rps)

    def _schedule(self, entry: Entry, load: Load, knobs: Knobs) -> None:
        """Plan the idle task's next check and file it (under the lock)."""
        entry.version += 1
        if entry.ignored:
            return
        if entry.record is None:
            kind = 0
        elif entry.ended_at is not None:  # ended, not finished here: look again soon, whoever finishes it
            entry.due, entry.why, kind = entry.ended_at + knobs.first_check, schedule.BY_AGE, 2
        else:
            entry.due, entry.why = schedule.next_check(entry.created, entry.seen, load, knobs,
                                                       last_checked=entry.modified)
            kind = 1 if entry.why == schedule.PREDICTED else 2
        self._seq += 1
        heapq.heappush(self._heaps[kind], (entry.modified if kind == 0 else entry.due, self._seq, entry.version,
                                           entry))

    def _live(self, item: tuple) -> bool:
        entry = item[3]
        return item[2] == entry.version and not entry.busy and self.entries.get(entry.key) is entry

    def release(self, entry: Entry, load: Load, knobs: Knobs) -> None:
        """A check of the task is over (it is still pending): schedule its next one."""
        with self.lock:
            entry.busy = False
            if self.entries.get(entry.key) is entry:
                self._schedule(entry, load, knobs)

    def due(self, now: float, every: bool, limit: int, exclude: Optional[set] = None) -> List[Entry]:
        """Up to ``limit`` idle tasks due by ``now`` (all of them with ``every``; none whose key is in
        ``exclude``), marked busy: first those never read in this container (reading them costs no VOD
        call), then those predicted to have ended (the earliest first), then those due by age (the
        oldest first)."""
        chosen: List[Entry] = []
        with self.lock:
            by_age = self._heaps[2]
            while by_age and (every or by_age[0][0] <= now):
                _, seq, version, entry = heapq.heappop(by_age)
                heapq.heappush(self._ready, (entry.created, seq, version, entry))
            for kind, heap in enumerate((*self._heaps[:2], self._ready)):
                while heap and len(chosen) < limit and (kind != 1 or every or heap[0][0] <= now):
                    item = heapq.heappop(heap)
                    entry = item[3]
                    if not self._live(item) or (exclude is not None and entry.key in exclude):
                        continue
                    entry.busy = True
                    chosen.append(entry)
        return chosen

    def next_due(self) -> Optional[float]:
        """When the next idle task is due (0: one is unread), or None when none is waiting."""
        with self.lock:
            for heap in (*self._heaps, self._ready):
                while heap and not self._live(heap[0]):
                    heapq.heappop(heap)
            if self._heaps[0] or self._ready:
                return 0.0
            tops = [heap[0][0] for heap in self._heaps[1:] if heap]
        return min(tops) if tops else None

    def drop(self, key: str, ended_at: Optional[float] = None) -> None:
        """The task is gone, or (``ended_at``) was finished: a later listing that still shows it (finished
        elsewhere, or left for later) looks at it again only ``first_check`` after that."""
        with self.lock:
            self.entries.pop(key, None)
            if ended_at is not None:
                self._ended[key] = ended_at


class _Books:
    """The books of the container's current Runtime (a new Runtime, new books)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: Any = None
        self.books: Dict[Tuple[str, str], Book] = {}

    def get(self, rt: Any, bucket: str, prefix: str) -> Book:
        with self.lock:
            if self.owner is None or self.owner() is not rt:
                self.owner, self.books = weakref.ref(rt), {}
            return self.books.setdefault((bucket, prefix), Book())


_BOOKS = _Books()


def book_for(rt: Any, bucket: str, prefix: str) -> Book:
    """The warm container's book of one state bucket and prefix."""
    return _BOOKS.get(rt, bucket, prefix)
