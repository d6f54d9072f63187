"""Adaptive pacing: each container learns its share of the account's budget from VOD's answers.

Modelled on botocore's "adaptive" retry mode (a client-side send rate, cut
multiplicatively when the service throttles and grown back along a CUBIC
curve on success), with botocore's beta and half its scale:

- Sends are paced at the learned rate r (``SlidingLog``: at most ⌈r⌉ in any
  1.02 s, r per second in the long run, fractional r included), r ≤
  ``VOD_MAX_RPS`` (the ceiling), r ≥ ``MIN_RATE``.
- RequestLimitExceeded: W = r (or the measured send rate, if lower, when the
  container sends less than its rate allows), r = BETA·W. Throttles within
  ``CUT_GAP`` of a cut answer sends made before it: one cut per congestion
  event, not one per record in flight.
- Any other answer, while the rate is what holds the container back (a send
  waited for its slot within the last ``LIMITED_WINDOW``):
  r = W·(1 + S·(t − K)³), t seconds since the last cut, S = SCALE/ceiling,
  K = ∛((1 − BETA)/S) ≈ 3.1 s: r is back at W after K, stays near it, then
  probes beyond. This is botocore's curve (SCALE·(t − K)³ + W) scaled by
  W/ceiling: a container alone grows like botocore's client (at half its
  scale: the probes beyond W cost fewer throttles), and N containers sharing
  the limit grow together like one instead of N times as fast. A container
  that sends less than its rate allows (between events, small events) keeps
  its rate and does not grow it, as TCP does when application-limited.
- A new container starts at ``START_RATE`` and, until its first throttle,
  raises its rate by ``SLOW_START_GAIN`` with every answer while limited
  (slow start, exponential in the answers): alone, it reaches 20/s in under
  2 s; 32 new containers together overshoot the limit by far less than when
  each doubled its rate on a timer.

Throttling costs no budget (VOD did no work) but is the only signal: with
many instances a few tens of per cent of the calls are throttled (see the
docs/scale-out.md's figures; Redis pacing avoids it). The learned rate lives as
long as the warm container (module level, ``redraw.pacing.pacer_for``).
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Optional, Tuple

from .base import JITTER_MARGIN
from .fixed import SlidingLog

BETA = 0.7          # a throttle cuts the rate to 70 % (botocore's beta)
SCALE = 0.2         # CUBIC scale constant at the ceiling, requests/s per s³ (half botocore's 0.4)
START_RATE = 3.0    # requests/s of a new container (15 % of the API's limit; capped at the ceiling)
SLOW_START_GAIN = 0.15  # until the first throttle, each answer while limited raises the rate by 15 %
MIN_RATE = 0.25     # never slower than one request in 4 s (80 instances at this rate still fit in 20/s)
CUT_GAP = 0.5       # seconds: throttles this soon after a cut belong to the same congestion event
MEASURE_BUCKET = 0.5  # seconds per bucket of the measured send rate
SMOOTHING = 0.8     # weight of the newest bucket in the measured send rate
LIMITED_WINDOW = 1.0  # seconds: the rate held a send back this recently, so it may grow
HORIZON = 0.1       # seconds: a slot is taken only this close to its time (a cut applies to queued sends)


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
        self._scale = SCALE / ceiling
        self._k = ((1 - BETA) / self._scale) ** (1 / 3)
        self._w_max = self._rate
        self._last_cut = -1e9
        self._log = SlidingLog(ceiling, margin)
        self._bucket_start = math.floor(now / MEASURE_BUCKET) * MEASURE_BUCKET
        self._bucket_count = 0
        self._measured = 0.0
        self._slow_start = True
        self._last_held = -1e9  # when a send last waited for its slot
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """The rate this container allows itself now (requests/s)."""
        return self._rate

    def _measure(self, now: float) -> float:
        """The smoothed send rate (requests/s)."""
        bucket = math.floor(now / MEASURE_BUCKET) * MEASURE_BUCKET
        if bucket > self._bucket_start:
            seen = self._bucket_count / (bucket - self._bucket_start)
            self._measured = SMOOTHING * seen + (1 - SMOOTHING) * self._measured
            self._bucket_start, self._bucket_count = bucket, 0
        return self._measured

    def _limited(self, now: float) -> bool:
        return now - self._last_held <= LIMITED_WINDOW

    def acquire(self, budget: float) -> bool:
        end = self.clock() + budget
        while True:
            at, look_again = self.reserve(end)
            if at is not None:
                wait = at - self.clock()
                if wait > 0:
                    self.sleep(wait)
                return True
            if look_again is None:
                return False
            self.sleep(max(0.0, look_again - self.clock()))

    def reserve(self, end: float) -> Tuple[Optional[float], Optional[float]]:
        """One step of ``acquire``, without waiting: ``(slot, None)`` when a slot was taken,
        ``(None, when)`` to look again at ``when``, ``(None, None)`` when none comes by ``end``."""
        with self._lock:
            now = self.clock()
            at = self._log.next_slot(now, self._rate)
            if at > end:
                return None, None
            if at - now <= HORIZON:
                if at > now:
                    self._last_held = at
                self._log.take(at, self._rate)
                self._measure(at)
                self._bucket_count += 1
                return at, None
            self._last_held = at
            # not yet: look again closer to the slot, at the rate then in force
            return None, now + min(at - now - HORIZON / 2, 0.25)

    def on_throttle(self) -> None:
        with self._lock:
            now = self.clock()
            if now - self._last_cut < CUT_GAP:
                return
            measured = self._measure(now)
            sent = self._rate if self._limited(now) or measured <= 0 else min(self._rate, measured)
            self._w_max = max(MIN_RATE, sent)
            self._last_cut = now
            self._slow_start = False
            self._rate = max(MIN_RATE, self._w_max * BETA)

    def on_success(self) -> None:
        with self._lock:
            now = self.clock()
            self._measure(now)  # keeps the measured send rate current
            if not self._limited(now):
                # not held back by the rate: keep it, and hold the curve where it is
                if not self._slow_start:
                    self._last_cut = now - self._k - _cbrt((self._rate / self._w_max - 1) / self._scale)
                return
            if self._slow_start:
                grown = self._rate * (1 + SLOW_START_GAIN)
            else:
                grown = self._w_max * (1 + self._scale * (now - self._last_cut - self._k) ** 3)
            self._rate = max(MIN_RATE, min(self.ceiling, grown))


def _cbrt(value: float) -> float:
    return math.copysign(abs(value) ** (1 / 3), value)
