"""One webhook POST, over a connection to the address the SSRF guard checked.

``http.client`` with the socket opened to ``Target.address`` (no second DNS lookup, so DNS
rebinding cannot swap it) and, for https, TLS verified against the host name (SNI and the
certificate's name). Redirects are never followed (``http.client`` does not): a 3xx is a failure.
The whole attempt (connect, TLS, request, status line and headers) is bounded by ``timeout``: a
watchdog (one thread for the process) closes the socket when it runs out, so a receiver that trickles its answer cannot hold
the sweep.

Why not a library: requests-hardened (maintained) checks the address at connect time but goes
through requests/urllib3's pool; advocate is archived. This is ~60 lines of the standard library
and adds no runtime dependency or import cost to the upload path.
"""
from __future__ import annotations

import email.utils
import heapq
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .guard import Target

MAX_TIMEOUT = 10.0
_context: Optional[ssl.SSLContext] = None


@dataclass
class Answer:
    status: Optional[int]           # None: no HTTP answer (refused, reset, timed out)
    error: str = ""                 # what went wrong, without the URL
    retry_after: Optional[float] = None


def _tls() -> ssl.SSLContext:
    global _context
    if _context is None:
        _context = ssl.create_default_context()
    return _context


class _Pinned(http.client.HTTPConnection):
    """A connection to ``address`` that speaks to ``host`` (Host header, SNI, certificate)."""

    def __init__(self, target: Target, timeout: float, context: Optional[ssl.SSLContext]) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._target, self._context = target, context

    def connect(self) -> None:
        self.sock = socket.create_connection((self._target.address, self._target.port), self.timeout)
        if self._context is not None:  # the watchdog can cut a handshake too: self.sock is set meanwhile
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self._target.host)


def post(target: Target, headers: Dict[str, str], body: bytes, timeout: float,
         context: Optional[ssl.SSLContext] = None) -> Answer:
    """POST ``body``; the answer's status (any 2xx is a success) and Retry-After, or the error."""
    timeout = max(0.1, min(MAX_TIMEOUT, timeout))
    tls = (context or _tls()) if target.scheme == "https" else None
    conn = _Pinned(target, timeout, tls)
    token = _watchdog.watch(conn, timeout)
    started = time.monotonic()
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(65536)  # a little of the body, so a well-behaved receiver sees its answer read
        return Answer(response.status, retry_after=retry_after(response.getheader("Retry-After")))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if time.monotonic() - started >= timeout * 0.99:
            return Answer(None, f"timed out after {timeout:g} s")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return Answer(None, "the TLS certificate does not match the host")
        return Answer(None, f"no answer ({type(exc).__name__})")
    finally:
        _watchdog.unwatch(token)
        conn.close()


class _Watchdog:
    """One thread for every attempt of the process: it cuts the connection of an attempt that outlives
    its time (a thread per attempt cost more CPU than the attempt itself, measured)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: List[Tuple[float, int]] = []
        self._conns: Dict[int, http.client.HTTPConnection] = {}
        self._next = 0
        self._thread: Optional[threading.Thread] = None

    def watch(self, conn: http.client.HTTPConnection, seconds: float) -> int:
        with self._cond:
            self._next += 1
            self._conns[self._next] = conn
            heapq.heappush(self._heap, (time.monotonic() + seconds, self._next))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="redraw-webhook-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
            return self._next

    def unwatch(self, token: int) -> None:
        with self._cond:
            self._conns.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._conns:
                    heapq.heappop(self._heap)  # finished in time
                if not self._heap:
                    self._cond.wait()
                    continue
                due, token = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                conn = self._conns.pop(token, None)
            if conn is not None:
                _cut(conn)


def _cut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


_watchdog = _Watchdog()


def retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
