"""Pacing: how fast this container sends to VOD.

``RateLimiter`` allows at most N sends in any sliding second; one per rate is
shared by every invocation of a warm container.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Deque, Dict


class RateLimiter:
    """Sliding-window limiter: no more than ``rate`` sends in any ``window`` seconds.

    A small margin widens the window so requests that arrive at VOD a little
    later than they left never land in the same server-side second.
    """

    def __init__(self, rate: float, window: float = 1.0, margin: float = 0.1,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate >= 1:
            self.capacity, self.window = int(rate), window
        else:  # fractional rates: one request per 1/rate seconds
            self.capacity, self.window = 1, window / rate
        self.window += margin
        self.clock, self.sleep = clock, sleep
        self._sent: Deque[float] = deque()
        self._not_before = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """VOD said slow down: no one sends for ``seconds`` (other containers share the limit)."""
        with self._lock:
            self._not_before = max(self._not_before, self.clock() + seconds)

    def acquire(self, budget: float) -> bool:
        """Wait for a slot; False (and no slot taken) if it would take longer than ``budget``."""
        with self._lock:
            now = self.clock()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            if len(self._sent) < self.capacity:
                at = max(now, self._not_before)
            else:
                at = max(self._sent[-self.capacity] + self.window, self._not_before)
            if at - now > budget:
                return False
            self._sent.append(at)
        if at > now:
            self.sleep(at - now)
        return True


_limiters: Dict[float, RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(rate: float) -> RateLimiter:
    """One limiter per rate for the whole container, shared by all invocations."""
    with _limiters_lock:
        if rate not in _limiters:
            _limiters[rate] = RateLimiter(rate)
        return _limiters[rate]


def reset_limiters() -> None:
    """Forget the shared limiters (tests)."""
    with _limiters_lock:
        _limiters.clear()
