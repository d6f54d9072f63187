"""Time budget and retry loop: how one call to VOD is made safely.

- ``Deadline``: the invocation's remaining time (SCF gives only the limit).
- ``call_with_retries``: exponential backoff with full jitter, bounded by the
  deadline, each attempt paced by a pacer (``redraw.pacing``) that hears what
  VOD answered; what is retried is decided by ``policy``. RequestLimitExceeded
  (VOD did nothing) is retried as long as the deadline allows.
"""
from __future__ import annotations

import random
import time
from typing import Callable, Optional, Tuple, TypeVar

from . import policy
from .errors import UpstreamError
from .pacing import Pacer

T = TypeVar("T")

BACKOFF_BASE = 0.2      # seconds; first retry waits up to this
BACKOFF_CAP = 4.0       # seconds; no single wait is longer
MIN_ATTEMPT_TIME = 0.2  # seconds; less than this left: do not start an attempt
THROTTLE_WAIT = (0.05, 0.3)  # seconds, uniform: the pause after RequestLimitExceeded (the pacer does the rest)


class Deadline:
    """The end of the usable part of an invocation (timeout minus a safety margin), or of the caller's
    budget (``cap_ms``, HTTP requests) when that comes first."""

    def __init__(self, limit_ms: float, margin_ms: float, start: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic, cap_ms: Optional[float] = None) -> None:
        self.clock = clock
        self.start = clock() if start is None else start
        usable = max(0.0, limit_ms - min(margin_ms, limit_ms * 0.5)) / 1000.0
        if cap_ms is not None:  # a caller's clock (HTTP): answer within cap_ms of the start, whatever the limit
            usable = min(usable, max(0.0, cap_ms) / 1000.0)
        self.end = self.start + usable

    def remaining(self) -> float:
        return max(0.0, self.end - self.clock())

    def elapsed_ms(self) -> int:
        return int((self.clock() - self.start) * 1000)


def backoff(attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^(attempt-1))]."""
    return rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** (attempt - 1))))


def call_with_retries(send: Callable[[float], T], *, deadline: Deadline, limiter: Pacer,
                      max_attempts: int, http_timeout: float,
                      rng: Optional[random.Random] = None,
                      sleep: Callable[[float], None] = time.sleep,
                      on_retry: Optional[Callable[[UpstreamError, int, float], None]] = None,
                      ) -> Tuple[T, int]:
    """Call ``send(timeout)`` until it succeeds or a retry cannot help.

    Returns ``(result, attempts)``; raises the final ``UpstreamError`` (its
    ``attempts`` set) otherwise. A retry after an ambiguous failure (timeout,
    dropped connection) is safe because the request carries its SessionId.
    ``max_attempts`` bounds the attempts that failed for other reasons than
    throttling; throttled attempts are bounded by the deadline alone.
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
            result = send(timeout)
        except UpstreamError as exc:
            exc.attempts = attempt
            last = exc
            decision = policy.decide(exc.vod_code)
            is_throttle = exc.vod_code.startswith("RequestLimitExceeded")
            if is_throttle:
                throttled += 1
                limiter.on_throttle()
                wait = rng.uniform(*THROTTLE_WAIT)
            else:
                if exc.vod_code not in policy.AMBIGUOUS and exc.vod_code != policy.DEADLINE:
                    limiter.on_success()  # VOD answered: the send got through its limit
                if attempt - throttled >= policy.max_attempts_for(decision, max_attempts):
                    if decision.kind == policy.UNKNOWN:
                        exc.decision = policy.TERMINAL  # unknown after one retry: stop for good
                    raise
                wait = backoff(attempt - throttled, rng)
            if wait > deadline.remaining() - MIN_ATTEMPT_TIME:
                raise
            if on_retry:
                on_retry(exc, attempt, wait)
            sleep(wait)
            continue
        limiter.on_success()
        return result, attempt


def _deadline_error(attempts: int) -> UpstreamError:
    message = "time budget exhausted before the request could be sent"
    return UpstreamError(policy.DEADLINE, message, decision=policy.RETRY, attempts=attempts)
