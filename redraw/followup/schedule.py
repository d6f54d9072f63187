"""When the sweep checks a pending task next: a pure function of what VOD last said about it, the
time, and the load (no I/O, no clock), so it can be simulated apart from the sweep.

- **By prediction.** A PROCESSING task with a ``Progress`` between 0 and 100 and a
  ``BeginProcessTime`` predicts its end: ``begin + (seen - begin) * 100 / progress`` (and, when the
  check before also saw it processing, the rate between the two checks). The next check comes just
  after the earliest end its Progress allows (``Knobs.slack`` points of noise), or, when the
  DescribeTaskDetail budget is tight, just after the central estimate.
- **By age (the fallback).** A WAITING task, or one whose Progress is missing, 0, over 100, going
  backwards or standing still, is checked again after a share of its age (``Knobs.age_factor``),
  within what the load allows (at low load often, at high load once per ``Load.spacing``), and
  never later than the old ladder (as long as its age, at most ``max_interval``): no worse than
  before, and never stalled. A prediction never waits more than ``guard`` fallback gaps either.
- **By load.** ``Load.spacing`` (tasks in flight / DescribeTaskDetail budget) is the gap every task
  would get if the budget were shared evenly; gaps grow with it (``min_gap``), and the sweep checks
  the tasks predicted to have ended before the others when more is due than the budget allows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

WAITING, PROCESSING = "WAITING", "PROCESSING"
PREDICTED, BY_AGE = "predicted", "age"


@dataclass(frozen=True)
class Knobs:
    """The schedule's constants, in seconds (a benchmark that compresses time divides them)."""

    min_gap: float = 2.0          # never two checks of one task closer than this
    first_check: float = 10.0     # a new task's first check, at this age
    max_interval: float = 300.0   # the old ladder's cap (REDRAW_POLL_MAX_INTERVAL_S): never longer
    age_factor: float = 0.1       # the fallback waits this share of the task's age
    slack: float = 3.0            # Progress points of noise the earliest end allows for
    approach: float = 0.7         # share of the way to the predicted end a check goes (1 at load)
    resolution: float = 0.02      # below Progress 0.5/resolution (25) the central estimate is not aimed at
    margin: float = 0.5           # a predicted check comes this long after the predicted end
    load_gap_share: float = 0.1   # at load, min gap = this share of Load.spacing
    age_gap_share: float = 1.0    # the fallback's gap is at least this share of Load.spacing
    age_reach: float = 2.0        # ... and, however old the task, at most this many spacings
    guard: float = 3.0            # a prediction never waits longer than this many fallback gaps
    tight_spacing: float = 60.0   # at this spacing the predicted check moves to the central estimate
    horizon: float = 6 * 3600.0   # a prediction further away than this is not believed
    persist: float = 150.0        # a running task's record is rewritten at least this long apart (unless its status changed)


@dataclass(frozen=True)
class Load:
    in_flight: int    # pending tasks the sweep knows
    rps: float        # its DescribeTaskDetail budget

    @property
    def spacing(self) -> float:
        """Seconds between two checks of each task if the budget were shared evenly."""
        return max(0, self.in_flight) / max(self.rps, 1e-9)


@dataclass(frozen=True)
class Seen:
    """What a check saw (epoch seconds); ``prev_*`` what the check before it saw, if anything."""

    at: float
    status: str = ""
    progress: Optional[float] = None
    begin: Optional[float] = None
    prev_at: Optional[float] = None
    prev_progress: Optional[float] = None
    prev_status: str = ""

    def then(self, at: float, status: str, progress: Optional[float], begin: Optional[float]) -> "Seen":
        """The observation of the next check, keeping this one as its predecessor."""
        return Seen(at, status, progress, begin, self.at, self.progress, self.status)


def min_gap(load: Load, knobs: Knobs) -> float:
    return max(knobs.min_gap, knobs.load_gap_share * load.spacing)


def first_check(load: Load, knobs: Knobs) -> float:
    """A new task's first check, at this age: later at load (a young task is seldom near its end),
    never later than the old schedule's first (within a minute: ``6 * first_check``)."""
    return min(max(knobs.first_check, knobs.age_gap_share * load.spacing), 6 * knobs.first_check)


def old_ladder_due(now: float, created: float, last_checked: float, max_interval: int) -> bool:
    """The schedule before this one (one sweep a minute), kept as the baseline ``notice_sim`` compares
    against: a task is checked when it has waited as long as its age at its last check, at most
    ``max_interval`` seconds; always with ``max_interval`` 0."""
    if max_interval <= 0:
        return True
    return now - last_checked >= min(float(max_interval), max(0.0, last_checked - created))


def ladder_gap(age: float, knobs: Knobs) -> float:
    """The old schedule's wait after a check at this age: as long as the age, at most max_interval."""
    return max(knobs.min_gap, min(knobs.max_interval, age))


def age_gap(age: float, load: Load, knobs: Knobs) -> float:
    """The fallback's wait after a check at this age: a share of the age, but no longer than
    ``age_reach`` spacings (at low load, look often) and no shorter than ``age_gap_share`` of one (at
    load, stay within the budget), never longer than the old ladder's."""
    want = max(min_gap(load, knobs), knobs.age_gap_share * load.spacing,
               min(knobs.age_factor * age, knobs.age_reach * load.spacing))
    return max(knobs.min_gap, min(want, ladder_gap(age, knobs)))


def _progress(value: Optional[float]) -> Optional[float]:
    """A Progress that can predict: strictly between 0 and 100."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0.0 < value < 100.0 else None


def predict_end(seen: Seen, created: float, knobs: Knobs) -> Optional[Tuple[float, float, bool]]:
    """(earliest, central, steady) end a PROCESSING task's Progress allows, or None when it predicts
    nothing (no or out-of-range Progress, no usable begin). ``steady`` is False when Progress went
    backwards or stood still since the check before: the prediction is then only one input."""
    p = _progress(seen.progress)
    if seen.status != PROCESSING or p is None:
        return None
    prev_p = _progress(seen.prev_progress) if seen.prev_status == PROCESSING else None
    steady = prev_p is None or prev_p < p
    estimates = []
    if seen.begin is not None and created - 60.0 <= seen.begin < seen.at:
        elapsed = seen.at - seen.begin
        estimates.append((seen.begin + elapsed * 100.0 / min(100.0, p + knobs.slack),
                          seen.begin + elapsed * 100.0 / min(100.0, p + 0.5)))  # VOD's integer: p..p+1
    if steady and prev_p is not None and seen.prev_at is not None and seen.prev_at < seen.at:
        rate = (p - prev_p) / (seen.at - seen.prev_at)  # points per second between the two checks
        estimates.append((seen.at + max(0.0, 100.0 - p - knobs.slack) / rate, seen.at + (100.0 - p) / rate))
    if not estimates:
        return None
    low, mid = min(e[0] for e in estimates), min(e[1] for e in estimates)
    if mid - seen.at > knobs.horizon:
        return None
    return low, max(low, mid), steady


def next_check(created: float, seen: Optional[Seen], load: Load, knobs: Knobs = Knobs(),
               last_checked: Optional[float] = None) -> Tuple[float, str]:
    """When to check the task next (epoch seconds) and why (``predicted`` or ``age``).

    ``seen`` is the last check's observation; without it (a new task, or a record that carries none)
    the task is scheduled by its age from ``last_checked`` (else its creation)."""
    if seen is None:
        last = created if last_checked is None else max(created, last_checked)
        first = first_check(load, knobs)
        if last - created < first:
            return max(created + first, last + knobs.min_gap), BY_AGE
        return last + age_gap(last - created, load, knobs), BY_AGE
    age = max(0.0, seen.at - created)
    floor, ceiling = seen.at + min_gap(load, knobs), seen.at + ladder_gap(age, knobs)
    fallback = seen.at + age_gap(age, load, knobs)
    ends = predict_end(seen, created, knobs)
    if ends is None:
        return min(ceiling, max(floor, fallback)), BY_AGE
    low, mid, steady = ends
    tight = min(1.0, load.spacing / knobs.tight_spacing)  # 0: plenty of budget, 1: none to spare
    # the earliest end, or at load the central estimate; but a low Progress (an integer) tells the end
    # only roughly (±0.5/p): then stay nearer the earliest end and look again
    p = float(seen.progress or 1.0)
    target = low + tight * min(1.0, knobs.resolution * 2.0 * p) * (mid - low)
    # far from the end, go only part of the way: a nearer look corrects a prediction from noisy Progress
    reach = knobs.approach + (1.0 - knobs.approach) * tight
    when = seen.at + reach * max(0.0, target - seen.at) + knobs.margin
    when = min(when, fallback if not steady else seen.at + knobs.guard * (fallback - seen.at))
    return min(ceiling, max(floor, when)), PREDICTED
