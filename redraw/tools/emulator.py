"""Loopback emulator of the VOD API 3.0 endpoint for CreateAigcVideoRedrawTask.

Standard library only; importing this module starts nothing.  Usage::

    with VodEmulator(known_file_ids={"5285890781234567890"}) as emu:
        profile = ClientProfile(httpProfile=HttpProfile(endpoint=emu.endpoint, protocol="http"))
        client = CommonClient("vod", "2018-07-17", Credential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY),
                              "ap-guangzhou", profile)
        client.call_json("CreateAigcVideoRedrawTask", {...})

or from a shell: ``python -m redraw.emulator --port 9000 --fault InternalError``.

Behaviour follows the real endpoint: TC3-HMAC-SHA256 verification exactly as
the Python SDK signs, the documented error codes, sliding-window rate limits
(20/s for CreateAigcVideoRedrawTask, 100/s for DescribeTaskDetail, each its own),
SessionId deduplication and a time-driven task lifecycle for DescribeTaskDetail.
Tasks end FINISH with an output, FINISH with ErrCode 70000 (a failed redraw: a
source containing "fail", or ``failure_rate``), or ABORTED (a source containing
"abort", or ``abort_rate``); tasks older than 3 days are unknown, as on VOD.

Each task reads its input as VOD does, once created (``vod_processing``): ``FileInfo.Url`` is
fetched when it maps to a local COS emulator (``input_routes``; presigned signatures checked
there) or names a loopback host (``fetch_inputs="local"``, the default; ``"all"``, ``"off"``).
An input that cannot be read ends the task FINISH with ErrCode 60000 and ErrCodeExt
``SourceFileError.DownloadNotAccessible``; a task stays PROCESSING until its input is read.

A succeeded task's ``FileUrl`` points back at this server,
``{url}/aigc/{TaskId}.mp4?t=<hex unix expiry>&sign=<hex HMAC-SHA256>``, and a
plain ``GET`` of it returns the input redrawn by ffmpeg (``redraw_output``: filtered, labelled,
H.264 + faststart) when the input was read and ffmpeg is there, else a small real MP4
(``data/redrawn-sample.mp4``), or that MP4 followed by generated filler up to ``output_bytes``,
streamed (Range, ETag and Content-Length included); a bad signature or a past ``t`` is 403.

Faults (error codes, HTTP 5xx, dropped connections, slow, malformed or empty
answers) can be queued per action with :meth:`VodEmulator.inject` or drawn at
random (``fault_rate``, ``describe_fault_rate``); output downloads have their own
(:meth:`VodEmulator.inject_output`, ``output_fault_rate``: cut, http5xx, drop, slow).
"""

from __future__ import annotations

import collections
import copy
import datetime
import email.utils
import hashlib
import heapq
import hmac
import http.server
import json
import os
import random
import re
import socket
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from .loopback import LoopbackServer, Served, parse_range
from .vod_input import FETCH_MODES, InputRoutes
from .vod_processing import FileContent, Job, Processing

__all__ = [
    "DEFAULT_SECRET_ID",
    "DEFAULT_SECRET_KEY",
    "RANDOM_DESCRIBE_FAULTS",
    "RANDOM_FAULTS",
    "RANDOM_OUTPUT_FAULTS",
    "VodEmulator",
    "main",
    "sample_mp4",
]

DEFAULT_SECRET_ID = "AKIDredrawEmulator"
DEFAULT_SECRET_KEY = "redraw-emulator-secret-key"

SERVICE = "vod"
API_VERSION = "2018-07-17"
CREATE_ACTION = "CreateAigcVideoRedrawTask"
DESCRIBE_ACTION = "DescribeTaskDetail"
ACTIONS = (CREATE_ACTION, DESCRIBE_ACTION)
OUTPUT_ACTION = "GetOutput"  # output downloads, as recorded in ``calls``
TASK_TYPE = "AigcVideoRedrawTask"
SESSION_WINDOW = 3 * 24 * 3600.0
TASK_RETENTION = 3 * 24 * 3600.0  # DescribeTaskDetail answers for tasks of the last 3 days only
OUTPUT_TTL = 7 * 24 * 3600.0  # temporary outputs of the sister AIGC APIs: FinishTime + 7 days
DESCRIBE_RPS = 100  # DescribeTaskDetail's documented limit (tencentcloud.com/document/api/266/34129)
ABORT_ERR_CODE = 70000
ABORT_MESSAGE = "The source video could not be processed."
FAIL_ERR_CODE = 70000
FAIL_ERR_CODE_EXT = "InternalError"
FAIL_MESSAGE = "Internal error: the redraw failed."
SUCCESS, FAILURE, ABORT = "success", "failure", "abort"  # a task's fate
#: how DescribeTaskDetail's Progress behaves while a task is PROCESSING (``progress_mode``)
PROGRESS_MODES = ("honest", "silent", "missing", "stall", "backwards", "over")
WAIT_SHARE = 0.1  # a task waits this share of its duration before it processes (when VOD is not busy)
SAMPLE_NAME = "redrawn-sample.mp4"
MAX_BODY = 8 * 1024 * 1024

RANDOM_FAULTS = (
    "InternalError",
    "RequestLimitExceeded",
    "http500",
    "drop",
    "drop_after_accept",
    "malformed",
    "slow:0.5",
)
RANDOM_DESCRIBE_FAULTS = (
    "InternalError",
    "RequestLimitExceeded",
    "http500",
    "http503",
    "drop",
    "malformed",
    "slow:0.5",
)
RANDOM_OUTPUT_FAULTS = ("cut", "http500", "http503", "drop", "slow:0.5")
_HTTP_FAULTS = {"http500": 500, "http502": 502, "http503": 503}
_OUTPUT_FAULTS = frozenset({"cut", "drop"}) | frozenset(_HTTP_FAULTS)
_OUTPUT_PATH_RE = re.compile(r"^/aigc/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})\.mp4$")
_HEX_RE = re.compile(r"^[0-9a-f]{1,16}$")
_FILL_BLOCK = 64 * 1024
_SPECIAL_FAULTS = frozenset({"drop", "drop_after_accept", "malformed", "empty"}) | frozenset(_HTTP_FAULTS)
_ERROR_CODE_RE = re.compile(r"^[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)*$")
_SLOW_RE = re.compile(r"^slow:(\d+(\.\d*)?|\.\d+)$")
_ISO8601_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MALFORMED_BODY = b'{"Response": {"TaskId": '

_ERROR_MESSAGES = {
    "InternalError": "Internal error.",
    "RequestLimitExceeded": "Your current request times exceeds the limit, please try again later.",
    "FailedOperation": "Operation failed.",
    "FailedOperation.InvalidVodUser": "The VOD service is not activated.",
    "UnauthorizedOperation": "Unauthorized operation.",
    "AuthFailure.SignatureFailure": (
        "The provided credentials could not be validated. Please check your signature is correct."
    ),
    "AuthFailure.SignatureExpire": "Signature expired.",
    "AuthFailure.SecretIdNotFound": "The SecretId is not found, please ensure that your SecretId is correct.",
    "AuthFailure.TokenFailure": "Token verification failed.",
    "AuthFailure.InvalidAuthorization": "Authorization is invalid.",
}

# Request schema of CreateAigcVideoRedrawTask: field -> type name, or a nested schema.
_FILE_INFO_SCHEMA = {"Type": "str", "FileId": "str", "Url": "str"}
_TASK_INFO_SCHEMA = {"Style": "str"}
_OUTPUT_CONFIG_SCHEMA = {"StorageMode": "str", "MediaName": "str", "ClassId": "int", "ExpireTime": "str"}
_CREATE_SCHEMA = {
    "SubAppId": "int",
    "FileInfo": _FILE_INFO_SCHEMA,
    "TaskInfo": _TASK_INFO_SCHEMA,
    "OutputConfig": _OUTPUT_CONFIG_SCHEMA,
    "SessionId": "str",
    "SessionContext": "str",
    "TasksPriority": "int",
    "ExtInfo": "str",
}
_DESCRIBE_SCHEMA = {"TaskId": "str", "SubAppId": "int"}


class ApiError(Exception):
    """An API error answered as HTTP 200 ``{"Response": {"Error": ...}}``."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or _ERROR_MESSAGES.get(code) or code


def _is_int(value) -> bool:
    """An API Integer: int64, as the real API parses it."""
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63


def _type_ok(value, type_name: str) -> bool:
    if type_name == "int":
        return _is_int(value)
    return isinstance(value, str)


def _present(obj: dict, key: str) -> bool:
    return obj.get(key) is not None


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _valid_iso8601(text: str) -> bool:
    m = _ISO8601_RE.match(text)
    if not m:
        return False
    tz = m.group(8)
    if tz != "Z" and (int(tz[1:3]) > 23 or int(tz[4:6]) > 59):
        return False
    try:
        year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def _hmac_sha256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    """TC3-HMAC-SHA256 signature, as ``tencentcloud.common.sign.Sign.sign_tc3``."""
    k_date = _hmac_sha256(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac_sha256(k_date, service)
    k_signing = _hmac_sha256(k_service, "tc3_request")
    return hmac.new(k_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _parse_fault(fault: str) -> str:
    if not isinstance(fault, str):
        raise TypeError(f"fault must be a string, not {type(fault).__name__}")
    if fault in _SPECIAL_FAULTS or _ERROR_CODE_RE.match(fault):
        return fault
    m = _SLOW_RE.match(fault)
    if m:
        return fault
    raise ValueError(
        f"unknown fault {fault!r}: use an error code (e.g. InternalError), http500/http502/http503, "
        "drop, drop_after_accept, slow:SECONDS, malformed or empty"
    )


def _parse_output_fault(fault: str) -> str:
    if not isinstance(fault, str):
        raise TypeError(f"fault must be a string, not {type(fault).__name__}")
    if fault in _OUTPUT_FAULTS or _SLOW_RE.match(fault):
        return fault
    raise ValueError(f"unknown output fault {fault!r}: use cut, drop, http500/http502/http503 or slow:SECONDS")


def _epoch(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 date-time as the API accepts it; None if it is not one."""
    m = _ISO8601_RE.match(text)
    if not m or not _valid_iso8601(text):
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    tz = m.group(8)
    offset = 0 if tz == "Z" else (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    naive = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc)
    return naive.timestamp() - offset + float(m.group(7) or 0)


_sample: bytes | None = None
_filler_base: bytes | None = None


def sample_mp4() -> bytes:
    """The output every succeeded task serves: a 1 s, 64x64 H.264 MP4 of a few KB (package data)."""
    global _sample
    if _sample is None:
        from importlib import resources

        _sample = resources.files(__package__ or "redraw.tools").joinpath("data").joinpath(SAMPLE_NAME).read_bytes()
    return _sample


def _base_block() -> bytes:
    global _filler_base
    if _filler_base is None:
        _filler_base = random.Random("redraw-emulator-filler").randbytes(_FILL_BLOCK)
    return _filler_base


class _OutputContent:
    """One task's output bytes: the sample MP4, then for larger sizes one MP4 ``free`` box of filler.

    Nothing but the sample is held in memory: filler blocks are made on demand from one shared
    64 KiB block, each tagged with the task and its index, so no two blocks (of one output or of
    two) are equal and a reordered, repeated or missing block changes a hash of the whole.
    """

    def __init__(self, task_id: str, size: int | None) -> None:
        sample = sample_mp4()
        self.size = max(int(size or 0), len(sample))
        gap = self.size - len(sample)
        if gap > 0xFFFFFFFF:
            header = (1).to_bytes(4, "big") + b"free" + gap.to_bytes(8, "big")
        elif gap >= 8:
            header = gap.to_bytes(4, "big") + b"free"
        else:
            header = b""
        self._head = sample + header
        digest = hashlib.sha256(f"{task_id}:{self.size}".encode() + hashlib.sha256(sample).digest()).digest()
        self._tag = digest[:16]
        self._shift = int.from_bytes(digest[16:20], "big")
        self.etag = '"' + digest.hex()[:32] + '"'

    def _block(self, index: int) -> bytes:
        base = _base_block()
        r = (index * 40503 + self._shift) % _FILL_BLOCK
        rotated = base[r:] + base[:r]
        return self._tag + index.to_bytes(8, "big") + rotated[24:]

    def chunks(self, start: int, stop: int):
        """The bytes [start, stop), in pieces of at most 64 KiB."""
        pos = start
        head = len(self._head)
        if pos < head:
            piece = self._head[pos:min(stop, head)]
            yield piece
            pos += len(piece)
        while pos < stop:
            index, offset = divmod(pos - head, _FILL_BLOCK)
            n = min(_FILL_BLOCK - offset, stop - pos)
            yield self._block(index)[offset:offset + n]
            pos += n


def _working(task: dict) -> bool:
    """Whether the task's input is still being fetched or its output made."""
    work = task.get("work")
    return work is not None and work.pending


class _Server(LoopbackServer):
    def __init__(self, address, handler, emulator: VodEmulator, family: int) -> None:
        self.emulator = emulator
        super().__init__(address, handler, family)

    def process_request(self, request, client_address) -> None:
        self.emulator._count_connection()
        super().process_request(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VodEmulator/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    wbufsize = -1  # buffered: status line, headers and body leave in one segment (no Nagle stall)

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format, *args) -> None:  # silence request logging
        pass

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            return None
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _dispatch(self) -> None:
        arrived = time.monotonic(), time.time()  # before the body and the checks: the rate limit counts arrivals
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(413, b"request body too large or unreadable\n", "text/plain")
            return
        emulator = self.server.emulator  # type: ignore[attr-defined]
        reply = emulator._handle(self.command, self.path, self.headers, body, arrived)
        if reply.delay > 0:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        self._send(reply.status, reply.body, reply.content_type)

    def do_POST(self) -> None:
        try:
            self._dispatch()
        except OSError:  # includes timeouts and resets
            self.close_connection = True

    do_PUT = do_DELETE = do_PATCH = do_POST

    def do_GET(self) -> None:
        """Output downloads under /aigc/; anything else is answered as the API answers a GET."""
        try:
            if urlsplit(self.path).path.startswith("/aigc/"):
                self._serve_output()
            else:
                self._dispatch()
        except OSError:
            self.close_connection = True

    do_HEAD = do_GET

    def _serve_output(self) -> None:
        if self._read_body() is None:
            self.close_connection = True
            self._send(413, b"request body too large or unreadable\n", "text/plain")
            return
        emulator = self.server.emulator  # type: ignore[attr-defined]
        reply = emulator._output(self.command, self.path, self.headers)
        if reply.delay > 0:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            # counted before each write, so a client that has read the bytes finds them in ``calls``
            if reply.content is None:
                emulator._count_sent(reply.record, len(reply.body))
                self.wfile.write(reply.body)
            else:
                stop = reply.start + (reply.length // 2 if reply.cut else reply.length)
                for chunk in reply.content.chunks(reply.start, stop):
                    emulator._count_sent(reply.record, len(chunk))
                    self.wfile.write(chunk)
        self.wfile.flush()
        if reply.cut:  # the promised Content-Length is never reached: the client sees a short read
            self.close_connection = True


class _Reply:
    __slots__ = ("body", "content_type", "delay", "drop", "status")

    def __init__(self, status=200, body=b"", content_type="application/json", drop=False, delay=0.0):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.drop = drop
        self.delay = delay


class _Download:
    """How to answer one output request: a small body, or ``length`` bytes of ``content`` from ``start``."""

    __slots__ = ("body", "content", "cut", "delay", "drop", "headers", "length", "record", "start", "status")

    def __init__(self, record: dict, status: int = 200, body: bytes = b"", headers=None, *, content=None,
                 start: int = 0, length: int = 0, cut: bool = False, drop: bool = False, delay: float = 0.0):
        self.record = record
        self.status = status
        self.body = body
        self.headers = list(headers or ())
        if content is None:
            self.headers += [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        self.content = content
        self.start = start
        self.length = length
        self.cut = cut
        self.drop = drop
        self.delay = delay


class VodEmulator(Served):
    """A threaded loopback HTTP server answering like ``vod.tencentcloudapi.com``.

    ``latency``, ``rps``, ``describe_rps``, ``fault_rate``, ``describe_fault_rate``,
    ``output_fault_rate``, ``task_duration``, ``output_ttl``, ``output_bytes`` and ``max_skew`` are
    plain attributes that may be changed while running; ``failure_rate``, ``abort_rate`` and
    ``task_durations`` too, for tasks created afterwards (a task's fate and duration are drawn once,
    at creation, from its TaskId and ``fault_seed``).  ``tasks`` and ``calls`` return snapshots (a new
    dict/list on each access, sharing the per-task dicts).

    The status and Progress model: a task waits (WAITING) a tenth of its duration, and longer while
    VOD is busy: with ``slots`` set, at most that many tasks process at once and the others queue, in
    creation order (a queued task's duration is fixed when it enters the queue). It then processes
    (PROCESSING, ``BeginProcessTime`` set) and ends (``FinishTime``). ``progress_mode`` says what
    ``Progress`` reports meanwhile: ``honest`` (the share of processing done, plus Gaussian noise of
    ``progress_noise`` points), ``silent`` (0 until the end), ``missing`` (no Progress field),
    ``stall`` (stops at a point drawn per task, then jumps to 100 at the end), ``backwards`` (falls
    back by up to 40 points in about a third of the seconds), ``over`` (over 100 while processing).
    Noise and faults are drawn from the TaskId, the second and ``fault_seed``: the same seed, the
    same answers.
    """

    thread_name = "vod-emulator"

    def __init__(
        self,
        *,
        secret_id: str = DEFAULT_SECRET_ID,
        secret_key: str = DEFAULT_SECRET_KEY,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rps: int | None = 20,
        latency: float = 0.0,
        sub_app_ids=None,
        known_file_ids=None,
        task_duration: float = 2.0,
        fault_rate: float = 0.0,
        fault_seed=None,
        max_skew: float = 300,
        task_durations: tuple[float, float] | None = None,
        failure_rate: float = 0.0,
        abort_rate: float = 0.0,
        describe_rps: int | None = DESCRIBE_RPS,
        describe_fault_rate: float = 0.0,
        output_ttl: float = OUTPUT_TTL,
        output_bytes: int | None = None,
        output_fault_rate: float = 0.0,
        slots: int | None = None,
        progress_mode: str = "honest",
        progress_noise: float = 0.0,
        fetch_inputs: str = "local",
        input_routes: InputRoutes | None = None,
        ffmpeg: str | None = None,
    ) -> None:
        for name, rate in (("fault_rate", fault_rate), ("failure_rate", failure_rate), ("abort_rate", abort_rate),
                           ("describe_fault_rate", describe_fault_rate), ("output_fault_rate", output_fault_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if failure_rate + abort_rate > 1.0:
            raise ValueError("failure_rate + abort_rate must be at most 1")
        if task_durations is not None:
            low, high = (float(x) for x in task_durations)
            if not 0.0 <= low <= high:
                raise ValueError("task_durations must be (min, max) with 0 <= min <= max")
            task_durations = (low, high)
        if output_bytes is not None and output_bytes < 0:
            raise ValueError("output_bytes must be 0 or more")
        if slots is not None and slots < 1:
            raise ValueError("slots must be 1 or more (None: VOD is never busy)")
        if progress_mode not in PROGRESS_MODES:
            raise ValueError(f"progress_mode must be one of {', '.join(PROGRESS_MODES)}")
        self.secret_id = secret_id
        self._secret_key = secret_key
        self.token = token
        self.host = host
        self._requested_port = port
        self.rps = rps
        self.latency = latency
        self.sub_app_ids = None if sub_app_ids is None else {int(x) for x in sub_app_ids}
        self.known_file_ids = set(known_file_ids or ())
        self.task_duration = task_duration
        self.fault_rate = fault_rate
        self.fault_seed = fault_seed
        self.max_skew = max_skew
        self.task_durations = task_durations
        self.failure_rate = failure_rate
        self.abort_rate = abort_rate
        self.describe_rps = describe_rps
        self.describe_fault_rate = describe_fault_rate
        self.output_ttl = output_ttl
        self.output_bytes = output_bytes
        self.output_fault_rate = output_fault_rate
        self.slots = slots
        self.progress_mode = progress_mode
        self.progress_noise = progress_noise
        self._slot_free: list = []  # when each busy processing slot is free again (with ``slots``)
        #: fetches each task's input and makes its output (vod_processing); ``input_routes`` says which
        #: URL hosts local servers answer for (``emu.input_routes.add_cos(cos_emulator)``)
        self.processing = Processing(fetch_inputs, input_routes, ffmpeg)

        self._lock = threading.Lock()
        self._url_key = os.urandom(32)  # signs output URLs; never leaves the process
        self._rng = random.Random(fault_seed)
        self._describe_rng = self._seeded("describe")
        self._output_rng = self._seeded("output")
        self._faults: dict = {action: collections.deque() for action in (*ACTIONS, OUTPUT_ACTION)}
        self._tasks: dict = {}
        self._calls: list = []
        self._sessions: dict = {}
        self._window: collections.deque = collections.deque()
        self._describe_window: collections.deque = collections.deque()
        self._connections = 0
        self.rate_limit_hits = 0
        self.describe_limit_hits = 0

        # the server's state (_server, _thread, port, url, endpoint): loopback.Served

    def __repr__(self) -> str:  # never shows the secret key
        return f"VodEmulator(url={self.url or None!r}, secret_id={self.secret_id!r})"

    # ----------------------------------------------------------------- lifecycle
    def stop(self) -> None:
        super().stop()
        self.processing.close()  # waits for running work, removes the made outputs

    @property
    def input_routes(self) -> InputRoutes:
        return self.processing.routes

    @property
    def fetch_inputs(self) -> str:
        """local, all or off (vod_input); may be changed while running, for tasks created afterwards."""
        return self.processing.mode

    @fetch_inputs.setter
    def fetch_inputs(self, mode: str) -> None:
        if mode not in FETCH_MODES:
            raise ValueError(f"fetch_inputs must be one of {', '.join(FETCH_MODES)}")
        self.processing.mode = mode

    def _new_server(self, address, family: int) -> LoopbackServer:
        return _Server(address, _Handler, self, family)

    def _seeded(self, stream: str) -> random.Random:
        """A random stream of its own, so one kind of call never shifts another's seeded faults."""
        return random.Random(None if self.fault_seed is None else f"{self.fault_seed}:{stream}")

    # ------------------------------------------------------------- test helpers
    def inject(self, *faults: str, action: str = CREATE_ACTION) -> None:
        """Queue faults for ``action`` (CreateAigcVideoRedrawTask by default, or DescribeTaskDetail).

        Each request of that action that passes the signature, version and rate-limit checks consumes one.
        """
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)} (output downloads: inject_output)")
        parsed = [_parse_fault(f) for f in faults]
        with self._lock:
            self._faults[action].extend(parsed)

    def inject_output(self, *faults: str) -> None:
        """Queue output-download faults: ``cut`` (full Content-Length, half the body, then close),
        ``http500``/``http502``/``http503``, ``drop`` (close without answering), ``slow:SECONDS``.

        Each GET or HEAD of a correctly signed, unexpired output URL consumes one.
        """
        parsed = [_parse_output_fault(f) for f in faults]
        with self._lock:
            self._faults[OUTPUT_ACTION].extend(parsed)

    def clear_faults(self) -> None:
        with self._lock:
            for queue in self._faults.values():
                queue.clear()

    @property
    def pending_faults(self) -> list:
        """Faults queued for CreateAigcVideoRedrawTask."""
        return self.pending_faults_for(CREATE_ACTION)

    def pending_faults_for(self, action: str) -> list:
        """Faults queued for ``action``: an API action, or ``GetOutput`` for output downloads."""
        with self._lock:
            return list(self._faults[action])

    def add_task(self, sub_app_id: int, source: str = "https://example.com/in.mp4", *, age: float = 0.0,
                 session_id: str = "", session_context: str = "", output_config: dict | None = None) -> str:
        """Store a task as if CreateAigcVideoRedrawTask had accepted it ``age`` seconds ago; returns its TaskId.

        ``source`` is a URL (``http(s)://``) or else a FileId; its keywords and the rates decide the fate
        as for a created task.  No call is recorded and no limit or fault applies.
        """
        if source.startswith(("http://", "https://")):
            file_info = {"Type": "Url", "Url": source}
        else:
            file_info = {"Type": "File", "FileId": source}
        params: dict = {"SubAppId": sub_app_id, "FileInfo": file_info}
        if output_config is not None:
            params["OutputConfig"] = dict(output_config)
        if session_id:
            params["SessionId"] = session_id
        if session_context:
            params["SessionContext"] = session_context
        created = time.time() - age
        task = self._new_task(params, str(uuid.uuid4()), created)
        task["work"] = Job()
        with self._lock:
            if session_id:
                self._sessions[session_id] = created
            self._enqueue(task)
            self._tasks[task["TaskId"]] = task
        self._begin_work(task)
        return task["TaskId"]

    def model_task(self, task_id: str, created: float, duration: float) -> dict:
        """A task of the status model, queued as a created one would be but neither stored nor answered
        for: what a simulation passes to :meth:`state_at`."""
        task = {"TaskId": task_id, "created": created, "duration": duration, "fate": SUCCESS}
        with self._lock:
            self._enqueue(task)
        return task

    def age_task(self, task_id: str, seconds: float) -> None:
        """Move a task's creation (and its SessionId's use) ``seconds`` into the past."""
        with self._lock:
            task = self._tasks[task_id]
            task["created"] -= seconds
            sid = task["SessionId"]
            if sid and sid in self._sessions:
                self._sessions[sid] -= seconds

    def expire_output(self, task_id: str) -> None:
        """Make the task's output URL expired now (403), and its ExpireTime a past time."""
        with self._lock:
            self._tasks[task_id]["output_expires"] = float(int(time.time()) - 1)

    def output_url(self, task_id: str, expires: float | None = None) -> str:
        """A signed URL of the task's output on this server, valid until ``expires`` (default: in a day)."""
        t = format(int(time.time() + 86400 if expires is None else expires), "x")
        path = f"/aigc/{task_id}.mp4"
        return f"{self.url}{path}?t={t}&sign={self._url_sign(path, t)}"

    def _url_sign(self, path: str, t: str) -> str:
        return hmac.new(self._url_key, (path + t).encode("utf-8"), hashlib.sha256).hexdigest()

    @property
    def downloads(self) -> int:
        """GET requests of output URLs, whatever their answer."""
        with self._lock:
            return sum(1 for c in self._calls if c["action"] == OUTPUT_ACTION and c["params"]["method"] == "GET")

    @property
    def tasks(self) -> dict:
        with self._lock:
            return dict(self._tasks)

    @property
    def task_count(self) -> int:
        with self._lock:
            return len(self._tasks)

    @property
    def calls(self) -> list:
        with self._lock:
            return list(self._calls)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._calls.clear()
            self._sessions.clear()
            for queue in self._faults.values():
                queue.clear()
            self._window.clear()
            self._describe_window.clear()
            self._connections = 0
            self.rate_limit_hits = 0
            self.describe_limit_hits = 0
            self._rng = random.Random(self.fault_seed)
            self._describe_rng = self._seeded("describe")
            self._output_rng = self._seeded("output")
            self._slot_free = []

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    # --------------------------------------------------------- request handling
    def _handle(self, method: str, path: str, headers, body: bytes, arrived: tuple | None = None) -> _Reply:
        """``arrived``: (monotonic, wall) time the request came in (default: now)."""
        arrived = arrived or (time.monotonic(), time.time())
        request_id = str(uuid.uuid4())
        action = headers.get("X-TC-Action") or ""
        try:
            params = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            params = None
        record = {"action": action, "params": params, "outcome": None, "time": arrived[1],
                  "request_id": request_id, "fault": None, "task_id": None}
        with self._lock:
            self._calls.append(record)

        delay = 0.0
        try:
            fault = self._process_prelude(method, path, headers, body, action, arrived[0])
            if fault is not None:
                record["fault"] = fault
                if fault.startswith("slow:"):
                    delay += float(fault[5:])
                elif fault == "drop":
                    record["outcome"] = "drop"
                    return _Reply(drop=True, delay=self.latency)
                elif fault in _HTTP_FAULTS:
                    record["outcome"] = fault
                    status = _HTTP_FAULTS[fault]
                    text = http.server.BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
                    return _Reply(status, f"{status} {text}\n".encode(), "text/plain", delay=self.latency)
                elif fault == "malformed":
                    record["outcome"] = "malformed"
                    return _Reply(body=_MALFORMED_BODY, delay=self.latency)
                elif fault == "empty":
                    record["outcome"] = "empty"
                    return _Reply(body=b"", delay=self.latency)
                elif fault != "drop_after_accept":
                    raise ApiError(fault)
            if action == CREATE_ACTION:
                result = self._create(headers, body, request_id, record)
            else:
                result = self._describe(body, record)
            outcome = "ok"
        except ApiError as err:
            result = {"Error": {"Code": err.code, "Message": err.message}}
            outcome = err.code
        if record["fault"] == "drop_after_accept":
            record["outcome"] = "drop_after_accept"
            return _Reply(drop=True, delay=self.latency + delay)
        record["outcome"] = outcome
        result["RequestId"] = request_id
        payload = json.dumps({"Response": result}, ensure_ascii=False).encode("utf-8")
        return _Reply(body=payload, delay=self.latency + delay)

    def _process_prelude(self, method, path, headers, body, action, arrived: float) -> str | None:
        """Protocol, signature, action and rate-limit checks; returns the fault to apply, if any."""
        if method != "POST":
            raise ApiError("UnsupportedProtocol", "The emulator only supports POST requests with a JSON body.")
        split = urlsplit(path)
        if split.path != "/":
            raise ApiError("UnsupportedProtocol", "The request path must be '/'.")
        self._verify_signature(headers, body, split.query)
        if action not in ACTIONS:
            raise ApiError("InvalidAction", f"The action `{action}` is not supported by this emulator.")
        version = headers.get("X-TC-Version") or ""
        if version != API_VERSION:
            raise ApiError("NoSuchVersion", f"The API version `{version}` does not exist.")
        ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise ApiError("InvalidParameter", "Content-Type must be application/json.")
        create = action == CREATE_ACTION
        with self._lock:
            limit = self.rps if create else self.describe_rps
            window = self._window if create else self._describe_window
            if limit:
                now = max(arrived, window[-1]) if window else arrived  # the window stays in order
                while window and now - window[0] >= 1.0:
                    window.popleft()
                if len(window) >= limit:
                    if create:
                        self.rate_limit_hits += 1
                    else:
                        self.describe_limit_hits += 1
                    raise ApiError("RequestLimitExceeded")
                window.append(now)
            queue = self._faults[action]
            if queue:
                return queue.popleft()
            if create:
                rate, rng, choices = self.fault_rate, self._rng, RANDOM_FAULTS
            else:
                rate, rng, choices = self.describe_fault_rate, self._describe_rng, RANDOM_DESCRIBE_FAULTS
            if rate and rng.random() < rate:
                return rng.choice(choices)
        return None

    def _verify_signature(self, headers, body: bytes, query: str) -> None:
        auth = headers.get("Authorization")
        if not auth:
            raise ApiError("AuthFailure.SignatureFailure", "The Authorization header is missing.")
        algorithm, _, rest = auth.strip().partition(" ")
        if algorithm != "TC3-HMAC-SHA256":
            raise ApiError("AuthFailure.InvalidAuthorization",
                           "Authorization must use the TC3-HMAC-SHA256 algorithm.")
        fields = {}
        for part in rest.split(","):
            key, sep, value = part.strip().partition("=")
            if sep:
                fields[key] = value.strip()
        credential = fields.get("Credential", "").split("/")
        signed_headers = fields.get("SignedHeaders", "")
        signature = fields.get("Signature", "")
        if len(credential) != 4 or credential[3] != "tc3_request" or not signed_headers or not signature:
            raise ApiError("AuthFailure.InvalidAuthorization",
                           "Authorization must carry Credential, SignedHeaders and Signature.")
        secret_id, date, service, _ = credential
        if secret_id != self.secret_id:
            raise ApiError("AuthFailure.SecretIdNotFound")
        timestamp = headers.get("X-TC-Timestamp") or ""
        try:
            ts = int(timestamp)
        except ValueError:
            raise ApiError("AuthFailure.SignatureExpire", "X-TC-Timestamp is missing or not an integer.") from None
        now = int(time.time())
        if self.max_skew is not None and abs(now - ts) > self.max_skew:
            raise ApiError(
                "AuthFailure.SignatureExpire",
                f"Signature expired. Timestamp {ts}, server time {now}, allowed skew {self.max_skew}s.",
            )
        if not _DATE_RE.match(date) or date != time.strftime("%Y-%m-%d", time.gmtime(ts)):
            raise ApiError("AuthFailure.SignatureFailure",
                           "The credential date does not match the UTC date of X-TC-Timestamp.")
        if service != SERVICE:
            raise ApiError("AuthFailure.SignatureFailure", f"The credential service must be `{SERVICE}`.")
        names = signed_headers.split(";")
        if "content-type" not in names or "host" not in names or names != sorted(set(names)):
            raise ApiError("AuthFailure.SignatureFailure",
                           "SignedHeaders must be sorted and include content-type and host.")
        values = []
        for name in names:
            value = headers.get(name)
            if value is None:
                raise ApiError("AuthFailure.SignatureFailure", f"The signed header `{name}` is missing.")
            values.append(value.strip())
        if headers.get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD":
            payload_hash = hashlib.sha256(b"UNSIGNED-PAYLOAD").hexdigest()
        else:
            payload_hash = hashlib.sha256(body).hexdigest()
        # The SDK signs raw header values; the API documentation lower-cases them. Accept either.
        candidates = {tuple(values), tuple(v.lower() for v in values)}
        scope = f"{date}/{service}/tc3_request"
        ok = False
        for vals in candidates:
            canonical_headers = "".join(f"{n}:{v}\n" for n, v in zip(names, vals))
            canonical_request = f"POST\n/\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
            string_to_sign = "\n".join([
                "TC3-HMAC-SHA256", timestamp, scope,
                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
            ])
            expected = tc3_signature(self._secret_key, date, service, string_to_sign)
            ok |= hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8", "replace"))
        if not ok:
            raise ApiError("AuthFailure.SignatureFailure")
        if self.token is not None:
            sent = headers.get("X-TC-Token")
            if sent is None or not hmac.compare_digest(sent.encode(), self.token.encode()):
                raise ApiError("AuthFailure.TokenFailure")

    @staticmethod
    def _load_params(body: bytes) -> dict:
        try:
            params = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            raise ApiError("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "The request body must be a JSON object.")
        return params

    @staticmethod
    def _check_schema(params: dict, schema: dict, prefix: str = "") -> None:
        """Unknown fields first (anywhere), then JSON types; nulls count as absent."""
        for key in params:
            if key not in schema:
                raise ApiError("UnknownParameter", f"The parameter `{prefix}{key}` is not recognized.")
        for key, spec in schema.items():
            value = params.get(key)
            if value is None:
                continue
            if isinstance(spec, dict):
                if not isinstance(value, dict):
                    raise ApiError("InvalidParameter", f"The parameter `{prefix}{key}` must be an object.")
                VodEmulator._check_schema(value, spec, f"{prefix}{key}.")
            elif not _type_ok(value, spec):
                if prefix == "" and key == "SubAppId":
                    raise ApiError("InvalidParameterValue.SubAppId", "SubAppId must be an integer.")
                kind = "an integer" if spec == "int" else "a string"
                raise ApiError("InvalidParameter", f"The parameter `{prefix}{key}` must be {kind}.")

    def _check_sub_app_id(self, sub_app_id) -> None:
        if not _is_int(sub_app_id) or sub_app_id <= 0 or (
            self.sub_app_ids is not None and sub_app_id not in self.sub_app_ids
        ):
            raise ApiError("InvalidParameterValue.SubAppId", "Incorrect parameter value: application id.")

    def _create(self, headers, body: bytes, request_id: str, record: dict) -> dict:
        params = self._load_params(body)
        self._check_schema(params, _CREATE_SCHEMA)
        if not _present(params, "SubAppId"):
            raise ApiError("MissingParameter", "The parameter `SubAppId` is missing.")
        sub_app_id = params["SubAppId"]
        self._check_sub_app_id(sub_app_id)
        if not _present(params, "FileInfo"):
            raise ApiError("MissingParameter", "The parameter `FileInfo` is missing.")
        file_info = params["FileInfo"]
        ftype = file_info.get("Type")
        if ftype is None:
            raise ApiError("MissingParameter", "The parameter `FileInfo.Type` is missing.")
        if ftype not in ("File", "Url"):
            raise ApiError("InvalidParameterValue", "FileInfo.Type must be File or Url.")
        if ftype == "Url":
            url = file_info.get("Url")
            if url is None:
                raise ApiError("MissingParameter", "The parameter `FileInfo.Url` is missing.")
            if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
                raise ApiError("InvalidParameterValue", "FileInfo.Url must be an http:// or https:// URL.")
        else:
            if not file_info.get("FileId"):
                raise ApiError("MissingParameter", "The parameter `FileInfo.FileId` is missing.")
        style = (params.get("TaskInfo") or {}).get("Style")
        if style is not None and len(style) > 50:
            raise ApiError("InvalidParameterValue", "TaskInfo.Style must be at most 50 characters.")
        output = params.get("OutputConfig") or {}
        storage_mode = output.get("StorageMode")
        if storage_mode is not None and storage_mode not in ("Permanent", "Temporary"):
            raise ApiError("InvalidParameterValue", "OutputConfig.StorageMode must be Permanent or Temporary.")
        media_name = output.get("MediaName")
        if media_name is not None and len(media_name) > 64:
            raise ApiError("InvalidParameterValue", "OutputConfig.MediaName must be at most 64 characters.")
        expire = output.get("ExpireTime")
        if expire is not None and not _valid_iso8601(expire):
            raise ApiError("InvalidParameterValue", "OutputConfig.ExpireTime must be an ISO 8601 date-time.")
        priority = params.get("TasksPriority")
        if priority is not None and not -10 <= priority <= 10:
            raise ApiError("InvalidParameterValue", "TasksPriority must be between -10 and 10.")
        session_id = params.get("SessionId") or ""
        if len(session_id) > 50:
            raise ApiError("InvalidParameterValue.SessionIdTooLong", "SessionId is too long.")
        session_context = params.get("SessionContext") or ""
        if len(session_context) > 1000:
            raise ApiError("InvalidParameterValue.SessionContextTooLong", "SessionContext is too long.")
        if ftype == "File" and file_info["FileId"] not in self.known_file_ids:
            # like many real APIs, the message quotes the input: callers must not pass it on
            raise ApiError("InvalidParameterValue.FileId", f"The FileId {str(file_info['FileId'])[:64]} does not exist.")

        now = time.time()
        task = self._new_task(params, request_id, now)
        task["work"] = Job()  # fetching the input starts once the task is stored (VOD answers first)
        task_id = task["TaskId"]
        with self._lock:
            if session_id:
                for sid, seen in list(self._sessions.items()):
                    if now - seen > SESSION_WINDOW:
                        del self._sessions[sid]
                if session_id in self._sessions:
                    raise ApiError("InvalidParameterValue.SessionId",
                                   "A request with the same SessionId was made within the last three days.")
                self._sessions[session_id] = now
            self._enqueue(task)
            self._tasks[task_id] = task
        self._begin_work(task)
        record["task_id"] = task_id
        return {"TaskId": task_id}

    def _begin_work(self, task: dict) -> None:
        """Fetch the task's input (and make its output) in the background; an input that cannot be read
        ends the task FINISH with ErrCode 60000, as VOD ends a failed one."""
        file_info = task["params"]["FileInfo"]
        url = file_info.get("Url") if file_info.get("Type") == "Url" else None

        def failed(job: Job) -> None:
            with self._lock:
                task["fate"] = FAILURE
                task["error"] = job.error

        self.processing.start(task["work"], task["TaskId"], url, failed)

    def _new_task(self, params: dict, request_id: str, created: float) -> dict:
        """A task record; its fate and duration are drawn here, once, from its TaskId and ``fault_seed``."""
        sub_app_id = params["SubAppId"]
        task_id = f"{sub_app_id}-{TASK_TYPE}-{uuid.uuid4().hex}"
        file_info = params["FileInfo"]
        source = str((file_info.get("Url") if file_info.get("Type") == "Url" else file_info.get("FileId")) or "").lower()
        rng = random.Random(f"{self.fault_seed}:{task_id}")
        fate_draw, duration_draw = rng.random(), rng.random()
        abort_rate, failure_rate = float(self.abort_rate or 0.0), float(self.failure_rate or 0.0)
        if "abort" in source:
            fate = ABORT
        elif "fail" in source:
            fate = FAILURE
        elif fate_draw < abort_rate:
            fate = ABORT
        elif fate_draw < abort_rate + failure_rate:
            fate = FAILURE
        else:
            fate = SUCCESS
        duration = None  # None: the emulator's task_duration, read at each DescribeTaskDetail
        if self.task_durations is not None:
            low, high = sorted(max(float(x), 0.0) for x in self.task_durations)
            duration = low + (high - low) * duration_draw
        return {
            "TaskId": task_id,
            "SubAppId": sub_app_id,
            "params": copy.deepcopy(params),
            "created": created,
            "SessionId": params.get("SessionId") or "",
            "SessionContext": params.get("SessionContext") or "",
            "RequestId": request_id,
            "fate": fate,
            "abort": fate == ABORT,
            "duration": duration,
            "output_size": None,  # fixed at the first download
            "output_expires": None,  # set by expire_output
        }

    def _describe(self, body: bytes, record: dict | None = None) -> dict:
        """The task's detail as of now; ``record`` (the call's) gets ``answered``: the time its answer describes."""
        params = self._load_params(body)
        self._check_schema(params, _DESCRIBE_SCHEMA)
        if not params.get("TaskId"):
            raise ApiError("MissingParameter", "The parameter `TaskId` is missing.")
        sub_app_id = params.get("SubAppId")
        if sub_app_id is not None:
            self._check_sub_app_id(sub_app_id)
        with self._lock:
            task = self._tasks.get(params["TaskId"])
        now = time.time()
        if record is not None:
            record["answered"] = now
        if task is None or (sub_app_id is not None and sub_app_id != task["SubAppId"]) or (
            now - task["created"] > TASK_RETENTION
        ):
            raise ApiError("InvalidParameterValue.TaskId", "TaskId does not exist")
        return self.task_detail(task, now)

    def _duration(self, task: dict) -> float:
        duration = task.get("duration")
        if duration is None:
            duration = self.task_duration
        return max(float(duration or 0.0), 0.0)

    def _enqueue(self, task: dict) -> None:
        """Place a stored task in VOD's queue (under the lock): with ``slots``, it waits for a free slot."""
        task["queued"] = 0.0
        if self.slots is None:
            return
        duration = task["duration"] = self._duration(task)
        ready = task["created"] + WAIT_SHARE * duration
        free = self._slot_free
        start = ready if len(free) < self.slots else max(ready, heapq.heappop(free))
        heapq.heappush(free, start + (1.0 - WAIT_SHARE) * duration)
        task["queued"] = start - ready

    def _times(self, task: dict) -> tuple:
        """(BeginProcessTime, FinishTime) of a task, as epoch seconds."""
        duration = self._duration(task)
        begin = task["created"] + WAIT_SHARE * duration + float(task.get("queued") or 0.0)
        return begin, begin + (1.0 - WAIT_SHARE) * duration

    def _status(self, task: dict, now: float) -> str:
        """WAITING, PROCESSING, FINISH or ABORTED at time ``now``."""
        begin, finish = self._times(task)
        if now >= finish:
            if _working(task):  # VOD ends a task only once its input is read and its output made
                return "PROCESSING"
            return "ABORTED" if task["fate"] == ABORT else "FINISH"
        return "WAITING" if now < begin else "PROCESSING"

    def _progress(self, task: dict, now: float, begin: float, finish: float):
        """Progress of a PROCESSING task at ``now`` as ``progress_mode`` reports it (None: no field)."""
        mode = self.progress_mode
        done = 100.0 * (now - begin) / max(finish - begin, 1e-9)
        if mode == "missing":
            return None
        if mode == "silent":
            return 0
        second = random.Random(f"{self.fault_seed}:{task['TaskId']}:{int(now)}")
        if self.progress_noise:
            done += second.gauss(0.0, float(self.progress_noise))
        if mode == "stall":
            done = min(done, random.Random(f"{self.fault_seed}:{task['TaskId']}:stall").uniform(20.0, 80.0))
        elif mode == "backwards" and second.random() < 1 / 3:
            done -= second.uniform(0.0, 40.0)
        elif mode == "over":
            return 101 + max(0, int(done))
        return max(0, min(99, int(done)))

    def _output_expiry(self, task: dict, finish: float) -> float:
        """Until when the output URL works: expire_output's time, else a Permanent output's requested
        ExpireTime, else FinishTime + output_ttl."""
        if task.get("output_expires") is not None:
            return task["output_expires"]
        config = task["params"].get("OutputConfig") or {}
        if config.get("StorageMode") == "Permanent" and config.get("ExpireTime"):
            requested = _epoch(config["ExpireTime"])
            if requested is not None:
                return requested
        return finish + float(self.output_ttl)

    def state_at(self, task: dict, now: float) -> tuple:
        """(Status, Progress or None, BeginProcessTime, FinishTime) of a task at ``now`` (epoch seconds):
        the model DescribeTaskDetail answers from, for simulations that need no server."""
        begin, finish = self._times(task)
        status = self._status(task, now)
        if status == "FINISH":
            progress = 100
        elif status == "PROCESSING":
            progress = self._progress(task, now, begin, finish)
        else:
            progress = 0
        return status, progress, begin, finish

    def task_detail(self, task: dict, now: float | None = None) -> dict:
        """The DescribeTaskDetail Response (without RequestId) for a stored task at time ``now``."""
        now = time.time() if now is None else now
        created = task["created"]
        status, progress, begin, finish = self.state_at(task, now)
        failed = status == "FINISH" and task.get("fate") == FAILURE
        params = task["params"]
        output_config = params.get("OutputConfig") or {}
        if status == "ABORTED":
            err_code, err_code_ext, message = ABORT_ERR_CODE, "FailedOperation.SourceFileError", ABORT_MESSAGE
        elif failed:
            err_code, err_code_ext, message = task.get("error") or (FAIL_ERR_CODE, FAIL_ERR_CODE_EXT, FAIL_MESSAGE)
        else:
            err_code, err_code_ext, message = 0, "", "SUCCESS" if status == "FINISH" else ""
        redraw = {
            "TaskId": task["TaskId"],
            "Status": status,
            "ErrCode": err_code,
            "ErrCodeExt": err_code_ext,
            "Message": message,
            **({} if progress is None else {"Progress": progress}),
            "Input": {
                "FileInfo": copy.deepcopy(params.get("FileInfo")),
                "TaskInfo": copy.deepcopy(params.get("TaskInfo")),
                "OutputConfig": copy.deepcopy(params.get("OutputConfig")),
            },
            "Output": None,
            "SessionId": task["SessionId"],
            "SessionContext": task["SessionContext"],
        }
        if status == "FINISH" and not failed:
            storage_mode = output_config.get("StorageMode") or "Temporary"
            digest = int(hashlib.sha256(task["TaskId"].encode()).hexdigest()[:15], 16) % 10**12
            expires = self._output_expiry(task, finish)
            requested = output_config.get("ExpireTime") if storage_mode == "Permanent" else None
            redraw["Output"] = {
                "FileInfo": {
                    "StorageMode": storage_mode,
                    "MediaName": output_config.get("MediaName") or "",
                    "ClassId": output_config.get("ClassId") or 0,
                    "ExpireTime": requested if requested and task.get("output_expires") is None else _iso(expires),
                    "FileType": "mp4",
                    "FileUrl": self.output_url(task["TaskId"], expires),
                    "FileId": f"5285890{digest:012d}" if storage_mode == "Permanent" else "",
                }
            }
        final = status in ("FINISH", "ABORTED")
        return {
            "TaskType": TASK_TYPE,
            "Status": status,
            "CreateTime": _iso(created),
            "BeginProcessTime": _iso(begin) if status != "WAITING" else "",
            "FinishTime": _iso(finish) if final else "",
            TASK_TYPE: redraw,
        }

    # ---------------------------------------------------------- output downloads
    def _count_sent(self, record: dict, sent: int) -> None:
        with self._lock:
            record["bytes"] += sent

    def _content(self, task: dict, size: int | None):
        """What a download of the task's output serves: the output made from its input when there is one
        (and no ``output_bytes`` size is asked), else the sample clip (with filler up to ``size``)."""
        work = task.get("work")
        made = work.output if work is not None and size is None else None
        if made is not None and made.is_file():
            return FileContent(made)
        return _OutputContent(task["TaskId"], size)

    def _output(self, method: str, raw_path: str, headers) -> _Download:
        """Check an output URL (signature, expiry, task), apply a queued or random fault, plan the answer."""
        now = time.time()
        split = urlsplit(raw_path)
        m = _OUTPUT_PATH_RE.match(split.path)
        record = {"action": OUTPUT_ACTION, "params": {"method": method, "range": headers.get("Range")},
                  "outcome": None, "time": now, "request_id": str(uuid.uuid4()), "fault": None,
                  "task_id": m.group(1) if m else None, "bytes": 0}
        with self._lock:
            self._calls.append(record)

        def text(status: int, outcome: str, message: str, extra=()) -> _Download:
            record["outcome"] = outcome
            return _Download(record, status, f"{status} {message}\n".encode(), extra)

        if m is None:
            return text(404, "not_found", "Not Found: no such output.")
        query = parse_qs(split.query)
        t = (query.get("t") or [""])[0].lower()
        sign = (query.get("sign") or [""])[0]
        if not _HEX_RE.match(t) or not hmac.compare_digest(
            self._url_sign(split.path, t).encode(), sign.lower().encode("utf-8", "replace")
        ):
            return text(403, "forbidden", "Forbidden: the URL signature is missing or invalid.")
        with self._lock:
            task = self._tasks.get(m.group(1))
            override = None if task is None else task.get("output_expires")
        expires = min(int(t, 16), override if override is not None else float("inf"))
        if expires < now:
            return text(403, "expired", f"Forbidden: the URL expired at {_iso(expires)}.")
        with self._lock:
            queue = self._faults[OUTPUT_ACTION]
            fault = queue.popleft() if queue else None
            if fault is None and self.output_fault_rate and self._output_rng.random() < self.output_fault_rate:
                fault = self._output_rng.choice(RANDOM_OUTPUT_FAULTS)
        record["fault"] = fault
        delay = 0.0
        if fault is not None:
            if fault.startswith("slow:"):
                delay = float(fault[5:])
            elif fault == "drop":
                record["outcome"] = "drop"
                return _Download(record, drop=True)
            elif fault in _HTTP_FAULTS:
                status = _HTTP_FAULTS[fault]
                reason = http.server.BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
                reply = text(status, fault, reason)
                reply.delay = delay
                return reply
        if task is None or self._status(task, now) != "FINISH" or task.get("fate") == FAILURE:
            reply = text(404, "not_found", "Not Found: no such output.")
            reply.delay = delay
            return reply
        with self._lock:
            if task["output_size"] is None:
                task["output_size"] = self.output_bytes
            size = task["output_size"]
        content = self._content(task, size)
        finish = self._times(task)[1]
        common = [("Accept-Ranges", "bytes"), ("ETag", content.etag),
                  ("Last-Modified", email.utils.formatdate(finish, usegmt=True))]
        wanted = parse_range(headers.get("Range"), content.size)
        if wanted == "unsatisfiable":
            reply = text(416, "range_not_satisfiable", "Range Not Satisfiable",
                         common + [("Content-Range", f"bytes */{content.size}")])
            reply.delay = delay
            return reply
        start, stop = wanted if isinstance(wanted, tuple) else (0, content.size)
        length = stop - start
        reply_headers = [("Content-Type", "video/mp4"), ("Content-Length", str(length))] + common
        status = 200
        if wanted is not None:
            status = 206
            reply_headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{content.size}"))
        cut = fault == "cut" and method != "HEAD"
        record["outcome"] = "cut" if cut else ("ok" if status == 200 else "partial")
        return _Download(record, status, headers=reply_headers, content=content, start=start, length=length,
                         cut=cut, delay=delay)


def main(argv=None) -> int:
    import argparse
    import os

    parser = argparse.ArgumentParser(
        prog="python -m redraw.emulator",
        description="Loopback emulator of the VOD API (CreateAigcVideoRedrawTask, DescribeTaskDetail).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port (default 9000)")
    parser.add_argument("--secret-id", default=DEFAULT_SECRET_ID)
    parser.add_argument("--secret-key", default=None,
                        help="secret key (visible in the process list; prefer --secret-key-env)")
    parser.add_argument("--secret-key-env", default="VOD_EMULATOR_SECRET_KEY", metavar="VAR",
                        help="environment variable holding the secret key (default: the built-in key)")
    parser.add_argument("--token", default=None, help="require this X-TC-Token")
    parser.add_argument("--rps", type=int, default=20, help="CreateAigcVideoRedrawTask limit per second; 0 = off")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--sub-app-id", type=int, action="append", dest="sub_app_ids",
                        help="allowed SubAppId (repeatable; default any positive)")
    parser.add_argument("--file-id", action="append", dest="file_ids", default=[],
                        help="a FileId that exists (repeatable)")
    parser.add_argument("--task-duration", type=float, default=2.0,
                        help="seconds from creation to the end of a task (default 2.0)")
    parser.add_argument("--failure-rate", type=float, default=0.0,
                        help="share of tasks that end FINISH with ErrCode 70000 and no output (0..1)")
    parser.add_argument("--abort-rate", type=float, default=0.0, help="share of tasks that end ABORTED (0..1)")
    parser.add_argument("--output-bytes", type=int, default=None,
                        help="size of each output download (default: the few-KB sample MP4 as is)")
    parser.add_argument("--describe-rps", type=int, default=DESCRIBE_RPS,
                        help=f"DescribeTaskDetail limit per second (default {DESCRIBE_RPS}); 0 = off")
    parser.add_argument("--slots", type=int, default=None,
                        help="tasks VOD processes at once; the others wait in a queue (default: no queue)")
    parser.add_argument("--progress-mode", choices=PROGRESS_MODES, default="honest",
                        help="what Progress reports while a task processes (default honest)")
    parser.add_argument("--progress-noise", type=float, default=0.0,
                        help="Gaussian noise on honest Progress, in points (default 0)")
    parser.add_argument("--fault", action="append", default=[],
                        help="queue a fault for the next CreateAigcVideoRedrawTask (repeatable)")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-seed", type=int, default=None)
    parser.add_argument("--max-skew", type=float, default=300)
    add_input_arguments(parser)
    args = parser.parse_args(argv)

    try:
        emulator = VodEmulator(
            secret_id=args.secret_id,
            secret_key=args.secret_key or os.environ.get(args.secret_key_env) or DEFAULT_SECRET_KEY,
            token=args.token,
            host=args.host,
            port=args.port,
            rps=args.rps,
            latency=args.latency,
            sub_app_ids=args.sub_app_ids,
            known_file_ids=args.file_ids,
            task_duration=args.task_duration,
            fault_rate=args.fault_rate,
            fault_seed=args.fault_seed,
            max_skew=args.max_skew,
            failure_rate=args.failure_rate,
            abort_rate=args.abort_rate,
            output_bytes=args.output_bytes,
            describe_rps=args.describe_rps,
            slots=args.slots,
            progress_mode=args.progress_mode,
            progress_noise=args.progress_noise,
            **input_options(args),
        )
        emulator.inject(*args.fault)
    except ValueError as exc:
        parser.error(str(exc))
    return serve(emulator, lambda emu: f"VOD emulator listening on {emu.url} (secret id {emu.secret_id})")


def add_input_arguments(parser) -> None:
    """The command-line flags for how tasks read their inputs (``--fetch-inputs``, ``--cos-endpoint``)."""
    parser.add_argument("--fetch-inputs", choices=FETCH_MODES, default="local",
                        help="local (default): read FileInfo.Url when a local COS emulator serves its bucket or it "
                             "names a loopback host, take other hosts as read; all: read every URL; off: read none")
    parser.add_argument("--cos-endpoint", action="append", default=[], metavar="URL",
                        help="a COS emulator (http://127.0.0.1:9100) that serves the buckets of input URLs "
                             "(repeatable)")


def input_options(args) -> dict:
    """VodEmulator keyword arguments from ``add_input_arguments``'s flags; ValueError for a bad endpoint."""
    routes = InputRoutes()
    for url in args.cos_endpoint:
        routes.add_cos_endpoint(url)
    return {"fetch_inputs": args.fetch_inputs, "input_routes": routes}


def serve(emulator: "VodEmulator", banner) -> int:
    """Start ``emulator``, print ``banner(emulator)``, serve until Ctrl-C or SIGTERM."""
    import signal

    stop = threading.Event()
    previous: dict = {}
    if threading.current_thread() is threading.main_thread():
        # SIGINT too, set rather than inherited: started in the background of a script, a process has
        # SIGINT ignored, and Ctrl-C (or a harness's SIGINT) would not stop it
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, lambda *_: stop.set())
    try:
        emulator.start()
        print(banner(emulator), flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
