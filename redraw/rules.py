"""Per-upload settings: rules by key prefix, the uploader's metadata, the media name.

A rule (``REDRAW_RULES``, a JSON list, or ``REDRAW_RULES_FILE``, a JSON file beside
``handler.py``) names a key ``prefix`` (and optionally a ``suffix``) and sets task fields for
the uploads under it; the longest matching prefix wins. The uploader may override some of them
for one object with ``x-cos-meta-redraw-*`` headers (``REDRAW_METADATA_OVERRIDES``). Precedence:
metadata > rule > environment defaults (an HTTP caller's own fields come first on its path).

Rules are validated once per container (``load_rules``, called by ``config.load_settings``);
errors name the rule (``REDRAW_RULES[3].Style``) and never a value. ``applied`` decides one
upload (pure: no I/O); a bad metadata value raises ``InvalidMetadataError`` for that record alone.
Rule and template validation is pydantic-core's (``extra="forbid"``), as for ``Settings``: the
``BaseModel`` machinery costs more at cold start than the whole upload path.
"""
from __future__ import annotations

import json
import os
import re
import string
import time
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from .errors import InvalidMetadataError
from .validation import dataclass_schema, shown_field, validator

MEDIA_NAME_MAX = 64        # OutputConfig.MediaName
STYLE_MAX = 50             # TaskInfo.Style
MAX_RULES = 500
MAX_RULES_FILE_BYTES = 1024 * 1024
META_PREFIX = "x-cos-meta-redraw-"
#: metadata suffix -> what it overrides (REDRAW_METADATA_OVERRIDES names the suffixes)
OVERRIDABLE = ("style", "priority", "media-name", "storage-mode")
DEFAULT_OVERRIDES = ("style", "priority")
PLACEHOLDERS = ("key", "name", "stem", "ext", "folder")
_DURATION = re.compile(r"^P(?:(\d{1,5})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,7})M)?(?:(\d{1,9})S)?)?$")
_MAX_DURATION_S = 100 * 366 * 86400
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_PRIORITY = re.compile(r"^[+-]?\d{1,3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CODE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where handler.py is


# --- templates -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """A MediaName template over the key: literal text and ``{placeholder}`` parts; empty: no name."""

    text: str
    parts: Tuple[Tuple[str, Optional[str]], ...] = ()

    def render(self, key: str) -> Optional[str]:
        """The name for ``key``, cut to 64 characters; None when it comes out empty."""
        if not self.parts:
            return None
        values = key_parts(key)
        out = "".join(literal + (values[name] if name else "") for literal, name in self.parts)
        return out[:MEDIA_NAME_MAX] or None


def key_parts(key: str) -> Dict[str, str]:
    folder, _, name = key.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem:  # "clip" or ".hidden": no extension
        stem, ext = name, ""
    return {"key": key, "name": name, "stem": stem, "ext": ext if dot else "", "folder": folder}


def template(text: str) -> Template:
    """Compile a template; ValueError naming an unknown placeholder (the template is configuration)."""
    parts: List[Tuple[str, Optional[str]]] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        raise ValueError("is not a valid template: write braces as {{ and }}, placeholders as {name}") from None
    for literal, name, spec, conversion in parsed:
        if name is not None and (name not in PLACEHOLDERS or spec or conversion):
            shown = shown_field(name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else ""))
            raise ValueError(f"names an unknown placeholder {{{shown}}}: use " +
                             ", ".join("{" + p + "}" for p in PLACEHOLDERS))
        parts.append((literal, name))
    return Template(text, tuple(p for p in parts if p[0] or p[1]))


# --- durations -------------------------------------------------------------------------------

def duration_seconds(text: str) -> int:
    """Seconds of an ISO 8601 duration of weeks, days, hours, minutes, seconds (``P30D``, ``PT12H``)."""
    match = _DURATION.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError("must be an ISO 8601 duration such as P30D, P1W or PT12H "
                         "(weeks, days, hours, minutes, seconds; no years or months)")
    w, d, h, m, s = (int(g or 0) for g in match.groups())
    seconds = (((w * 7 + d) * 24 + h) * 60 + m) * 60 + s
    if not 0 < seconds <= _MAX_DURATION_S:
        raise ValueError("must be longer than 0 seconds and at most 100 years")
    return seconds


def iso_after(seconds: int, now: Optional[float] = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((time.time() if now is None else now) + seconds))


# --- the rule model --------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One rule: which keys (``prefix``, ``suffix``), and what it sets (None: not set, inherited)."""

    prefix: str
    suffix: str = ""
    name: Optional[str] = None
    Style: Optional[str] = None
    TasksPriority: Optional[int] = None
    StorageMode: Optional[str] = None
    ClassId: Optional[int] = None
    MediaName: Optional[Template] = None
    ExpireTime: Optional[int] = None          # seconds after submission
    deliver_prefix: Optional[str] = None      # "": no delivery for these uploads
    skip: bool = False

    @property
    def label(self) -> str:
        """How lines, records and the SessionContext name the rule: its name, else prefix*suffix."""
        return self.name or (self.prefix + ("*" + self.suffix if self.suffix else ""))

    def sets(self) -> List[str]:
        return [f.name for f in fields(self) if f.name not in ("prefix", "suffix", "name", "skip")
                and getattr(self, f.name) is not None]


#: fields a rule may have, for the docs and `redraw config`
RULE_FIELDS = tuple(f.name for f in fields(Rule))


def _key_prefix(value: str) -> str:
    if value.startswith("/"):
        raise ValueError("must not start with / (object keys have no leading slash)")
    return value


def _deliver_prefix(value: str) -> str:
    if value == "":
        return value
    value = value.lstrip("/")
    if not value or any(part in (".", "..") for part in value.split("/")[:-1]):
        raise ValueError("must be a key prefix such as redrawn/, or empty for no delivery")
    return value if value.endswith("/") else value + "/"


def _after(schema: Any, fn: Any) -> Any:
    return cs.no_info_after_validator_function(fn, schema)


_rule_validator: Optional[SchemaValidator] = None


def rule_validator() -> SchemaValidator:
    """A list of rules; compiled on first use (once per container, only when rules are configured)."""
    global _rule_validator
    if _rule_validator is None:
        text = cs.str_schema
        rule = dataclass_schema(Rule, {
            "prefix": _after(text(strict=True, max_length=1024), _key_prefix),
            "suffix": _after(text(strict=True, max_length=256), str.lower),
            "name": cs.nullable_schema(text(strict=True, min_length=1, max_length=64)),
            "Style": cs.nullable_schema(text(strict=True, min_length=1, max_length=STYLE_MAX)),
            "TasksPriority": cs.nullable_schema(cs.int_schema(strict=True, ge=-10, le=10)),
            "StorageMode": cs.nullable_schema(cs.literal_schema(["Permanent", "Temporary"])),
            "ClassId": cs.nullable_schema(cs.int_schema(strict=True, ge=0, le=2 ** 63 - 1)),
            "MediaName": cs.nullable_schema(_after(text(strict=True, max_length=1024), template)),
            "ExpireTime": cs.nullable_schema(_after(text(strict=True, max_length=40), duration_seconds)),
            "deliver_prefix": cs.nullable_schema(_after(text(strict=True, max_length=200), _deliver_prefix)),
            "skip": cs.bool_schema(strict=True),
        }, extra="forbid")
        _rule_validator = validator(cs.list_schema(rule, max_length=MAX_RULES))
    return _rule_validator


@dataclass(frozen=True)
class RuleSet:
    """The container's rules, most specific first (longest prefix, then longest suffix)."""

    rules: Tuple[Rule, ...] = ()
    source: str = ""                 # "REDRAW_RULES", "REDRAW_RULES_FILE" or "" (none)

    def __post_init__(self) -> None:
        # an index: prefix -> its rules (longest suffix first), and the prefix lengths, longest first. A key
        # costs one dict lookup per distinct prefix length, not one comparison per rule (benchmarks/rules_bench.py)
        by_prefix: Dict[str, List[Rule]] = {}
        for rule in self.rules:
            by_prefix.setdefault(rule.prefix, []).append(rule)
        object.__setattr__(self, "_by_prefix", {p: tuple(r) for p, r in by_prefix.items()})
        object.__setattr__(self, "_lengths", tuple(sorted({len(p) for p in by_prefix}, reverse=True)))

    def match(self, key: str) -> Optional[Rule]:
        """The rule with the longest prefix of ``key`` (then the longest suffix it ends with), or None."""
        size, lowered = len(key), None
        for n in self._lengths:  # type: ignore[attr-defined]
            group = self._by_prefix.get(key[:n]) if n <= size else None  # type: ignore[attr-defined]
            for rule in group or ():
                if not rule.suffix:
                    return rule
                lowered = key.lower() if lowered is None else lowered
                if lowered.endswith(rule.suffix):
                    return rule
        return None

    @property
    def deliver_prefixes(self) -> Tuple[str, ...]:
        return tuple(r.deliver_prefix for r in self.rules if r.deliver_prefix)

    def describe(self) -> List[dict]:
        """The rules as `redraw config` lists them, in the order they are tried."""
        out = []
        for rule in self.rules:
            row: Dict[str, Any] = {"rule": rule.label, "prefix": rule.prefix}
            if rule.suffix:
                row["suffix"] = rule.suffix
            if rule.skip:
                row["skip"] = True
            for name in rule.sets():
                value = getattr(rule, name)
                row[name] = value.text if isinstance(value, Template) else \
                    f"+{value} s" if name == "ExpireTime" else value
            out.append(row)
        return out


NO_RULES = RuleSet()


def _problem(where: str, error: Any) -> str:
    loc = [p for p in error.get("loc", ())]
    name = where + "".join(f"[{p}]" if isinstance(p, int) else f".{shown_field(str(p))}" for p in loc)
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"{name} is not a rule field (fields: {', '.join(RULE_FIELDS)})"
    if kind == "missing":
        return f"{name} is required"
    message = str(error.get("msg", "is invalid"))
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    for subject in ("Input should ", "String should ", "Value should ", "List should "):
        if message.startswith(subject):
            message = "must " + message[len(subject):]
    if kind == "dataclass_type":
        message = "must be a JSON object"
    return f"{name} {message}"


def _read(text: Optional[str], path: Optional[str]) -> Tuple[str, Any, List[str]]:
    """``(source, parsed JSON, problems)`` of the configured rules."""
    if text and path:
        return "", None, ["REDRAW_RULES and REDRAW_RULES_FILE are both set: keep one"]
    if path:
        source = "REDRAW_RULES_FILE"
        full = path if os.path.isabs(path) else os.path.join(_CODE_DIR, path)
        try:
            with open(full, "rb") as handle:
                raw = handle.read(MAX_RULES_FILE_BYTES + 1)
        except OSError as exc:
            return source, None, [f"REDRAW_RULES_FILE cannot be read ({exc.strerror or type(exc).__name__}; "
                                  "a relative path is read beside handler.py)"]
        if len(raw) > MAX_RULES_FILE_BYTES:
            return source, None, ["REDRAW_RULES_FILE is larger than 1 MiB"]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return source, None, ["REDRAW_RULES_FILE is not UTF-8 text"]
    else:
        source = "REDRAW_RULES"
    try:
        return source, json.loads(text or ""), []
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return source, None, [f"{source} is not valid JSON{where}"]


def load_rules(text: Optional[str], path: Optional[str], *, deliver_prefix: Optional[str], follow_up: bool,
               video_suffixes: Sequence[str]) -> Tuple[RuleSet, List[str]]:
    """Validate the configured rules: ``(rules, problems)``; problems name rules and fields, never values."""
    if not text and not path:
        return NO_RULES, []
    source, data, problems = _read(text, path)
    if problems:
        return NO_RULES, problems
    if not isinstance(data, list):
        return NO_RULES, [f"{source} must be a JSON list of rules"]
    try:
        rules: List[Rule] = rule_validator().validate_python(data)
    except ValidationError as exc:
        named = {i: str(r["name"]) for i, r in enumerate(data) if isinstance(r, dict) and isinstance(r.get("name"), str)}
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            line = _problem(source, error)
            index = (error.get("loc") or (None,))[0]
            if index in named:
                line += f' (rule "{shown_field(named[index])}")'
            problems.append(line)
        return NO_RULES, problems
    seen: Dict[Tuple[str, str], int] = {}
    names: Dict[str, int] = {}
    own = tuple(p for p in [deliver_prefix or ""] + [r.deliver_prefix or "" for r in rules] if p)
    suffixes = tuple(s.lower() for s in video_suffixes)
    for i, rule in enumerate(rules):
        at = f"{source}[{i}]"
        if (rule.prefix, rule.suffix) in seen:
            problems.append(f"{at} has the same prefix and suffix as {source}[{seen[rule.prefix, rule.suffix]}]")
        seen.setdefault((rule.prefix, rule.suffix), i)
        if rule.name is not None:
            if rule.name in names:
                problems.append(f"{at}.name is the name of {source}[{names[rule.name]}] too")
            names.setdefault(rule.name, i)
        if rule.skip and rule.sets():
            problems.append(f"{at} skips its uploads, so it cannot also set {', '.join(rule.sets())}")
        under = next((p for p in own if rule.prefix.startswith(p)), None)
        if under is not None:
            problems.append(f"{at}.prefix lies under a delivery prefix (REDRAW_DELIVER_PREFIX or a rule's "
                            "deliver_prefix): redraw's own outputs never start a task, so the rule never applies")
        if rule.suffix and not any(rule.suffix.endswith(v) or v.endswith(rule.suffix) for v in suffixes):
            problems.append(f"{at}.suffix fits none of REDRAW_VIDEO_SUFFIXES: no key ending in it starts a "
                            "task, so the rule never applies")
        if rule.deliver_prefix and not follow_up:
            problems.append(f"{at}.deliver_prefix needs REDRAW_FOLLOW_UP=true (delivery is part of the follow-up)")
    ordered = sorted(rules, key=lambda r: (len(r.prefix), len(r.suffix)), reverse=True)
    return RuleSet(tuple(ordered), source), problems


def filter_problems(ruleset: RuleSet, prefix: str, suffix: str) -> Tuple[List[str], List[str]]:
    """``(errors, warnings)`` of the rules against a COS trigger's filter (known to the CLI from
    serverless.yml, not to the function: SCF does not tell a function its trigger's filter)."""
    errors, warnings = [], []
    for rule in ruleset.rules:
        what = f'rule "{rule.label}"'
        if not (rule.prefix.startswith(prefix) or prefix.startswith(rule.prefix)):
            errors.append(f"{what}: its prefix lies outside the trigger's prefix {prefix!r}: it never applies")
        elif prefix.startswith(rule.prefix) and rule.prefix != prefix:
            warnings.append(f"{what}: its prefix is shorter than the trigger's {prefix!r}, so it applies to "
                            "every upload the trigger sends (a catch-all)")
        low = suffix.lower()
        if suffix and rule.suffix and not (rule.suffix.endswith(low) or low.endswith(rule.suffix)):
            errors.append(f"{what}: its suffix does not fit the trigger's suffix {suffix!r}: it never applies")
    return errors, warnings


# --- one upload --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Applied:
    """What one upload gets: the rule that matched, and each setting after metadata > rule > environment."""

    rule: Optional[str]
    skip: bool = False
    style: Optional[str] = None
    priority: Optional[int] = None
    storage_mode: Optional[str] = None
    class_id: Optional[int] = None
    media_name: Optional[str] = None
    expire_time: Optional[str] = None
    deliver_prefix: Optional[str] = None
    from_metadata: Tuple[str, ...] = ()     # the headers that changed something
    ignored_metadata: Tuple[str, ...] = ()  # x-cos-meta-redraw-* headers this deployment does not allow

    def params(self) -> dict:
        """The task fields for VOD (TaskInfo, OutputConfig, TasksPriority)."""
        params: dict = {}
        if self.style:
            params["TaskInfo"] = {"Style": self.style}
        output = {k: v for k, v in (("StorageMode", self.storage_mode), ("MediaName", self.media_name),
                                    ("ClassId", self.class_id), ("ExpireTime", self.expire_time)) if v is not None}
        if output:
            params["OutputConfig"] = output
        if self.priority is not None:
            params["TasksPriority"] = self.priority
        return params

    def summary(self) -> dict:
        """What was sent, as the cos.record line, the task's record and the receipt name it."""
        return {"style": self.style, "priority": self.priority, "storage_mode": self.storage_mode,
                "media_name": self.media_name}


def _metadata_value(header: str, value: Any, suffix: str) -> Any:
    """The usable value of one allowed header; InvalidMetadataError saying what is wrong (not the value)."""
    if not isinstance(value, str):
        raise InvalidMetadataError(f"{header} is not text")
    if _PERCENT.search(value):  # COS keeps what the uploader's client sent: some percent-encode non-ASCII
        try:
            value = unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise InvalidMetadataError(f"{header} is not valid percent-encoded UTF-8") from None
    value = value.strip()
    if not value:
        raise InvalidMetadataError(f"{header} is empty")
    if _CONTROL.search(value):
        raise InvalidMetadataError(f"{header} holds control characters")
    if suffix == "style":
        if len(value) > STYLE_MAX:
            raise InvalidMetadataError(f"{header} is longer than {STYLE_MAX} characters (TaskInfo.Style's limit)")
        return value
    if suffix == "priority":
        if not _PRIORITY.match(value) or not -10 <= int(value) <= 10:
            raise InvalidMetadataError(f"{header} must be an integer from -10 to 10 (TasksPriority)")
        return int(value)
    if suffix == "media-name":
        if len(value) > MEDIA_NAME_MAX:
            raise InvalidMetadataError(f"{header} is longer than {MEDIA_NAME_MAX} characters "
                                       "(OutputConfig.MediaName's limit)")
        return value
    mode = value.capitalize()
    if mode not in ("Permanent", "Temporary"):
        raise InvalidMetadataError(f"{header} must be Permanent or Temporary (OutputConfig.StorageMode)")
    return mode


def overrides_of(meta: Optional[Dict[str, Any]], allowed: Sequence[str]) -> Tuple[Dict[str, Any], Tuple[str, ...]]:
    """``({suffix: value}, ignored headers)`` of an upload's metadata; header names case-insensitive.
    Raises InvalidMetadataError naming every bad header."""
    found: Dict[str, Any] = {}
    ignored: List[str] = []
    problems: List[str] = []
    for raw_name, value in (meta or {}).items():
        header = str(raw_name).lower()
        if not header.startswith(META_PREFIX):
            continue
        suffix = header[len(META_PREFIX):]
        if suffix not in allowed:
            ignored.append(shown_field(header))
            continue
        try:
            found[suffix] = _metadata_value(header, value, suffix)
        except InvalidMetadataError as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidMetadataError("; ".join(sorted(problems)))
    return found, tuple(sorted(ignored))


def applied(settings: Any, key: str, meta: Optional[Dict[str, Any]], now: Optional[float] = None) -> Applied:
    """What an upload of ``key`` with this metadata gets (``settings``: redraw.config.Settings).

    Pure: the same key, metadata and configuration give the same answer (ExpireTime counts from ``now``).
    """
    ruleset = settings.rules if isinstance(settings.rules, RuleSet) else NO_RULES
    rule = ruleset.match(key)
    if rule is not None and rule.skip:  # no task: the metadata does not matter
        return Applied(rule.label, skip=True)
    overrides, ignored = overrides_of(meta, settings.metadata_overrides)

    def pick(field: str, default: Any) -> Any:
        value = getattr(rule, field) if rule is not None else None
        return default if value is None else value

    name_template = pick("MediaName", settings.media_name)
    expire = pick("ExpireTime", None)
    used = tuple(META_PREFIX + s for s in OVERRIDABLE if s in overrides)
    return Applied(
        rule=rule.label if rule is not None else None,
        style=overrides.get("style", pick("Style", settings.style)),
        priority=overrides.get("priority", pick("TasksPriority", settings.tasks_priority)),
        storage_mode=overrides.get("storage-mode", pick("StorageMode", settings.storage_mode)),
        class_id=pick("ClassId", settings.class_id),
        media_name=overrides.get("media-name", name_template.render(key) if name_template else None),
        expire_time=iso_after(expire, now) if expire is not None else None,
        deliver_prefix=pick("deliver_prefix", settings.deliver_prefix),
        from_metadata=used, ignored_metadata=ignored)


def overrides_setting(value: str) -> Tuple[str, ...]:
    """REDRAW_METADATA_OVERRIDES: comma-separated names of OVERRIDABLE (empty: none)."""
    names = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in OVERRIDABLE]
    if unknown:
        raise ValueError("names what no header can override: use any of " + ", ".join(OVERRIDABLE))
    return names
