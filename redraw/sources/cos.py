"""COS upload notifications: the record model, the upload it names, and the batch's answer.

Records are validated one by one (a bad record fails alone, its neighbours
still go through). From a valid record come the object key, a URL VOD can
fetch, a SessionId derived from the upload (a redelivered event names the
same id) and the SessionContext. Presigning imports the COS SDK only when
the switch is on.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from .. import core, policy, rules
from ..config import Settings
from ..errors import InvalidEventError, InvalidMetadataError, RetryableFailuresError, UpstreamError
from ..retries import Deadline
from ..runtime import Runtime
from ..validation import dataclass_schema, field_errors, validator

MAX_INPUT_BYTES = 2 * 1024 ** 3           # the API's input limit: under 2 GB
SESSION_ID_MAX = 50
SESSION_CONTEXT_MAX = 1000
_APPID_PREFIX = re.compile(r"^/\d+/[^/]+/(.+)$", re.S)
_REGION_IN_HOST = re.compile(r"\.cos\.([a-z0-9-]+)\.myqcloud\.com$")
_SAFE = "/-_.~"  # everything else is percent-encoded, '+' and '#' included
_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}  # HTTP clients resolve these: encoded, they name the object


@dataclass(frozen=True)
class CosObject:
    key: str
    url: Optional[str] = None
    size: Optional[int] = None
    vid: Optional[str] = None
    meta: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CosBucket:
    name: str
    appid: Optional[Union[str, int]] = None
    region: Optional[str] = None


@dataclass(frozen=True)
class CosInfo:
    cosObject: CosObject
    cosBucket: CosBucket


@dataclass(frozen=True)
class CosEventInfo:
    eventName: str
    eventTime: Optional[Union[int, float, str]] = None


@dataclass(frozen=True)
class CosRecord:
    """One record of a COS notification (unknown fields ignored)."""

    cos: CosInfo
    event: CosEventInfo

    @property
    def bucket(self) -> str:
        """The bucket's full name, ``name-appid``."""
        name, appid = self.cos.cosBucket.name, self.cos.cosBucket.appid
        if appid in (None, "") or name.endswith(f"-{appid}"):
            return name
        return f"{name}-{appid}"


def _size(value: Any) -> Any:  # older events carry the size as a string
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    return value


def _compact(value: str) -> str:
    # Old console templates and the scf CLI write "cos: ObjectCreated: *":
    # the same event as "cos:ObjectCreated:*".
    return "".join(value.split()) or value


_validator: Optional[SchemaValidator] = None


def record_validator() -> SchemaValidator:
    """The pydantic-core validator of a record, compiled on first use (once per container)."""
    global _validator
    if _validator is None:
        text = cs.str_schema
        obj = dataclass_schema(CosObject, {
            "key": text(min_length=1, max_length=16384),
            "url": cs.nullable_schema(text(max_length=16384)),
            "size": cs.no_info_before_validator_function(_size, cs.nullable_schema(cs.int_schema(ge=0))),
            "vid": cs.nullable_schema(text()),
            "meta": cs.no_info_before_validator_function(lambda v: {} if v is None else v,
                                                         cs.dict_schema(text(), cs.any_schema())),
        })
        bucket = dataclass_schema(CosBucket, {
            "name": text(min_length=1, max_length=256),
            "appid": cs.nullable_schema(cs.union_schema([text(), cs.int_schema()])),
            "region": cs.nullable_schema(text()),
        })
        event = dataclass_schema(CosEventInfo, {
            "eventName": cs.no_info_after_validator_function(_compact, text(min_length=1, max_length=128)),
            "eventTime": cs.nullable_schema(cs.union_schema([cs.int_schema(), cs.float_schema(), text()])),
        })
        info = dataclass_schema(CosInfo, {"cosObject": obj, "cosBucket": bucket})
        _validator = validator(dataclass_schema(CosRecord, {"cos": info, "event": event}))
    return _validator


def parse_record(raw: Any) -> CosRecord:
    """Validate one record; raise InvalidEventError naming the bad fields."""
    if not isinstance(raw, dict):
        raise InvalidEventError("record must be a JSON object")
    try:
        return record_validator().validate_python(raw)
    except ValidationError as exc:
        names = ", ".join(f"{f['field']} ({f['problem']})" for f in field_errors(exc))
        raise InvalidEventError(f"invalid COS record: {names}") from None


def record_key_hint(raw: Any) -> Optional[str]:
    """Best-effort decoded object key of a raw record, for records that failed validation.

    Decoded like a valid record's key (``/APPID/NAME/`` prefix removed,
    percent-decoding undone), so every result names its object the same way.
    """
    def part(*path: str) -> Any:
        value = raw
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        return value

    key = part("cos", "cosObject", "key")
    if not isinstance(key, str) or not key:
        return None
    name, appid = part("cos", "cosBucket", "name"), part("cos", "cosBucket", "appid")
    if isinstance(name, str) and isinstance(appid, (str, int)) and not isinstance(appid, bool) and appid != "":
        short = name[:-len(f"-{appid}")] if name.endswith(f"-{appid}") else name
        for prefix in (f"/{appid}/{short}/", f"/{appid}/{name}/", f"/{appid}/{short}-{appid}/"):
            if key.startswith(prefix):
                return unquote(key[len(prefix):], errors="replace")
    match = _APPID_PREFIX.match(key)  # no usable bucket: COS writes every key as /APPID/NAME/key
    return unquote(match.group(1) if match else key.lstrip("/"), errors="replace")


@dataclass(frozen=True)
class Upload:
    """One uploaded object, as the function sees it."""

    bucket: str          # name-appid
    key: str             # decoded object key
    scheme: str
    host: str
    region: str          # ap-chengdu, from the host ("" when unknown)
    event_name: str
    size: Optional[int]
    session_id: str

    @property
    def url(self) -> str:
        """The object's plain URL, key percent-encoded once."""
        return f"{self.scheme}://{self.host}/{_dot_segments_encoded(quote(self.key, safe=_SAFE))}"


def _dot_segments_encoded(path: str) -> str:
    """``.`` and ``..`` path segments percent-encoded, so no client resolves them to another object."""
    return "/".join(_DOT_SEGMENTS.get(part, part) for part in path.split("/"))


def _decode(encoded: str) -> str:
    try:
        return unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise InvalidEventError("cos.cosObject.key is not valid percent-encoded UTF-8") from None


def object_key(record: CosRecord) -> str:
    """The decoded key; the event's ``/APPID/NAME/key`` form is percent-encoded."""
    raw = record.cos.cosObject.key
    name, appid = record.cos.cosBucket.name, record.cos.cosBucket.appid
    short = name[:-len(f"-{appid}")] if name.endswith(f"-{appid}") else name
    for prefix in (f"/{appid}/{short}/", f"/{appid}/{record.bucket}/"):
        if appid not in (None, "") and raw.startswith(prefix):
            return _decode(raw[len(prefix):])
    url = record.cos.cosObject.url
    if url:
        path = urlsplit(url).path.lstrip("/")
        if path:
            return _decode(path)
    return _decode(raw.lstrip("/"))


def session_id_for(record: CosRecord, key: str) -> str:
    """Deterministic SessionId: same upload (even redelivered) → same id; new upload → new id."""
    obj, ev = record.cos.cosObject, record.event
    meta = {str(k).lower(): v for k, v in (obj.meta or {}).items()}
    identity = [
        record.bucket, key,
        str(meta.get("x-cos-request-id") or ""),
        str(ev.eventTime if ev.eventTime is not None else ""),
        str(obj.size if obj.size is not None else ""),
        str(obj.vid or ""),
        str(meta.get("etag") or ""),
    ]
    digest = hashlib.sha256("\x1f".join(identity).encode("utf-8")).hexdigest()
    return ("redraw-cos-" + digest)[:SESSION_ID_MAX]


def session_context_for(trigger: str, bucket: str, key: str, extra: Optional[dict] = None) -> str:
    """Compact JSON naming trigger, bucket and key; always ≤ 1000 characters."""
    base = {"trigger": trigger, "bucket": bucket, "key": key, **(extra or {})}
    text = json.dumps(base, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= SESSION_CONTEXT_MAX:
        return text
    # Too long: keep a prefix of the key plus its hash, so the object stays identifiable.
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    lo, hi, best = 0, len(key), ""
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = dict(base, key=key[:mid], key_truncated=True, key_sha256=digest)
        text = json.dumps(candidate, ensure_ascii=False, separators=(",", ":"))
        if len(text) <= SESSION_CONTEXT_MAX:
            best, lo = text, mid + 1
        else:
            hi = mid - 1
    if not best:  # the bucket name alone is absurdly long: keep only what must be there
        best = json.dumps({"trigger": trigger, "key_sha256": digest}, separators=(",", ":"))
    return best


def upload_of(record: CosRecord) -> Upload:
    key = object_key(record)
    if not key:
        raise InvalidEventError("cos.cosObject.key names no object")
    url = record.cos.cosObject.url
    if not url:
        raise InvalidEventError("cos.cosObject.url is missing")
    try:
        parts = urlsplit(url)
        host = parts.netloc
    except ValueError:
        raise InvalidEventError("cos.cosObject.url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host or "@" in host:
        raise InvalidEventError("cos.cosObject.url must be an http(s) URL")
    match = _REGION_IN_HOST.search(parts.hostname or "")
    return Upload(
        bucket=record.bucket, key=key, scheme=parts.scheme, host=host,
        region=match.group(1) if match else "", event_name=record.event.eventName,
        size=record.cos.cosObject.size, session_id=session_id_for(record, key))


def skip_reason(upload: Upload, video_suffixes: Tuple[str, ...]) -> Optional[str]:
    """Why this upload starts no task, or None when it should."""
    name = upload.event_name
    if name.startswith("cos:ObjectRemove"):
        return "object removed: nothing to redraw"
    if not name.startswith("cos:ObjectCreated"):
        return f"event {name[:64]} is not an upload"
    if upload.key.endswith("/"):
        return "folder marker, not a video"
    if not upload.key.lower().endswith(tuple(video_suffixes)):
        return "not a video: suffix is not one of REDRAW_VIDEO_SUFFIXES"
    if upload.size is not None and upload.size >= MAX_INPUT_BYTES:
        return f"object is {upload.size} bytes; VOD accepts inputs under 2 GB"
    return None


def presigned_url(upload: Upload, secret_id: str, secret_key: str, token: Optional[str],
                  expires: int) -> str:
    """A GET URL signed with the function's own credentials (private buckets).

    Always https, whatever scheme the event's URL has (real COS events carry
    http:// URLs): the URL carries the signature and, with a run role, the token.
    Dot segments are encoded as in the plain URL (recent SDKs write "./" as ".%2F" already).
    """
    from qcloud_cos import CosConfig, CosS3Client  # optional feature: imported only when used

    config = CosConfig(Domain=upload.host, Scheme="https", SecretId=secret_id,
                       SecretKey=secret_key, Token=token, Region=upload.region or None)
    params = {"x-cos-security-token": token} if token else {}
    url = CosS3Client(config).get_presigned_url(
        Bucket=upload.bucket, Key=upload.key, Method="GET", Expired=expires, Params=params)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=_dot_segments_encoded(parts.path)))


def without_query(url: str) -> str:
    """The URL as it may be logged: no query string, so no signature or token."""
    return url.split("?", 1)[0].split("#", 1)[0]


# --- the batch ---------------------------------------------------------------------------

def _failed(outcome: core.Outcome, code: str, reason: str) -> core.Plan:
    outcome.status, outcome.reason = core.FAILED, reason
    outcome.error = UpstreamError(code, reason, decision=policy.TERMINAL)
    return core.Plan(outcome)


def plan_record(raw: Any, settings: Settings, now: Optional[float] = None) -> core.Plan:
    """What to do with one raw record: skip it, fail it, or submit these params.

    ``Plan.source`` names the upload and, once decided, the rule and settings applied (``rule``,
    ``applied``: what the cos.record line, the task's record and its receipt show).
    """
    try:
        record = parse_record(raw)
        upload = upload_of(record)
    except InvalidEventError as exc:
        return core.Plan(core.Outcome(core.FAILED, key=record_key_hint(raw), reason=exc.message,
                                      error=UpstreamError(policy.INVALID_EVENT, exc.message,
                                                          decision=policy.TERMINAL)))
    outcome = core.Outcome(core.SKIPPED, session_id=upload.session_id, key=upload.key,
                           url=without_query(upload.url))
    source: Dict[str, Any] = {"trigger": "cos", "bucket": upload.bucket, "region": upload.region, "key": upload.key}
    reason = skip_reason(upload, settings.video_suffixes)
    ruleset = settings.rules if isinstance(settings.rules, rules.RuleSet) else rules.NO_RULES
    own = tuple(p for p in (settings.deliver_prefix,) + ruleset.deliver_prefixes if p)
    if not reason and own and upload.key.startswith(own):
        # loop-safe: an output redraw delivered (REDRAW_DELIVER_PREFIX, a rule's deliver_prefix) never becomes a new task
        reason = ("under REDRAW_DELIVER_PREFIX (or a rule's deliver_prefix): a redrawn output delivered by redraw, "
                  "not a new upload")
    if reason:
        outcome.reason = reason
        return core.Plan(outcome)
    try:
        applied = rules.applied(settings, upload.key, record.cos.cosObject.meta, now)
    except InvalidMetadataError as exc:
        failed = _failed(outcome, exc.code, exc.message)
        failed.source = source
        return failed
    source["rule"] = applied.rule
    if applied.ignored_metadata:
        source["metadata_ignored"] = list(applied.ignored_metadata)
    if applied.skip:
        outcome.reason = f'rule "{applied.rule}" skips these uploads'
        return core.Plan(outcome, None, source)
    source["applied"] = applied.summary()
    if applied.from_metadata:
        source["metadata"] = list(applied.from_metadata)
    url = upload.url
    if settings.presign_urls:
        try:
            url = presigned_url(upload, settings.secret_id, settings.secret_key,
                                settings.session_token, settings.presign_expires)
        except Exception as exc:  # missing SDK, bad region...: a configuration problem
            return _failed(outcome, "PresignFailed", f"could not presign the object URL ({type(exc).__name__})")
        outcome.url = without_query(url)  # logged as sent, without the signature
    params = applied.params()
    context = {"event": upload.event_name, **({"rule": applied.rule} if applied.rule else {})}
    params.update({
        "SubAppId": settings.sub_app_id,
        "FileInfo": {"Type": "Url", "Url": url},
        "SessionId": upload.session_id,
        "SessionContext": session_context_for("cos", upload.bucket, upload.key, context),
    })
    if applied.deliver_prefix != settings.deliver_prefix:
        source["deliver_prefix"] = applied.deliver_prefix or ""
    return core.Plan(outcome, params, source)


#: what the cos.record line adds from a plan's source (the rule and settings applied)
_LINE_FIELDS = ("rule", "applied", "metadata", "metadata_ignored")


def handle(rt: Runtime, event: dict, deadline: Deadline, log: Any) -> dict:
    """``{"results": [...]}``, one entry per record in order; raises for records to redeliver."""
    plans = [plan_record(raw, rt.settings) for raw in event["Records"]]
    outcomes = core.submit_all(rt, plans, deadline)
    results = []
    for index, (plan, outcome) in enumerate(zip(plans, outcomes)):
        extra = {k: plan.source[k] for k in _LINE_FIELDS if plan.source and k in plan.source}
        core.log_outcome(log, "cos.record", outcome, record=index, **extra)
        results.append({**outcome.result(), **{k: extra[k] for k in ("rule", "applied") if k in extra}})
    counts = {s: sum(1 for r in results if r["status"] == s)
              for s in (core.SUBMITTED, core.DUPLICATE, core.SKIPPED, core.FAILED)}
    retry = [r for r, o in zip(results, outcomes) if o.redeliver]
    log.debug("cos.event", outcome="retry" if retry else "done", records=len(results),
              duration_ms=deadline.elapsed_ms(), **counts)
    if retry:
        raise RetryableFailuresError(retry)
    return {"results": results}
