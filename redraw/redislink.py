"""The container's link to Redis (``REDRAW_REDIS_URL``): one client, its health, its warnings.

The ``redis`` client is imported here, when the first Redis feature is built,
never at import of the package. Connect and command timeouts are short
(``REDRAW_REDIS_TIMEOUT_MS``) and the client makes no retries of its own: when
Redis is down, slow or refusing, a call fails within that time, the link is
marked down, one warning is logged for the container, and the callers fall
back (adaptive pacing, no shared memory) until ``COOLDOWN`` has passed. The
URL's password never leaves this module: logs and errors see ``redacted_url``.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

COOLDOWN = 30.0  # seconds before Redis is tried again after a failure


class RedisUnavailable(Exception):
    """Redis could not answer; the message names the error type and the redacted URL only."""


def redacted_url(url: str) -> str:
    """The URL without its password (and without a user name, which may be a secret too)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        if parts.username or parts.password:
            netloc = "***@" + netloc
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))  # a query may carry a password too
    except ValueError:
        return "redis://(unparsable)"


def password_of(url: Optional[str]) -> str:
    """The secret parts of a Redis URL, for the log redactor ("" when none)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        return parts.password or ""
    except ValueError:
        return ""


class RedisLink:
    def __init__(self, url: str, timeout_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self.redacted_url = redacted_url(url)
        self.timeout = timeout_ms / 1000.0
        self.clock = clock
        self._client: Any = None
        self._down_until = 0.0
        self._down = False
        self.warnings = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisLink({self.redacted_url!r})"

    @property
    def available(self) -> bool:
        """False while a failure's cool-down runs (callers skip Redis without waiting)."""
        return not self._down or self.clock() >= self._down_until

    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import redis
                    from redis.backoff import NoBackoff
                    from redis.retry import Retry
                    self._client = redis.Redis.from_url(
                        self._url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
                        retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
                        max_connections=64)
        return self._client

    def call(self, what: Callable[[Any], T]) -> T:
        """``what(client)``, or RedisUnavailable (now, while cooling down, or when it fails)."""
        if not self.available:
            raise RedisUnavailable(f"Redis at {self.redacted_url} is cooling down after a failure")
        try:
            result = what(self.client())
        except Exception as exc:  # redis.RedisError, OSError, anything: Redis must never break a send
            self._failed(exc)
            raise RedisUnavailable(f"Redis at {self.redacted_url} failed ({type(exc).__name__})") from None
        if self._down:
            self._recovered()
        return result

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._down_until = self.clock() + COOLDOWN
            first = not self._down
            self._down = True
        if first:  # one warning per outage of this container, not one per record
            from . import logs
            self.warnings += 1
            logs.get_logger().warning(
                "redis.unavailable", outcome="degraded", redis=self.redacted_url, error=type(exc).__name__,
                fallback="adaptive pacing; accepted SessionIds remembered in this container only",
                retry_in_s=COOLDOWN)

    def _recovered(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            from . import logs
            logs.get_logger().info("redis.restored", outcome="restored", redis=self.redacted_url)


_links: Dict[Tuple[str, int], RedisLink] = {}
_links_lock = threading.Lock()


def shared_link(url: str, timeout_ms: int) -> RedisLink:
    """One link per URL for the container."""
    with _links_lock:
        key = (url, timeout_ms)
        if key not in _links:
            _links[key] = RedisLink(url, timeout_ms)
        return _links[key]


def reset_links() -> None:
    with _links_lock:
        for link in _links.values():
            client = link._client
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing a dead client
                    pass
        _links.clear()
