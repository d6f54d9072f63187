"""Time budget, rate limiter and retry loop: how one call to VOD is made safely.

- ``Deadline``: the invocation's remaining time (SCF gives only the limit).
- ``RateLimiter``: at most N requests in any sliding second, shared per container.
- ``call_with_retries``: exponential backoff with full jitter, bounded by the
  deadline; what is retried is decided by ``policy``.
"""
from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, Optional, Tuple, TypeVar

from . import policy
from .errors import UpstreamError

T = TypeVar("T")

BACKOFF_BASE = 0.2      # seconds; first retry waits up to this
BACKOFF_CAP = 4.0       # seconds; no single wait is longer
MIN_ATTEMPT_TIME = 0.2  # seconds; less than this left: do not start an attempt
MAX_THROTTLED = 10      # RequestLimitExceeded answers tolerated per call (the deadline bounds them too)


class Deadline:
    """The end of the usable part of an invocation (timeout minus a safety margin)."""

    def __init__(self, limit_ms: float, margin_ms: float, start: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = clock() if start is None else start
        usable = max(0.0, limit_ms - min(margin_ms, limit_ms * 0.5)) / 1000.0
        self.end = self.start + usable

    def remaining(self) -> float:
        return max(0.0, self.end - self.clock())

    def elapsed_ms(self) -> int:
        return int((self.clock() - self.start) * 1000)


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


def backoff(attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^(attempt-1))]."""
    return rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** (attempt - 1))))


def call_with_retries(send: Callable[[float], T], *, deadline: Deadline, limiter: RateLimiter,
                      max_attempts: int, http_timeout: float,
                      rng: Optional[random.Random] = None,
                      sleep: Callable[[float], None] = time.sleep,
                      on_retry: Optional[Callable[[UpstreamError, int, float], None]] = None,
                      ) -> Tuple[T, int]:
    """Call ``send(timeout)`` until it succeeds or a retry cannot help.

    Returns ``(result, attempts)``; raises the final ``UpstreamError`` (its
    ``attempts`` set) otherwise. A retry after an ambiguous failure (timeout,
    dropped connection) is safe because the request carries its SessionId.
    """
    rng = rng or random.Random()
    attempt = throttled = 0
    last: Optional[UpstreamError] = None
    while True:
        remaining = deadline.remaining()
        if remaining < MIN_ATTEMPT_TIME or not limiter.acquire(remaining - MIN_ATTEMPT_TIME):
            if last is not None:
                raise last  # out of time: the last (retryable) failure is the story
            raise _deadline_error(attempt)
        attempt += 1
        timeout = min(http_timeout, deadline.remaining())
        try:
            return send(timeout), attempt
        except UpstreamError as exc:
            exc.attempts = attempt
            last = exc
            decision = policy.decide(exc.vod_code)
            is_throttle = exc.vod_code.startswith("RequestLimitExceeded")
            throttled += is_throttle
            # Throttling means VOD did nothing: it has its own, larger allowance.
            used = throttled if is_throttle else attempt - throttled
            allowed = MAX_THROTTLED if is_throttle else policy.max_attempts_for(decision, max_attempts)
            if used >= allowed:
                if decision.kind == policy.UNKNOWN:
                    exc.decision = policy.TERMINAL  # unknown after one retry: stop for good
                raise
            wait = backoff(attempt, rng)
            if is_throttle:
                wait = max(wait, rng.uniform(0.5, 1.0))  # the limit is per second
                limiter.pause(wait * 0.5)
            if wait > deadline.remaining() - MIN_ATTEMPT_TIME:
                raise
            if on_retry:
                on_retry(exc, attempt, wait)
            sleep(wait)


def _deadline_error(attempts: int) -> UpstreamError:
    message = "time budget exhausted before the request could be sent"
    return UpstreamError(policy.DEADLINE, message, decision=policy.RETRY, attempts=attempts)


def reset_limiters() -> None:
    """Forget the shared limiters (tests)."""
    with _limiters_lock:
        _limiters.clear()
