"""When the sweep checks a pending task next: a pure function of what VOD last said about it, the
time, and the load (no I/O, no clock), so it can be simulated apart from the sweep.

- **By prediction.** A PROCESSING task with a ``Progress`` between 0 and 100 and a
  ``BeginProcessTime`` predicts its end: ``begin + (seen - begin) * 100 / progress`` (and, when the
  check before also saw it processing, the rate between the two checks). The next check comes just
  after the earliest end its Progress allows (``Knobs.slack`` points of noise), or, when the
  DescribeTaskDetail budget is tight, just after the central estimate.
- **By age (the fallback).** A WAITING task, or one whose Progress is missing, 0, over 100, going
  backwards or standing still, is checked again after a share of its age (``Knobs.age_factor``),
  never sooner than the load allows and never later than the old ladder (as long as its age, at
  most ``max_interval``): no worse than before, and never stalled.
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
    slack: float = 2.0            # Progress points of noise the earliest end allows for
    margin: float = 0.5           # a predicted check comes this long after the predicted end
    load_gap_share: float = 0.1   # at load, min gap = this share of Load.spacing
    age_gap_share: float = 1.0    # at load, the fallback's gap is at least this share of Load.spacing
    tight_spacing: float = 60.0   # at this spacing the predicted check moves to the central estimate
    horizon: float = 6 * 3600.0   # a prediction further away than this is not believed
    persist: float = 30.0         # the sweep rewrites a running task's record at most this often


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


def ladder_gap(age: float, knobs: Knobs) -> float:
    """The old schedule's wait after a check at this age: as long as the age, at most max_interval."""
    return max(knobs.min_gap, min(knobs.max_interval, age))


def age_gap(age: float, load: Load, knobs: Knobs) -> float:
    """The fallback's wait after a check at this age: a share of the age, widened by the load,
    never longer than the old ladder's."""
    want = max(min_gap(load, knobs), knobs.age_factor * age, knobs.age_gap_share * load.spacing)
    return max(knobs.min_gap, min(want, ladder_gap(age, knobs)))


def _progress(value: Optional[float]) -> Optional[float]:
    """A Progress that can predict: strictly between 0 and 100."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0.0 < value < 100.0 else None


def predict_end(seen: Seen, created: float, knobs: Knobs) -> Optional[Tuple[float, float]]:
    """(earliest, central) end a PROCESSING task's Progress allows, or None when it predicts nothing
    (no or out-of-range Progress, no usable begin, Progress going backwards or standing still)."""
    p = _progress(seen.progress)
    if seen.status != PROCESSING or p is None:
        return None
    prev = seen.prev_progress if seen.prev_status == PROCESSING else None
    if isinstance(prev, (int, float)) and not isinstance(prev, bool) and prev >= p:
        return None  # backwards or stalled: Progress says nothing reliable now
    estimates = []
    if seen.begin is not None and created - 60.0 <= seen.begin < seen.at:
        elapsed = seen.at - seen.begin
        estimates.append((seen.begin + elapsed * 100.0 / min(100.0, p + knobs.slack),
                          seen.begin + elapsed * 100.0 / p))
    prev_p = _progress(prev)
    if prev_p is not None and seen.prev_at is not None and seen.prev_at < seen.at:
        rate = (p - prev_p) / (seen.at - seen.prev_at)  # points per second between the two checks
        estimates.append((seen.at + max(0.0, 100.0 - p - knobs.slack) / rate, seen.at + (100.0 - p) / rate))
    if not estimates:
        return None
    low, mid = min(e[0] for e in estimates), min(e[1] for e in estimates)
    if mid - seen.at > knobs.horizon:
        return None
    return low, max(low, mid)


def next_check(created: float, seen: Optional[Seen], load: Load, knobs: Knobs = Knobs(),
               last_checked: Optional[float] = None) -> Tuple[float, str]:
    """When to check the task next (epoch seconds) and why (``predicted`` or ``age``).

    ``seen`` is the last check's observation; without it (a new task, or a record that carries none)
    the task is scheduled by its age from ``last_checked`` (else its creation)."""
    if seen is None:
        last = created if last_checked is None else max(created, last_checked)
        if last - created < knobs.first_check:
            return max(created + knobs.first_check, last + knobs.min_gap), BY_AGE
        return last + age_gap(last - created, load, knobs), BY_AGE
    age = max(0.0, seen.at - created)
    floor, ceiling = seen.at + min_gap(load, knobs), seen.at + ladder_gap(age, knobs)
    fallback = seen.at + age_gap(age, load, knobs)
    ends = predict_end(seen, created, knobs)
    if ends is None:
        return min(ceiling, max(floor, fallback)), BY_AGE
    low, mid = ends
    tight = min(1.0, load.spacing / knobs.tight_spacing)  # 0: look at the earliest end, 1: at the central one
    when = low + tight * (mid - low) + knobs.margin
    return min(ceiling, max(floor, when)), PREDICTED
