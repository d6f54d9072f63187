"""One budget for every instance: a sliding log of send slots in Redis (imported only with REDRAW_REDIS_URL).

One Lua script, atomic in one round trip, reads Redis's own clock (``TIME``,
so the instances' clocks do not matter) and hands out the next send slot, in
order, m = ceil(rate):

- never more than m slots in any ``1 s + margin`` (the m-th slot before it is
  at least that far back; the margin covers the jitter between send and arrival);
- GCRA, 1/rate apart in the long run (``max(1/rate, (1 s + margin)/m)``), with a
  burst credit of ``BURST``·m slots earned while idle: a lone instance sends an
  event's records at once;
- slots that the window held back go ``interval/HELD_SPREAD`` apart, not all at
  the instant the window frees: sends of many processes waking together would
  arrive with enough jitter to overflow VOD's second.

It answers how long to wait; the client sleeps, then sends. A slot beyond the
caller's time budget is not taken. A container's first send counts in the
window ``FIRST_SEND_MARGIN`` later than its slot: it opens the connection and
arrives late, and the m-th slot after it must not land within VOD's second of
that late arrival. The keys (``KEY`` the last m slots as counted, ``KEY:tat``
the GCRA time, ``KEY:last`` the last slot) expire when idle; several functions
share a budget by sharing the key.

When Redis fails, the container paces itself with its ``fallback`` (adaptive)
limiter and tries Redis again after the link's cool-down.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from ..redislink import RedisLink, RedisUnavailable
from .base import JITTER_MARGIN

#: Window margin for the shared budget: send-to-arrival jitter across instances.
REDIS_MARGIN = JITTER_MARGIN
#: Burst credit earned while idle, as a share of m. 0: slots always evenly spread, one at a time.
BURST = 1.0
#: Slots the window held back go at least interval/HELD_SPREAD apart (12.75 ms at 20/s), not all at once.
HELD_SPREAD = 4
#: A container's first send counts in the window as arriving this much later: it opens the connection
#: (TLS to VOD), so it reaches VOD later after its slot than the sends that follow it.
FIRST_SEND_MARGIN = 0.1

SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local m = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local tolerance = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
local at = now
if tat - tolerance > at then at = tat - tolerance end
local n = redis.call('LLEN', KEYS[1])
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if n >= m then
  local mth = tonumber(redis.call('LINDEX', KEYS[1], -m))
  if mth + window > at then at = mth + window end
end
if last > now and last + tonumber(ARGV[6]) > at then at = last + tonumber(ARGV[6]) end
if at - now > tonumber(ARGV[4]) then return {0, at - now} end
local ttl = math.floor((at - now + window + tolerance) / 1000) + 1000
local counted = at + tonumber(ARGV[7])
redis.call('RPUSH', KEYS[1], string.format('%.0f', counted))
redis.call('LTRIM', KEYS[1], -m, -1)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('SET', KEYS[3], string.format('%.0f', at), 'PX', ttl)
if tat < at then tat = at end
redis.call('SET', KEYS[2], string.format('%.0f', tat + interval), 'PX', ttl)
return {1, at - now}
"""


class RedisLimiter:
    """Sends of every instance sharing ``key`` stay within ``rate`` per second, counted in Redis."""

    def __init__(self, link: RedisLink, key: str, rate: float, fallback: Any,
                 margin: float = REDIS_MARGIN, sleep: Callable[[float], None] = time.sleep) -> None:
        self.link, self.key, self.rate, self.fallback = link, key, rate, fallback
        self.sleep = sleep
        self.m = max(1, math.ceil(rate))
        self.window_us = int(round((1.0 + margin) * 1_000_000))
        self.interval_us = int(round(1_000_000 * max(1.0 / rate, (1.0 + margin) / self.m)))
        self.tolerance_us = (max(1, math.ceil(self.m * BURST)) - 1) * self.interval_us
        self._script: Any = None
        self._fallen_back = False
        self._sent = False  # a slot was taken from Redis by this container

    def _run(self, client: Any, budget: float) -> Any:
        if self._script is None:
            self._script = client.register_script(SCRIPT)  # EVALSHA, EVAL when the script is not cached
        return self._script(keys=[self.key, self.key + ":tat", self.key + ":last"],
                            args=[self.m, self.window_us, self.interval_us, int(budget * 1_000_000),
                                  self.tolerance_us, self.interval_us // HELD_SPREAD,
                                  0 if self._sent else int(FIRST_SEND_MARGIN * 1_000_000)],
                            client=client)

    def acquire(self, budget: float) -> bool:
        try:
            granted, wait_us = self.link.call(lambda client: self._run(client, budget))
        except RedisUnavailable:
            self._fallen_back = True
            return self.fallback.acquire(budget)
        self._fallen_back = False
        if not int(granted):
            return False
        self._sent = True
        if int(wait_us) > 0:
            self.sleep(int(wait_us) / 1_000_000)
        return True

    def on_throttle(self) -> None:
        if self._fallen_back:
            self.fallback.on_throttle()

    def on_success(self) -> None:
        if self._fallen_back:
            self.fallback.on_success()
