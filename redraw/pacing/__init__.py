"""Pacing: how fast this container sends to VOD, whatever else shares the account's budget.

Every instance of every function of an account shares ONE VOD limit (20
CreateAigcVideoRedrawTask requests per second). A pacer is what
``retries.call_with_retries`` asks before each send, and tells what VOD answered:

- ``acquire(budget) -> bool``: wait for a send slot, or say (without taking one)
  that none comes within ``budget`` seconds;
- ``on_throttle()``: VOD answered RequestLimitExceeded;
- ``on_success()``: VOD answered something else (the send got through its limit).

Three pacers, chosen by configuration (``pacer_for``):

- ``AdaptiveLimiter`` (``VOD_PACING=adaptive``, the default): learns this
  container's share from VOD's answers (``adaptive.py``);
- ``FixedRateLimiter`` (``VOD_PACING=fixed``): ``VOD_MAX_RPS`` per container,
  the pacing of earlier versions (``fixed.py``);
- ``RedisLimiter`` (``REDRAW_REDIS_URL`` set): one budget for all instances, in
  Redis, falling back to adaptive pacing while Redis fails (``redis_limiter.py``,
  imported only then).

The pacer lives at module level, one per configuration: it survives the warm
invocations of a container, and so does what it learned.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Tuple

from .adaptive import AdaptiveLimiter
from .base import Pacer
from .fixed import FixedRateLimiter, RateLimiter, SlidingLog

__all__ = ["AdaptiveLimiter", "FixedRateLimiter", "Pacer", "RateLimiter", "SlidingLog", "pacer_for",
           "reset_limiters"]

ADAPTIVE, FIXED = "adaptive", "fixed"
MODES = (ADAPTIVE, FIXED)

_pacers: Dict[Tuple[Any, ...], Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(settings: Any, action: str = "CreateAigcVideoRedrawTask") -> Pacer:
    """The container's pacer of one VOD action for these settings: built once, shared by all invocations.

    CreateAigcVideoRedrawTask is paced at ``VOD_MAX_RPS`` (``REDRAW_REDIS_KEY`` with Redis);
    another action (the sweep's DescribeTaskDetail) at ``REDRAW_DESCRIBE_RPS``, with a Redis key of its own.
    """
    create = action == "CreateAigcVideoRedrawTask"
    rate = settings.max_rps if create else settings.describe_rps
    if getattr(settings, "redis_url", None):
        redis_key = settings.redis_key if create else f"{settings.redis_key}:{action}"
        key = ("redis", action, rate, settings.redis_url, redis_key, settings.redis_timeout_ms)

        def build() -> Pacer:
            from .redis_limiter import RedisLimiter
            from ..redislink import shared_link
            link = shared_link(settings.redis_url, settings.redis_timeout_ms)
            return RedisLimiter(link, redis_key, rate, fallback=AdaptiveLimiter(rate))
        return _shared(key, build)
    if settings.pacing == FIXED:
        return _shared(("fixed", action, rate), lambda: FixedRateLimiter(rate))
    return _shared(("adaptive", action, rate), lambda: AdaptiveLimiter(rate))


def _shared(key: Tuple[Any, ...], build: Any) -> Pacer:
    with _pacers_lock:
        if key not in _pacers:
            _pacers[key] = build()
        return _pacers[key]


def reset_limiters() -> None:
    """Forget every pacer, the accepted-SessionId memory and the Redis link, as a new container would."""
    with _pacers_lock:
        _pacers.clear()
    from .. import accepted, redislink
    accepted.reset_memories()
    redislink.reset_links()
