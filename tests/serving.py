"""A real ``redraw serve`` process for the tests: started on a free port, its stdout (the function's JSON
log lines) and stderr (the server's lines) collected by threads, stopped with SIGINT."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0


def clean_env(root: Path = ROOT, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_", "SCF_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = str(root)
    env.update(extra)
    return env


def function_env(root: Path = ROOT, **extra: str) -> Dict[str, str]:
    """The function's environment for a server pointed at a test emulator (``--endpoint URL``)."""
    from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY

    return clean_env(root, VOD_SUB_APP_ID="1500000001", TENCENTCLOUD_SECRETID=DEFAULT_SECRET_ID,
                     TENCENTCLOUD_SECRETKEY=DEFAULT_SECRET_KEY, VOD_PACING="fixed", VOD_MAX_RPS="1000",
                     REDRAW_MAX_BODY_BYTES="4096", **extra)


def emulator_without_limit() -> Any:
    """A started VOD emulator without the 20/s limit (bursts of 50 are answered at once)."""
    from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator

    return VodEmulator(secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY, rps=0).start()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A loopback port nothing listens on now (for a server whose port must be known before its banner)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """``python -m redraw.tools serve --port PORT ARGS`` in ``cwd`` with ``env``; returns once the server has
    said where it listens (``banner=False``: at once, ``port`` given)."""

    def __init__(self, *args: str, env: Optional[Dict[str, str]] = None, cwd: Path = ROOT, port: int = 0,
                 banner: bool = True) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "redraw.tools", "serve", "--port", str(port), *args],
                                        cwd=cwd, env=env or clean_env(), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
        self.out: List[str] = []
        self.err: List[str] = []
        self._lock = threading.Lock()
        for stream, sink in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        if not banner:
            self.port, self.url = port, f"http://127.0.0.1:{port}"
            return
        try:
            banner = wait_for(lambda: self._banner(), START_TIMEOUT, "the server's first line")
        except AssertionError:
            self.stop()
            raise AssertionError("server did not start:\n" + "\n".join(self.err)) from None
        self.url = banner
        self.port = int(banner.rsplit(":", 1)[1])

    def _pump(self, stream: Any, sink: List[str]) -> None:
        for line in stream:
            with self._lock:
                sink.append(line.rstrip("\n"))

    def _banner(self) -> Optional[str]:
        if self.process.poll() is not None:
            raise AssertionError(f"server exited {self.process.returncode}:\n" + "\n".join(self.err))
        with self._lock:
            if not self.err:
                return None
            match = re.search(r"serving the function on (http://[^ ]+)", self.err[0])
        assert match, f"the first stderr line does not say where it listens: {self.err[0]!r}"
        return match.group(1)

    # --- what it printed ----------------------------------------------------------------------

    def logs(self) -> List[dict]:
        with self._lock:
            lines = list(self.out)
        return [json.loads(line) for line in lines]  # every stdout line is a JSON log line

    def records(self, key: Optional[str] = None) -> List[dict]:
        return [line for line in self.logs() if line.get("event") == "cos.record"
                and (key is None or line.get("key") == key)]

    def errors(self) -> List[str]:
        with self._lock:
            return list(self.err)

    # --- talking to it ------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None,
                timeout: float = 30.0) -> Tuple[int, Dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else (
                body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
            connection.request(method, path, body=data, headers=headers or {})
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def __enter__(self) -> "Served":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
