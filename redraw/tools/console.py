"""``redraw serve``'s web console: a page on ``--console-port`` (a local tool, never shipped).

The page (``data/console/``: index.html, console.js, console.css; no CDN, no build step) lets a person
upload a video into the watched folder, watch the tasks live, compare the original with the redrawn
video, and read the function's lines for each task. This module is its HTTP server:

- ``GET /`` the page, ``/console.js``, ``/console.css`` (a Content-Security-Policy that allows nothing
  from elsewhere);
- ``GET /api/state`` the rows (``TaskBoard``), each pending one with VOD's Progress when the server can ask
  the VOD emulator, and the webhook deliveries of each task when a webhook inbox runs;
- ``GET /api/events`` the same as server-sent events: a new state when a row changes, every second while a
  task is pending (Progress), every few seconds otherwise (late webhook deliveries), nothing when unchanged;
- ``GET /api/tasks/<id>/lines`` the function's log lines of one row;
- ``POST /api/upload?name=NAME`` the body written into the folder as ``<prefix>NAME`` (staged under the
  hidden ``.console-uploads/``, then moved in, so the watcher fires one ``cos:ObjectCreated:Put``; the answer
  waits, up to ``fire_timeout_s``, for the trigger's ``cos.record``, and an upload of the same name waits for
  the one before it to have fired, so that each is a task of its own). Refused,
  with the reason and without a task, when it is not a video (suffix or content) or 2 GB or larger.
  ``x-cos-meta-*`` request headers are the upload's metadata, handed to the ``metadata`` hook
  (``write_sidecar`` under ``redraw serve``: the sidecar the watcher reads for the upload rules); without
  one they are refused;
- ``GET /files/<key>`` a file of the folder (hidden paths excepted), with Range support so videos seek.

Requests must name this server in ``Host`` (no DNS rebinding) and POSTs carry ``X-Redraw-Console: 1``
(a custom header: another site's page cannot send it without a CORS preflight, which is never allowed).
"""
from __future__ import annotations

import http.server
import json
import mimetypes
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import DEFAULT_VIDEO_SUFFIXES
from ..sources.cos import MAX_INPUT_BYTES
from .loopback import LoopbackServer, Served, parse_range
from .taskboard import ENDED, TaskBoard
from .watch import SIDECAR, is_hidden

STATIC = Path(__file__).resolve().parent / "data" / "console"
_STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                 "/index.html": ("index.html", "text/html; charset=utf-8"),
                 "/console.js": ("console.js", "text/javascript; charset=utf-8"),
                 "/console.css": ("console.css", "text/css; charset=utf-8")}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
JSON_TYPE = "application/json; charset=utf-8"
STAGING = ".console-uploads"
_CHUNK = 1 << 18
_MAX_NAME_BYTES = 255
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_BOX_TYPES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"}
_LINES_ROUTE = re.compile(r"^/api/tasks/([A-Za-z0-9_.-]{1,160})/lines$")
_META_NAME = re.compile(r"^x-cos-meta-[a-z0-9-]{1,100}$")
MAX_META_BYTES = 2048   # COS: the x-cos-meta-* headers of an object, 2 KB at most
Deliveries = Callable[[], List[dict]]


class UploadRefused(Exception):
    """An upload the console does not write (status, code, message for the page)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def looks_like_video(head: bytes) -> bool:
    """True when the first bytes are those of a video container VOD takes (MP4/MOV/3GP, WebM/MKV, AVI,
    FLV, WMV, MPEG-TS, MPEG-PS)."""
    return (head[4:8] in _BOX_TYPES
            or head[:4] == b"\x1a\x45\xdf\xa3"
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or head[:3] == b"FLV"
            or head[:16] == _ASF
            or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")
            or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47))


def write_sidecar(path: str, meta: Dict[str, str]) -> None:
    """The upload's ``x-cos-meta-*`` headers where ``redraw serve --watch`` reads them: the sidecar
    ``<file>.meta.json`` (``redraw.tools.watch``), written before the file appears. An upload without
    metadata removes an earlier upload's sidecar: a COS upload replaces its object's metadata."""
    sidecar = path + SIDECAR
    if not meta:
        try:
            os.unlink(sidecar)
        except FileNotFoundError:
            pass
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staged = os.path.join(os.path.dirname(path), f".{uuid.uuid4().hex}.meta.part")  # hidden: fires nothing
    with open(staged, "w", encoding="utf-8") as handle:
        json.dump(meta, handle, ensure_ascii=False, indent=2)
    os.replace(staged, sidecar)


def upload_name(raw: Optional[str]) -> str:
    """The file name of an upload, checked: one path segment, not hidden, UTF-8, no control characters."""
    name = (raw or "").strip()
    if not name:
        raise UploadRefused(400, "NameMissing", "the upload has no file name (?name=)")
    if "/" in name or "\\" in name or name.startswith(".") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UploadRefused(400, "NameInvalid", "the file name must be one plain name: no folders, not starting "
                                                "with '.', no control characters")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise UploadRefused(400, "NameInvalid", "the file name is not valid UTF-8 (COS keys are UTF-8)") from None
    if size > _MAX_NAME_BYTES:
        raise UploadRefused(400, "NameInvalid", f"the file name is longer than {_MAX_NAME_BYTES} bytes")
    return name


class Console(Served):
    """The console's server: ``start()`` listens (OSError when the port is taken), ``stop()``."""

    thread_name = "console"

    def __init__(self, board: TaskBoard, *, host: str = "127.0.0.1", port: int = 0, folder: Optional[str] = None,
                 prefix: str = "uploads/", suffix: str = "", video_suffixes: Tuple[str, ...] = DEFAULT_VIDEO_SUFFIXES,
                 progress: Optional[Callable[[str], Optional[int]]] = None, deliveries: Optional[Deliveries] = None,
                 metadata: Optional[Callable[[str, Dict[str, str]], None]] = None,
                 active_s: float = 1.0, idle_s: float = 5.0, keepalive_s: float = 15.0,
                 fire_timeout_s: float = 10.0) -> None:
        self.board = board
        self.host, self._requested_port = host, port
        self.folder = os.path.realpath(folder) if folder else None
        self.prefix, self.suffix, self.video_suffixes = prefix, suffix, tuple(s.lower() for s in video_suffixes)
        self.progress, self.deliveries, self.metadata = progress, deliveries, metadata
        self.active_s, self.idle_s, self.keepalive_s = active_s, idle_s, keepalive_s
        self.static = {path: ((STATIC / name).read_bytes(), ctype) for path, (name, ctype) in _STATIC_FILES.items()}
        self.stopping = threading.Event()
        self.fire_timeout_s = fire_timeout_s   # how long an upload's answer waits for the trigger's cos.record
        self._key_locks: Dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _new_server(self, address: Tuple[str, int], family: int) -> LoopbackServer:
        server = LoopbackServer(address, _Handler, family)
        server.console = self  # type: ignore[attr-defined]
        return server

    def stop(self) -> None:
        self.stopping.set()
        super().stop()

    # --- what the page shows ------------------------------------------------------------------

    def config(self) -> Dict[str, Any]:
        uploads = self.folder is not None
        return {"uploads": uploads, "prefix": self.prefix, "suffix": self.suffix,
                "video_suffixes": list(self.video_suffixes), "max_bytes": MAX_INPUT_BYTES - 1,
                "metadata": self.metadata is not None, "inbox": self.deliveries is not None,
                "why_no_uploads": "" if uploads else "uploads need a bucket folder: redraw serve --watch DIR --follow-up"}

    def state(self) -> Dict[str, Any]:
        rows = self.board.rows()
        by_task: Dict[str, List[dict]] = {}
        if self.deliveries is not None:
            try:
                received = list(self.deliveries())
            except Exception:  # noqa: BLE001 - the inbox is another part: its fault never breaks the page
                received = []
            for item in received:
                if isinstance(item, dict) and isinstance(item.get("task_id"), str):
                    shown = {k: item.get(k) for k in ("received_at", "webhook_id", "type", "verified", "answered")}
                    if isinstance(shown["received_at"], (int, float)):  # the inbox's epoch seconds: ISO for the page
                        shown["received_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(shown["received_at"]))
                    by_task.setdefault(item["task_id"], []).append(shown)
        for row in rows:
            task_id = row.get("task_id")
            if row["state"] == "pending" and task_id and self.progress is not None:
                try:
                    row["progress"] = self.progress(task_id)
                except Exception:  # noqa: BLE001 - no number is shown rather than a broken row
                    row["progress"] = None
            if task_id and self.deliveries is not None:
                row["deliveries"] = by_task.get(task_id, [])[-20:]
        return {"tasks": rows, "config": self.config()}

    def busy(self) -> bool:
        return any(row["state"] not in ENDED and row["state"] != "no task" for row in self.board.rows())

    # --- uploads ------------------------------------------------------------------------------

    def upload(self, name: str, length: Optional[int], body: Any, meta: Dict[str, str]) -> Dict[str, Any]:
        """Write an upload into the folder (UploadRefused: why not); its key, size, row and whether it fired."""
        key, length = self._checked(name, length, meta)
        assert self.folder is not None
        staging = os.path.join(self.folder, STAGING)
        os.makedirs(staging, exist_ok=True)
        staged = os.path.join(staging, f"{uuid.uuid4().hex}.part")
        try:
            head = _receive(body, length, staged)
            if not looks_like_video(head):
                raise UploadRefused(415, "NotAVideo", f"{key.rsplit('/', 1)[-1]} is not a video: its content is not "
                                                      "MP4/MOV, WebM/MKV, AVI, FLV, WMV or MPEG")
            target = os.path.join(self.folder, *key.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            # the same name again waits until this one fired: the watcher reads the file (and its metadata
            # sidecar) when it handles the event, so two uploads in quick succession would be one
            with self._key_lock(key):
                if self.metadata is not None:
                    self.metadata(target, meta)   # HOOK (per-upload rules): the metadata sidecar, before the file
                row = self.board.note_upload(key, length)  # before the move: the trigger's line finds the row
                try:
                    os.replace(staged, target)  # moved in complete: one cos:ObjectCreated:Put, as a COS upload
                except OSError:
                    self.board.forget(row)
                    raise
                fired = self.board.wait_taken(row, self.fire_timeout_s)
            return {"key": key, "size": length, "row": row, "fired": fired}
        finally:
            if os.path.exists(staged):
                os.unlink(staged)

    def _checked(self, name: str, length: Optional[int], meta: Dict[str, str]) -> Tuple[str, int]:
        """The upload's key and size, or UploadRefused before anything is read or written."""
        if self.folder is None:
            raise UploadRefused(409, "NoFolder", self.config()["why_no_uploads"])
        name = upload_name(name)
        key = self.prefix + name
        if not name.lower().endswith(self.video_suffixes):
            raise UploadRefused(415, "NotAVideo", f"{name} is not a video: its suffix is not one of "
                                                  f"{', '.join(self.video_suffixes)} (REDRAW_VIDEO_SUFFIXES)")
        if not key.endswith(self.suffix):
            raise UploadRefused(400, "OutsideFilter", f"{key} does not end with the trigger's suffix {self.suffix!r}")
        if length is None:
            raise UploadRefused(411, "LengthRequired", "the upload must say its size (Content-Length)")
        if length >= MAX_INPUT_BYTES:
            raise UploadRefused(413, "TooLarge", f"{name} is {length} bytes; VOD takes inputs under 2 GB "
                                                 f"({MAX_INPUT_BYTES} bytes)")
        if length == 0:
            raise UploadRefused(415, "NotAVideo", f"{name} is empty, not a video")
        if meta and self.metadata is None:
            raise UploadRefused(400, "MetadataUnsupported", "per-upload metadata (x-cos-meta-*) needs redraw serve "
                                                            "--watch DIR (the watcher reads it from a sidecar)")
        bad = next((header for header in meta if not _META_NAME.match(header)), None)
        if bad is not None:
            raise UploadRefused(400, "MetadataInvalid", f"{bad[:80]} is not a metadata name COS takes "
                                                        "(x-cos-meta- then a-z, 0-9 and -)")
        if sum(len(k) + len(v) for k, v in meta.items()) > MAX_META_BYTES:
            raise UploadRefused(400, "MetadataTooLarge", f"the upload's metadata is over {MAX_META_BYTES} bytes "
                                                         "(COS's limit for x-cos-meta-* headers)")
        return key, length

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_lock:
            if len(self._key_locks) > 1000:
                self._key_locks = {k: v for k, v in self._key_locks.items() if v.locked()}
            return self._key_locks.setdefault(key, threading.Lock())

    # --- files --------------------------------------------------------------------------------

    def file_path(self, key: str) -> Optional[str]:
        """The path of a non-hidden file of the folder, or None."""
        if self.folder is None or not key or is_hidden(key) or "\0" in key:
            return None
        path = os.path.realpath(os.path.join(self.folder, *key.split("/")))
        if not path.startswith(self.folder + os.sep) or not os.path.isfile(path):
            return None
        return path


class _ShortBody(Exception):
    pass


def _receive(body: Any, length: int, path: str) -> bytes:
    """Write ``length`` bytes of ``body`` to ``path``; the first bytes (for ``looks_like_video``)."""
    head = b""
    left = length
    with open(path, "wb") as out:
        while left > 0:
            chunk = body.read(min(_CHUNK, left))
            if not chunk:
                raise _ShortBody()
            if len(head) < 512:
                head += chunk[:512 - len(head)]
            out.write(chunk)
            left -= len(chunk)
    return head


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "redraw-console"
    sys_version = ""
    timeout = 120

    def setup(self) -> None:
        super().setup()
        try:  # small writes (an event, a JSON answer) leave at once, not after the peer's delayed ACK
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def console(self) -> Console:
        return self.server.console  # type: ignore[attr-defined,no-any-return]

    # --- plumbing -----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str, extra: Tuple[Tuple[str, str], ...] = (),
              head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in extra:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), JSON_TYPE)

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": {"code": code, "message": message}})

    def _host_ok(self) -> bool:
        """The Host header names this server (a page of another name reached by DNS rebinding is refused)."""
        console = self.console
        host = (self.headers.get("Host") or "").strip().lower()
        if console.host in ("0.0.0.0", "::", ""):
            return True
        shown = f"[{console.host.lower()}]" if ":" in console.host else console.host.lower()
        return host in {f"{name}:{console.port}" for name in (shown, "localhost", "127.0.0.1", "[::1]")}

    # --- methods ------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        if not self._host_ok():
            return self._error(421, "WrongHost", "this server answers to its own loopback address only")
        path = urlsplit(self.path).path
        console = self.console
        if path in console.static:
            body, ctype = console.static[path]
            extra = (("Content-Security-Policy", _CSP), ("Referrer-Policy", "no-referrer"))
            return self._send(200, body, ctype, extra, head=head)
        if path == "/api/state":
            return self._json(200, console.state())
        if path == "/api/events":
            return self._events()
        match = _LINES_ROUTE.match(path)
        if match:
            lines = console.board.lines(match.group(1))
            if lines is None:
                return self._error(404, "NoSuchTask", "no such row (the console keeps the latest tasks only)")
            return self._json(200, {"lines": lines})
        if path.startswith("/files/"):
            try:
                key = unquote(path[len("/files/"):], errors="strict")
            except UnicodeDecodeError:
                return self._error(404, "NoSuchFile", "no such file in the bucket folder")
            return self._file(key, head)
        if path == "/favicon.ico":
            return self._send(204, b"", "image/x-icon", head=True)
        return self._error(404, "NotFound", "no such page")

    def do_POST(self) -> None:
        if not self._host_ok():
            self.close_connection = True
            return self._error(421, "WrongHost", "this server answers to its own loopback address only")
        parts = urlsplit(self.path)
        if parts.path != "/api/upload":
            self.close_connection = True
            return self._error(404, "NotFound", "no such page")
        if self.headers.get("X-Redraw-Console") != "1":
            self.close_connection = True
            return self._error(403, "NotFromTheConsole", "uploads come from the console's page (X-Redraw-Console: 1)")
        name = (parse_qs(parts.query).get("name") or [""])[0]
        raw = self.headers.get("Content-Length")
        try:
            length: Optional[int] = int(raw) if raw is not None else None
        except ValueError:
            length = None
        if length is not None and length < 0:
            length = None
        meta = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-cos-meta-")}
        try:
            answer = self.console.upload(name, length, self.rfile, meta)
        except UploadRefused as refused:
            self.close_connection = True  # the body (if any) is not read: the connection cannot be reused
            return self._error(refused.status, refused.code, refused.message)
        except _ShortBody:
            self.close_connection = True
            return
        except OSError as exc:
            self.close_connection = True
            return self._error(507, "WriteFailed", f"the file could not be written into the folder: "
                                                   f"{exc.strerror or type(exc).__name__}")
        self._json(201, answer)

    # --- server-sent events -------------------------------------------------------------------

    def _events(self) -> None:
        console = self.console
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        sent, version, quiet_since = "", -1, time.monotonic()
        try:
            while not console.stopping.is_set():
                state = json.dumps(console.state(), ensure_ascii=False, separators=(",", ":"))
                if state != sent:
                    self.wfile.write(f"data: {state}\n\n".encode("utf-8"))
                    sent, quiet_since = state, time.monotonic()
                elif time.monotonic() - quiet_since >= console.keepalive_s:
                    self.wfile.write(b": keep-alive\n\n")  # a closed page shows here (the write fails)
                    quiet_since = time.monotonic()
                self.wfile.flush()
                version = console.board.wait(version, console.active_s if console.busy() else console.idle_s)
        except (OSError, ValueError):
            return  # the page went away

    # --- files --------------------------------------------------------------------------------

    def _file(self, key: str, head: bool) -> None:
        path = self.console.file_path(key)
        if path is None:
            return self._error(404, "NoSuchFile", "no such file in the bucket folder")
        try:
            handle = open(path, "rb")
        except OSError:
            return self._error(404, "NoSuchFile", "the file cannot be read")
        with handle:
            size = os.fstat(handle.fileno()).st_size
            ctype = mimetypes.guess_type(key)[0] or "application/octet-stream"
            wanted = parse_range(self.headers.get("Range"), size)
            if wanted == "unsatisfiable":
                return self._send(416, b"", "text/plain", (("Content-Range", f"bytes */{size}"),), head=True)
            start, stop = wanted if isinstance(wanted, tuple) else (0, size)
            self.send_response(206 if isinstance(wanted, tuple) else 200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(stop - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Cache-Control", "no-store")
            if isinstance(wanted, tuple):
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            self.end_headers()
            if head:
                return
            handle.seek(start)
            left = stop - start
            try:
                while left > 0:
                    chunk = handle.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (ConnectionError, socket.timeout):
                self.close_connection = True


# --- for redraw serve ---------------------------------------------------------------------------

DEFAULT_PORT = 9001


def console_port(args: Any) -> Optional[int]:
    """``--console-port`` (default 9001; with ``--port 0`` a free port too, so servers started side by side
    never collide); None with ``--no-console``."""
    if getattr(args, "no_console", False):
        return None
    port = getattr(args, "console_port", None)
    if port is None:
        return 0 if args.port == 0 else DEFAULT_PORT
    return int(port)


def open_console(args: Any) -> Optional[Console]:
    """The console of ``redraw serve``, listening; None with ``--no-console``. OSError when the port is taken."""
    port = console_port(args)
    if port is None:
        return None
    console = Console(TaskBoard(bucket=getattr(args, "bucket", None)), host=args.host, port=port)
    console.start()
    return console


def emulator_progress(emulator: Any) -> Callable[[str], Optional[int]]:
    """VOD's Progress of a task, asked of the in-process VOD emulator (DescribeTaskDetail's answer, no HTTP)."""
    from .emulator import TASK_TYPE

    def progress(task_id: str) -> Optional[int]:
        task = emulator.tasks.get(task_id)
        if task is None:
            return None
        value = emulator.task_detail(task)[TASK_TYPE].get("Progress")
        return value if isinstance(value, int) else None
    return progress
