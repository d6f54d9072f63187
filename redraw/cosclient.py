"""The COS adapter: the official SDK (``cos-python-sdk-v5``) behind a small interface.

The one place where COS requests leave the function (``vod.py`` is the other adapter).
Imported only by the follow-up (``REDRAW_FOLLOW_UP``), so the upload path never loads
the SDK when the follow-up is off. Every call is bounded by the invocation's deadline
and retried here (the SDK's own retries, which sleep up to 3 s, are switched off):
5xx, throttling and network failures are retried, a refusal (403) names the permission
the function's role lacks. ``REDRAW_COS_ENDPOINT`` sends every request to a local COS
endpoint, the bucket's own domain as the Host header (the SDK's ``IP``/``Port``).
"""
from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple, TypeVar

from .config import Settings
from .errors import StorageError
from .retries import MIN_ATTEMPT_TIME, Deadline, backoff

T = TypeVar("T")

#: Part size of multipart uploads (the one place that decides it): memory held per delivery.
PART_SIZE = 8 * 1024 * 1024
#: Streams (deliveries) one instance runs at once: their parts in memory are at most
#: PART_SIZE × STREAMS_AT_ONCE (16 MB), within the 64 MB memory class beside the function itself.
STREAMS_AT_ONCE = 2
#: Timeout of one request that carries a part (small requests use VOD_HTTP_TIMEOUT).
BULK_TIMEOUT = 60
MAX_ATTEMPTS = 4
FORBID_OVERWRITE = {"x-cos-forbid-overwrite": "true"}

# The SDK logs request headers (Authorization, x-cos-security-token) at DEBUG and the
# caller's headers at INFO: never let its records reach a handler.
_sdk_logger = logging.getLogger("qcloud_cos")
_sdk_logger.setLevel(logging.CRITICAL)
_sdk_logger.propagate = False

#: COS action the role needs for each operation (named in a 403's message).
_ACTIONS = {"put": "PutObject", "get": "GetObject", "head": "HeadObject", "delete": "DeleteObject",
            "list": "GetBucket", "multipart": "PutObject (multipart: InitiateMultipartUpload, UploadPart, "
            "CompleteMultipartUpload, AbortMultipartUpload)"}


def _prefix_of(key: str) -> str:
    """The first segment of a key (what a least-privilege policy names), never the whole key."""
    head, sep, _ = key.partition("/")
    return f"{head}/*" if sep else "*"


class CosStore:
    """Objects in COS buckets, by ``(bucket, region, key)``; one SDK client per region."""

    def __init__(self, settings: Settings, rng: Optional[random.Random] = None) -> None:
        self._settings = settings
        self._clients: Dict[Tuple[str, bool], Any] = {}
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    @property
    def timeout(self) -> float:
        """Seconds one small request may take (the SDK client's timeout)."""
        return float(max(1, int(round(self._settings.http_timeout))))

    # --- clients ------------------------------------------------------------------------------

    def _client(self, region: str, bulk: bool = False) -> Any:
        key = (region, bulk)
        client = self._clients.get(key)
        if client is not None:
            return client
        from qcloud_cos import CosConfig, CosS3Client  # the follow-up's dependency, loaded on first use

        s = self._settings
        options: Dict[str, Any] = dict(Region=region, SecretId=s.secret_id, SecretKey=s.secret_key,
                                       Token=s.session_token, Scheme="https",
                                       Timeout=BULK_TIMEOUT if bulk else int(self.timeout),
                                       PoolConnections=4, PoolMaxSize=max(4, s.sweep_concurrency))
        if s.cos_endpoint is not None:
            host, _, port = s.cos_endpoint.host.rpartition(":")
            options.update(IP=host.strip("[]"), Port=int(port), Scheme=s.cos_endpoint.scheme)
        client = CosS3Client(CosConfig(**options), retry=0)
        with self._lock:
            return self._clients.setdefault(key, client)

    # --- the retry loop -----------------------------------------------------------------------

    def _call(self, op: str, bucket: str, key: str, deadline: Deadline, send: Callable[[], T],
              attempts: int = MAX_ATTEMPTS) -> T:
        """Run ``send`` until it succeeds, a retry cannot help, or the deadline is near."""
        from qcloud_cos.cos_exception import CosClientError, CosServiceError
        from urllib3.exceptions import HTTPError

        attempt = 0
        while True:
            attempt += 1
            try:
                return send()
            except StorageError as exc:  # found by ``send`` itself (e.g. a body cut short)
                error = exc
            except CosServiceError as exc:
                error = self._service_error(op, bucket, key, exc.get_status_code(), exc.get_error_code())
            except CosClientError:
                error = StorageError(f"COS {op} on bucket {bucket} failed: COS could not be reached",
                                     retryable=True, cos_code="ClientError")
            except (OSError, ValueError, HTTPError) as exc:  # requests' errors are OSErrors, urllib3's
                # (a body cut short while it is read) HTTPErrors; bad XML a ValueError
                error = StorageError(f"COS {op} on bucket {bucket} failed ({type(exc).__name__})",
                                     retryable=True, cos_code=type(exc).__name__)
            wait = backoff(attempt, self._rng)
            if not error.retryable or attempt >= attempts or wait > deadline.remaining() - MIN_ATTEMPT_TIME:
                raise error
            time.sleep(wait)

    @staticmethod
    def _service_error(op: str, bucket: str, key: str, status: Any, code: Any) -> StorageError:
        status = int(status) if isinstance(status, int) or str(status).isdigit() else None
        code = str(code or "")
        if status == 403:
            action = _ACTIONS.get(op, op)
            return StorageError(
                f"COS refused {op} on bucket {bucket} ({code or 'AccessDenied'}): the function's role needs "
                f"cos:{action} on {bucket}/{_prefix_of(key)}", retryable=False, status=status, cos_code=code)
        retryable = status is None or status >= 500 or status in (408, 429)
        return StorageError(f"COS {op} on bucket {bucket} failed: HTTP {status} {code}".rstrip(),
                            retryable=retryable, status=status, cos_code=code)

    @staticmethod
    def _status(exc: BaseException) -> Optional[int]:
        getter = getattr(exc, "get_status_code", None)
        try:
            return int(getter()) if getter else None
        except (TypeError, ValueError):
            return None

    # --- operations ---------------------------------------------------------------------------

    def put_json(self, bucket: str, region: str, key: str, value: Any, deadline: Deadline,
                 create_only: bool = False, attempts: int = MAX_ATTEMPTS) -> bool:
        """Write ``value`` as readable JSON. With ``create_only``, False when the key already exists."""
        body = (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")
        return self.put_bytes(bucket, region, key, body, deadline, create_only=create_only,
                              content_type="application/json; charset=utf-8", attempts=attempts)

    def put_bytes(self, bucket: str, region: str, key: str, body: bytes, deadline: Deadline, *,
                  create_only: bool = False, content_type: str = "application/octet-stream",
                  metadata: Optional[Dict[str, str]] = None, attempts: int = MAX_ATTEMPTS) -> bool:
        from qcloud_cos.cos_exception import CosServiceError

        headers = {**(metadata or {}), **(FORBID_OVERWRITE if create_only else {})}

        def send() -> bool:
            try:
                self._client(region).put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                                                Metadata=headers)
            except CosServiceError as exc:
                if create_only and self._status(exc) == 409:
                    return False
                raise
            return True
        return self._call("put", bucket, key, deadline, send, attempts)

    def get_json(self, bucket: str, region: str, key: str, deadline: Deadline) -> Optional[Any]:
        """The object parsed as JSON; None when it does not exist. ValueError when it is not JSON."""
        raw = self.get_bytes(bucket, region, key, deadline)
        if raw is None:
            return None
        return json.loads(raw.decode("utf-8"))

    def get_bytes(self, bucket: str, region: str, key: str, deadline: Deadline,
                  limit: int = 1024 * 1024) -> Optional[bytes]:
        from qcloud_cos.cos_exception import CosServiceError

        def send() -> Optional[bytes]:
            try:
                answer = self._client(region).get_object(Bucket=bucket, Key=key)
            except CosServiceError as exc:
                if self._status(exc) == 404:
                    return None
                raise
            stream = answer["Body"].get_raw_stream()
            data = b""
            while len(data) <= limit:  # to the end of the body: one read may stop short of it
                chunk = stream.read(limit + 1 - len(data))
                if not chunk:
                    break
                data += chunk
            if len(data) > limit:
                raise StorageError(f"COS object in bucket {bucket} is larger than {limit} bytes",
                                   retryable=False)
            length = next((str(v) for k, v in answer.items() if str(k).lower() == "content-length"), "")
            if length.isdigit() and len(data) != int(length):  # the connection ended early: not the object
                raise StorageError(f"COS get on bucket {bucket} failed: the answer was cut short "
                                   f"({len(data)} of {length} bytes)", retryable=True, cos_code="IncompleteBody")
            return data
        return self._call("get", bucket, key, deadline, send)

    def head(self, bucket: str, region: str, key: str, deadline: Deadline) -> Optional[Dict[str, str]]:
        """The object's headers (lower-case names), or None when it does not exist."""
        from qcloud_cos.cos_exception import CosServiceError

        def send() -> Optional[Dict[str, str]]:
            try:
                headers = self._client(region).head_object(Bucket=bucket, Key=key)
            except CosServiceError as exc:
                if self._status(exc) == 404:
                    return None
                raise
            return {str(k).lower(): str(v) for k, v in headers.items()}
        return self._call("head", bucket, key, deadline, send)

    def delete(self, bucket: str, region: str, key: str, deadline: Deadline) -> None:
        from qcloud_cos.cos_exception import CosServiceError

        def send() -> None:
            try:
                self._client(region).delete_object(Bucket=bucket, Key=key)
            except CosServiceError as exc:
                if self._status(exc) != 404:
                    raise
        self._call("delete", bucket, key, deadline, send)

    def list(self, bucket: str, region: str, prefix: str, deadline: Deadline) -> Iterator[Tuple[str, float]]:
        """``(key, last_modified)`` of every object under ``prefix``, in key order, page by page."""
        marker = ""
        while True:
            page: dict = self._call("list", bucket, prefix, deadline, functools.partial(
                self._client(region).list_objects, Bucket=bucket, Prefix=prefix, Marker=marker, MaxKeys=1000))
            contents = page.get("Contents") or []
            if isinstance(contents, dict):  # one object: the SDK's XML reader gives a dict
                contents = [contents]
            for item in contents:
                key = item.get("Key")
                if isinstance(key, str):
                    yield key, _http_time(item.get("LastModified"))
            if str(page.get("IsTruncated", "false")).lower() != "true" or not contents:
                return
            marker = page.get("NextMarker") or contents[-1].get("Key") or ""

    def presign(self, bucket: str, region: str, key: str, expires: int) -> str:
        """A GET URL of the object, signed here (no request): https on COS, the local endpoint's
        scheme with ``REDRAW_COS_ENDPOINT``; it carries the run role's token when there is one."""
        token = self._settings.session_token
        return str(self._client(region).get_presigned_url(
            Bucket=bucket, Key=key, Method="GET", Expired=int(expires),
            Params={"x-cos-security-token": token} if token else {}))

    def upload_stream(self, bucket: str, region: str, key: str, parts: Iterable[bytes], deadline: Deadline, *,
                      content_type: str, metadata: Dict[str, str], create_only: bool = False) -> bool:
        """Write the object from ``parts`` (each PART_SIZE but the last, which may be shorter; one part in
        memory at a time: each is uploaded before the next is read).

        A first part shorter than PART_SIZE (the whole output): a single PUT. A full one: a multipart
        upload (even if it is the only part) whose object appears only when it is completed, and which
        is aborted when anything fails (nothing half-written is visible). With ``create_only``, False
        when the key already exists.
        """
        from qcloud_cos.cos_exception import CosServiceError

        iterator = iter(parts)
        held = [next(iterator, b"")]
        if len(held[0]) < PART_SIZE:  # the last part already: read on only to be sure
            more = next(iterator, None)
            if more is None:
                return self.put_bytes(bucket, region, key, held[0], deadline, create_only=create_only,
                                      content_type=content_type, metadata=metadata)
            held.append(more)  # a short part before others (not what delivery sends): COS judges its size
            del more
        client = self._client(region, bulk=True)
        created = self._call("multipart", bucket, key, deadline, lambda: client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, Metadata=metadata))
        upload_id = created["UploadId"]
        done = []
        try:
            number = 0
            for chunk in _drain(held, iterator):
                number += 1
                answer: dict = self._call("multipart", bucket, key, deadline, functools.partial(
                    client.upload_part, Bucket=bucket, Key=key, Body=chunk, PartNumber=number, UploadId=upload_id))
                del chunk
                done.append({"PartNumber": number, "ETag": answer["ETag"]})

            def complete() -> bool:
                try:
                    client.complete_multipart_upload(
                        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Part": done},
                        Metadata=FORBID_OVERWRITE if create_only else {})
                except CosServiceError as exc:
                    if create_only and self._status(exc) == 409:
                        return False
                    raise
                return True
            if not self._call("multipart", bucket, key, deadline, complete):
                self._abort(client, bucket, key, upload_id)
                return False
            return True
        except BaseException:
            self._abort(client, bucket, key, upload_id)
            raise

    @staticmethod
    def _abort(client: Any, bucket: str, key: str, upload_id: str) -> None:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # noqa: BLE001 - best effort: the parts are invisible; a lifecycle rule removes them
            pass


def _drain(held: list, rest: Iterator[bytes]) -> Iterator[bytes]:
    """The held parts, then the rest, keeping no reference to a part once it is handed on."""
    while held:
        yield held.pop(0)
    yield from rest


def _http_time(value: Any) -> float:
    """Epoch seconds of COS's ``LastModified`` (ISO 8601, e.g. 2026-12-05T08:00:00.000Z); 0 when unreadable."""
    from datetime import datetime, timezone

    if not isinstance(value, str):
        return 0.0
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()
