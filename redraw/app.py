"""The imperative shell: per-container state, per-invocation context, logging, dispatch.

``handle(event, context)`` is what ``handler.main_handler`` calls. Settings and
the VOD client are built on the first invocation of a container and reused.
The event's source module (``redraw.sources.*``) is imported when its first
event arrives, so a container loads only the models its trigger needs.
"""
from __future__ import annotations

import importlib
import os
import threading
import time
from typing import Any, Optional

# The configuration (and with it pydantic-core) loads before structlog. From source, compiling
# pydantic-core's core_schema and typing_extensions (~170 KB of Python each) takes ~6 MB for a
# moment; done first, that memory is reused by the imports after it instead of being added on top
# (source-only cold start: ~0.75 MB less peak RSS, measured; no difference with bytecode).
from .config import load_settings
import structlog

from . import logs, sources
from .runtime import Runtime, ms_since
from .errors import ConfigError, InvalidEventError, RedrawError, UnexpectedError, UnsupportedTriggerError
from .pacing import pacer_for
from .retries import Deadline

#: trigger -> module of redraw.sources that serves it
_MODULES = {sources.COS: "cos", sources.APIGW: "http", sources.URL: "http", sources.CKAFKA: "ckafka",
            sources.DIRECT: "direct", sources.TIMER: "timer"}

_runtime: Optional[Runtime] = None
_runtime_lock = threading.Lock()

if os.environ.get("REDRAW_REDIS_URL"):
    # the redis client (~0.17 s of imports) loads in the container's initialisation, not in its
    # first invocation: N instances starting together do not all pay it while their budget waits
    try:
        import redis.backoff  # noqa: F401
        import redis.retry  # noqa: F401
    except ImportError:  # reported by the link, in the invocation that needs it
        pass


def runtime() -> Runtime:
    """The container's Runtime, built once (config validated here, not at import)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                from .accepted import memory_for
                from .vod import VodClient

                settings = load_settings()
                _runtime = Runtime(settings, VodClient(settings), pacer_for(settings), memory_for(settings))
    return _runtime


def reset() -> None:
    """Forget the container state (tests, and the CLI when it changes the environment)."""
    global _runtime
    with _runtime_lock:
        _runtime = None


def _context_dict(context: Any) -> dict:
    if isinstance(context, dict):
        return context
    if context is None:
        return {}
    return {k: getattr(context, k) for k in ("request_id", "function_name", "time_limit_in_ms")
            if hasattr(context, k)}


def _time_limit_ms(ctx: dict, default_ms: int) -> float:
    raw = ctx.get("time_limit_in_ms")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float(default_ms)
    return value if value > 0 else float(default_ms)


def _new_id() -> str:
    import uuid  # SCF always gives a request id: only local runs need one

    return str(uuid.uuid4())


def _redis_password(url: Optional[str]) -> str:
    if not url:
        return ""  # the Redis link module is loaded only by containers that use Redis
    from .redislink import password_of
    return password_of(url)


def handle(event: Any, context: Any) -> Any:
    started = time.monotonic()
    ctx = _context_dict(context)
    env = os.environ
    logs.configure((env.get("REDRAW_LOG_LEVEL") or "INFO").upper(),
                   (env.get("TENCENTCLOUD_SECRETKEY", ""), env.get("TENCENTCLOUD_SESSIONTOKEN", ""),
                    _redis_password(env.get("REDRAW_REDIS_URL"))))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=str(ctx.get("request_id") or _new_id()))
    function = ctx.get("function_name") or env.get("SCF_FUNCTIONNAME")
    if function:
        structlog.contextvars.bind_contextvars(function=str(function))
    log = logs.get_logger()
    try:
        trigger = sources.detect(event)
    except InvalidEventError as exc:
        extra = {"trigger": exc.trigger} if isinstance(exc, UnsupportedTriggerError) else {}
        log.error("event.rejected", outcome="rejected", error=exc.code, reason=exc.message,
                  duration_ms=ms_since(started), **extra)
        raise
    structlog.contextvars.bind_contextvars(trigger=trigger)
    try:
        rt = runtime()
    except ConfigError as exc:
        log.error("config.invalid", outcome="failed", error=exc.code, reason=exc.message,
                  fix="set the function's environment variables (see docs/configuration.md)")
        if trigger in sources.HTTP_TRIGGERS:
            from .sources import http
            return http.error_response(exc, trigger=trigger)
        raise
    if trigger == sources.TIMER and not rt.settings.follow_up:
        off = sources.unsupported(sources.TIMER)
        log.error("event.rejected", outcome="rejected", error=off.code, reason=off.message,
                  duration_ms=ms_since(started))
        raise off
    # An HTTP caller waits for the answer: it gets one within REDRAW_HTTP_BUDGET_MS (past it, the retry
    # path answers 503 with Retry-After and the SessionId). Asynchronous and batch triggers keep the whole limit.
    budget_ms = rt.settings.http_budget_ms if trigger in sources.HTTP_TRIGGERS else None
    deadline = Deadline(_time_limit_ms(ctx, rt.settings.default_time_limit_ms),
                        rt.settings.safety_margin_ms, start=started, cap_ms=budget_ms)
    source = importlib.import_module(f"{sources.__name__}.{_MODULES[trigger]}")
    try:
        return source.handle(rt, event, deadline, log)
    except RedrawError:
        raise
    except Exception as exc:  # a bug: log it (redacted), answer in the package's terms
        log.exception("handler.crashed", outcome="failed", error=type(exc).__name__, duration_ms=ms_since(started))
        failure = UnexpectedError(f"unexpected {type(exc).__name__} while handling the event; "
                                  "see the log line handler.crashed")
        if trigger in sources.HTTP_TRIGGERS:
            return source.error_response(failure, trigger=trigger)
        raise failure from None  # the original message may hold secrets: the redacted log line has it
