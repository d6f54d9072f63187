"""structlog set up once: JSON lines on stdout, secrets removed from every line.

Pipeline: merge_contextvars → level filter → add level/timestamp → exception
formatting → redaction → JSONRenderer, written by structlog's PrintLogger (to the
current ``sys.stdout``, one lock for all threads). Redaction runs after exceptions
are rendered, so a traceback cannot carry a secret out either. Two steps are
ours because structlog has none: the redaction processor, and escaping U+0085,
U+2028 and U+2029 in the JSON text (the serializer below).
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

import structlog

REDACTED = "[REDACTED]"

#: Keys whose values are secrets, matched case-insensitively anywhere in the key.
_SECRET_KEY_RE = re.compile(
    r"secret|token|authorization|signature|password|passwd|credential|cookie|"
    r"^sign$|^x-cos-security|q-sign|private[-_]?key|api[-_]?key",
    re.IGNORECASE)
#: Secret-shaped fragments inside free text (signed URLs, auth headers).
_SECRET_TEXT_RE = re.compile(
    r"(q-signature=|q-key-time=|x-cos-security-token=|Signature=|q-ak=|Credential=|"
    r"(?:X-TC-Token|Authorization|SecretKey|Token)[\"']?\s*[:=]\s*[\"']?(?:TC3-HMAC-SHA256\s+)?)"
    r"[^&\s\"',;]+",
    re.IGNORECASE)
_NAMES = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
#: Characters some log pipelines treat as line breaks; inside JSON strings they may be escaped.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


class _Redactor:
    """Processor removing secrets by key name and by value."""

    def __init__(self) -> None:
        self.values: tuple = ()

    def _scrub(self, value: Any, depth: int = 0) -> Any:
        if depth > 20:
            return "[TRUNCATED]"
        if isinstance(value, str):
            for secret in self.values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return _SECRET_TEXT_RE.sub(lambda m: m.group(1) + REDACTED, value)
        if isinstance(value, dict):
            return {k: (REDACTED if isinstance(k, str) and _SECRET_KEY_RE.search(k) else
                        self._scrub(v, depth + 1)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._scrub(v, depth + 1) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self._scrub(str(value), depth + 1)

    def __call__(self, logger: Any, method: str, event_dict: Any) -> Any:
        return self._scrub(event_dict)


redactor = _Redactor()


def redact(value: Any) -> Any:
    """Scrub a value the same way log lines are scrubbed."""
    return redactor._scrub(value)


def _dumps(value: Any, **kw: Any) -> str:
    """json.dumps, escaping U+0085/U+2028/U+2029: valid raw in JSON, but some log pipelines split lines on them."""
    return json.dumps(value, **kw).translate(_LINE_BREAKS)


_configured_level: list = []


def configure(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Configure structlog (idempotent); register secret values to scrub."""
    redactor.values = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))
    if _configured_level == [level] and redactor in structlog.get_config()["processors"]:
        return  # already ours (someone else's structlog.configure would have replaced it)
    _configured_level[:] = [level]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            structlog.processors.JSONRenderer(_dumps, ensure_ascii=False, default=str),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_NAMES.get(level, 20)),
        logger_factory=structlog.PrintLoggerFactory(),  # file=None: the *current* sys.stdout (captured output works)
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:
    if not _configured_level:
        configure()
    return structlog.get_logger("redraw")
