"""Adaptive pacing: each container learns its share of the account's budget from VOD's answers.

Modelled on botocore's "adaptive" retry mode (a client-side rate whose value
is cut multiplicatively on throttling and grows back along a CUBIC curve), in
a few lines:

- Sends are paced at the learned rate r (``SlidingLog``: never more than r per
  second, fractional r included), r ≤ ``VOD_MAX_RPS`` (the ceiling).
- RequestLimitExceeded: W = min(r, measured send rate); r = BETA·W. Throttles
  within ``CUT_GAP`` of a cut answer sends made before it: one cut per
  congestion event, not one per record in flight.
- Any other answer: r = SCALE·(t − K)³ + W, t seconds since the last cut,
  K = ∛(W·(1 − BETA)/SCALE) (so r starts at BETA·W, flattens out at W, then
  probes beyond it), capped at twice the measured send rate (a container that
  sends little does not claim a large share) and at the ceiling.
- A new container starts at ``START_RATE`` and, until its first throttle,
  grows as fast as the cap allows (slow start: the rate doubles about every
  ``MEASURE_BUCKET``), so one container alone reaches 20/s in about 2 s.

N uncoordinated containers so converge on the shared limit between them: the
ones over their share hear RequestLimitExceeded and cut, the others grow.
Throttling costs no budget (VOD did no work), and the learned rate lives as
long as the warm container.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

from .base import JITTER_MARGIN
from .fixed import SlidingLog

BETA = 0.7          # a throttle cuts the rate to 70 % of what was sent
SCALE = 0.4         # CUBIC scale constant (rate units per second³)
START_RATE = 2.0    # requests/s of a new container (capped at the ceiling)
MIN_RATE = 0.05     # never slower than one request in 20 s
CUT_GAP = 0.5       # seconds: throttles this soon after a cut belong to the same congestion event
MEASURE_BUCKET = 0.5  # seconds per bucket of the measured send rate
SMOOTHING = 0.8     # weight of the newest bucket in the measured send rate


class AdaptiveLimiter:
    """Paces at a learned rate ≤ ``ceiling``; feed it VOD's answers (``on_throttle`` / ``on_success``)."""

    def __init__(self, ceiling: float, start_rate: float = START_RATE, margin: float = JITTER_MARGIN,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ceiling = ceiling
        self.clock, self.sleep = clock, sleep
        self.start_rate = min(ceiling, start_rate)
        self._rate = self.start_rate
        now = clock()
        self._w_max = self._rate
        self._k = self._zero_point(self._w_max)
        self._last_cut = now - self._k  # the curve sits at the start rate now, and grows from there
        self._log = SlidingLog(ceiling, margin)
        self._bucket_start = math.floor(now / MEASURE_BUCKET) * MEASURE_BUCKET
        self._bucket_count = 0
        self._measured = 0.0
        self._slow_start = True
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """The rate this container allows itself now (requests/s)."""
        return self._rate

    @staticmethod
    def _zero_point(w_max: float) -> float:
        return (w_max * (1 - BETA) / SCALE) ** (1 / 3)

    def _measure(self, now: float) -> float:
        """The smoothed send rate (requests/s), counting one send at ``now`` when asked to."""
        bucket = math.floor(now / MEASURE_BUCKET) * MEASURE_BUCKET
        if bucket > self._bucket_start:
            seen = self._bucket_count / (bucket - self._bucket_start)
            self._measured = SMOOTHING * seen + (1 - SMOOTHING) * self._measured
            self._bucket_start, self._bucket_count = bucket, 0
        return self._measured

    def acquire(self, budget: float) -> bool:
        with self._lock:
            now = self.clock()
            at = self._log.next_slot(now, self._rate)
            if at - now > budget:
                return False
            self._log.take(at, self._rate)
            self._measure(at)
            self._bucket_count += 1
        if at > now:
            self.sleep(at - now)
        return True

    def on_throttle(self) -> None:
        with self._lock:
            now = self.clock()
            if now - self._last_cut < CUT_GAP:
                return
            measured = self._measure(now)
            w_max = min(self._rate, measured) if measured > 0 else self._rate
            self._w_max = max(MIN_RATE, w_max)
            self._k = self._zero_point(self._w_max)
            self._last_cut = now
            self._slow_start = False
            self._rate = max(MIN_RATE, self._w_max * BETA)

    def on_success(self) -> None:
        with self._lock:
            now = self.clock()
            cubic = SCALE * (now - self._last_cut - self._k) ** 3 + self._w_max
            cap = max(2 * self._measure(now), self.start_rate)
            grown = cap if self._slow_start else min(cubic, cap)
            self._rate = max(MIN_RATE, min(self.ceiling, grown))
