"""One webhook POST, over a connection to the address the SSRF guard checked.

``http.client`` with the socket opened to ``Target.address`` (no second DNS lookup, so DNS
rebinding cannot swap it) and, for https, TLS verified against the host name (SNI and the
certificate's name). Redirects are never followed (``http.client`` does not): a 3xx is a failure.
The whole attempt (connect, TLS, request, status line and headers) is bounded by ``timeout``: a
watchdog closes the socket when it runs out, so a receiver that trickles its answer cannot hold
the sweep.

Why not a library: requests-hardened (maintained) checks the address at connect time but goes
through requests/urllib3's pool; advocate is archived. This is ~60 lines of the standard library
and adds no runtime dependency or import cost to the upload path.
"""
from __future__ import annotations

import email.utils
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional

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
    watchdog = threading.Timer(timeout, _cut, (conn,))
    watchdog.daemon = True
    watchdog.start()
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
        watchdog.cancel()
        conn.close()


def _cut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


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
