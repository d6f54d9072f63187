"""The threaded HTTP server under the project's local servers (the VOD and COS emulators, ``redraw
serve``): no reverse DNS lookup when binding, no traceback when a client goes away, and the open
connections known, so that stopping can close them (keep-alive clients would hold a thread each)."""
from __future__ import annotations

import http.server
import socket
import socketserver
import threading
from typing import Any, Tuple


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
