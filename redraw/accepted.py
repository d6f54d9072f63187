"""Accepted SessionIds: a shortcut so a redelivered event does not ask VOD again.

After VOD accepted a task (or answered that its SessionId was used), the pair
(SubAppId, SessionId) is remembered with the task's TaskId and VOD RequestId
when known: in this container (a bounded LRU), and in Redis too when
``REDRAW_REDIS_URL`` is set (``SET key "TaskId RequestId" NX EX ttl``), so every
instance knows it. ``core.submit`` checks before sending and reports a known
pair ``duplicate`` without a VOD call, naming the earlier task. VOD's own
SessionId dedup stays the source of truth: an unknown pair, or any Redis
failure, means "send as before".
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
#: What is remembered of an accepted SessionId: (TaskId, VOD RequestId), each None when unknown
#: (VOD's "SessionId already used" answer names no task).
Accepted = Tuple[Optional[str], Optional[str]]


class AcceptedMemory:
    """(SubAppId, SessionId) pairs VOD accepted: per container, and in Redis when given a link."""

    def __init__(self, link: Any = None, capacity: int = CAPACITY, ttl: float = TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.link, self.capacity, self.ttl, self.clock = link, capacity, ttl, clock
        self._local: "OrderedDict[Pair, Tuple[float, Accepted]]" = OrderedDict()
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
        return self.recall(sub_app_id, session_id) is not None

    def recall(self, sub_app_id: Any, session_id: Optional[str]) -> Optional[Accepted]:
        """``(TaskId, RequestId)`` of the earlier acceptance of this pair, or None when not known."""
        pair = self._pair(sub_app_id, session_id)
        if pair is None:
            return None
        now = self.clock()
        with self._lock:
            entry = self._local.get(pair)
            if entry is not None:
                if entry[0] > now:
                    self._local.move_to_end(pair)
                    return entry[1]
                del self._local[pair]
        if self.link is None or not self.link.available:
            return None
        from .redislink import RedisUnavailable
        try:
            raw = self.link.call(lambda client: client.get(self.redis_key(pair)))
        except RedisUnavailable:
            return None  # unknown: send it, VOD's dedup decides
        if raw is None:
            return None
        accepted = _decode(raw)
        self._remember_locally(pair, now, accepted)
        return accepted

    def remember(self, sub_app_id: Any, session_id: Optional[str], task_id: Optional[str] = None,
                 request_id: Optional[str] = None) -> None:
        pair = self._pair(sub_app_id, session_id)
        if pair is None:
            return
        accepted = (task_id or None, request_id or None)
        self._remember_locally(pair, self.clock(), accepted)
        if self.link is None or not self.link.available:
            return
        from .redislink import RedisUnavailable
        value = f"{task_id or '-'} {request_id or '-'}"
        try:
            self.link.call(lambda client: client.set(self.redis_key(pair), value, nx=True, ex=int(self.ttl)))
        except RedisUnavailable:
            pass  # the container still remembers; VOD's dedup covers the rest

    def _remember_locally(self, pair: Pair, now: float, accepted: Accepted) -> None:
        with self._lock:
            self._local[pair] = (now + self.ttl, accepted)
            self._local.move_to_end(pair)
            while len(self._local) > self.capacity:
                self._local.popitem(last=False)

    def __len__(self) -> int:
        return len(self._local)


def _decode(raw: Any) -> Accepted:
    """A Redis value: "TaskId RequestId" ("-" for unknown; "1" from earlier versions: both unknown)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    parts = text.split(" ")
    if len(parts) != 2:
        return None, None
    task_id, request_id = (None if p in ("", "-") else p for p in parts)
    return task_id, request_id


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
