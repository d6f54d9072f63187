"""Fixed pacing: ``VOD_MAX_RPS`` per container, whatever the other instances do."""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable, Deque

from .base import JITTER_MARGIN

#: After RequestLimitExceeded, the fixed limiter holds every sender of the container this long.
THROTTLE_PAUSE = 0.3


class SlidingLog:
    """Send times, and when the next send may go at a given rate r.

    Two rules, with m = ceil(r):
    - at most m sends in any window of ``1 s + margin`` (VOD counts per sliding second);
    - a long-run rate of exactly r (GCRA: a theoretical arrival time that each
      send moves 1/r ahead, with a burst tolerance of m − 1 sends).
    So r = 20 allows 20 sends in any 1.02 s, and a fractional rate is honoured,
    not truncated: 1.25/s is one send every 0.8 s, at most 2 in any second;
    2.5/s is 5 sends in 2 s, at most 3 in any second. Slots are handed out in
    order, so a thread may reserve one in the future and sleep until it.
    """

    def __init__(self, max_rate: float, margin: float = JITTER_MARGIN) -> None:
        self.margin = margin
        self.sent: Deque[float] = deque(maxlen=max(1, math.ceil(max_rate)))
        self._tat = 0.0  # GCRA theoretical arrival time of the next send

    def next_slot(self, now: float, rate: float) -> float:
        m = min(max(1, math.ceil(rate)), self.sent.maxlen or 1)
        at = max(now, self._tat - (m - 1) / rate)
        if len(self.sent) >= m:
            at = max(at, self.sent[-m] + 1.0 + self.margin)
        if self.sent:
            at = max(at, self.sent[-1])
        return at

    def take(self, at: float, rate: float) -> None:
        self.sent.append(at)
        self._tat = max(self._tat, at) + 1.0 / rate


class FixedRateLimiter:
    """At most ``rate`` sends per second from this container; RequestLimitExceeded pauses it briefly."""

    def __init__(self, rate: float, margin: float = JITTER_MARGIN,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.clock, self.sleep = clock, sleep
        self._log = SlidingLog(rate, margin)
        self._not_before = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """No one in this container sends for ``seconds``."""
        with self._lock:
            self._not_before = max(self._not_before, self.clock() + seconds)

    def acquire(self, budget: float) -> bool:
        with self._lock:
            now = self.clock()
            at = max(self._log.next_slot(now, self.rate), self._not_before)
            if at - now > budget:
                return False
            self._log.take(at, self.rate)
        if at > now:
            self.sleep(at - now)
        return True

    def on_throttle(self) -> None:
        self.pause(THROTTLE_PAUSE)

    def on_success(self) -> None:
        pass


#: The name of earlier versions.
RateLimiter = FixedRateLimiter
