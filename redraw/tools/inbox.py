"""A local webhook receiver: what ``redraw serve --follow-up`` points ``REDRAW_WEBHOOK_URL`` at.

Each delivery is verified with the reference ``standardwebhooks`` library (a dev dependency, never
shipped) and printed as one stderr line: type, TaskId, verified or not. ``deliveries()`` lists them.
Faults can be queued (``inject``) or drawn at random (``fault_rate``), so tests and the soak can
see what the sender does with a receiver that fails: ``500``, ``timeout`` (no answer for
``slow_s``), ``reset`` (the connection dropped), ``trickle`` (the answer a byte at a time),
``410``, ``301`` (to a private address), ``429`` (with ``Retry-After: retry_after``), ``hold`` (no
answer until ``release()``: the message has arrived, the sender waits), and ``down`` (``down_until``:
every request answered 503 until then).

    with WebhookInbox(secret) as inbox:
        ...  # REDRAW_WEBHOOK_URL=inbox.url + "/hook"
"""
from __future__ import annotations

import http.server
import json
import random
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from .loopback import LoopbackServer, Served

FAULTS = ("500", "timeout", "reset", "trickle", "410", "301", "429")


class _Server(LoopbackServer):
    def __init__(self, address: Tuple[str, int], handler: Any, inbox: "WebhookInbox", family: int) -> None:
        self.inbox = inbox
        super().__init__(address, handler, family)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "WebhookInbox/1.0"
    sys_version = ""
    timeout = 30

    def log_message(self, *args: Any) -> None:  # the inbox prints its own line
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        inbox: WebhookInbox = self.server.inbox  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if 0 < length <= 1024 * 1024 else b""
        fault = inbox.next_fault()
        headers = {k.lower(): v for k, v in self.headers.items()}
        inbox.record(headers, body, fault, complete=len(body) == length)
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if fault == "hold":
            inbox.released.wait(60)
            self.close_connection = True
            return
        if fault == "timeout":
            time.sleep(inbox.slow_s)
            self.close_connection = True
            return
        if fault == "trickle":
            self.close_connection = True
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(inbox.slow_s / 20)
            except OSError:
                pass
            return
        status, extra = {"500": (500, {}), "410": (410, {}), "down": (503, {}),
                         "301": (301, {"Location": "http://169.254.169.254/latest/meta-data/"}),
                         "429": (429, {"Retry-After": str(inbox.retry_after)})}.get(fault or "", (200, {}))
        answer = b'{"ok":true}' if status == 200 else b""
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class WebhookInbox(Served):
    """A Standard Webhooks receiver on loopback that verifies and keeps every delivery."""

    thread_name = "webhook-inbox"

    def __init__(self, secret: str, host: str = "127.0.0.1", port: int = 0, *, fault_rate: float = 0.0,
                 faults: Tuple[str, ...] = ("500", "timeout", "reset"), fault_seed: Optional[int] = None,
                 slow_s: float = 12.0, retry_after: int = 1, stream: Optional[TextIO] = None,
                 quiet: bool = False) -> None:
        from standardwebhooks import Webhook  # the reference library: dev dependency

        self.secret = secret
        self._verifier = Webhook(secret)
        self.host, self._requested_port = host, port
        self.fault_rate, self.faults, self.slow_s, self.retry_after = fault_rate, faults, slow_s, retry_after
        self.down_until = 0.0
        self.released = threading.Event()
        self._rng = random.Random(fault_seed)
        self._queued: List[str] = []
        self._deliveries: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stream, self._quiet = stream, quiet
        #: called with each delivery before it is answered (the soak kills its sender there)
        self.on_delivery: Optional[Callable[[Dict[str, Any]], None]] = None

    def _new_server(self, address: Tuple[str, int], family: int) -> LoopbackServer:
        return _Server(address, _Handler, self, family)

    # --- faults ---------------------------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        """Answer the next requests with these faults, in order (then as usual)."""
        with self._lock:
            self._queued.extend(faults)

    def release(self) -> None:
        """Let every held request go (unanswered)."""
        self.released.set()

    def next_fault(self) -> Optional[str]:
        with self._lock:
            if time.time() < self.down_until:
                return "down"
            if self._queued:
                return self._queued.pop(0)
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.faults)
        return None

    # --- deliveries -----------------------------------------------------------------------------

    def record(self, headers: Dict[str, str], body: bytes, fault: Optional[str], complete: bool = True) -> None:
        error = None
        try:
            self._verifier.verify(body, headers)
        except Exception as exc:  # noqa: BLE001 - any failure of verification is "not verified"
            error = f"{type(exc).__name__}: {exc}"[:200]
        verified = error is None
        message: Any
        try:
            message = json.loads(body)
        except ValueError:
            message = {}
        message = message if isinstance(message, dict) else {}
        data = message.get("data") if isinstance(message.get("data"), dict) else {}
        delivery = {"received_at": time.time(), "webhook_id": headers.get("webhook-id"),
                    "timestamp": headers.get("webhook-timestamp"), "type": message.get("type"),
                    "task_id": data.get("task_id"), "verified": verified, "answered": fault or "200",
                    "complete": complete, "error": error, "data": data}
        with self._arrived:
            self._deliveries.append(delivery)
            self._arrived.notify_all()
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        if not self._quiet:
            print(f"webhook: {delivery['type']} {delivery['task_id']} "
                  f"{'verified' if verified else 'NOT VERIFIED'}"
                  f"{'' if not fault else ' (answered ' + fault + ')'}",
                  file=self._stream or sys.stderr, flush=True)

    def deliveries(self) -> List[Dict[str, Any]]:
        """Every delivery so far: received_at, webhook_id, timestamp, type, task_id, verified (and the
        verification's ``error``), answered (``200`` or the fault it was answered with), complete (the
        whole body arrived: a sender killed mid-request sends less) and the message's data."""
        with self._lock:
            return [dict(d) for d in self._deliveries]

    def accepted(self) -> List[Dict[str, Any]]:
        """The deliveries answered 200."""
        return [d for d in self.deliveries() if d["answered"] == "200"]

    def wait_for(self, count: int, timeout: float, accepted: bool = True) -> List[Dict[str, Any]]:
        """Wait until ``count`` deliveries (accepted ones by default) have arrived; returns them all."""
        end = time.monotonic() + timeout
        with self._arrived:
            while True:
                got = [d for d in self._deliveries if not accepted or d["answered"] == "200"]
                left = end - time.monotonic()
                if len(got) >= count or left <= 0:
                    return [dict(d) for d in got]
                self._arrived.wait(left)
