"""Delivery: a succeeded task's output streamed from VOD's URL into COS, one part at a time.

Memory is bounded by one part (``cosclient.PART_SIZE``): the download is read part by part
and each part is uploaded before the next is read. The object appears only when complete
(a single PUT, or a completed multipart upload); a download cut off mid-stream aborts the
upload, so nothing half-written is ever visible. The object's metadata names the TaskId and
SessionId; an object that already carries this TaskId is not written again.
"""
from __future__ import annotations

import threading
from typing import Any, Iterator, Optional

from ..cosclient import PART_SIZE, STREAMS_AT_ONCE, CosStore
from ..errors import RedrawError
from ..retries import MIN_ATTEMPT_TIME, Deadline

TASK_ID_META = "x-cos-meta-redraw-task-id"
SESSION_ID_META = "x-cos-meta-redraw-session-id"
CONNECT_TIMEOUT, READ_TIMEOUT = 5.0, 30.0

_local = threading.local()
_streams = threading.BoundedSemaphore(STREAMS_AT_ONCE)  # per instance: memory is per instance


class OutputUnavailable(RedrawError):
    """The output could not be fetched: ``expired`` (it never will be) or a failure the next sweep retries."""

    code = "OutputUnavailable"

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class DeliveryDeferred(RedrawError):
    """No stream was free before the invocation's deadline: the next sweep delivers it."""

    code = "DeliveryDeferred"


def _session() -> Any:
    session = getattr(_local, "session", None)
    if session is None:
        import requests  # already loaded with the VOD SDK

        session = _local.session = requests.Session()
    return session


def target_key(deliver_to: dict, file_type: Optional[str]) -> str:
    key = str(deliver_to["key"])
    if deliver_to.get("append_file_type"):
        key += "." + (file_type or "mp4").lstrip(".").lower()
    return key


def _parts(response: Any, expected: Optional[int]) -> Iterator[bytes]:
    """The body in parts of PART_SIZE (the last may be shorter); OutputUnavailable when it is cut short."""
    total = 0
    try:
        while True:
            chunk = response.raw.read(PART_SIZE, decode_content=True)
            if not chunk:
                break
            total += len(chunk)
            yield chunk
            del chunk  # one part in memory: not kept while the next one is read
    except OutputUnavailable:
        raise
    except Exception as exc:  # urllib3's ProtocolError / IncompleteRead, timeouts: a cut-off download
        raise OutputUnavailable(f"the output download was cut off ({type(exc).__name__})") from None
    if expected is not None and total != expected:
        raise OutputUnavailable(f"the output download ended after {total} of {expected} bytes")


def deliver(store: CosStore, record: dict, file_url: str, file_type: Optional[str], deadline: Deadline) -> str:
    """Copy the output at ``file_url`` to the record's ``deliver_to``; returns ``cos://bucket/key``."""
    target = record["deliver_to"]
    bucket, region = target["bucket"], target["region"]
    key = target_key(target, file_type)
    uri = f"cos://{bucket}/{key}"
    existing = store.head(bucket, region, key, deadline)
    if existing is not None and existing.get(TASK_ID_META) == record["task_id"]:
        return uri  # delivered by an earlier sweep that stopped before it could say so
    if not _streams.acquire(timeout=max(0.0, deadline.remaining() - 4 * MIN_ATTEMPT_TIME)):
        raise DeliveryDeferred("every delivery stream of this instance was busy until its deadline")
    try:
        return _copy(store, record, file_url, bucket, region, key, uri, deadline)
    finally:
        _streams.release()


def _copy(store: CosStore, record: dict, file_url: str, bucket: str, region: str, key: str, uri: str,
          deadline: Deadline) -> str:
    try:
        response = _session().get(file_url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - requests' errors: unreachable for now
        raise OutputUnavailable(f"the output URL could not be reached ({type(exc).__name__})") from None
    with response:
        if response.status_code in (403, 404, 410):
            raise OutputUnavailable(f"the output URL answered HTTP {response.status_code}: it has expired "
                                    "or was removed", expired=True)
        if response.status_code != 200:
            raise OutputUnavailable(f"the output URL answered HTTP {response.status_code}")
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        content_type = response.headers.get("Content-Type") or "video/mp4"
        metadata = {TASK_ID_META: str(record["task_id"]), SESSION_ID_META: str(record.get("session_id") or "")}
        store.upload_stream(bucket, region, key, _parts(response, expected), deadline,
                            content_type=content_type, metadata=metadata)
    return uri
