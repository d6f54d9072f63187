"""Configuration from environment variables, validated once per container.

Every variable the function reads is listed in ``VARIABLES`` (name, default,
meaning); the README's table and serverless.yml are checked against it by
the tests. Errors name the variable, never its value.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_ENDPOINT = "vod.intl.tencentcloudapi.com"
DEFAULT_REDIS_KEY = "redraw:vod:CreateAigcVideoRedrawTask"
PACING_MODES = ("adaptive", "fixed")
DEFAULT_VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".flv", ".wmv", ".webm",
                          ".ts", ".mpeg", ".mpg", ".3gp")

#: name -> (default shown in docs, meaning). Order is the documentation order.
VARIABLES = {
    "VOD_SUB_APP_ID": ("(required)", "VOD application id (integer) every task is created in"),
    "VOD_ENDPOINT": (DEFAULT_ENDPOINT, "VOD API host, or a full URL such as http://127.0.0.1:9000"),
    "VOD_REGION": ("TENCENTCLOUD_REGION", "region sent as X-TC-Region (optional for VOD)"),
    "VOD_ALLOWED_SUB_APP_IDS": ("(empty)", "comma-separated SubAppIds an API caller may name in the body"),
    "VOD_MAX_RPS": ("20", "the account's VOD budget in requests per second (the API's limit is 20; fractions allowed): "
                    "the ceiling of each container, or the shared budget with Redis"),
    "VOD_PACING": ("adaptive", "adaptive (each container learns its share from RequestLimitExceeded) "
                   "or fixed (VOD_MAX_RPS per container); ignored when REDRAW_REDIS_URL is set"),
    "VOD_MAX_CONCURRENCY": ("10", "records of one event submitted in parallel"),
    "VOD_MAX_ATTEMPTS": ("4", "attempts per record for retryable failures within one invocation"),
    "VOD_HTTP_TIMEOUT": ("5", "seconds one VOD HTTP attempt may take"),
    "REDRAW_STYLE": ("(empty)", "TaskInfo.Style used when a request gives none (max 50 characters)"),
    "REDRAW_STORAGE_MODE": ("(empty: VOD's Temporary)",
                            "OutputConfig.StorageMode used when a request gives none: Permanent or Temporary"),
    "REDRAW_CLASS_ID": ("(empty)", "OutputConfig.ClassId used when a request gives none (integer)"),
    "REDRAW_TASKS_PRIORITY": ("(empty: 0)", "TasksPriority used when a request gives none, -10..10"),
    "REDRAW_VIDEO_SUFFIXES": (",".join(DEFAULT_VIDEO_SUFFIXES), "object suffixes (case-insensitive) that start a task"),
    "REDRAW_PRESIGN_URLS": ("false", "hand VOD a presigned GET URL for the object (private buckets)"),
    "REDRAW_PRESIGN_EXPIRES": ("3600", "lifetime in seconds of a presigned URL"),
    "REDRAW_ALLOWED_URL_HOSTS": ("(empty: any)", "comma-separated hosts API callers may submit URLs of; *.suffix allowed"),
    "REDRAW_MAX_BODY_BYTES": ("65536", "largest HTTP body accepted, in bytes after base64 decoding (1024 to 6291456)"),
    "REDRAW_SAFETY_MARGIN_MS": ("1500", "time kept in reserve before the function's timeout (at most half of it)"),
    "REDRAW_DEFAULT_TIME_LIMIT_MS": ("30000", "time budget when the context has no time_limit_in_ms"),
    "REDRAW_LOG_LEVEL": ("INFO", "DEBUG, INFO, WARNING or ERROR"),
    "REDRAW_REDIS_URL": ("(empty: no Redis)", "redis://[:password@]host:port/db of a Redis shared by all instances: "
                         "one exact VOD budget and the accepted SessionIds"),
    "REDRAW_REDIS_KEY": (DEFAULT_REDIS_KEY, "Redis key of the shared budget (the same key shares one budget across functions)"),
    "REDRAW_REDIS_TIMEOUT_MS": ("300", "Redis connect and command timeout; past it the container paces itself (adaptive)"),
    "TENCENTCLOUD_SECRETID": ("(injected by SCF)", "credential of the function's run role"),
    "TENCENTCLOUD_SECRETKEY": ("(injected by SCF)", "credential of the function's run role"),
    "TENCENTCLOUD_SESSIONTOKEN": ("(injected by SCF)", "temporary credential token of the run role"),
    "TENCENTCLOUD_REGION": ("(injected by SCF)", "the function's region"),
}

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_STORAGE_MODES = ("Permanent", "Temporary")


@dataclass(frozen=True)
class Endpoint:
    scheme: str   # "https" or "http"
    host: str     # host[:port], as the SDK wants it

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"


@dataclass(frozen=True)
class Settings:
    sub_app_id: int
    endpoint: Endpoint
    region: str
    secret_id: str
    secret_key: str = field(repr=False)
    session_token: Optional[str] = field(default=None, repr=False)
    allowed_sub_app_ids: Tuple[int, ...] = ()
    max_rps: float = 20.0
    max_concurrency: int = 10
    max_attempts: int = 4
    http_timeout: float = 5.0
    style: Optional[str] = None
    storage_mode: Optional[str] = None
    class_id: Optional[int] = None
    tasks_priority: Optional[int] = None
    video_suffixes: Tuple[str, ...] = DEFAULT_VIDEO_SUFFIXES
    presign_urls: bool = False
    presign_expires: int = 3600
    allowed_url_hosts: Tuple[str, ...] = ()
    max_body_bytes: int = 65536
    safety_margin_ms: int = 1500
    default_time_limit_ms: int = 30000
    pacing: str = "adaptive"
    redis_url: Optional[str] = field(default=None, repr=False)
    redis_key: str = DEFAULT_REDIS_KEY
    redis_timeout_ms: int = 300


def parse_endpoint(raw: str) -> Endpoint:
    """Accept ``host``, ``host:port`` or ``http(s)://host[:port][/]``."""
    raw = raw.strip()
    if "://" in raw:
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query or parts.username:
            raise ConfigError("VOD_ENDPOINT must be a host name or an http(s)://host[:port] URL")
        return Endpoint(parts.scheme, parts.netloc)
    if not raw or "/" in raw or " " in raw:
        raise ConfigError("VOD_ENDPOINT must be a host name or an http(s)://host[:port] URL")
    return Endpoint("https", raw)


def _redis_url_problem(raw: str) -> Optional[str]:
    """What is wrong with a Redis URL (the message never quotes it: it may hold a password)."""
    try:
        parts = urlsplit(raw)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return "REDRAW_REDIS_URL must be a redis://, rediss:// or unix:// URL"
    if parts.scheme not in ("redis", "rediss", "unix") or not port_ok:
        return "REDRAW_REDIS_URL must be a redis://, rediss:// or unix:// URL"
    if parts.scheme != "unix" and not parts.hostname:
        return "REDRAW_REDIS_URL must name a host (redis://[:password@]host:port/db)"
    if parts.scheme == "unix" and not parts.path:
        return "REDRAW_REDIS_URL must name a socket path (unix:///path/to/redis.sock)"
    return None


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list = []

    def text(self, name: str) -> Optional[str]:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def integer(self, name: str, default: Optional[int], lo: Optional[int] = None,
            hi: Optional[int] = None) -> Optional[int]:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.errors.append(f"{name} must be an integer")
            return default
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.errors.append(f"{name} must be between {lo} and {hi}")
            return default
        return value

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.errors.append(f"{name} must be a number")
            return default
        if not lo <= value <= hi:
            self.errors.append(f"{name} must be between {lo:g} and {hi:g}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.errors.append(f"{name} must be true or false")
        return default

    def items(self, name: str) -> Tuple[str, ...]:
        raw = self.text(name) or ""
        return tuple(item.strip() for item in raw.split(",") if item.strip())


def load_settings(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Read and validate the environment; raise one ConfigError listing every problem."""
    env = os.environ if env is None else env
    r = _Reader(env)
    sub_app_id = r.integer("VOD_SUB_APP_ID", None, 1, 2**63 - 1)
    if sub_app_id is None and not any(e.startswith("VOD_SUB_APP_ID") for e in r.errors):
        r.errors.append("VOD_SUB_APP_ID is required (the VOD application id, an integer)")
    endpoint = None
    try:
        endpoint = parse_endpoint(r.text("VOD_ENDPOINT") or DEFAULT_ENDPOINT)
    except ConfigError as exc:
        r.errors.append(exc.message)
    secret_id, secret_key = r.text("TENCENTCLOUD_SECRETID"), r.text("TENCENTCLOUD_SECRETKEY")
    if not secret_id or not secret_key:
        r.errors.append("TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY are required "
                        "(give the function a run role, or set them for local runs)")
    allowed_ids = []
    for item in r.items("VOD_ALLOWED_SUB_APP_IDS"):
        if item.isdigit():
            allowed_ids.append(int(item))
        else:
            r.errors.append("VOD_ALLOWED_SUB_APP_IDS must be comma-separated integers")
            break
    style = r.text("REDRAW_STYLE")
    if style is not None and len(style) > 50:
        r.errors.append("REDRAW_STYLE must be at most 50 characters")
    storage_mode = r.text("REDRAW_STORAGE_MODE")
    if storage_mode is not None and storage_mode not in _STORAGE_MODES:
        r.errors.append("REDRAW_STORAGE_MODE must be Permanent or Temporary")
    suffixes = tuple(s.lower() if s.startswith(".") else "." + s.lower()
                     for s in r.items("REDRAW_VIDEO_SUFFIXES")) or DEFAULT_VIDEO_SUFFIXES
    level = (r.text("REDRAW_LOG_LEVEL") or "INFO").upper()
    if level not in _LEVELS:
        r.errors.append("REDRAW_LOG_LEVEL must be one of " + ", ".join(_LEVELS))
    pacing = (r.text("VOD_PACING") or "adaptive").lower()
    if pacing not in PACING_MODES:
        r.errors.append("VOD_PACING must be adaptive or fixed")
    redis_url = r.text("REDRAW_REDIS_URL")
    if redis_url is not None:
        problem = _redis_url_problem(redis_url)
        if problem:
            r.errors.append(problem)
        elif importlib.util.find_spec("redis") is None:
            r.errors.append("REDRAW_REDIS_URL needs the redis client in the package (requirements.txt)")
    redis_key = r.text("REDRAW_REDIS_KEY") or DEFAULT_REDIS_KEY
    if len(redis_key) > 200 or any(c.isspace() for c in redis_key):
        r.errors.append("REDRAW_REDIS_KEY must be at most 200 characters without spaces")
    settings: Dict[str, Any] = dict(
        allowed_sub_app_ids=tuple(allowed_ids),
        max_rps=r.number("VOD_MAX_RPS", 20.0, 0.1, 100000.0),
        max_concurrency=r.integer("VOD_MAX_CONCURRENCY", 10, 1, 64),
        max_attempts=r.integer("VOD_MAX_ATTEMPTS", 4, 1, 10),
        http_timeout=r.number("VOD_HTTP_TIMEOUT", 5.0, 0.1, 60.0),
        style=style,
        storage_mode=storage_mode,
        class_id=r.integer("REDRAW_CLASS_ID", None, 0, 2**63 - 1),
        tasks_priority=r.integer("REDRAW_TASKS_PRIORITY", None, -10, 10),
        video_suffixes=suffixes,
        presign_urls=r.flag("REDRAW_PRESIGN_URLS", False),
        presign_expires=r.integer("REDRAW_PRESIGN_EXPIRES", 3600, 60, 7 * 24 * 3600),
        allowed_url_hosts=tuple(h.lower() for h in r.items("REDRAW_ALLOWED_URL_HOSTS")),
        max_body_bytes=r.integer("REDRAW_MAX_BODY_BYTES", 65536, 1024, 6 * 1024 * 1024),
        safety_margin_ms=r.integer("REDRAW_SAFETY_MARGIN_MS", 1500, 0, 60000),
        default_time_limit_ms=r.integer("REDRAW_DEFAULT_TIME_LIMIT_MS", 30000, 100, 900000),
        pacing=pacing,
        redis_url=redis_url,
        redis_key=redis_key,
        redis_timeout_ms=r.integer("REDRAW_REDIS_TIMEOUT_MS", 300, 10, 5000),
    )
    if settings["presign_urls"] and importlib.util.find_spec("qcloud_cos") is None:
        r.errors.append("REDRAW_PRESIGN_URLS needs the COS SDK in the package: "
                        'make package PACKAGE_ARGS="--extra cos-python-sdk-v5"')
    if r.errors:
        raise ConfigError("invalid configuration: " + "; ".join(r.errors))
    return Settings(
        sub_app_id=sub_app_id,  # type: ignore[arg-type]
        endpoint=endpoint,  # type: ignore[arg-type]
        region=r.text("VOD_REGION") or r.text("TENCENTCLOUD_REGION") or "",
        secret_id=secret_id,  # type: ignore[arg-type]
        secret_key=secret_key,  # type: ignore[arg-type]
        session_token=r.text("TENCENTCLOUD_SESSIONTOKEN"),
        **settings,
    )
