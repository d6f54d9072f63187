"""``redraw serve``: the function behind a local HTTP server, run as SCF runs it (a tool, never shipped).

- **Requests.** Each HTTP request becomes the function URL event the platform sends (``url_event``):
  header names lower-case, ``x-scf-remote-addr`` the client's address, ``queryString`` a dict, the raw
  ``path``, the body as text (a body that is not UTF-8 is sent base64 with ``isBase64Encoded: true``).
  The function's answer becomes the HTTP response as the platform makes it (``http_answer``).
- **Warm instances.** ``Pool``: ``--instances`` worker processes (``python -m redraw.tools.serve
  --worker FD``), each importing ``handler`` once and handling one event at a time, like an SCF
  instance. Requests beyond the pool wait in a first-in-first-out queue; none is refused. The
  workers' stdout is the server's: the function's JSON log lines, unchanged. The server's own lines
  go to stderr. An instance that runs past the time limit is killed and replaced, as SCF does.
- **Reload.** A change to a ``.py`` file under ``redraw/`` (the tools excepted) or to ``handler.py``
  starts a new pool; requests in flight finish on the old instances, later ones go to the new. If
  the new code does not import, the old pool keeps serving and stderr says why.
- **A folder as the bucket.** ``--watch DIR``: ``redraw.tools.watch`` turns completed files into COS
  events, handled asynchronously by the same pool (a COS trigger is asynchronous), each result on
  stderr.
- **The follow-up.** ``--follow-up`` (with ``--watch``): the project's COS emulator serves DIR as the
  bucket (``REDRAW_COS_ENDPOINT``), which is also the state bucket, as serverless.yml deploys it;
  the timer trigger's event runs the sweep every ``--sweep-every`` seconds on the same pool. Records
  and receipts appear under ``DIR/redraw/``, redrawn videos under ``DIR/redrawn/``.

Protocol with a worker: one JSON line per request on its stdin (``{"event", "context"}``), one JSON
line per answer on the pipe FD (``{"ok", "result"}`` or ``{"ok": false, "error", "message"}``).
"""
from __future__ import annotations

import base64
import binascii
import http.server
import json
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote_plus, urlsplit

from . import common
from .common import ROOT
from .loopback import LoopbackServer

MAX_EVENT_BYTES = 6 * 1024 * 1024            # SCF: a synchronous event is at most 6 MB
GRACE_S = 1.0                                # past the time limit, this long before the instance is killed
READY_TIMEOUT_S = 120.0                      # importing the handler (a loaded 2-core machine: seconds)
JSON_TYPE = "application/json; charset=utf-8"
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "upgrade", "te", "trailer",
               "proxy-connection"}


def _say(line: str) -> None:
    """The server's own line, on stderr (stdout is the function's log stream)."""
    sys.stderr.write(f"redraw: {line}\n")
    sys.stderr.flush()


# --- the event the platform sends, and the response it makes of the answer --------------------

def _header_text(value: str) -> str:
    """http.server reads header bytes as latin-1; give UTF-8 values back as text."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def query_string(query: str) -> Dict[str, Any]:
    """``a=1&b=x%20y&a=2&flag`` → ``{"a": ["1", "2"], "b": "x y", "flag": True}``: a repeated name gives
    a list, a name without ``=`` is ``true`` (as API Gateway's queryString carries it)."""
    out: Dict[str, Any] = {}
    for part in query.split("&"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        key = unquote_plus(name, errors="replace")
        item: Any = unquote_plus(value, errors="replace") if sep else True
        if key in out:
            previous = out[key]
            out[key] = (previous if isinstance(previous, list) else [previous]) + [item]
        else:
            out[key] = item
    return out


def url_event(method: str, target: str, headers: List[Tuple[str, str]], body: bytes, client_ip: str) -> dict:
    """The function URL event for one request (``target``: the request line's path and query)."""
    if "://" in target.split("?", 1)[0]:  # absolute-form request target
        parts = urlsplit(target)
        path, query = parts.path or "/", parts.query
    else:
        path, _, query = target.partition("?")
    lowered: Dict[str, str] = {}
    for name, value in headers:
        name, value = name.strip().lower(), _header_text(value)
        lowered[name] = f"{lowered[name]},{value}" if name in lowered else value
    lowered["x-scf-remote-addr"] = client_ip  # the platform's, never the client's own
    event: Dict[str, Any] = {"body": "", "headers": lowered, "httpMethod": method, "path": path or "/",
                             "queryString": query_string(query)}
    try:
        event["body"] = body.decode("utf-8")
    except UnicodeDecodeError:  # binary: base64, marked as API Gateway marks it
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
    return event


def platform_error(status: int, code: str, message: str) -> Tuple[int, List[Tuple[str, str]], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
    return status, [("Content-Type", JSON_TYPE)], body


def http_answer(answer: dict) -> Tuple[int, List[Tuple[str, str]], bytes]:
    """``(status, headers, body)`` the platform makes of a worker's answer.

    - an integrated response (a dict with ``statusCode``): that status, its headers (a list value gives
      one header line each), its body (base64-decoded when ``isBase64Encoded`` is true or "true"; a
      non-string body is sent as JSON);
    - any other return value: 200 with the JSON of the value;
    - the function raised: 502 ``FunctionError`` naming the exception type (never its text or a traceback);
    - the instance ran past the time limit: 504 ``FunctionTimeout``; it died: 502 ``InstanceFailed``;
    - an integrated response that is not one (status not 100-599, headers not an object, bad base64):
      502 ``InvalidFunctionResponse``.
    """
    if answer.get("timeout"):
        return platform_error(504, "FunctionTimeout", "the function did not answer within its time limit")
    if answer.get("died"):
        return platform_error(502, "InstanceFailed", "the function's instance ended while handling the request")
    if not answer.get("ok"):
        kind = str(answer.get("error") or "Exception")
        return platform_error(502, "FunctionError", f"the function raised {kind}; its log lines say why")
    result = answer.get("result")
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, [("Content-Type", JSON_TYPE)], json.dumps(result, ensure_ascii=False).encode("utf-8")
    invalid = platform_error(502, "InvalidFunctionResponse", "the function's answer is not a valid integrated response")
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        return invalid
    headers = result.get("headers") if result.get("headers") is not None else {}
    if not 100 <= status <= 599 or not isinstance(headers, dict):
        return invalid
    lines: List[Tuple[str, str]] = []
    for name, value in headers.items():
        for item in value if isinstance(value, list) else [value]:
            text = "" if item is None else item if isinstance(item, str) else json.dumps(item)
            name_text = str(name)
            if name_text.lower() in _HOP_BY_HOP or any(c in name_text + text for c in "\r\n\0") or not name_text:
                continue  # the server frames the response itself; no header injection
            lines.append((name_text, text))
    body = result.get("body")
    flag = result.get("isBase64Encoded")
    if body is None:
        payload = b""
    elif isinstance(body, str):
        if flag is True or (isinstance(flag, str) and flag.strip().lower() == "true"):
            try:
                payload = base64.b64decode(body, validate=False)
            except (binascii.Error, ValueError):
                return invalid
        else:
            payload = body.encode("utf-8")
    else:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return status, lines, payload


# --- warm instances ---------------------------------------------------------------------------

class InstanceError(Exception):
    """A worker that could not start (its import failed) or stopped answering."""


_RELAY_LOCK = threading.Lock()


def _relay(stream: Any, on_line: Callable[[Any], None]) -> None:
    """An instance's stdout, line by line, onto the server's (unchanged), each JSON line also to ``on_line``
    (the console's task board)."""
    out = getattr(sys.stdout, "buffer", None)
    with stream:
        for raw in stream:
            with _RELAY_LOCK:
                try:
                    if out is not None:
                        out.write(raw)
                    else:
                        sys.stdout.write(raw.decode("utf-8", "replace"))
                    sys.stdout.flush()
                except (OSError, ValueError):
                    pass  # nobody reads the server's stdout any more: the console still gets the line
            try:
                on_line(json.loads(raw))
            except ValueError:
                pass
            except Exception:  # noqa: BLE001 - the relay never stops: an instance blocks on a full pipe
                pass


class Worker:
    """One warm instance: a process that imported ``handler`` and handles one event at a time.
    With ``on_line``, its stdout is relayed through the server (``_relay``) instead of inherited."""

    def __init__(self, env: Dict[str, str], generation: int, on_line: Optional[Callable[[Any], None]] = None) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "redraw.tools.serve", "--worker", str(write_fd)], env=env,
                stdin=subprocess.PIPE, stdout=None if on_line is None else subprocess.PIPE, stderr=None,
                pass_fds=(write_fd,), start_new_session=True)  # Ctrl-C reaches the server only; it stops the instances
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        if on_line is not None:
            threading.Thread(target=_relay, args=(self.process.stdout, on_line), name="serve-relay", daemon=True).start()
        self.answers = os.fdopen(read_fd, "rb")
        self.generation = generation
        self.ready_s = 0.0

    def _read(self, timeout: Optional[float]) -> Optional[dict]:
        """The next answer line; None on timeout; InstanceError when the process ended."""
        fd = self.answers.fileno()
        if timeout is not None:
            ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
            if not ready:
                return None
        line = self.answers.readline()
        if not line:
            raise InstanceError(f"instance exited (code {self.process.wait()})")
        return json.loads(line)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        started = time.monotonic()
        answer = self._read(timeout)
        if answer is None:
            raise InstanceError("instance did not import the handler in time")
        if answer.get("ready") is not True:
            raise InstanceError(str(answer.get("error") or "instance did not start"))
        self.ready_s = time.monotonic() - started

    def call(self, event: Any, context: dict, timeout: float) -> dict:
        """One invocation; ``{"timeout": True}`` when past ``timeout`` (the process is then killed)."""
        assert self.process.stdin is not None
        data = json.dumps({"event": event, "context": context}, ensure_ascii=False).encode("utf-8") + b"\n"
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
            answer = self._read(timeout)
        except (OSError, ValueError, InstanceError):
            self.kill()
            return {"died": True}
        if answer is None:
            self.kill()
            return {"timeout": True}
        return answer

    def close(self) -> None:
        """Let the instance finish what it is doing, then exit (its stdin ends)."""
        try:
            if self.process.stdin:
                self.process.stdin.close()
        except OSError:
            pass

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.answers.close()
        except (OSError, ValueError):
            pass

    def finish(self, timeout: float) -> None:
        self.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        try:
            self.answers.close()
        except OSError:
            pass


class PoolClosed(Exception):
    pass


class Pool:
    """``size`` warm instances; ``invoke`` waits for a free one (first come, first served)."""

    def __init__(self, size: int, env: Dict[str, str], time_limit_ms: int) -> None:
        self.size, self.env, self.time_limit_ms = size, env, time_limit_ms
        self._idle: "queue.Queue[Worker]" = queue.LifoQueue()
        self._generation = 0
        self._workers: set = set()
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._closed = False
        self.on_line: Optional[Callable[[Any], None]] = None  # the function's log lines, for the console

    def _spawn(self, count: int, generation: int) -> List[Worker]:
        workers = [Worker(self.env, generation, self.on_line) for _ in range(count)]
        with self._lock:
            self._workers.update(workers)
        try:
            for worker in workers:
                worker.wait_ready()
        except BaseException:
            for worker in workers:
                worker.kill()
                self._forget(worker)
            raise
        return workers

    def _forget(self, worker: Worker) -> None:
        with self._lock:
            self._workers.discard(worker)

    def start(self) -> float:
        """Start the instances; the seconds the slowest took to import the handler."""
        workers = self._spawn(self.size, self._generation)
        for worker in workers:
            self._idle.put(worker)
        return max(w.ready_s for w in workers)

    def _acquire(self) -> Worker:
        while True:
            if self._closed:
                raise PoolClosed()
            try:
                worker = self._idle.get(timeout=0.25)
            except queue.Empty:
                continue
            if worker.generation != self._generation or self._closed:
                self._retire(worker)
                continue
            return worker

    def _release(self, worker: Worker) -> None:
        if self._closed or worker.generation != self._generation:
            self._retire(worker)
        else:
            self._idle.put(worker)

    def _retire(self, worker: Worker) -> None:
        """The instance exits after what it is doing (nothing: it is idle or just released)."""
        worker.close()

        def finish() -> None:
            worker.finish(10.0)
            self._forget(worker)
        threading.Thread(target=finish, daemon=True).start()

    def _replace(self, worker: Worker) -> None:
        """A killed instance is replaced, in the background, by a new one of the current code."""
        self._forget(worker)
        if self._closed or worker.generation != self._generation:
            return

        def start() -> None:
            try:
                [new] = self._spawn(1, worker.generation)
            except InstanceError as exc:
                _say(f"could not start a replacement instance: {exc}")
                return
            self._release(new)
        threading.Thread(target=start, daemon=True).start()

    def invoke(self, event: Any, context: dict) -> dict:
        worker = self._acquire()
        answer = worker.call(event, context, self.time_limit_ms / 1000.0 + GRACE_S)
        if answer.get("timeout") or answer.get("died"):
            self._replace(worker)
        else:
            self._release(worker)
        return answer

    def reload(self) -> float:
        """New instances of the current code replace the old; raises InstanceError (old pool kept)."""
        with self._reload_lock:
            generation = self._generation + 1
            started = time.monotonic()
            workers = self._spawn(self.size, generation)
            with self._lock:
                self._generation = generation
            stale: List[Worker] = []
            while True:
                try:
                    stale.append(self._idle.get_nowait())
                except queue.Empty:
                    break
            for worker in workers:
                self._idle.put(worker)
            for worker in stale:
                self._retire(worker)
            return time.monotonic() - started

    def close(self, timeout: float = 10.0) -> None:
        """Stop: idle instances exit now, busy ones once their current event is answered (the request
        waiting for it gets its answer); what is still running after ``timeout`` is killed."""
        self._closed = True
        while True:
            try:
                self._retire(self._idle.get_nowait())
            except queue.Empty:
                break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._workers:
                    return
            time.sleep(0.05)
        with self._lock:
            left = list(self._workers)
        for worker in left:
            worker.kill()


# --- the worker process -----------------------------------------------------------------------

def _line_stdout() -> Any:
    """stdout for an instance: a line leaves in one write (print's text and its newline together), so the
    log lines of several instances on one stream never interleave, even with PYTHONUNBUFFERED set."""
    import io

    raw = io.FileIO(sys.stdout.fileno(), "w", closefd=False)
    return io.TextIOWrapper(io.BufferedWriter(raw, buffer_size=1 << 16), encoding="utf-8", errors="replace",
                            line_buffering=False, write_through=False)


def _worker_main(answer_fd: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(answer_fd, "wb")
    sys.stdout.flush()
    sys.stdout = _line_stdout()

    def send(value: dict) -> None:
        try:
            data = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # circular or NaN-like values: what SCF could not serialise either
            data = json.dumps({"ok": False, "error": "UnserializableResult", "message": ""})
        out.write(data.encode("utf-8", "replace") + b"\n")
        out.flush()

    try:
        import handler
    except BaseException as exc:  # noqa: BLE001 - a syntax error after a reload: the server says so
        where = ""
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f" ({exc.filename}, line {exc.lineno})"
        send({"ready": False, "error": f"importing handler failed: {type(exc).__name__}: {exc}{where}"})
        return 1
    send({"ready": True})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            result = handler.main_handler(request["event"], request["context"])
        except Exception as exc:  # noqa: BLE001 - SCF records any exception as a failed invocation
            from redraw.errors import RedrawError

            message = exc.message if isinstance(exc, RedrawError) else ""  # redraw's messages hold no secrets
            sys.stdout.flush()
            send({"ok": False, "error": type(exc).__name__, "message": message[:500]})
            continue
        sys.stdout.flush()  # what the function printed without flushing, before its answer
        send({"ok": True, "result": result})
    return 0


# --- the HTTP server --------------------------------------------------------------------------

class _Server(LoopbackServer):
    """Bound when made (a port in use fails at once); listening only from ``listen()``."""

    def __init__(self, address: Tuple[str, int], family: int, app: "Service") -> None:
        self.app = app
        super().__init__(address, _Handler, family)

    def server_activate(self) -> None:  # called by __init__: not yet
        pass

    def listen(self) -> None:
        LoopbackServer.server_activate(self)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "redraw-serve"
    sys_version = ""
    wbufsize = -1            # status line, headers and body leave together
    timeout = 120            # idle keep-alive connections close after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # the server writes its own access lines
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method reaches the function, as on a function URL
            return self._serve
        raise AttributeError(name)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Malformed requests (bad request line, headers too long): answered by the platform, in JSON."""
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # an unparsable request line left it at HTTP/0.9: no status line
        status, headers, body = platform_error(code, HTTPStatus(code).phrase.replace(" ", ""),
                                               message or HTTPStatus(code).description or HTTPStatus(code).phrase)
        self._write(status, headers, body, head=False)

    def handle_expect_100(self) -> bool:
        length = self._content_length()
        if length is not None and length > MAX_EVENT_BYTES:
            self._too_large()
            return False
        return super().handle_expect_100()

    def _content_length(self) -> Optional[int]:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            value = int(raw.strip())
        except ValueError:
            return -1
        return value if value >= 0 else -1

    def _too_large(self, unread: int = 0) -> None:
        """413 from the platform. A body up to twice the limit is read and dropped first (a client still
        sending would otherwise see the connection reset instead of the answer); a larger one closes it."""
        if 0 < unread <= 2 * MAX_EVENT_BYTES:
            while unread > 0:
                chunk = self.rfile.read(min(unread, 1 << 20))
                if not chunk:
                    break
                unread -= len(chunk)
        self.close_connection = True
        self._write(*platform_error(413, "RequestEntityTooLarge",
                                    f"the request body is larger than {MAX_EVENT_BYTES} bytes "
                                    "(SCF's limit for a synchronous event)"), head=False)

    def _read_body(self) -> Optional[bytes]:
        """The body, or None when the request was answered already (malformed or too large)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: List[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.send_error(400, "malformed chunked body")
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_EVENT_BYTES:
                    self._too_large()
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self._content_length()
        if length == -1:
            self.send_error(400, "Content-Length is not a number")
            return None
        if not length:
            return b""
        if length > MAX_EVENT_BYTES:
            self._too_large(length)
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None  # the client went away
        return body

    def _serve(self) -> None:
        started = time.perf_counter()
        body = self._read_body()
        if body is None:
            return
        app = self.server.app
        event = url_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        context = app.context()
        try:
            answer = app.pool.invoke(event, context)
        except PoolClosed:
            self.close_connection = True
            self._write(*platform_error(503, "ServiceStopping", "the local server is stopping"), head=False)
            return
        status, headers, payload = http_answer(answer)
        self._write(status, headers, payload, head=self.command == "HEAD")
        if not app.quiet:
            path = event["path"][:200].encode("unicode_escape").decode("ascii")
            _say(f"{self.command[:16]} {path} -> {status} in {(time.perf_counter() - started) * 1000:.1f} ms "
                 f"(request {context['request_id']})")

    def _write(self, status: int, headers: List[Tuple[str, str]], body: bytes, head: bool) -> None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self.send_response_only(status, phrase)
        self.send_header("Date", self.date_time_string())
        for name, value in headers:
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:  # http.server writes latin-1: send UTF-8 bytes as latin-1 text
                value = value.encode("utf-8").decode("latin-1")
            self.send_header(name, value)
        no_body = head or status < 200 or status in (204, 304)
        if not (status < 200 or status == 204):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not no_body:
            self.wfile.write(body)


# --- the service: server + pool + reloader + folder --------------------------------------------

class Service:
    """What ``redraw serve`` runs: ``bind`` the port, ``start`` the warm instances, then (the watchers
    ready) ``open`` the port: nothing is answered before everything behind it is ready."""

    def __init__(self, *, host: str, port: int, instances: int, time_limit_ms: int, env: Dict[str, str],
                 region: str, quiet: bool = False) -> None:
        self.host, self.port, self.region, self.quiet = host, port, region, quiet
        self.time_limit_ms = time_limit_ms
        self.pool = Pool(instances, env, time_limit_ms)
        self.server: Optional[_Server] = None
        self._threads: List[threading.Thread] = []
        self._stoppers: List[Callable[[], None]] = []
        self._async: Any = None
        self._serving = False
        self.inbox: Any = None  # the webhook inbox (redraw.tools.inbox) with the local follow-up

    def bind(self) -> None:
        """Take the port (OSError when it is taken): before the instances start, so that fails fast."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.server = _Server((self.host, self.port), family, self)
        self.port = self.server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def context(self) -> dict:

        ctx = common.invocation_context(self.time_limit_ms)
        ctx["tencentcloud_region"] = self.region
        return ctx

    def start(self) -> float:
        if self.server is None:
            self.bind()
        return self.pool.start()

    def open(self) -> None:
        """Listen and answer."""
        assert self.server is not None
        self.server.listen()
        thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="serve-http", daemon=True)
        thread.start()
        self._serving = True
        self._threads.append(thread)

    # asynchronous events (a COS trigger): handled by the same instances, each result on stderr
    def invoke_async(self, event: dict, label: str) -> None:
        if self._async is None:
            from concurrent.futures import ThreadPoolExecutor

            self._async = ThreadPoolExecutor(max_workers=self.pool.size, thread_name_prefix="serve-async")
        try:
            self._async.submit(self._run_async, event, label)
        except RuntimeError:  # stopping
            pass

    def _run_async(self, event: dict, label: str) -> None:
        started = time.perf_counter()
        try:
            answer = self.pool.invoke(event, self.context())
        except PoolClosed:
            return
        took = f"{(time.perf_counter() - started) * 1000:.0f} ms"
        _say(f"{label}: {describe_async(answer)} ({took})")

    def watch_code(self) -> None:
        """Reload the instances when the function's code changes."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        service = self
        pending = threading.Event()
        changed: List[str] = []

        def relevant(path: str) -> bool:
            if not path.endswith(".py"):
                return False
            rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
            return rel == "handler.py" or (rel.startswith("redraw/") and not rel.startswith("redraw/tools/")
                                           and "__pycache__" not in rel)

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type not in ("modified", "created", "deleted", "moved", "closed"):
                    return  # opened / closed without writing: reads, such as an instance importing
                paths = [event.src_path, getattr(event, "dest_path", "")]
                hits = [str(p) for p in paths if p and relevant(str(p))]
                if hits and not event.is_directory:
                    changed.extend(os.path.relpath(h, ROOT) for h in hits)
                    pending.set()

        def loop() -> None:
            while not service.pool._closed:
                if not pending.wait(0.5):
                    continue
                time.sleep(0.3)   # an editor saves in several steps: one reload for all of them
                pending.clear()
                names = sorted(set(changed))
                changed.clear()
                try:
                    took = service.pool.reload()
                except InstanceError as exc:
                    _say(f"code changed ({', '.join(names)}) but the new code does not start: {exc}; "
                         "still serving the previous code")
                    continue
                except PoolClosed:
                    return
                if not service.pool._closed:
                    _say(f"code changed ({', '.join(names)}): {service.pool.size} new warm instances in "
                         f"{took:.1f} s; requests in flight finish on the old ones")

        observer = Observer()
        observer.schedule(Handler(), str(ROOT / "redraw"), recursive=True)
        observer.schedule(Handler(), str(ROOT), recursive=False)
        observer.daemon = True
        observer.start()
        thread = threading.Thread(target=loop, name="serve-reload", daemon=True)
        thread.start()
        self._threads.append(thread)

        def stop() -> None:
            observer.stop()
            observer.join(timeout=5)
        self._stoppers.append(stop)

    def watch_folder(self, folder: str, *, bucket: str, region: str, prefix: str, suffix: str,
                     own_prefixes: Tuple[str, ...] = ()) -> Any:
        from .watch import FolderWatcher

        watcher = FolderWatcher(folder, bucket=bucket, region=region, prefix=prefix, suffix=suffix,
                                deliver=self.invoke_async, note=_say, own_prefixes=own_prefixes).start()
        self._stoppers.append(watcher.stop)
        return watcher

    def sweep_every(self, seconds: float) -> None:
        """The timer trigger: its event every ``seconds`` on the pool, one sweep at a time."""
        from .samples import timer_event

        stopped = threading.Event()

        def loop() -> None:
            while not stopped.wait(seconds):
                started = time.perf_counter()
                try:
                    answer = self.pool.invoke(timer_event(), self.context())
                except PoolClosed:
                    return
                took = f"{(time.perf_counter() - started) * 1000:.0f} ms"
                _say(f"sweep: {describe_sweep(answer)} ({took})")

        thread = threading.Thread(target=loop, name="serve-timer", daemon=True)
        thread.start()
        self._threads.append(thread)
        self._stoppers.append(stopped.set)

    def stop(self) -> None:
        for stopper in reversed(self._stoppers):
            stopper()
        if self.server is not None:
            if self._serving:
                self.server.shutdown()
            self.server.server_close()
        if self._async is not None:
            self._async.shutdown(wait=False, cancel_futures=True)
        self.pool.close()


def describe_async(answer: dict) -> str:
    """One line about an asynchronous invocation's result (a COS event)."""
    if answer.get("timeout"):
        return "timed out (SCF would retry the event)"
    if answer.get("died"):
        return "the instance ended (SCF would retry the event)"
    if not answer.get("ok"):
        message = f": {answer['message']}" if answer.get("message") else ""
        return (f"raised {answer.get('error')}{message} (SCF would retry the event twice, about 1 and 2 "
                "minutes later)")
    result = answer.get("result")
    records = result.get("results") if isinstance(result, dict) else None
    if not isinstance(records, list):
        return f"returned {json.dumps(result, ensure_ascii=False)[:300]}"
    parts = []
    for record in records:
        if not isinstance(record, dict):
            continue
        detail = record.get("task_id") or record.get("reason") or ""
        parts.append(f"{record.get('status')}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts) or "no records"


def describe_sweep(answer: dict) -> str:
    """One line about a sweep's result: what it found and how many tasks ended."""
    result = answer.get("result") if answer.get("ok") else None
    summary = result.get("sweep") if isinstance(result, dict) else None
    if not isinstance(summary, dict):
        return describe_async(answer)
    ended = {k: summary[k] for k in ("succeeded", "failed", "lost") if summary.get(k)}
    others = {k: v for k, v in summary.items() if k not in ("pending", "due", *ended) and v}
    parts = [f"{summary.get('pending', 0)} pending, {summary.get('due', 0)} due"]
    parts += [f"{n} {k}" for k, n in ended.items()] + [f"{k} {n}" for k, n in others.items()]
    return ", ".join(parts)


def follow_up_wanted(args: Any) -> bool:
    """``--follow-up``, or ``REDRAW_FOLLOW_UP=true`` in the environment (as the deployed function has it)."""
    return bool(args.follow_up) or (os.environ.get("REDRAW_FOLLOW_UP") or "").strip().lower() in ("1", "true", "yes", "on")


def local_follow_up(args: Any, updates: Dict[str, Optional[str]]) -> Tuple[Any, Dict[str, str], str]:
    """A COS emulator serving the watched folder as the bucket (and as the state bucket, unless
    REDRAW_STATE_BUCKET names another: that one lives under the folder's hidden ``.cos/``); the
    variables that point the function's follow-up at it; where the state bucket's files are.
    Signatures are checked with the function's own credentials."""
    from .cos_emulator import CosEmulator

    def current(name: str) -> Optional[str]:
        return updates[name] if name in updates else os.environ.get(name)

    cos = CosEmulator(secret_id=current("TENCENTCLOUD_SECRETID") or "",
                      secret_key=current("TENCENTCLOUD_SECRETKEY") or "",
                      token=current("TENCENTCLOUD_SESSIONTOKEN") or None)
    cos.add_bucket(args.bucket, args.watch)
    state = (os.environ.get("REDRAW_STATE_BUCKET") or "").strip() or args.bucket
    state_dir = os.path.realpath(args.watch)
    if state != args.bucket:
        state_dir = os.path.join(state_dir, ".cos", "buckets", state)
        os.makedirs(state_dir, exist_ok=True)
        cos.add_bucket(state, state_dir)
    cos.start()
    # the folder is a private bucket, as COS buckets are by default: VOD reads uploads through presigned URLs
    return cos, {"REDRAW_PRESIGN_URLS": os.environ.get("REDRAW_PRESIGN_URLS") or "true",
                 "REDRAW_FOLLOW_UP": "true", "REDRAW_STATE_BUCKET": state, "REDRAW_STATE_REGION": args.region,
                 "TENCENTCLOUD_REGION": args.region, "REDRAW_COS_ENDPOINT": cos.url,
                 "REDRAW_POLL_MAX_INTERVAL_S": os.environ.get("REDRAW_POLL_MAX_INTERVAL_S") or "0",
                 "REDRAW_DELIVER_PREFIX": os.environ.get("REDRAW_DELIVER_PREFIX") or "redrawn/"}, state_dir


def local_inbox(updates: Dict[str, Optional[str]]) -> Tuple[Any, Dict[str, str]]:
    """A webhook inbox (``redraw.tools.inbox``) on a port of its own, and the variables that point the
    function's REDRAW_WEBHOOK_URL at it (a generated secret, private addresses allowed: this run only);
    ``(None, {})`` without the ``standardwebhooks`` library (a dev dependency), or when the environment
    names a REDRAW_WEBHOOK_URL of its own. Per-request Webhooks may go to this machine's receivers."""
    import importlib.util

    if os.environ.get("REDRAW_WEBHOOK_URL") or importlib.util.find_spec("standardwebhooks") is None:
        return None, {}
    from ..webhooks.signing import new_secret
    from .inbox import WebhookInbox

    secret = os.environ.get("REDRAW_WEBHOOK_SECRET") or new_secret()
    inbox = WebhookInbox(secret, stream=sys.stderr).start()
    return inbox, {"REDRAW_WEBHOOK_URL": f"{inbox.url}/webhook", "REDRAW_WEBHOOK_SECRET": secret,
                   "REDRAW_WEBHOOK_ALLOW_PRIVATE": "true",
                   "REDRAW_WEBHOOK_ALLOWED_HOSTS": os.environ.get("REDRAW_WEBHOOK_ALLOWED_HOSTS")
                   or "127.0.0.1,localhost,::1"}


def worker_env(updates: Dict[str, Optional[str]]) -> Dict[str, str]:
    """The instances' environment: the server's, with where VOD calls go, and this checkout first on the path."""

    env = common.merged_env(updates)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TENCENTCLOUD_RUNENV", "SCF")
    endpoint = env.get("VOD_ENDPOINT") or ""
    from ..config import parse_endpoint
    from ..errors import ConfigError

    try:
        loopback = bool(endpoint) and common.is_loopback(parse_endpoint(endpoint).host)
    except ConfigError:
        loopback = False
    if loopback:  # the SDK sends through HTTP(S)_PROXY even to loopback
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
    return env


def curl_example(url: str) -> str:
    body = json.dumps({"FileInfo": {"Type": "Url", "Url": "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/"
                                                           "uploads/clip.mp4"}}, separators=(",", ":"))
    return f"curl -sS {url}/redraw -H 'content-type: application/json' -d '{body}'"


def _open_console(args: Any, service: "Service") -> Any:
    """The web console (``redraw.tools.console``), listening, fed the function's lines; None when off."""
    from .console import console_port, open_console

    try:
        console = open_console(args)
    except OSError as exc:
        reason = "the port is in use" if getattr(exc, "errno", None) in (98, 48) else (exc.strerror or str(exc))
        raise common.CliError(f"cannot listen on {args.host}:{console_port(args)} for the console: {reason} (choose "
                           "another --console-port; 0 picks a free one; --no-console: none)") from None
    if console is not None:
        service._stoppers.append(console.stop)
        service.pool.on_line = console.board.feed
    return console


def run(args: Any) -> int:
    """``redraw serve``: serve until Ctrl-C or SIGTERM (exit 0)."""

    if not 0 <= args.port <= 65535:
        raise common.CliError("--port must be between 0 and 65535 (0: any free port)")
    if getattr(args, "console_port", None) is not None and not 0 <= args.console_port <= 65535:
        raise common.CliError("--console-port must be between 0 and 65535 (0: any free port)")
    if not 1 <= args.instances <= 64:
        raise common.CliError("--instances must be between 1 and 64")
    if not 1 <= args.timeout <= 900:
        raise common.CliError("--timeout must be between 1 and 900 seconds (SCF's range)")
    if args.watch is not None:
        if not os.path.isdir(args.watch):
            raise common.CliError(f"--watch {args.watch}: not a folder")
        if not common.BUCKET_RE.match(args.bucket):
            raise common.CliError("--bucket must look like NAME-APPID, e.g. media-1250000000")
        if not common.REGION_RE.match(args.region):
            raise common.CliError("--region must look like ap-guangzhou")
    elif args.prefix is not None or args.suffix is not None:
        raise common.CliError("--prefix and --suffix apply to --watch only")
    if args.follow_up and args.watch is None:
        raise common.CliError("--follow-up needs --watch DIR: the folder is the bucket its records and "
                           "redrawn videos go to")
    if follow_up_wanted(args) and args.watch is None and not os.environ.get("REDRAW_COS_ENDPOINT"):
        raise common.CliError("REDRAW_FOLLOW_UP=true needs --watch DIR (a folder as the local bucket) or "
                           "REDRAW_COS_ENDPOINT (a COS endpoint of your own); unset it to serve without the follow-up")
    if not 1 <= args.sweep_every <= 3600:
        raise common.CliError("--sweep-every must be between 1 and 3600 seconds")

    time_limit_ms = int(args.timeout * 1000)
    service = Service(host=args.host, port=args.port, instances=args.instances, time_limit_ms=time_limit_ms,
                      env={}, region=args.region, quiet=args.quiet)
    try:
        service.bind()
    except OSError as exc:
        reason = "the port is in use" if getattr(exc, "errno", None) in (98, 48) else (exc.strerror or str(exc))
        raise common.CliError(f"cannot listen on {args.host}:{args.port}: {reason} "
                           "(stop the other server, or choose another --port; --port 0 picks a free one)") from None

    stop = threading.Event()
    previous: Dict[signal.Signals, Any] = {}

    def stop_on_signal(signum: int, frame: Any) -> None:
        stop.set()
        # a second Ctrl-C interrupts the shutdown itself (KeyboardInterrupt: exit 130)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    if threading.current_thread() is threading.main_thread():
        # set, not inherited: a server started in the background of a script has SIGINT ignored
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, stop_on_signal)
    emulators: List[Any] = []
    try:
        console = _open_console(args, service)
        from .redraw_output import find_ffmpeg
        from .vod_input import InputRoutes

        routes = InputRoutes()  # the embedded VOD emulator fetches inputs of the local bucket from its COS
        with common.vod_target(args, embedded_ok=True, quiet=True, emulator_options={"input_routes": routes},
                               on_emulator=emulators.append) as updates:
            local_cos, state_dir = None, ""
            if follow_up_wanted(args) and args.watch is not None:
                local_cos, follow, state_dir = local_follow_up(args, updates)
                routes.add_cos(local_cos)
                service._stoppers.insert(0, local_cos.stop)  # stopped last: sweeps in flight still reach it
                updates = {**updates, **follow}
                inbox, hooks = local_inbox(updates)
                if inbox is not None:
                    service.inbox = inbox  # its deliveries() (the console shows them)
                    service._stoppers.insert(0, inbox.stop)
                    updates = {**updates, **hooks}
            settings = common.load_settings_from(updates)   # a configuration error: exit 2 now, not a 500 per request
            service.pool.env = worker_env(updates)
            embedded = "TENCENTCLOUD_SECRETKEY" in updates
            try:
                warm_s = service.start()
            except InstanceError as exc:
                raise common.CliError(f"the function's instances did not start: {exc}", common.EXIT_FAILED) from None
            lines = []
            if not args.no_reload:
                service.watch_code()
                lines.append("code changes under redraw/ and handler.py start new instances (--no-reload: off)")
            if args.watch is not None:
                from .watch import WatchError, trigger_filter

                prefix, suffix, source = trigger_filter()
                if args.prefix is not None or args.suffix is not None:
                    source = "--prefix/--suffix"
                prefix = args.prefix if args.prefix is not None else prefix
                suffix = args.suffix if args.suffix is not None else suffix
                try:
                    own = (settings.state_prefix, settings.deliver_prefix or settings.state_prefix,
                           *settings.rules.deliver_prefixes) if local_cos is not None else ()
                    service.watch_folder(args.watch, bucket=args.bucket, region=args.region, prefix=prefix,
                                         suffix=suffix, own_prefixes=own)
                except WatchError as exc:
                    raise common.CliError(str(exc)) from None
                from ..rules import filter_problems

                mismatched = filter_problems(settings.rules, prefix, suffix)
                lines += [f"warning: {line}" for line in mismatched[0] + mismatched[1]]
                lines.append(f"watching {os.path.realpath(args.watch)} as bucket {args.bucket} ({args.region}), "
                             f"prefix {prefix!r} suffix {suffix!r} ({source}): a file written and closed, or "
                             "moved in, fires cos:ObjectCreated:Put (its metadata from FILE.meta.json, written "
                             "first); a deleted one cos:ObjectRemove:Delete")
            if follow_up_wanted(args):
                service.sweep_every(args.sweep_every)
            if console is not None:
                from .console import emulator_progress

                if args.watch is not None:
                    from .console import write_sidecar

                    console.folder = os.path.realpath(args.watch)
                    console.prefix, console.suffix = prefix, suffix
                    console.metadata = write_sidecar  # an upload's x-cos-meta-* headers, for the upload rules
                if local_cos is not None:  # the tasks of an earlier run, from their receipts
                    from .taskboard import load_receipts

                    console.board.seed(load_receipts(state_dir, settings.state_prefix))
                console.video_suffixes = settings.video_suffixes
                console.progress = emulator_progress(emulators[0]) if emulators else None
                # the webhook inbox's deliveries, when serve runs one (redraw.tools.inbox: service.inbox)
                console.deliveries = getattr(getattr(service, "inbox", None), "deliveries", None)
                lines.append(f"console: {console.url}/ -- upload a video, the tasks live, before and after, the "
                             "function's lines (--console-port; --no-console: off)")
            if local_cos is not None:
                folder = os.path.realpath(args.watch)
                lines.append(f"follow-up on: a local COS at {local_cos.url} serves the folder as bucket "
                             f"{args.bucket}; records and receipts go to {os.path.join(state_dir, settings.state_prefix)}, "
                             f"redrawn videos to {os.path.join(folder, settings.deliver_prefix or '')}; "
                             f"the timer trigger sweeps every {args.sweep_every:g} s")
                if embedded:
                    lines.append("the VOD emulator reads each upload from the local COS as VOD does (presigned URLs: "
                                 f"REDRAW_PRESIGN_URLS={updates.get('REDRAW_PRESIGN_URLS')}) and redraws it"
                                 + (" with ffmpeg" if find_ffmpeg() else "; no ffmpeg here, so every output is the "
                                    "sample clip (pip install imageio-ffmpeg)"))
            elif follow_up_wanted(args):
                lines.append(f"follow-up on (REDRAW_COS_ENDPOINT): the timer trigger sweeps every {args.sweep_every:g} s")
            if service.inbox is not None:
                lines.append(f"webhooks on: a webhook inbox at {service.inbox.url}/webhook verifies each delivery "
                             "(standardwebhooks) and prints one line per delivery; a request's own Webhook may "
                             "name a receiver on this machine")
            elif local_cos is not None:
                lines.append("webhooks off: install requirements-dev.txt (standardwebhooks) for the local inbox")
            service.open()  # the watchers and the follow-up's COS are ready: requests may come
            # everything is ready when the first line appears: it says where, and how to try it
            _say(f"serving the function on {service.url} -- try: {curl_example(service.url)}")
            where = (f"an in-process VOD emulator at {updates['VOD_ENDPOINT']} (nothing reaches Tencent Cloud)"
                     if embedded else settings.endpoint.url)
            _say(f"{args.instances} warm instances (ready in {warm_s:.1f} s; timeout {args.timeout:g} s, HTTP "
                 f"budget {settings.http_budget_ms / 1000:g} s); VOD calls go to {where}; function log lines on "
                 "stdout; Ctrl-C stops")
            for line in lines:
                _say(line)
            if not common.is_loopback(args.host):
                _say(f"warning: listening on {args.host}: anyone who can reach this port can create tasks "
                     "(the function does not authenticate callers; in the cloud, CAM does)")
            while not stop.wait(0.5):
                pass
            _say("stopping: requests in flight finish, then the instances exit")
    finally:
        service.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    _say("stopped")
    return common.EXIT_OK


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        raise SystemExit(_worker_main(int(sys.argv[2])))
    raise SystemExit("usage: python -m redraw.tools.serve --worker FD (started by redraw serve)")
