"""Accepted SessionIds: a shortcut so a redelivered event does not ask VOD again.

After VOD accepted a task (or answered that its SessionId was used), the pair
(SubAppId, SessionId) is remembered: in this container (a bounded LRU), and in
Redis too when ``REDRAW_REDIS_URL`` is set (``SET key 1 NX EX ttl``), so every
instance knows it. ``core.submit`` checks before sending and reports a known
pair ``duplicate`` without a VOD call. VOD's own SessionId dedup stays the
source of truth: an unknown pair, or any Redis failure, means "send as before".
Entries live a little less than VOD's 3-day dedup window, so the memory never
claims a SessionId that VOD would accept again.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional, Tuple

#: VOD remembers a SessionId for 3 days; the memory forgets it an hour earlier.
TTL_SECONDS = 3 * 24 * 3600 - 3600
CAPACITY = 10_000  # pairs per container (about 1.5 MB at most)
REDIS_PREFIX = "redraw:accepted"

Pair = Tuple[int, str]


class AcceptedMemory:
    """(SubAppId, SessionId) pairs VOD accepted: per container, and in Redis when given a link."""

    def __init__(self, link: Any = None, capacity: int = CAPACITY, ttl: float = TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.link, self.capacity, self.ttl, self.clock = link, capacity, ttl, clock
        self._local: "OrderedDict[Pair, float]" = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _pair(sub_app_id: Any, session_id: Optional[str]) -> Optional[Pair]:
        if not session_id or sub_app_id is None:
            return None
        try:
            return int(sub_app_id), str(session_id)
        except (TypeError, ValueError):
            return None

    @staticmethod
    def redis_key(pair: Pair) -> str:
        return f"{REDIS_PREFIX}:{pair[0]}:{pair[1]}"

    def knows(self, sub_app_id: Any, session_id: Optional[str]) -> bool:
        """True when this pair was accepted before (in this container, or by any instance via Redis)."""
        pair = self._pair(sub_app_id, session_id)
        if pair is None:
            return False
        now = self.clock()
        with self._lock:
            expires = self._local.get(pair)
            if expires is not None:
                if expires > now:
                    self._local.move_to_end(pair)
                    return True
                del self._local[pair]
        if self.link is None or not self.link.available:
            return False
        from .redislink import RedisUnavailable
        try:
            found = bool(self.link.call(lambda client: client.exists(self.redis_key(pair))))
        except RedisUnavailable:
            return False  # unknown: send it, VOD's dedup decides
        if found:
            self._remember_locally(pair, now)
        return found

    def remember(self, sub_app_id: Any, session_id: Optional[str]) -> None:
        pair = self._pair(sub_app_id, session_id)
        if pair is None:
            return
        self._remember_locally(pair, self.clock())
        if self.link is None or not self.link.available:
            return
        from .redislink import RedisUnavailable
        try:
            self.link.call(lambda client: client.set(self.redis_key(pair), 1, nx=True, ex=int(self.ttl)))
        except RedisUnavailable:
            pass  # the container still remembers; VOD's dedup covers the rest

    def _remember_locally(self, pair: Pair, now: float) -> None:
        with self._lock:
            self._local[pair] = now + self.ttl
            self._local.move_to_end(pair)
            while len(self._local) > self.capacity:
                self._local.popitem(last=False)

    def __len__(self) -> int:
        return len(self._local)


_memories: dict = {}
_memories_lock = threading.Lock()


def memory_for(settings: Any) -> AcceptedMemory:
    """The container's memory for these settings (module level: survives warm invocations)."""
    url = getattr(settings, "redis_url", None)
    key = (url, getattr(settings, "redis_timeout_ms", None))
    with _memories_lock:
        if key not in _memories:
            link = None
            if url:
                from .redislink import shared_link
                link = shared_link(url, settings.redis_timeout_ms)
            _memories[key] = AcceptedMemory(link)
        return _memories[key]


def reset_memories() -> None:
    with _memories_lock:
        _memories.clear()
