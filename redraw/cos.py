"""From a COS record to what VOD needs: object key, fetchable URL, SessionId, SessionContext.

Pure functions, except the optional presigning, which imports the COS SDK
only when the switch is on.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Optional, Tuple
from urllib.parse import quote, unquote, urlsplit

from .errors import InvalidEventError
from .events import CosRecord

MAX_INPUT_BYTES = 2 * 1024 ** 3           # the API's input limit: under 2 GB
SESSION_ID_MAX = 50
SESSION_CONTEXT_MAX = 1000
_REGION_IN_HOST = re.compile(r"\.cos\.([a-z0-9-]+)\.myqcloud\.com$")
_SAFE = "/-_.~"  # everything else is percent-encoded, '+' and '#' included


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
        return f"{self.scheme}://{self.host}/{quote(self.key, safe=_SAFE)}"


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
    """A GET URL signed with the function's own credentials (private buckets)."""
    from qcloud_cos import CosConfig, CosS3Client  # optional feature: imported only when used

    config = CosConfig(Domain=upload.host, Scheme=upload.scheme, SecretId=secret_id,
                       SecretKey=secret_key, Token=token, Region=upload.region or None)
    params = {"x-cos-security-token": token} if token else {}
    return CosS3Client(config).get_presigned_url(
        Bucket=upload.bucket, Key=upload.key, Method="GET", Expired=expires, Params=params)


def without_query(url: str) -> str:
    """The URL as it may be logged: no query string, so no signature or token."""
    return url.split("?", 1)[0].split("#", 1)[0]
