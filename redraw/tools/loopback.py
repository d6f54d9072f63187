"""What counts as a loopback host, and the threaded HTTP server under the project's local servers (the
VOD and COS emulators, ``redraw serve``): no reverse DNS lookup when binding, no traceback when a client goes away, and the open
connections known, so that stopping can close them (keep-alive clients would hold a thread each)."""
from __future__ import annotations

import http.server
import re
import socket
import socketserver
import threading
from typing import Any, Optional, Tuple, Union


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (``host`` may carry a port)."""
    import ipaddress
    from urllib.parse import urlsplit

    name = (urlsplit("//" + host).hostname or "").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(value: Optional[str], size: int) -> Union[None, str, Tuple[int, int]]:
    """(start, stop) of a single ``bytes=`` range; None to send everything; "unsatisfiable" for 416."""
    if not value:
        return None
    m = _RANGE_RE.match(value.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges or a malformed header: ignored, as RFC 9110 allows
    first, last = m.group(1), m.group(2)
    if not first:
        n = int(last)
        return "unsatisfiable" if n == 0 else (max(0, size - n), size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, size if not last else min(int(last), size - 1) + 1


class LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 256  # listen backlog: many clients connect at once (benchmarks)

    def __init__(self, address: Tuple[str, int], handler: Any, family: int) -> None:
        self.address_family = family
        self._open: set = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (socket.getfqdn): skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that went away: no traceback
        pass


class Served:
    """``start()`` / ``stop()`` / ``with`` for an emulator that owns one ``LoopbackServer`` on a thread.

    The subclass sets ``host`` and ``_requested_port`` and builds its server in ``_new_server``;
    ``start`` fills ``port``, ``endpoint`` (``host:port``, IPv6 in brackets) and ``url``.
    """

    thread_name = "loopback"
    host: str
    _requested_port: int
    _server: Optional[LoopbackServer] = None
    _thread: Optional[threading.Thread] = None
    port = 0
    endpoint = ""
    url = ""

    def _new_server(self, address: Tuple[str, int], family: int) -> LoopbackServer:
        raise NotImplementedError

    def start(self) -> Any:
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server = self._new_server((self.host, self._requested_port), family)
        self._server = server
        self.port = server.server_address[1]
        shown = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.endpoint = f"{shown}:{self.port}"
        self.url = f"http://{self.endpoint}"
        # stop() waits for the loop to look at its flag: every 10 ms (tests start and stop hundreds)
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
