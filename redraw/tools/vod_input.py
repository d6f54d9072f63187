"""How the VOD emulator fetches a task's input (``FileInfo.Url``), as VOD does, over loopback only.

``InputRoutes`` knows which URL hosts a local server answers for: a COS virtual-host name
(``<bucket>-<appid>.cos.<region>.myqcloud.com``) of a bucket a local COS emulator serves is sent
to that emulator, with the URL's own Host header, path and query unchanged, so the emulator checks
a presigned signature exactly as COS would. ``fetch_input`` downloads into a file and says why it
could not; it never puts the URL's query string (a signature) into what it returns.

Modes (``FETCH_MODES``): ``local`` fetches URLs that map to a local COS emulator or name a loopback
host, and takes any other host as read (the sample stands in for it: there is no network here);
``all`` fetches every URL; ``off`` fetches nothing (the emulator before inputs were fetched).
"""
from __future__ import annotations

import http.client
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple
from urllib.parse import quote, urlsplit

from .loopback import is_loopback

__all__ = ["FETCH_MODES", "MAX_INPUT_BYTES", "FetchFailed", "InputRoutes", "Target", "fetch_input"]

FETCH_MODES = ("local", "all", "off")
MAX_INPUT_BYTES = 2 * 1024**3 - 1         # VOD: inputs under 2 GB
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0                     # per read: a stalled server fails the task
_CHUNK = 1024 * 1024
_COS_HOST_RE = re.compile(r"^([a-z0-9](?:[a-z0-9-]*[a-z0-9])?-\d+)\.cos\.[a-z0-9-]+\.myqcloud\.com$")
_CODE_RE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


class FetchFailed(Exception):
    """The input could not be read; ``str()`` says why without the URL's query string."""


@dataclass(frozen=True)
class Target:
    """Where to send the GET: ``address`` (host, port) and ``tls``; ``host_header`` as the URL names it."""

    address: Tuple[str, int]
    tls: bool
    host_header: str
    request_target: str   # path and query, as sent on the request line
    where: str            # for messages: "the local COS emulator" / "127.0.0.1:9000" / the host name


class InputRoutes:
    """COS hosts served by local COS emulators; thread-safe, may be added to while the emulator runs.

    ``add_cos(emulator)`` follows a live COS emulator (its port and buckets, read at each fetch);
    ``add_cos_endpoint("http://127.0.0.1:9100")`` is one in another process, taken to serve every bucket.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: List[Any] = []

    def add_cos(self, cos: Any) -> "InputRoutes":
        with self._lock:
            self._routes.append(cos)
        return self

    def add_cos_endpoint(self, url: str) -> "InputRoutes":
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError("a COS endpoint is http://HOST:PORT")
        with self._lock:
            self._routes.append((parts.hostname, parts.port))
        return self

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._routes)

    def cos_address(self, bucket: str) -> Optional[Tuple[str, int]]:
        """The loopback address of a local COS that serves ``bucket``, if any."""
        with self._lock:
            routes = list(self._routes)
        for route in routes:
            if isinstance(route, tuple):
                return route
            port = getattr(route, "port", 0)
            if port and (bucket in route.buckets or getattr(route, "auto_buckets", False)):
                return str(route.host), int(port)
        return None


def _request_target(path: str, query: str) -> str:
    """The path and query as a client sends them: characters outside ASCII (or spaces) percent-encoded
    as UTF-8, as browsers and ``requests`` do; escapes already there are kept as they are."""
    safe = "/%:@!$&'()*+,;=-._~"
    target = quote(path or "/", safe=safe)
    return target + ("?" + quote(query, safe=safe + "?") if query else "")


def resolve(url: str, mode: str, routes: InputRoutes) -> Optional[Target]:
    """Where the emulator fetches ``url`` from, or None when it takes the input as read without fetching."""
    if mode == "off":
        return None
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise FetchFailed("the URL is not valid") from None
    if parts.scheme not in ("http", "https") or not host:
        raise FetchFailed("the URL is not an http(s) URL")
    tls = parts.scheme == "https"
    target = _request_target(parts.path, parts.query)
    header = parts.netloc.rpartition("@")[2]
    cos = _COS_HOST_RE.match(host)
    if cos is not None:
        address = routes.cos_address(cos.group(1))
        if address is not None:  # the local COS serves plain HTTP; the URL's Host header is kept
            return Target(address, False, header, target, f"the local COS ({cos.group(1)})")
    if is_loopback(f"[{host}]" if ":" in host else host) or mode == "all":
        return Target((host, port or (443 if tls else 80)), tls, header, target, host)
    return None


def _error_code(body: bytes) -> str:
    found = _CODE_RE.search(body)
    return f" {found.group(1).decode()}" if found else ""


def fetch_input(target: Target, into: Path, *, max_bytes: int = MAX_INPUT_BYTES,
                connect_timeout: float = CONNECT_TIMEOUT_S, read_timeout: float = READ_TIMEOUT_S) -> int:
    """GET ``target`` into the file ``into``; returns its size, or raises FetchFailed (redirects are not followed)."""
    host, port = target.address
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as exc:
        raise FetchFailed(f"could not connect to {target.where} ({_reason(exc)})") from None
    conn_cls = http.client.HTTPSConnection if target.tls else http.client.HTTPConnection
    conn = conn_cls(host, port, timeout=read_timeout)
    try:
        if target.tls:
            import ssl

            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=target.host_header.rsplit(":", 1)[0].strip("[]"))
        sock.settimeout(read_timeout)
        conn.sock = sock
        conn.putrequest("GET", target.request_target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        conn.putheader("User-Agent", "VodEmulator-InputFetcher/1.0")
        conn.endheaders()
        reply = conn.getresponse()
        if reply.status != 200:
            code = _error_code(reply.read(64 * 1024))
            raise FetchFailed(f"{target.where} answered HTTP {reply.status}{code}")
        length = reply.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise FetchFailed(f"the input is {length} bytes; VOD takes inputs under 2 GB")
        size = 0
        with open(into, "wb") as out:
            while True:
                chunk = reply.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise FetchFailed("the input is larger than VOD takes (2 GB)")
                out.write(chunk)
        if length and length.isdigit() and size != int(length):
            raise FetchFailed(f"the download from {target.where} ended early ({size} of {length} bytes)")
        if size == 0:
            raise FetchFailed(f"{target.where} answered an empty body")
        return size
    except FetchFailed:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise FetchFailed(f"reading from {target.where} failed ({_reason(exc)})") from None
    finally:
        conn.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    return type(exc).__name__
