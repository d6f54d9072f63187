"""Loopback emulator of Tencent Cloud COS (the XML API) for the unchanged ``cos-python-sdk-v5``.

Standard library only; importing this module starts nothing.  Usage::

    with CosEmulator(root=tmp_path) as emu:
        emu.add_bucket("media-1250000000")
        client = CosS3Client(CosConfig(IP="127.0.0.1", Port=emu.port, Scheme="http", Region="ap-guangzhou",
                                       SecretId=DEFAULT_SECRET_ID, SecretKey=DEFAULT_SECRET_KEY), retry=0)
        client.put_object(Bucket="media-1250000000", Key="uploads/a.mp4", Body=b"...")

or from a shell: ``python -m redraw.tools.cos_emulator --root DIR --port 9100 --bucket media-1250000000``.

With ``IP``/``Port`` the SDK sends every request to the emulator and names the bucket in the Host
header (``<name-appid>.cos.<region>.myqcloud.com``): requests are routed by Host.  A Host that names
no bucket (an IP, as in a presigned URL made with ``IP=``) goes to the only bucket when there is
exactly one, else it is ``NoSuchBucket``.

Objects are plain files: the key ``uploads/a.mp4`` of a bucket is the file ``<bucket dir>/uploads/a.mp4``.
What else the emulator keeps lives under ``<bucket dir>/.cos/``: ``meta/`` (one JSON sidecar per object:
ETag, Content-Type, ``x-cos-meta-*``, valid only while the file keeps its inode, size and mtime),
``uploads/<UploadId>/`` (multipart parts) and ``tmp/`` (files being written).  A file put into the
folder by hand (or changed by hand) is an object too: ETag = MD5 computed on demand, Content-Type
guessed from the name, no ``x-cos-meta-*``.  Keys whose first segment starts with ``.cos`` are refused.
A key ending in ``/`` is a folder marker: a directory plus a sidecar flag, always zero bytes.

Every request is authenticated as COS does (``q-sign-algorithm=sha1`` ... ``q-signature``, in the
Authorization header or the query string of a presigned URL), recomputed from the request itself.
Faults (5xx, AccessDenied, dropped or cut connections, slow answers, a write whose answer is lost)
can be queued with :meth:`CosEmulator.inject` or drawn at random.
"""

from __future__ import annotations

import base64
import binascii
import collections
import email.utils
import errno
import hashlib
import hmac
import http.server
import json
import mimetypes
import os
import random
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
import weakref
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from .emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, serve
from .loopback import LoopbackServer, Served

__all__ = [
    "DEFAULT_SECRET_ID",
    "DEFAULT_SECRET_KEY",
    "FAULTS",
    "MIN_PART_SIZE",
    "RANDOM_FAULTS",
    "CosEmulator",
    "main",
]

DEFAULT_REGION = "ap-guangzhou"
MIN_PART_SIZE = 1024 * 1024          # COS: every part but the last is at least 1 MB
MAX_PART_NUMBER = 10000
MAX_KEYS = 1000
MAX_KEY_BYTES = 850                  # COS's limit on an object key
MAX_XML_BODY = 4 * 1024 * 1024       # Complete Multipart Upload's part list
CHUNK = 1024 * 1024                  # bodies are streamed in pieces of this size, never held whole
DRAIN_LIMIT = 64 * 1024 * 1024       # an early answer reads at most this much of an unread body, then closes

#: What ``inject`` accepts (``slow:SECONDS`` too).
FAULTS = ("http500", "http503", "AccessDenied", "drop", "cut", "drop_after_write")
#: What ``fault_rate`` draws from.
RANDOM_FAULTS = ("http500", "http503", "drop", "cut", "drop_after_write", "slow:0.2")
_ERROR_FAULTS = {
    "http500": (500, "InternalError"),
    "http503": (503, "SlowDown"),
    "AccessDenied": (403, "AccessDenied"),
}
_SLOW_RE = re.compile(r"^slow:(\d+(\.\d*)?|\.\d+)$")
_BUCKET_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+$")
_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{16,128}$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_AUTH_FIELDS = ("q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list",
                "q-url-param-list", "q-signature")
_TOKEN = "x-cos-security-token"
_LIST_PARAMS = frozenset({"prefix", "delimiter", "marker", "max-keys", "encoding-type"})
_LIST_UPLOADS_PARAMS = frozenset({"uploads", "prefix", "delimiter", "key-marker", "upload-id-marker",
                                  "max-uploads", "encoding-type"})
_LIST_PARTS_PARAMS = frozenset({"uploadid", "part-number-marker", "max-parts", "encoding-type"})
_RESPONSE_PARAMS = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
#: Standard headers kept with an object and answered on GET/HEAD, besides ``x-cos-meta-*``.
_STORED_HEADERS = ("Content-Type", "Cache-Control", "Content-Disposition", "Content-Encoding",
                   "Content-Language", "Expires")
_MESSAGES = {
    "AccessDenied": "Access Denied.",
    "EntityTooSmall": "Your proposed upload is smaller than the minimum allowed object size.",
    "FileAlreadyExists": "The object already exists and x-cos-forbid-overwrite is true.",
    "IncompleteBody": "The request body is shorter than its Content-Length.",
    "InternalError": "We encountered an internal error. Please try again.",
    "InvalidAccessKeyId": "The SecretId you provided does not exist in our records.",
    "InvalidDigest": "The Content-MD5 you specified did not match what we received.",
    "InvalidPart": "One or more of the specified parts could not be found or its ETag does not match.",
    "InvalidPartOrder": "The list of parts was not in ascending order.",
    "InvalidRange": "The requested range is not satisfiable.",
    "InvalidToken": "The provided token is malformed or otherwise invalid.",
    "MalformedXML": "The XML you provided was not well-formed or did not validate.",
    "NoSuchBucket": "The specified bucket does not exist.",
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchUpload": "The specified upload does not exist.",
    "RequestTimeTooSkewed": "The difference between the request time and the server's time is too large.",
    "SignatureDoesNotMatch": (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    ),
    "SlowDown": "Please reduce your request rate.",
}


class CosError(Exception):
    """An error answered as COS does: the status and ``<Error><Code/><Message/>...</Error>``."""

    def __init__(self, status: int, code: str, message: Optional[str] = None,
                 headers: Optional[List[Tuple[str, str]]] = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message or _MESSAGES.get(code) or code
        self.headers = headers or []


class _ClientGone(Exception):
    """The request body ended early or was malformed: the connection is closed, nothing answered."""


def _invalid(message: str) -> CosError:
    return CosError(400, "InvalidArgument", message)


def _key_problem(key: str) -> Optional[str]:
    """Why ``key`` cannot be an object stored as a file, or None."""
    if not key:
        return "the key is empty"
    if "\x00" in key:
        return "the key contains a NUL character"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"the key is longer than {MAX_KEY_BYTES} bytes"
    segments = (key[:-1] if key.endswith("/") else key).split("/")
    for seg in segments:
        if seg == "":
            return "the key has an empty segment (a leading '/' or '//'), which cannot be a file name"
        if seg in (".", ".."):
            return f"the key has a '{seg}' segment, which cannot be a file name"
        if len(seg.encode("utf-8")) > 255:
            return "a segment of the key is longer than 255 bytes, which cannot be a file name"
    if segments[0].startswith(".cos"):
        return "keys whose first segment starts with '.cos' are reserved for the emulator's own files"
    return None


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() == "true"


def _sign_quote(value: bytes) -> str:
    """How the SDK encodes names and values in the string it signs."""
    return quote(value, "-_.~")


def _wire(value: str) -> bytes:
    """A header value's bytes as sent (http.server decodes header bytes as Latin-1)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _readable(value: str) -> str:
    """A header value as text: its wire bytes as UTF-8 when they are, else as received."""
    try:
        return _wire(value).decode("utf-8")
    except UnicodeDecodeError:
        return value


def _guess_type(key: str) -> str:
    return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)



def _listing_page(entries: Iterable[Any], key_of: Callable[[Any], str], prefix: str, delimiter: str, limit: int,
                  after: str = "") -> Tuple[List[Tuple[str, Any]], bool]:
    """One page of a listing, as COS pages them: ``(items, truncated)``, where an item is ``("prefix",
    common)`` for the keys that hold ``delimiter`` past ``prefix`` (each such prefix once, and only past
    ``after``) or ``("entry", entry)``; at most ``limit`` items."""
    items: List[Tuple[str, Any]] = []
    seen = set()
    for entry in entries:
        key = key_of(entry)
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        item: Tuple[str, Any] = ("entry", entry)
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            if common in seen or (after and common <= after):
                continue
            seen.add(common)
            item = ("prefix", common)
        if len(items) >= limit:
            return items, True
        items.append(item)
    return items, False

def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = str(text)
    return node


def _parse_fault(fault: str) -> str:
    if not isinstance(fault, str):
        raise TypeError(f"fault must be a string, not {type(fault).__name__}")
    if fault in FAULTS or _SLOW_RE.match(fault):
        return fault
    raise ValueError(f"unknown fault {fault!r}: use one of {', '.join(FAULTS)} or slow:SECONDS")


# --------------------------------------------------------------------------- HTTP plumbing

class _BodyReader:
    """The request body, read in pieces (Content-Length or chunked)."""

    def __init__(self, rfile: BinaryIO, headers: Any) -> None:
        self._rfile = rfile
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        self.length: Optional[int] = None
        self._remaining = 0
        self._chunk_left = 0
        self.bad = False
        if not self.chunked:
            raw = (headers.get("Content-Length") or "0").strip()
            if not raw.isdigit():
                self.bad = True
                self.done = True
                return
            self.length = self._remaining = int(raw)
        self.done = not self.chunked and self._remaining == 0

    def read(self, n: int = CHUNK) -> bytes:
        """Up to ``n`` bytes; b"" at the end.  Raises _ClientGone when the body is cut short."""
        if self.done:
            return b""
        if not self.chunked:
            data = self._rfile.read(min(n, self._remaining))
            if not data:
                raise _ClientGone("body shorter than Content-Length")
            self._remaining -= len(data)
            self.done = self._remaining == 0
            return data
        if self._chunk_left == 0:
            line = self._rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            except ValueError:
                raise _ClientGone("malformed chunk size") from None
            if size == 0:
                while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self.done = True
                return b""
            self._chunk_left = size
        data = self._rfile.read(min(n, self._chunk_left))
        if not data:
            raise _ClientGone("chunked body cut short")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(65537)
        return data

    def read_all(self, limit: int) -> Optional[bytes]:
        """The whole body if it is at most ``limit`` bytes, else None (the rest left unread)."""
        parts: List[bytes] = []
        total = 0
        while True:
            data = self.read(min(CHUNK, limit + 1 - total))
            if not data:
                return b"".join(parts)
            total += len(data)
            if total > limit:
                return None
            parts.append(data)

    def drain(self, limit: int) -> bool:
        """Discard what is left of the body; False when more than ``limit`` bytes remain or it breaks."""
        total = 0
        try:
            while not self.done:
                total += len(self.read(CHUNK))
                if total > limit:
                    return False
        except (_ClientGone, OSError):
            return False
        return True


class _Reply:
    """An answer: status, headers and a body (bytes, or ``length`` bytes of an open file)."""

    __slots__ = ("body", "file", "head", "headers", "length", "status")

    def __init__(self, status: int = 200, headers: Optional[List[Tuple[str, str]]] = None, body: bytes = b"",
                 file: Optional[BinaryIO] = None, length: Optional[int] = None, head: bool = False) -> None:
        self.status = status
        self.headers = headers or []
        self.body = body
        self.file = file
        self.length = len(body) if length is None else length
        self.head = head  # HEAD: Content-Length as GET would send, no body

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class _Server(LoopbackServer):
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], emulator: "CosEmulator", family: int) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler, family)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tencent-cos"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    wbufsize = -1  # buffered: status line and headers leave in one segment

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # silence request logging
        pass

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        try:
            self.server.emulator._serve(self)  # type: ignore[attr-defined]
        except OSError:  # includes timeouts and resets
            self.close_connection = True

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def write_reply(self, reply: _Reply, request_id: str, cut: bool) -> None:
        """Send ``reply``; with ``cut``, the headers promise the whole body but half is sent, then close."""
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("x-cos-request-id", request_id)
        if reply.status != 204:
            self.send_header("Content-Length", str(reply.length))
        if cut:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        todo = 0 if reply.head or reply.status == 204 else reply.length
        if cut:
            todo //= 2
        if reply.file is None:
            self.wfile.write(reply.body[:todo])
        else:
            while todo > 0:
                data = reply.file.read(min(CHUNK, todo))
                if not data:
                    break
                self.wfile.write(data)
                todo -= len(data)
        self.wfile.flush()


# --------------------------------------------------------------------------- one request

class _Request:
    __slots__ = ("body", "bucket", "bucket_path", "headers", "host", "key", "method", "operation",
                 "params", "path", "request_id")

    def __init__(self, method: str, path: str, params: List[Tuple[str, str]], headers: Any,
                 body: _BodyReader, request_id: str) -> None:
        self.method = method
        self.path = path                  # decoded, with its leading "/"
        self.key = path[1:]
        self.params = params              # decoded (name, value) pairs, in order
        self.headers = headers
        self.body = body
        self.request_id = request_id
        self.host = (headers.get("Host") or "").strip()
        self.bucket = ""
        self.bucket_path = Path()
        self.operation = ""

    def param(self, name: str) -> Optional[str]:
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return value
        return None

    def op_params(self) -> Dict[str, str]:
        """The parameters that select or shape the operation (not the signature or the token)."""
        out: Dict[str, str] = {}
        for key, value in self.params:
            low = key.lower()
            if low.startswith("q-") or low == _TOKEN:
                continue
            out.setdefault(low, value)
        return out

    def resource(self) -> str:
        return f"{self.host or self.bucket}{quote(self.path)}"


class _Info:
    """What COS says about an object: size, time, ETag and the stored headers."""

    __slots__ = ("etag", "folder", "headers", "mtime", "size")

    def __init__(self, size: int, mtime: float, etag: str, headers: Dict[str, str], folder: bool = False) -> None:
        self.size = size
        self.mtime = mtime
        self.etag = etag
        self.headers = headers
        self.folder = folder

    def response_headers(self) -> List[Tuple[str, str]]:
        out = [("ETag", f'"{self.etag}"'), ("Last-Modified", _http_date(self.mtime)), ("Accept-Ranges", "bytes")]
        out.extend((name, value) for name, value in self.headers.items())
        return out


# --------------------------------------------------------------------------- the emulator

class CosEmulator(Served):
    """A threaded loopback HTTP server answering like ``<bucket>.cos.<region>.myqcloud.com``.

    ``latency``, ``fault_rate``, ``max_skew``, ``min_part_size``, ``auto_buckets`` and
    ``require_signed_host`` are plain attributes that may be changed while running.
    ``calls`` returns a snapshot (a new list on each access).
    """

    thread_name = "cos-emulator"

    def __init__(
        self,
        *,
        root: Optional[os.PathLike | str] = None,
        secret_id: str = DEFAULT_SECRET_ID,
        secret_key: str = DEFAULT_SECRET_KEY,
        token: Optional[str] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_seed: Any = None,
        max_skew: float = 900,
        auto_buckets: bool = False,
        min_part_size: int = MIN_PART_SIZE,
    ) -> None:
        if root is None:
            root = tempfile.mkdtemp(prefix="cos-emulator-")
            weakref.finalize(self, shutil.rmtree, root, True)
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.secret_id = secret_id
        self._secret_key = secret_key
        self.token = token
        self.host = host
        self._requested_port = port
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_seed = fault_seed
        self.max_skew = max_skew
        self.auto_buckets = auto_buckets
        self.min_part_size = min_part_size
        #: The SDK signs ``host`` by default; a request whose signature leaves it out is refused.
        self.require_signed_host = True

        self._lock = threading.Lock()      # faults, calls, buckets
        self._fs_lock = threading.Lock()   # object file + sidecar: committed and read as one
        self._rng = random.Random(fault_seed)
        self._faults: collections.deque = collections.deque()
        self._calls: List[dict] = []
        self._buckets: Dict[str, Path] = {}
        self._etag_cache: Dict[tuple, str] = {}

        # the server's state (_server, _thread, port, url, endpoint): loopback.Served

    def __repr__(self) -> str:  # never shows the secret key
        return f"CosEmulator(url={self.url or None!r}, secret_id={self.secret_id!r}, root={str(self.root)!r})"

    # ----------------------------------------------------------------- lifecycle
    def _new_server(self, address, family: int) -> LoopbackServer:
        return _Server(address, self, family)

    # ------------------------------------------------------------------ buckets
    def add_bucket(self, name: str, path: Optional[os.PathLike | str] = None) -> Path:
        """Serve ``name`` (``name-appid``) from ``path`` (default ``root/name``), created if missing."""
        if not isinstance(name, str) or not _BUCKET_RE.match(name) or len(name) > 60:
            raise ValueError(f"bad bucket name {name!r}: use lowercase letters, digits and '-', "
                             "ending in -APPID (e.g. media-1250000000)")
        folder = Path(path).expanduser() if path is not None else self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        folder = folder.resolve()
        with self._lock:
            self._buckets[name] = folder
        return folder

    @property
    def buckets(self) -> Dict[str, Path]:
        with self._lock:
            return dict(self._buckets)

    def host_for(self, bucket: str, region: str = DEFAULT_REGION) -> str:
        """The Host header the SDK sends for ``bucket`` (what requests are routed by)."""
        return f"{bucket}.cos.{region}.myqcloud.com"

    # ------------------------------------------------------------- test helpers
    def inject(self, *faults: str, method: Optional[str] = None, key_prefix: Optional[str] = None) -> None:
        """Queue faults; each is consumed by the next authenticated request matching ``method`` and
        ``key_prefix`` (when given).  See :data:`FAULTS`."""
        parsed = [_parse_fault(f) for f in faults]
        wanted = method.upper() if method else None
        with self._lock:
            self._faults.extend((fault, wanted, key_prefix) for fault in parsed)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> List[str]:
        with self._lock:
            return [fault for fault, _, _ in self._faults]

    @property
    def calls(self) -> List[dict]:
        """One dict per request: method, host, bucket, key, query (without signature or token), operation,
        status (None: nothing answered), code (the error code answered) and fault."""
        with self._lock:
            return [dict(call) for call in self._calls]

    def reset(self) -> None:
        """Forget calls and faults (objects stay)."""
        with self._lock:
            self._calls.clear()
            self._faults.clear()
            self._rng = random.Random(self.fault_seed)

    def _folder(self, bucket: str) -> Path:
        with self._lock:
            folder = self._buckets.get(bucket)
        if folder is None:
            raise KeyError(f"no bucket {bucket!r}")
        return folder

    def read(self, bucket: str, key: str) -> bytes:
        """An object's bytes (KeyError when it does not exist)."""
        opened = self._open_object(self._folder(bucket), key)
        if opened is None:
            raise KeyError(f"no object {key!r} in {bucket}")
        handle, _ = opened
        if handle is None:
            return b""
        with handle:
            return handle.read()

    def exists(self, bucket: str, key: str) -> bool:
        return self._exists(self._folder(bucket), key)

    def metadata(self, bucket: str, key: str) -> Dict[str, str]:
        """Content-Type and the ``x-cos-meta-*`` headers of an object (KeyError when it does not exist)."""
        info = self._stat_object(self._folder(bucket), key)
        if info is None:
            raise KeyError(f"no object {key!r} in {bucket}")
        return {name: _readable(value) for name, value in info.headers.items()
                if name == "Content-Type" or name.startswith("x-cos-meta-")}

    def keys(self, bucket: str, prefix: str = "") -> List[str]:
        """The bucket's keys starting with ``prefix``, sorted as COS lists them."""
        return [k for k in self._all_keys(self._folder(bucket), prefix) if k.startswith(prefix)]

    # ------------------------------------------------------------ storage layout
    @staticmethod
    def _cos_dir(folder: Path, name: str) -> Path:
        path = folder / ".cos" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def _sidecar_path(folder: Path, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return folder / ".cos" / "meta" / digest[:2] / f"{digest}.json"

    @staticmethod
    def _load_sidecar(folder: Path, key: str) -> Optional[dict]:
        try:
            data = json.loads(CosEmulator._sidecar_path(folder, key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("key") == key else None

    def _write_sidecar_tmp(self, folder: Path, data: dict) -> Path:
        tmp = self._cos_dir(folder, "tmp") / f"meta-{uuid.uuid4().hex}.json"
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return tmp

    def _new_tmp(self, folder: Path, prefix: str) -> Tuple[Path, int]:
        path = self._cos_dir(folder, "tmp") / f"{prefix}-{uuid.uuid4().hex}.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any file
        return path, fd

    def _md5_of(self, fd: int, st: os.stat_result, folder: Path, key: str) -> str:
        cache_key = (str(folder), key, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._etag_cache.get(cache_key)
        if cached is not None:
            return cached
        md5 = hashlib.md5()
        offset = 0
        while True:
            data = os.pread(fd, CHUNK, offset)
            if not data:
                break
            md5.update(data)
            offset += len(data)
        etag = md5.hexdigest()
        with self._lock:
            if len(self._etag_cache) > 10000:
                self._etag_cache.clear()
            self._etag_cache[cache_key] = etag
        return etag

    def _info_for(self, fd: int, st: os.stat_result, sidecar: Optional[dict], folder: Path, key: str) -> _Info:
        if (sidecar and not sidecar.get("folder") and sidecar.get("ino") == st.st_ino
                and sidecar.get("size") == st.st_size and sidecar.get("mtime_ns") == st.st_mtime_ns):
            return _Info(st.st_size, st.st_mtime, str(sidecar.get("etag")), dict(sidecar.get("headers") or {}))
        # a file put (or changed) by hand: the MD5 of what is there, a type from its name
        return _Info(st.st_size, st.st_mtime, self._md5_of(fd, st, folder, key),
                     {"Content-Type": _guess_type(key)})

    @staticmethod
    def _folder_marker(folder: Path, key: str, sidecar: Optional[dict]) -> Optional[_Info]:
        if not (sidecar and sidecar.get("folder")) or not (folder / key).is_dir():
            return None
        return _Info(0, float(sidecar.get("mtime") or 0), hashlib.md5(b"").hexdigest(),
                     dict(sidecar.get("headers") or {}), folder=True)

    def _open_object(self, folder: Path, key: str) -> Optional[Tuple[Optional[BinaryIO], _Info]]:
        """(open file, info), (None, info) for a folder marker, or None; file and metadata agree."""
        if _key_problem(key):
            return None
        path = folder / key
        with self._fs_lock:
            if key.endswith("/"):
                marker = self._folder_marker(folder, key, self._load_sidecar(folder, key))
                return None if marker is None else (None, marker)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never blocks on a FIFO
            except OSError:
                return None
            sidecar = self._load_sidecar(folder, key)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return None
            info = self._info_for(fd, st, sidecar, folder, key)
        except OSError:
            os.close(fd)
            return None
        return os.fdopen(fd, "rb"), info

    def _stat_object(self, folder: Path, key: str) -> Optional[_Info]:
        opened = self._open_object(folder, key)
        if opened is None:
            return None
        handle, info = opened
        if handle is not None:
            handle.close()
        return info

    def _all_keys(self, folder: Path, prefix: str = "") -> List[str]:
        """Every object key under the directory ``prefix`` implies, sorted (UTF-8 byte order)."""
        base = prefix[: prefix.rfind("/") + 1]
        if base and _key_problem(base):
            base = ""
        start = folder / base if base else folder
        keys: List[str] = []
        stack = [(start, base)]
        while stack:
            directory, rel = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                if not rel and name.startswith(".cos"):
                    continue
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:  # a file name that is not UTF-8 cannot be a key
                    continue
                key = rel + name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        marker = key + "/"
                        if self._folder_marker(folder, marker, self._load_sidecar(folder, marker)):
                            keys.append(marker)
                        stack.append((Path(entry.path), marker))
                    elif entry.is_file() and not _key_problem(key):
                        keys.append(key)
                except OSError:
                    continue
        keys.sort()
        return keys

    def _prepare_target(self, folder: Path, key: str) -> Path:
        """Create the parent directories of ``key``; refuse keys the tree cannot hold as a file."""
        path = folder / key
        parent = path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = next((p for p in [*reversed(parent.parents), parent]
                            if p != folder and folder in p.parents and p.is_file()), parent)
            rel = blocker.relative_to(folder).as_posix()
            raise _invalid(f"the key {key!r} cannot be stored: {rel!r} is an object (a file) in this "
                           "emulator, which keeps objects as files") from None
        return path

    def _clear_empty_dir(self, path: Path, key: str) -> None:
        """A file cannot replace a directory: an empty one left behind is removed, else refused."""
        if path.is_dir() and not path.is_symlink():
            try:
                path.rmdir()
            except OSError:
                raise _invalid(f"the key {key!r} cannot be stored: it is a folder holding other objects "
                               "in this emulator, which keeps objects as files") from None

    def _commit(self, folder: Path, key: str, tmp: Path, sidecar: dict, forbid: bool) -> None:
        """Make ``tmp`` the object ``key``, atomically; with ``forbid``, only if the key is free."""
        target = self._prepare_target(folder, key)
        st = os.stat(tmp)
        sidecar.update(key=key, ino=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns)
        meta_tmp = self._write_sidecar_tmp(folder, sidecar)
        meta_path = self._sidecar_path(folder, key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._fs_lock:
                if forbid and self._stat_exists(folder, key):
                    raise CosError(409, "FileAlreadyExists")
                self._clear_empty_dir(target, key)
                if forbid:
                    try:
                        os.link(tmp, target)  # fails if the name exists, even if another process made it
                    except FileExistsError:
                        raise CosError(409, "FileAlreadyExists") from None
                    except OSError as exc:
                        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                            raise
                        os.replace(tmp, target)  # no hard links here: create-only among this emulator's clients
                    else:
                        os.unlink(tmp)
                else:
                    os.replace(tmp, target)
                os.replace(meta_tmp, meta_path)
        finally:
            for leftover in (tmp, meta_tmp):
                try:
                    os.unlink(leftover)
                except OSError:
                    pass

    def _exists(self, folder: Path, key: str) -> bool:
        """Whether the key is an object (cheap: no MD5 of a hand-written file)."""
        if _key_problem(key):
            return False
        with self._fs_lock:
            return self._stat_exists(folder, key)

    def _stat_exists(self, folder: Path, key: str) -> bool:
        """Whether the key is an object (called with _fs_lock held)."""
        path = folder / key
        if key.endswith("/"):
            return self._folder_marker(folder, key, self._load_sidecar(folder, key)) is not None
        try:
            return stat.S_ISREG(os.stat(path).st_mode)
        except OSError:
            return False

    # --------------------------------------------------------- request handling
    def _serve(self, handler: _Handler) -> None:
        request_id = uuid.uuid4().hex
        raw_path, _, query = handler.path.partition("?")
        body = _BodyReader(handler.rfile, handler.headers)  # type: ignore[arg-type]
        record: Dict[str, Any] = {"method": handler.command, "host": handler.headers.get("Host"),
                                  "bucket": None, "key": None, "query": {},
                                  "operation": None, "status": None, "fault": None, "code": None,
                                  "request_id": request_id, "time": time.time()}
        with self._lock:
            self._calls.append(record)
        fault: Optional[str] = None
        reply: Optional[_Reply] = None
        req: Optional[_Request] = None
        try:
            try:
                req = self._parse(handler, raw_path, query, body, request_id)
                record["key"] = req.key
                record["query"] = req.op_params()
                self._route(req)
                record["bucket"] = req.bucket
                self._authenticate(req)
                if req.bucket not in self.buckets:
                    self.add_bucket(req.bucket)  # auto_buckets: the first authenticated request makes it
                fault = self._take_fault(req)
                record["fault"] = fault
                if fault == "drop":
                    handler.close_connection = True
                    return
                if fault in _ERROR_FAULTS:
                    status, code = _ERROR_FAULTS[fault]
                    raise CosError(status, code)
                reply = self._execute(req, record)
            except CosError as err:
                record["code"] = err.code
                reply = self._error_reply(err, handler.command, req, request_id)
            except _ClientGone:
                handler.close_connection = True
                return
            if body.bad:
                handler.close_connection = True
            elif not body.done and not body.drain(DRAIN_LIMIT):
                handler.close_connection = True
            if fault == "drop_after_write":
                handler.close_connection = True
                return
            delay = float(self.latency or 0.0)
            if fault and fault.startswith("slow:"):
                delay += float(fault[5:])
            if delay > 0:
                time.sleep(delay)
            assert reply is not None
            record["status"] = reply.status
            handler.write_reply(reply, request_id, cut=fault == "cut")
        finally:
            if reply is not None:
                reply.close()

    def _parse(self, handler: _Handler, raw_path: str, query: str, body: _BodyReader, request_id: str) -> _Request:
        if body.bad:
            raise CosError(400, "InvalidArgument", "Content-Length is not a number.")
        try:
            path = unquote_to_bytes(raw_path or "/").decode("utf-8")
            params = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise CosError(400, "InvalidURI", "The request URI is not valid UTF-8 once decoded.") from None
        if not path.startswith("/"):
            raise CosError(400, "InvalidURI", "The request path must start with '/'.")
        return _Request(handler.command, path, params, handler.headers, body, request_id)

    def _route(self, req: _Request) -> None:
        host = req.host.lower()
        if host.startswith("["):
            hostname = host[1:].partition("]")[0]
        else:
            hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        buckets = self.buckets
        if ".cos." in hostname:
            name = hostname.split(".cos.", 1)[0]
            if name in buckets or (self.auto_buckets and _BUCKET_RE.match(name)):
                req.bucket = name
                req.bucket_path = buckets.get(name) or self.root / name
                return
            raise CosError(404, "NoSuchBucket")
        if len(buckets) == 1:  # a Host that names no bucket (an IP, as in a presigned URL made with IP=)
            req.bucket, req.bucket_path = next(iter(buckets.items()))
            return
        raise CosError(404, "NoSuchBucket",
                       f"The Host {req.host!r} names no bucket: the emulator routes by Host "
                       "<name-appid>.cos.<region>.myqcloud.com, and serves "
                       f"{len(buckets)} buckets.")

    # ------------------------------------------------------------ authentication
    def _authenticate(self, req: _Request) -> None:
        auth = (req.headers.get("Authorization") or "").strip()
        fields: Dict[str, str] = {}
        if auth:
            for part in auth.split("&"):
                name, _, value = part.partition("=")
                fields.setdefault(name.strip().lower(), value.strip())
        elif req.param("q-sign-algorithm") is not None:  # a presigned URL
            for name, value in req.params:
                if name.lower().startswith("q-"):
                    fields.setdefault(name.lower(), value)
        else:
            raise CosError(403, "AccessDenied", "Access Denied: the request carries no signature "
                                                "(no Authorization header, no q-signature in the URL).")
        missing = [name for name in _AUTH_FIELDS if name not in fields]
        if missing:
            raise CosError(403, "AccessDenied", f"The signature is malformed: {', '.join(missing)} missing.")
        if fields["q-sign-algorithm"].lower() != "sha1":
            raise CosError(403, "AccessDenied", "The signature algorithm must be sha1.")
        if not hmac.compare_digest(fields["q-ak"].encode("utf-8", "replace"), self.secret_id.encode("utf-8")):
            raise CosError(403, "InvalidAccessKeyId")
        now = time.time()
        for name in ("q-sign-time", "q-key-time"):
            start_s, sep, end_s = fields[name].partition(";")
            if not sep or not start_s.strip().isdigit() or not end_s.strip().isdigit():
                raise CosError(403, "AccessDenied", f"{name} must be START;END in Unix seconds.")
            start, end = int(start_s), int(end_s)
            if now > end:
                raise CosError(403, "AccessDenied", "Request has expired")
            if self.max_skew is not None and start > now + self.max_skew:
                raise CosError(403, "RequestTimeTooSkewed",
                               f"The signature is valid from {start}, later than the server time {int(now)} "
                               f"plus the allowed skew ({self.max_skew:g} s).")
        header_names = sorted({n for n in fields["q-header-list"].lower().split(";") if n})
        if self.require_signed_host and "host" not in header_names:
            raise CosError(403, "SignatureDoesNotMatch", "The Host header must be signed (q-header-list lacks host).")
        header_values: List[List[str]] = []
        for name in header_names:
            value = next((v for k, v in req.headers.items() if _sign_quote(k.lower().encode()).lower() == name), None)
            if value is None:
                raise CosError(403, "SignatureDoesNotMatch", f"The signed header {name!r} was not sent.")
            wire = _wire(value.strip())
            options = [_sign_quote(wire)]
            if name == "host" and b":" in wire and not wire.startswith(b"["):
                # the SDK signs the URL's host name without the port; a client sends host:port
                options.append(_sign_quote(wire.rsplit(b":", 1)[0]))
            header_values.append(options)
        param_pairs: List[str] = []
        for name in sorted({n for n in fields["q-url-param-list"].lower().split(";") if n}):
            value = next((v for k, v in req.params if _sign_quote(k.encode("utf-8")).lower() == name), None)
            if value is None:
                raise CosError(403, "SignatureDoesNotMatch", f"The signed parameter {name!r} was not sent.")
            param_pairs.append(f"{name}={_sign_quote(value.encode('utf-8'))}")
        params = "&".join(param_pairs)
        sign_key = hmac.new(self._secret_key.encode("utf-8"), fields["q-key-time"].encode("utf-8"),
                            hashlib.sha1).hexdigest()
        candidates: List[List[str]] = [[]]
        for options in header_values:
            candidates = [done + [option] for done in candidates for option in options]
        signature = fields["q-signature"].lower().encode("utf-8", "replace")
        ok = False
        for values in candidates:
            headers = "&".join(f"{n}={v}" for n, v in zip(header_names, values))
            format_str = f"{req.method.lower()}\n{req.path}\n{params}\n{headers}\n"
            string_to_sign = (f"sha1\n{fields['q-sign-time']}\n"
                              f"{hashlib.sha1(format_str.encode('utf-8')).hexdigest()}\n")
            expected = hmac.new(sign_key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).hexdigest()
            ok |= hmac.compare_digest(expected.encode(), signature)
        if not ok:
            raise CosError(403, "SignatureDoesNotMatch")
        if self.token is not None:
            sent = req.headers.get(_TOKEN)
            if sent is None:
                sent = req.param(_TOKEN)
            if sent is None or not hmac.compare_digest(sent.strip().encode("utf-8", "replace"),
                                                       self.token.encode("utf-8")):
                raise CosError(403, "InvalidToken")

    def _take_fault(self, req: _Request) -> Optional[str]:
        with self._lock:
            for i, (fault, method, prefix) in enumerate(self._faults):
                if (method is None or method == req.method) and (prefix is None or req.key.startswith(prefix)):
                    del self._faults[i]
                    return fault
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(RANDOM_FAULTS)
        return None

    # ---------------------------------------------------------------- operations
    @staticmethod
    def _operation(req: _Request) -> str:
        method = req.method
        names = set(req.op_params())
        copy = req.headers.get("x-cos-copy-source") is not None

        def unsupported(what: str) -> CosError:
            extra = "".join(f"?{n}" for n in sorted(names))
            return CosError(501, "NotImplemented", f"The emulator does not implement {what}{extra}.")

        if req.key == "":
            if method == "GET" and "uploads" in names and names <= _LIST_UPLOADS_PARAMS:
                return "ListMultipartUploads"
            if method == "GET" and names <= _LIST_PARAMS:
                return "GetBucket"
            if method == "HEAD" and not names:
                return "HeadBucket"
            raise unsupported(f"{method} Bucket")
        if method == "PUT":
            if copy:
                raise unsupported("Upload Part - Copy" if "partnumber" in names else "PUT Object - Copy")
            if names == {"partnumber", "uploadid"}:
                return "UploadPart"
            if not names:
                return "PutObject"
        elif method == "GET":
            if "uploadid" in names and names <= _LIST_PARTS_PARAMS:
                return "ListParts"
            if names <= set(_RESPONSE_PARAMS):
                return "GetObject"
        elif method == "HEAD":
            if names <= set(_RESPONSE_PARAMS):
                return "HeadObject"
        elif method == "DELETE":
            if names == {"uploadid"}:
                return "AbortMultipartUpload"
            if not names:
                return "DeleteObject"
        elif method == "POST":
            if names == {"uploads"}:
                return "InitiateMultipartUpload"
            if names == {"uploadid"}:
                return "CompleteMultipartUpload"
        raise unsupported(f"{method} Object")

    def _execute(self, req: _Request, record: dict) -> _Reply:
        req.operation = record["operation"] = self._operation(req)
        if req.key:
            problem = _key_problem(req.key)
            if problem:
                raise _invalid(f"The key {req.key!r} is not accepted: {problem}.")
        handler = getattr(self, f"_op_{req.operation}")
        return handler(req)

    def _error_reply(self, err: CosError, method: str, req: Optional[_Request], request_id: str) -> _Reply:
        root = ET.Element("Error")
        _sub(root, "Code", err.code)
        _sub(root, "Message", err.message)
        _sub(root, "Resource", req.resource() if req is not None else "/")
        _sub(root, "RequestId", request_id)
        _sub(root, "TraceId", request_id)
        headers = [("Content-Type", "application/xml")] + err.headers
        if method == "HEAD":  # as real COS: a failed HEAD has no body
            return _Reply(err.status, headers, b"", length=0)
        return _Reply(err.status, headers, _xml(root))

    @staticmethod
    def _stored_headers(req: _Request, key: str) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for name in _STORED_HEADERS:
            value = req.headers.get(name)
            if value is not None:
                out[name] = value.strip()
        out.setdefault("Content-Type", _guess_type(key))
        for name, value in req.headers.items():
            low = name.lower()
            if low.startswith("x-cos-meta-") and low not in out:
                out[low] = value.strip()
        storage = req.headers.get("x-cos-storage-class")
        if storage and storage.strip().upper() != "STANDARD":
            out["x-cos-storage-class"] = storage.strip().upper()
        return out

    @staticmethod
    def _content_md5(req: _Request) -> Optional[bytes]:
        value = req.headers.get("Content-MD5")
        if value is None:
            return None
        try:
            digest = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 16:
            raise CosError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
        return digest

    def _receive(self, req: _Request, prefix: str) -> Tuple[Path, int, "hashlib._Hash"]:
        """Stream the request body into a new temp file: (path, size, md5)."""
        tmp, fd = self._new_tmp(req.bucket_path, prefix)
        md5 = hashlib.md5()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    data = req.body.read(CHUNK)
                    if not data:
                        break
                    out.write(data)
                    md5.update(data)
                    size += len(data)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return tmp, size, md5

    def _op_PutObject(self, req: _Request) -> _Reply:
        folder, key = req.bucket_path, req.key
        forbid = _truthy(req.headers.get("x-cos-forbid-overwrite"))
        expected = self._content_md5(req)
        if forbid and self._exists(folder, key):  # fail fast; _commit decides atomically
            raise CosError(409, "FileAlreadyExists")
        headers = self._stored_headers(req, key)
        if key.endswith("/"):
            return self._put_folder_marker(req, headers, forbid)
        tmp, _, md5 = self._receive(req, "put")
        try:
            if expected is not None and md5.digest() != expected:
                raise CosError(400, "InvalidDigest")
            etag = md5.hexdigest()
            self._commit(folder, key, tmp, {"etag": etag, "headers": headers}, forbid)
        finally:
            if tmp.exists():
                tmp.unlink()
        return _Reply(200, [("ETag", f'"{etag}"')])

    def _put_folder_marker(self, req: _Request, headers: Dict[str, str], forbid: bool) -> _Reply:
        folder, key = req.bucket_path, req.key
        data = req.body.read_all(0)
        if data is None:
            raise _invalid(f"The key {key!r} ends in '/': this emulator keeps such keys as folders, "
                           "which hold no bytes (send an empty body).")
        self._prepare_target(folder, key + "x")  # creates the folder itself (refused under a file)
        meta_path = self._sidecar_path(folder, key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        sidecar = {"key": key, "folder": True, "mtime": time.time(), "headers": headers}
        meta_tmp = self._write_sidecar_tmp(folder, sidecar)
        try:
            with self._fs_lock:
                if forbid and self._stat_exists(folder, key):
                    raise CosError(409, "FileAlreadyExists")
                os.replace(meta_tmp, meta_path)
        finally:
            if meta_tmp.exists():
                meta_tmp.unlink()
        return _Reply(200, [("ETag", f'"{hashlib.md5(b"").hexdigest()}"')])

    def _object_reply(self, req: _Request, head: bool) -> _Reply:
        opened = self._open_object(req.bucket_path, req.key)
        if opened is None:
            raise CosError(404, "NoSuchKey")
        handle, info = opened
        headers = info.response_headers()
        overrides = req.op_params()
        for param, header in _RESPONSE_PARAMS.items():
            if param in overrides:
                headers = [(n, v) for n, v in headers if n.lower() != header.lower()] + [(header, overrides[param])]
        status, start, length = 200, 0, info.size
        rng = req.headers.get("Range")
        if rng is not None:
            picked = self._parse_range(rng.strip(), info.size)
            if picked == "unsatisfiable":
                if handle is not None:
                    handle.close()
                raise CosError(416, "InvalidRange", headers=[("Content-Range", f"bytes */{info.size}")])
            if picked is not None:
                start, end = picked
                status, length = 206, end - start + 1
                headers.append(("Content-Range", f"bytes {start}-{end}/{info.size}"))
        if head or handle is None:
            if handle is not None:
                handle.close()
            return _Reply(status, headers, b"", length=length, head=head)
        handle.seek(start)
        return _Reply(status, headers, file=handle, length=length)

    @staticmethod
    def _parse_range(value: str, size: int) -> Any:
        """(start, end), None to ignore the header, or "unsatisfiable"."""
        m = _RANGE_RE.match(value)
        if not m or m.group(1) == m.group(2) == "":
            return None
        first, last = m.group(1), m.group(2)
        if first == "":
            n = int(last)
            if n == 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
        if start >= size:
            return "unsatisfiable"
        if end < start:
            return None
        return start, min(end, size - 1)

    def _op_GetObject(self, req: _Request) -> _Reply:
        return self._object_reply(req, head=False)

    def _op_HeadObject(self, req: _Request) -> _Reply:
        return self._object_reply(req, head=True)

    def _op_HeadBucket(self, req: _Request) -> _Reply:
        region = req.host.lower().split(".cos.", 1)[1].split(".", 1)[0] if ".cos." in req.host.lower() else DEFAULT_REGION
        return _Reply(200, [("x-cos-bucket-region", region)], head=True)

    def _op_DeleteObject(self, req: _Request) -> _Reply:
        folder, key = req.bucket_path, req.key
        with self._fs_lock:
            if key.endswith("/"):
                if self._stat_exists(folder, key):
                    try:
                        (folder / key).rmdir()
                    except OSError:
                        pass  # it holds other objects: only the marker goes
            else:
                path = folder / key
                try:
                    if stat.S_ISREG(os.stat(path).st_mode):
                        path.unlink()
                except OSError:
                    pass
            try:
                self._sidecar_path(folder, key).unlink()
            except OSError:
                pass
        return _Reply(204)

    # --------------------------------------------------------------------- lists
    def _op_GetBucket(self, req: _Request) -> _Reply:
        params = req.op_params()
        prefix = params.get("prefix", "")
        marker = params.get("marker", "")
        delimiter = params.get("delimiter", "")
        encoding = params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise _invalid("encoding-type must be url.")
        max_keys = self._int_param(params, "max-keys", MAX_KEYS, 0, None)
        max_keys = min(max_keys, MAX_KEYS)
        folder = req.bucket_path
        keys = (key for key in self._all_keys(folder, prefix) if key.startswith(prefix) and key > marker)
        items, truncated = _listing_page(keys, lambda key: key, prefix, delimiter, max_keys, after=marker)
        if max_keys == 0:
            truncated = False

        def enc(text: str) -> str:
            return quote(text, safe="/") if encoding == "url" else text

        root = ET.Element("ListBucketResult")
        _sub(root, "Name", req.bucket)
        if encoding:
            _sub(root, "EncodingType", encoding)
        _sub(root, "Prefix", enc(prefix))
        _sub(root, "Marker", enc(marker))
        _sub(root, "MaxKeys", max_keys)
        if delimiter:
            _sub(root, "Delimiter", enc(delimiter))
        _sub(root, "IsTruncated", "true" if truncated else "false")
        if truncated and items:
            _sub(root, "NextMarker", enc(items[-1][1]))
        appid = req.bucket.rsplit("-", 1)[-1]
        for kind, value in items:
            if kind == "prefix":
                _sub(_sub(root, "CommonPrefixes"), "Prefix", enc(value))
                continue
            info = self._stat_object(folder, value)
            if info is None:  # deleted meanwhile
                continue
            node = _sub(root, "Contents")
            _sub(node, "Key", enc(value))
            _sub(node, "LastModified", _iso(info.mtime))
            _sub(node, "ETag", f'"{info.etag}"')
            _sub(node, "Size", info.size)
            owner = _sub(node, "Owner")
            _sub(owner, "ID", appid)
            _sub(owner, "DisplayName", appid)
            _sub(node, "StorageClass", info.headers.get("x-cos-storage-class", "STANDARD"))
        return _Reply(200, [("Content-Type", "application/xml")], _xml(root))

    @staticmethod
    def _int_param(params: Dict[str, str], name: str, default: int, low: int, high: Optional[int]) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _invalid(f"{name} must be an integer.") from None
        if value < low or (high is not None and value > high):
            raise _invalid(f"{name} must be between {low} and {high}." if high else f"{name} must be >= {low}.")
        return value

    # ----------------------------------------------------------------- multipart
    def _upload_dir(self, req: _Request, upload_id: Optional[str]) -> Tuple[Path, dict]:
        if not upload_id or not _UPLOAD_ID_RE.match(upload_id):
            raise CosError(404, "NoSuchUpload")
        directory = req.bucket_path / ".cos" / "uploads" / upload_id
        try:
            info = json.loads((directory / "upload.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise CosError(404, "NoSuchUpload") from None
        if info.get("key") != req.key:
            raise CosError(404, "NoSuchUpload", "The upload exists for another key.")
        return directory, info

    def _op_InitiateMultipartUpload(self, req: _Request) -> _Reply:
        key = req.key
        if key.endswith("/"):
            raise _invalid(f"The key {key!r} ends in '/': a folder marker holds no bytes, upload it with PUT.")
        upload_id = f"{int(time.time()):x}{uuid.uuid4().hex}{uuid.uuid4().hex}"
        directory = self._cos_dir(req.bucket_path, "uploads") / upload_id
        directory.mkdir()
        info = {"key": key, "initiated": time.time(), "headers": self._stored_headers(req, key),
                "forbid": _truthy(req.headers.get("x-cos-forbid-overwrite"))}
        (directory / "upload.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
        root = ET.Element("InitiateMultipartUploadResult")
        _sub(root, "Bucket", req.bucket)
        _sub(root, "Key", key)
        _sub(root, "UploadId", upload_id)
        return _Reply(200, [("Content-Type", "application/xml")], _xml(root))

    def _op_UploadPart(self, req: _Request) -> _Reply:
        params = req.op_params()
        number = self._int_param(params, "partnumber", 0, 1, MAX_PART_NUMBER)
        directory, _ = self._upload_dir(req, params.get("uploadid"))
        expected = self._content_md5(req)
        tmp, size, md5 = self._receive(req, "part")
        try:
            if expected is not None and md5.digest() != expected:
                raise CosError(400, "InvalidDigest")
            etag = md5.hexdigest()
            meta = {"etag": etag, "size": size, "mtime": time.time(), "md5": md5.digest().hex()}
            try:
                os.replace(tmp, directory / f"part-{number:05d}")
                (directory / f"part-{number:05d}.json").write_text(json.dumps(meta), encoding="utf-8")
            except FileNotFoundError:  # aborted meanwhile
                raise CosError(404, "NoSuchUpload") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        return _Reply(200, [("ETag", f'"{etag}"')])

    @staticmethod
    def _parts(directory: Path) -> Dict[int, dict]:
        out: Dict[int, dict] = {}
        for meta_file in directory.glob("part-*.json"):
            try:
                number = int(meta_file.name[5:10])
                out[number] = json.loads(meta_file.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                continue
        return out

    def _op_CompleteMultipartUpload(self, req: _Request) -> _Reply:
        """Join the parts into the object, atomically.  ``x-cos-forbid-overwrite: true`` here or at
        initiation refuses an existing key (409): nothing becomes visible and the upload stays open
        (abort it, as after any failed Complete)."""
        folder, key = req.bucket_path, req.key
        directory, upload = self._upload_dir(req, req.op_params().get("uploadid"))
        data = req.body.read_all(MAX_XML_BODY)
        if data is None:
            raise CosError(400, "EntityTooLarge", "The part list is too large.")
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            raise CosError(400, "MalformedXML") from None
        wanted: List[Tuple[int, str]] = []
        for part in root.iter():
            if part.tag.rsplit("}", 1)[-1] != "Part":
                continue
            fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in part}
            try:
                wanted.append((int(fields["PartNumber"]), fields["ETag"].strip('"').lower()))
            except (KeyError, ValueError):
                raise CosError(400, "MalformedXML") from None
        if not wanted:
            raise CosError(400, "MalformedXML", "The part list is empty.")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise CosError(400, "InvalidPartOrder")
        parts = self._parts(directory)
        for number, etag in wanted:
            if number not in parts or parts[number].get("etag") != etag:
                raise CosError(400, "InvalidPart", f"Part {number} was not uploaded or its ETag does not match.")
        for number, _ in wanted[:-1]:
            if int(parts[number].get("size", 0)) < self.min_part_size:
                raise CosError(400, "EntityTooSmall",
                               f"Part {number} is smaller than {self.min_part_size} bytes; only the last part may be.")
        forbid = upload.get("forbid") or _truthy(req.headers.get("x-cos-forbid-overwrite"))
        if forbid and self._exists(folder, key):
            raise CosError(409, "FileAlreadyExists")
        tmp, fd = self._new_tmp(folder, "complete")
        digests = b""
        try:
            with os.fdopen(fd, "wb") as out:
                for number, _ in wanted:
                    with open(directory / f"part-{number:05d}", "rb") as part_file:
                        shutil.copyfileobj(part_file, out, CHUNK)
                    digests += bytes.fromhex(parts[number].get("md5") or parts[number]["etag"])
            etag = f"{hashlib.md5(digests).hexdigest()}-{len(wanted)}"
            self._commit(folder, key, tmp, {"etag": etag, "headers": dict(upload.get("headers") or {})}, bool(forbid))
        except FileNotFoundError:
            raise CosError(404, "NoSuchUpload") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        shutil.rmtree(directory, ignore_errors=True)
        result = ET.Element("CompleteMultipartUploadResult")
        _sub(result, "Location", f"{req.host or req.bucket}/{quote(key)}")
        _sub(result, "Bucket", req.bucket)
        _sub(result, "Key", key)
        _sub(result, "ETag", f'"{etag}"')
        return _Reply(200, [("Content-Type", "application/xml")], _xml(result))

    def _op_AbortMultipartUpload(self, req: _Request) -> _Reply:
        directory, _ = self._upload_dir(req, req.op_params().get("uploadid"))
        shutil.rmtree(directory, ignore_errors=True)
        return _Reply(204)

    def _op_ListParts(self, req: _Request) -> _Reply:
        params = req.op_params()
        directory, upload = self._upload_dir(req, params.get("uploadid"))
        marker = self._int_param(params, "part-number-marker", 0, 0, None)
        max_parts = min(self._int_param(params, "max-parts", 1000, 0, None), 1000)
        encoding = params.get("encoding-type", "")
        parts = sorted((n, p) for n, p in self._parts(directory).items() if n > marker)
        page, truncated = parts[:max_parts], len(parts) > max_parts
        appid = req.bucket.rsplit("-", 1)[-1]
        root = ET.Element("ListPartsResult")
        _sub(root, "Bucket", req.bucket)
        if encoding:
            _sub(root, "EncodingType", encoding)
        _sub(root, "Key", quote(req.key, safe="/") if encoding == "url" else req.key)
        _sub(root, "UploadId", params.get("uploadid"))
        for tag in ("Initiator", "Owner"):
            node = _sub(root, tag)
            _sub(node, "ID", appid)
            _sub(node, "DisplayName", appid)
        _sub(root, "StorageClass", upload.get("headers", {}).get("x-cos-storage-class", "STANDARD"))
        _sub(root, "PartNumberMarker", marker)
        _sub(root, "NextPartNumberMarker", page[-1][0] if page else marker)
        _sub(root, "MaxParts", max_parts)
        _sub(root, "IsTruncated", "true" if truncated else "false")
        for number, part in page:
            node = _sub(root, "Part")
            _sub(node, "PartNumber", number)
            _sub(node, "LastModified", _iso(float(part.get("mtime") or 0)))
            _sub(node, "ETag", f'"{part.get("etag")}"')
            _sub(node, "Size", part.get("size"))
        return _Reply(200, [("Content-Type", "application/xml")], _xml(root))

    def _op_ListMultipartUploads(self, req: _Request) -> _Reply:
        params = req.op_params()
        prefix = params.get("prefix", "")
        delimiter = params.get("delimiter", "")
        key_marker = params.get("key-marker", "")
        id_marker = params.get("upload-id-marker", "")
        encoding = params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise _invalid("encoding-type must be url.")
        max_uploads = min(self._int_param(params, "max-uploads", 1000, 0, None), 1000)
        uploads: List[Tuple[str, float, str, dict]] = []
        base = req.bucket_path / ".cos" / "uploads"
        for entry in (base.iterdir() if base.is_dir() else []):
            try:
                info = json.loads((entry / "upload.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            key = str(info.get("key", ""))
            if not key.startswith(prefix):
                continue
            if key_marker and (key < key_marker or (key == key_marker and (not id_marker or entry.name <= id_marker))):
                continue
            uploads.append((key, float(info.get("initiated") or 0), entry.name, info))
        uploads.sort()
        items, truncated = _listing_page(uploads, lambda upload: upload[0], prefix, delimiter, max_uploads)

        def enc(text: str) -> str:
            return quote(text, safe="/") if encoding == "url" else text

        appid = req.bucket.rsplit("-", 1)[-1]
        root = ET.Element("ListMultipartUploadsResult")
        _sub(root, "Bucket", req.bucket)
        if encoding:
            _sub(root, "EncodingType", encoding)
        _sub(root, "KeyMarker", enc(key_marker))
        _sub(root, "UploadIdMarker", id_marker)
        last_upload = next((value for kind, value in reversed(items) if kind == "entry"), None)
        if truncated and last_upload is not None:
            _sub(root, "NextKeyMarker", enc(last_upload[0]))
            _sub(root, "NextUploadIdMarker", last_upload[2])
        _sub(root, "MaxUploads", max_uploads)
        _sub(root, "IsTruncated", "true" if truncated else "false")
        _sub(root, "Prefix", enc(prefix))
        if delimiter:
            _sub(root, "Delimiter", enc(delimiter))
        for kind, value in items:
            if kind == "prefix":
                _sub(_sub(root, "CommonPrefixes"), "Prefix", enc(value))
                continue
            key, initiated, upload_id, info = value
            node = _sub(root, "Upload")
            _sub(node, "Key", enc(key))
            _sub(node, "UploadId", upload_id)
            _sub(node, "StorageClass", (info.get("headers") or {}).get("x-cos-storage-class", "STANDARD"))
            for tag in ("Initiator", "Owner"):
                who = _sub(node, tag)
                _sub(who, "ID", appid)
                _sub(who, "DisplayName", appid)
            _sub(node, "Initiated", _iso(initiated))
        return _Reply(200, [("Content-Type", "application/xml")], _xml(root))


# --------------------------------------------------------------------------- command line

def main(argv: Optional[List[str]] = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m redraw.tools.cos_emulator",
        description="Loopback emulator of Tencent Cloud COS for cos-python-sdk-v5 "
                    "(objects are the plain files of each bucket's folder).",
    )
    parser.add_argument("--root", default=None,
                        help="folder holding the buckets' folders (default: a new temporary folder)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port (default 9100)")
    parser.add_argument("--bucket", action="append", default=[], metavar="NAME-APPID[=PATH]",
                        help="serve this bucket, from PATH (default ROOT/NAME-APPID); repeatable")
    parser.add_argument("--auto-buckets", action="store_true",
                        help="create a bucket's folder on its first authenticated request")
    parser.add_argument("--secret-id", default=DEFAULT_SECRET_ID)
    parser.add_argument("--secret-key-env", default="VOD_EMULATOR_SECRET_KEY", metavar="VAR",
                        help="environment variable holding the secret key (default: the built-in key "
                             "the VOD emulator uses too)")
    parser.add_argument("--token", default=None, help="require this x-cos-security-token")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-seed", type=int, default=None)
    parser.add_argument("--max-skew", type=float, default=900)
    parser.add_argument("--min-part-size", type=int, default=MIN_PART_SIZE)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535 (0: any free port)")
    if not 0.0 <= args.fault_rate <= 1.0:
        parser.error("--fault-rate must be between 0 and 1")
    if args.latency < 0:
        parser.error("--latency must be 0 or more")

    key = os.environ.get(args.secret_key_env) or None
    emulator = CosEmulator(root=args.root, secret_id=args.secret_id, secret_key=key or DEFAULT_SECRET_KEY,
                           token=args.token, host=args.host, port=args.port, latency=args.latency,
                           fault_rate=args.fault_rate, fault_seed=args.fault_seed, max_skew=args.max_skew,
                           auto_buckets=args.auto_buckets, min_part_size=args.min_part_size)
    for spec in args.bucket:
        name, sep, path = spec.partition("=")
        try:
            emulator.add_bucket(name, path if sep else None)
        except (ValueError, OSError) as exc:
            parser.error(str(exc))
    key_hint = (f'"${args.secret_key_env}"' if key else
                f"{DEFAULT_SECRET_KEY} (the emulators' fixed public test key, not a secret)")

    def banner(emu: CosEmulator) -> str:
        buckets = ", ".join(f"{name} -> {path}" for name, path in sorted(emu.buckets.items())) or (
            "none yet (--bucket NAME-APPID, or --auto-buckets)")
        return (f"COS emulator on {emu.url} (SecretId {emu.secret_id}, SecretKey {key_hint}; buckets: {buckets}; "
                f"auto-buckets {'on' if emu.auto_buckets else 'off'}; {emu.fault_rate:.0%} random faults). "
                f'SDK: CosConfig(IP="{emu.host}", Port={emu.port}, Scheme="http", Region="{DEFAULT_REGION}", ...) '
                "-- Ctrl-C stops it")

    try:
        return serve(emulator, banner)  # type: ignore[arg-type]
    except OSError as exc:
        print(f"cos emulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
              "(try another --port, or --port 0)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
