"""Configuration from environment variables, validated once per container.

``Settings`` is the one source: one field per variable (``var``: its name,
description, default and pydantic-core schema). ``VARIABLES``, the table of
docs/configuration.md (scripts/config_table.py) and the serverless.yml check
come from its fields. Validation is pydantic-core's, compiled once per
container; errors name the variable, never its value.

Why pydantic-core and not a ``BaseModel``: the model machinery costs ~0.15 s
and ~12 MB at cold start with bytecode (~0.26 s from source), more than all of
redraw's own code; pydantic-settings more still (``import pydantic_settings``:
+0.19 s, +18 MB over pydantic-core, measured). The core validator costs
nothing beyond ``import pydantic``.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from .errors import ConfigError
from .rules import DEFAULT_OVERRIDES, NO_RULES, RuleSet, Template, load_rules, overrides_setting, template
from .validation import dataclass_schema, validator

DEFAULT_ENDPOINT = "vod.intl.tencentcloudapi.com"
DEFAULT_REDIS_KEY = "redraw:vod:CreateAigcVideoRedrawTask"
PACING_MODES = ("adaptive", "fixed")
DEFAULT_VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".flv", ".wmv", ".webm",
                          ".ts", ".mpeg", ".mpg", ".3gp")
_MAX_INT64 = 2**63 - 1
#: Standard Webhooks' retry schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
DEFAULT_WEBHOOK_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
_BUCKET_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,}$")


@dataclass(frozen=True)
class Endpoint:
    scheme: str   # "https" or "http"
    host: str     # host[:port], as the SDK wants it

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"


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


# --- value schemas (what a variable's text must be) -------------------------------------------------

def _after(schema: Any, fn: Callable[[Any], Any]) -> Any:
    return cs.no_info_after_validator_function(fn, schema)


def _endpoint(value: str) -> Endpoint:
    try:
        return parse_endpoint(value)
    except ConfigError:
        raise ValueError("must be a host name or an http(s)://host[:port] URL") from None


def _items(value: str) -> Tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _ids(value: str) -> Tuple[int, ...]:
    items = _items(value)
    if not all(item.isdigit() for item in items):
        raise ValueError("must be comma-separated integers")
    return tuple(int(item) for item in items)


def _suffixes(value: str) -> Tuple[str, ...]:
    return tuple(s.lower() if s.startswith(".") else "." + s.lower() for s in _items(value)) or DEFAULT_VIDEO_SUFFIXES


def _one_of(*choices: str, upper: bool = False, lower: bool = False) -> Any:
    def check(value: str) -> str:
        value = value.upper() if upper else value.lower() if lower else value
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return value
    return _after(cs.str_schema(), check)


def _redis_url(value: str) -> str:
    """A Redis URL; the message never quotes it (it may hold a password)."""
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        raise ValueError("must be a redis://, rediss:// or unix:// URL") from None
    if parts.scheme not in ("redis", "rediss", "unix") or not port_ok:
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("must name a host (redis://[:password@]host:port/db)")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError("must name a socket path (unix:///path/to/redis.sock)")
    return value


def _redis_key(value: str) -> str:
    if len(value) > 200 or any(c.isspace() for c in value):
        raise ValueError("must be at most 200 characters without spaces")
    return value


def _bucket(value: str) -> str:
    if not _BUCKET_RE.match(value):
        raise ValueError("must be a bucket's full name, name-appid (e.g. media-1250000000)")
    return value


def _prefix(value: str) -> str:
    value = value.lstrip("/")
    if not value or any(part in (".", "..") for part in value.split("/")[:-1]):
        raise ValueError("must be a key prefix such as redrawn/")
    return value if value.endswith("/") else value + "/"


def _cos_endpoint(value: str) -> Endpoint:
    endpoint = _endpoint(value)
    if ":" not in endpoint.host:
        raise ValueError("must be an http(s)://host:port URL")
    return endpoint


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false (1/0, yes/no, on/off)")


def _webhook_url(value: str) -> str:
    """An http(s) URL with a host and no credentials (whether it may be http, or private, is decided
    with REDRAW_WEBHOOK_ALLOW_PRIVATE in ``load_settings``). Never quoted: its query may hold a token."""
    from .webhooks.guard import url_problem

    problem = url_problem(value, allow_private=True)
    if problem:
        raise ValueError(problem)
    return value


def _webhook_secret(value: str) -> str:
    from .webhooks.signing import secret_problem

    problem = secret_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _schedule(value: str) -> Tuple[float, ...]:
    try:
        delays = tuple(float(item) for item in _items(value))
    except ValueError:
        raise ValueError("must be comma-separated seconds, e.g. 0,5,300") from None
    if not delays or len(delays) > 50 or any(not 0 <= d <= 7 * 86400 for d in delays):
        raise ValueError("must be 1 to 50 comma-separated delays of 0 to 604800 seconds")
    return delays


_INT = cs.int_schema


def _range(lo: int, hi: int) -> Any:
    return _INT(ge=lo, le=hi)


def var(name: str, meaning: str, schema: Any, default: Any = MISSING, shown: Optional[str] = None,
        secret: bool = False, blank: bool = False) -> Any:
    """One configuration field: the variable's ``name``, its ``meaning`` (the docs), the ``schema`` its
    text must satisfy, its ``default`` (none: required) and the default as documented (``shown``).
    ``blank``: set but empty is a value of its own (e.g. "none"), not the default."""
    if shown is None:
        shown = "(required)" if default is MISSING else str(default)
    return field(default=default, repr=not secret,
                 metadata={"env": name, "meaning": meaning, "schema": schema, "shown": shown, "blank": blank})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The function's configuration; each field is one environment variable, in documentation order."""

    sub_app_id: int = var("VOD_SUB_APP_ID", "VOD application id (integer) every task is created in",
                          _range(1, _MAX_INT64))
    endpoint: Endpoint = var("VOD_ENDPOINT", "VOD API host, or a full URL such as http://127.0.0.1:9000",
                             _after(cs.str_schema(), _endpoint), Endpoint("https", DEFAULT_ENDPOINT),
                             shown=DEFAULT_ENDPOINT)
    region: str = var("VOD_REGION", "region sent as X-TC-Region (optional for VOD)", cs.str_schema(), "",
                      shown="TENCENTCLOUD_REGION")
    allowed_sub_app_ids: Tuple[int, ...] = var(
        "VOD_ALLOWED_SUB_APP_IDS", "comma-separated SubAppIds an API caller may name in the body",
        _after(cs.str_schema(), _ids), (), shown="(empty)")
    max_rps: float = var("VOD_MAX_RPS", "the account's VOD budget in requests per second (the API's limit is 20; "
                         "fractions allowed): the ceiling of each container, or the shared budget with Redis",
                         cs.float_schema(ge=0.1, le=100000.0), 20.0, shown="20")
    pacing: str = var("VOD_PACING", "adaptive (each container learns its share from RequestLimitExceeded) "
                      "or fixed (VOD_MAX_RPS per container); ignored when REDRAW_REDIS_URL is set",
                      _one_of(*PACING_MODES, lower=True),
                      "adaptive")
    max_concurrency: int = var("VOD_MAX_CONCURRENCY", "records of one event submitted in parallel", _range(1, 64), 10)
    max_attempts: int = var("VOD_MAX_ATTEMPTS", "attempts per record for retryable failures within one invocation",
                            _range(1, 10), 4)
    http_timeout: float = var("VOD_HTTP_TIMEOUT", "seconds one VOD HTTP attempt may take",
                              cs.float_schema(ge=0.1, le=60.0), 5.0, shown="5")
    style: Optional[str] = var("REDRAW_STYLE", "TaskInfo.Style used when a request gives none (max 50 characters)",
                               cs.str_schema(max_length=50), None, shown="(empty)")
    storage_mode: Optional[str] = var(
        "REDRAW_STORAGE_MODE", "OutputConfig.StorageMode used when a request gives none: Permanent or Temporary",
        _one_of("Permanent", "Temporary"), None, shown="(empty: VOD's Temporary)")
    class_id: Optional[int] = var("REDRAW_CLASS_ID", "OutputConfig.ClassId used when a request gives none (integer)",
                                  _range(0, _MAX_INT64), None, shown="(empty)")
    tasks_priority: Optional[int] = var("REDRAW_TASKS_PRIORITY", "TasksPriority used when a request gives none, -10..10",
                                        _range(-10, 10), None, shown="(empty: 0)")
    media_name: Template = var("REDRAW_MEDIA_NAME", "OutputConfig.MediaName of an upload's task: a template over its key "
                          "({name}, {stem}, {ext}, {folder}, {key}), cut to 64 characters; set but empty: none",
                          _after(cs.str_schema(max_length=1024), template), template("{name}"), shown="{name}",
                          blank=True)
    # Validated as text here; load_settings then puts the RuleSet in its place (rules.load_rules: its errors
    # name each rule and field, which a schema on the variable could not).
    rules: RuleSet = var("REDRAW_RULES", "per-prefix rules for uploads, a JSON list (docs/rules.md); the longest "
                     "matching prefix wins", cs.str_schema(max_length=4096), NO_RULES, shown="(empty: none)")
    rules_file: Optional[str] = var("REDRAW_RULES_FILE", "the rules as a JSON file instead (a relative path is read "
                                    "beside handler.py)", cs.str_schema(max_length=1024), None, shown="(empty)")
    metadata_overrides: Tuple[str, ...] = var(
        "REDRAW_METADATA_OVERRIDES", "which x-cos-meta-redraw-* headers an uploader may set: style, priority, "
        "media-name, storage-mode (comma-separated; set but empty: none)",
        _after(cs.str_schema(), overrides_setting), DEFAULT_OVERRIDES, shown=",".join(DEFAULT_OVERRIDES), blank=True)
    video_suffixes: Tuple[str, ...] = var(
        "REDRAW_VIDEO_SUFFIXES", "object suffixes (case-insensitive) that start a task",
        _after(cs.str_schema(), _suffixes), DEFAULT_VIDEO_SUFFIXES, shown=",".join(DEFAULT_VIDEO_SUFFIXES))
    presign_urls: bool = var("REDRAW_PRESIGN_URLS", "hand VOD a presigned GET URL for the object (private buckets)",
                             _after(cs.str_schema(), _flag), False, shown="false")
    presign_expires: int = var("REDRAW_PRESIGN_EXPIRES", "lifetime in seconds of a presigned URL",
                               _range(60, 7 * 24 * 3600), 3600)
    allowed_url_hosts: Tuple[str, ...] = var(
        "REDRAW_ALLOWED_URL_HOSTS", "comma-separated hosts API callers may submit URLs of; *.suffix allowed",
        _after(cs.str_schema(), lambda v: tuple(h.lower() for h in _items(v))), (), shown="(empty: any)")
    max_body_bytes: int = var("REDRAW_MAX_BODY_BYTES",
                              "largest HTTP body accepted, in bytes after base64 decoding (1024 to 6291456)",
                              _range(1024, 6 * 1024 * 1024), 65536)
    safety_margin_ms: int = var("REDRAW_SAFETY_MARGIN_MS",
                                "time kept in reserve before the function's timeout (at most half of it)",
                                _range(0, 60000), 1500)
    default_time_limit_ms: int = var("REDRAW_DEFAULT_TIME_LIMIT_MS", "time budget when the context has no time_limit_in_ms",
                                     _range(100, 900000), 30000)
    http_budget_ms: int = var("REDRAW_HTTP_BUDGET_MS", "time an HTTP request (function URL, API Gateway) may take: past "
                              "it, 503 with Retry-After and the SessionId; COS, CKafka and direct invocations keep "
                              "the whole time limit", _range(1000, 900000), 10000)
    # Validated here; logs.configure reads the variable itself, before settings exist.
    log_level: str = var("REDRAW_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR",
                         _one_of("DEBUG", "INFO", "WARNING", "ERROR", upper=True), "INFO")
    redis_url: Optional[str] = var("REDRAW_REDIS_URL", "redis://[:password@]host:port/db of a Redis shared by all "
                                   "instances: one exact VOD budget and the accepted SessionIds",
                                   _after(cs.str_schema(max_length=2048), _redis_url), None,
                                   shown="(empty: no Redis)", secret=True)
    redis_key: str = var("REDRAW_REDIS_KEY", "Redis key of the shared budget (the same key shares one budget "
                         "across functions)", _after(cs.str_schema(), _redis_key), DEFAULT_REDIS_KEY)
    redis_timeout_ms: int = var("REDRAW_REDIS_TIMEOUT_MS", "Redis connect and command timeout; past it the "
                                "container paces itself (adaptive)", _range(10, 5000), 300)
    follow_up: bool = var("REDRAW_FOLLOW_UP", "record every task in REDRAW_STATE_BUCKET and follow it to its end "
                          "(timer trigger: task.finished lines, receipts, delivery)",
                          _after(cs.str_schema(), _flag), False, shown="false")
    state_bucket: Optional[str] = var("REDRAW_STATE_BUCKET", "bucket (name-appid) of task records and receipts; "
                                      "required with REDRAW_FOLLOW_UP", _after(cs.str_schema(), _bucket), None,
                                      shown="(empty)")
    state_region: str = var("REDRAW_STATE_REGION", "region of REDRAW_STATE_BUCKET", cs.str_schema(), "",
                            shown="TENCENTCLOUD_REGION")
    state_prefix: str = var("REDRAW_STATE_PREFIX", "key prefix of everything redraw keeps in the state bucket",
                            _after(cs.str_schema(max_length=200), _prefix), "redraw/")
    poll_max_interval_s: int = var("REDRAW_POLL_MAX_INTERVAL_S", "longest wait between two checks of a pending task "
                                   "(each check waits as long as the task's age up to this; 0: every sweep checks "
                                   "every pending task)", _range(0, 3600), 300)
    describe_rps: float = var("REDRAW_DESCRIBE_RPS", "DescribeTaskDetail budget of the sweep, requests per second "
                              "(the API's limit is 100)", cs.float_schema(ge=0.1, le=100000.0), 100.0, shown="100")
    sweep_concurrency: int = var("REDRAW_SWEEP_CONCURRENCY", "tasks one sweep checks in parallel", _range(1, 64), 16)
    sweep_window_s: float = var("REDRAW_SWEEP_WINDOW_S", "seconds one sweep keeps checking pending tasks as they "
                                "fall due, listing them again every few seconds (0: one pass)",
                                cs.float_schema(ge=0.0, le=900.0), 0.0, shown="0")
    check_min_gap_s: float = var("REDRAW_CHECK_MIN_GAP_S", "shortest wait between two checks of one task, in "
                                 "seconds; the schedule's other times derive from it (first check at 5x, listing "
                                 "every 2.5x)", cs.float_schema(ge=0.01, le=60.0), 2.0, shown="2")
    deliver_prefix: Optional[str] = var("REDRAW_DELIVER_PREFIX", "deliver each succeeded task's output into COS under "
                                        "this prefix, e.g. redrawn/ (uploads: in their own bucket at <prefix><key>)",
                                        _after(cs.str_schema(max_length=200), _prefix), None, shown="(empty: no delivery)")
    cos_endpoint: Optional[Endpoint] = var("REDRAW_COS_ENDPOINT", "send every COS request to this http(s)://IP:port "
                                           "(a local COS endpoint), the bucket's domain as Host",
                                           _after(cs.str_schema(), _cos_endpoint), None, shown="(empty: COS)")
    webhook_url: Optional[str] = var("REDRAW_WEBHOOK_URL", "one https endpoint told of every task's end "
                                     "(Standard Webhooks; needs REDRAW_FOLLOW_UP and REDRAW_WEBHOOK_SECRET)",
                                     _after(cs.str_schema(max_length=2048), _webhook_url), None,
                                     shown="(empty: none)", secret=True)
    webhook_allowed_hosts: Tuple[str, ...] = var(
        "REDRAW_WEBHOOK_ALLOWED_HOSTS", "comma-separated hosts a request's own Webhook URL may name; *.suffix "
        "allowed", _after(cs.str_schema(), lambda v: tuple(h.lower() for h in _items(v))), (),
        shown="(empty: requests may name none)")
    webhook_secret: Optional[str] = var("REDRAW_WEBHOOK_SECRET", "whsec_ + base64 of at least 24 random bytes: "
                                        "the key webhooks are signed with (required with any webhook)",
                                        _after(cs.str_schema(max_length=1024), _webhook_secret), None,
                                        shown="(empty)", secret=True)
    webhook_allow_private: bool = var("REDRAW_WEBHOOK_ALLOW_PRIVATE", "let webhooks go to private, loopback and "
                                      "link-local addresses, over http too (receivers inside a VPC, local runs)",
                                      _after(cs.str_schema(), _flag), False, shown="false")
    webhook_schedule: Tuple[float, ...] = var(
        "REDRAW_WEBHOOK_SCHEDULE", "seconds before each attempt of a webhook, after the one before (the "
        "Standard Webhooks schedule); past the last, webhook.abandoned",
        _after(cs.str_schema(), _schedule), DEFAULT_WEBHOOK_SCHEDULE,
        shown=",".join(str(int(s)) for s in DEFAULT_WEBHOOK_SCHEDULE))
    webhook_timeout: float = var("REDRAW_WEBHOOK_TIMEOUT", "seconds one webhook attempt may take in all "
                                 "(connect, TLS, request, answer), 0.5 to 10", cs.float_schema(ge=0.5, le=10.0),
                                 10.0, shown="10")
    download_url_expires: int = var("REDRAW_DOWNLOAD_URL_EXPIRES", "lifetime in seconds of the presigned "
                                    "download_url / DownloadUrl of a delivered output", _range(60, 7 * 24 * 3600),
                                    3600)
    secret_id: str = var("TENCENTCLOUD_SECRETID", "credential of the function's run role", cs.str_schema(),
                         shown="(injected by SCF)")
    secret_key: str = var("TENCENTCLOUD_SECRETKEY", "credential of the function's run role", cs.str_schema(),
                          shown="(injected by SCF)", secret=True)
    session_token: Optional[str] = var("TENCENTCLOUD_SESSIONTOKEN", "temporary credential token of the run role",
                                       cs.str_schema(), None, shown="(injected by SCF)", secret=True)
    function_region: str = var("TENCENTCLOUD_REGION", "the function's region", cs.str_schema(), "",
                               shown="(injected by SCF)")


#: name -> (default shown in docs, meaning), in documentation order: derived from Settings' fields.
VARIABLES: Dict[str, Tuple[str, str]] = {
    f.metadata["env"]: (f.metadata["shown"], f.metadata["meaning"]) for f in fields(Settings)}

#: variables whose empty value means something ("none"), not "use the default"
_BLANK_VALUES = frozenset(f.metadata["env"] for f in fields(Settings) if f.metadata["blank"])

_validator: Optional[SchemaValidator] = None


def _settings_validator() -> SchemaValidator:
    """The pydantic-core validator for ``Settings``, compiled on first use (once per container)."""
    global _validator
    if _validator is None:
        _validator = validator(dataclass_schema(
            Settings, {f.name: f.metadata["schema"] for f in fields(Settings)}, alias=lambda f: f.metadata["env"]))
    return _validator


def _problem(name: str, error: Any) -> str:
    if error["type"] == "missing":
        return f"{name} is required ({VARIABLES[name][1]})"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    for subject in ("Input should ", "String should ", "Value should "):
        if message.startswith(subject):
            message = "must " + message[len(subject):]
    return f"{name} {message}"


def _webhook_problems(settings: Settings) -> list:
    """What the webhook variables lack together (a secret, the follow-up, a deployment URL the SSRF
    rules allow); the URL and the secret are never quoted."""
    if not (settings.webhook_url or settings.webhook_allowed_hosts):
        return []
    problems = []
    if not settings.webhook_secret:
        problems.append("REDRAW_WEBHOOK_SECRET is required with REDRAW_WEBHOOK_URL or REDRAW_WEBHOOK_ALLOWED_HOSTS "
                        "(whsec_ + base64 of at least 24 random bytes)")
    if not settings.follow_up:
        problems.append("REDRAW_WEBHOOK_URL and REDRAW_WEBHOOK_ALLOWED_HOSTS need REDRAW_FOLLOW_UP=true "
                        "(the sweep notices a task's end and sends its webhook)")
    if settings.webhook_url:
        from .webhooks.guard import url_problem

        problem = url_problem(settings.webhook_url, allow_private=settings.webhook_allow_private)
        if problem:
            problems.append(f"REDRAW_WEBHOOK_URL {problem}")
    return problems


def load_settings(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Validate the environment; raise one ConfigError naming every bad variable (never a value)."""
    env = os.environ if env is None else env
    values = {name: env[name].strip() for name in VARIABLES
              if (env.get(name) or "").strip() or (name in env and name in _BLANK_VALUES)}
    problems = []
    settings: Optional[Settings] = None
    try:
        settings = _settings_validator().validate_python(values)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            loc = error.get("loc") or ("(configuration)",)
            problems.append(_problem(str(loc[0]), error))
    if settings is not None and settings.presign_urls and importlib.util.find_spec("qcloud_cos") is None:
        problems.append("REDRAW_PRESIGN_URLS needs the COS SDK in the package: "
                        'make package PACKAGE_ARGS="--extra cos-python-sdk-v5"')
    if settings is not None and settings.follow_up:
        if not settings.state_bucket:
            problems.append("REDRAW_STATE_BUCKET is required with REDRAW_FOLLOW_UP (the bucket of task records)")
        if not (settings.state_region or settings.function_region):
            problems.append("REDRAW_STATE_REGION (or TENCENTCLOUD_REGION) is required with REDRAW_FOLLOW_UP")
        if importlib.util.find_spec("qcloud_cos") is None:
            problems.append("REDRAW_FOLLOW_UP needs the COS SDK in the package: "
                            'make package PACKAGE_ARGS="--extra cos-python-sdk-v5"')
    if settings is not None:
        problems.extend(_webhook_problems(settings))
    if settings is not None and settings.redis_url and importlib.util.find_spec("redis") is None:
        problems.append("REDRAW_REDIS_URL needs the redis client in the package (requirements.txt)")
    if settings is not None:
        rules, rule_problems = load_rules(values.get("REDRAW_RULES"), settings.rules_file,
                                          deliver_prefix=settings.deliver_prefix, follow_up=settings.follow_up,
                                          video_suffixes=settings.video_suffixes)
        problems += rule_problems
        settings = replace(settings, rules=rules)
    if problems or settings is None:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    if not settings.region:
        settings = replace(settings, region=settings.function_region)
    if not settings.state_region:
        settings = replace(settings, state_region=settings.function_region)
    return settings
