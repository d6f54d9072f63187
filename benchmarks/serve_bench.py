#!/usr/bin/env python3
"""``redraw serve`` benchmarks: warm request overhead, 50 concurrent requests, watch latency.

    python benchmarks/serve_bench.py            # the full run: table on stdout and in benchmarks/serve-results.md
    python benchmarks/serve_bench.py --smoke    # tiny sizes (< 20 s), writes nothing; exit 2 if something fails

Warm overhead
    One VOD emulator in a process of its own (latency 0, no rate limit), shared by both sides. The
    same function URL event (``POST /redraw`` with a one-field body, built by ``serve.url_event`` as the
    server builds it) goes (a) to ``main_handler`` called directly in this process, and (b) through
    ``redraw serve`` (4 warm instances, ``--endpoint`` the emulator) over one keep-alive HTTP
    connection. Both run with ``VOD_PACING=fixed`` and ``VOD_MAX_RPS=1000`` so no pacing waits, log
    lines are formatted and written (direct: to /dev/null; serve: its stdout, drained), after a
    warm-up of every instance. Rounds alternate the two sides; medians. The server's own time per
    request (its access line: request read → answer written) splits the overhead into the HTTP
    client/server part and the process hop (JSON over pipes, the other process).

Concurrency
    50 requests sent at once (50 threads, a connection each), 3 rounds: (a) against the unlimited
    emulator; (b) against an emulator with 0.2 s latency and the API's 20 requests/s, the function in
    its default configuration (adaptive pacing). Every request must be answered (any status), 200 is
    counted.

Watch latency
    ``redraw serve --watch DIR``: a file is written and closed under ``DIR/uploads/``; the time from
    the close to the moment its ``cos.record`` log line is read from the server's stdout. N files,
    one at a time; median and max.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _support as S  # noqa: E402
from _support import BENCH, ROOT  # noqa: E402

BODY = json.dumps({"FileInfo": {"Type": "Url", "Url": "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/"
                                                      "uploads/clip.mp4"}}).encode()


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_", "SCF_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class Proc:
    """A child process whose stdout/stderr lines are read by threads, each stamped when read."""

    def __init__(self, argv: List[str], env: Dict[str, str], cwd: Path = ROOT) -> None:
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, encoding="utf-8", errors="replace")
        self.out: List[Tuple[float, str]] = []
        self.err: List[Tuple[float, str]] = []
        self.cv = threading.Condition()
        for stream, sink in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: Any, sink: list) -> None:
        for line in stream:
            with self.cv:
                sink.append((time.perf_counter(), line.rstrip("\n")))
                self.cv.notify_all()

    def wait_line(self, sink: list, pattern: str, timeout: float = 60.0, start: int = 0) -> Tuple[int, float, Any]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cv:
            index = start
            while True:
                while index < len(sink):
                    match = regex.search(sink[index][1])
                    if match:
                        return index, sink[index][0], match
                    index += 1
                if self.p.poll() is not None:
                    raise RuntimeError(f"{self.p.args[3:5]} exited: " + "\n".join(t for _, t in self.err[-10:]))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out waiting for {pattern!r}")
                self.cv.wait(0.2)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(2)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()


def start_emulator(latency: float, rps: int) -> Tuple[Proc, str]:
    proc = Proc([sys.executable, "-m", "redraw.tools", "emulator", "--port", "0", "--latency", str(latency),
                 "--rps", str(rps), "--task-duration", "5"], _env())
    _, _, match = proc.wait_line(proc.out, r"VOD emulator on (http://[0-9.:]+)")
    return proc, match.group(1)


def function_env(endpoint: str, **extra: str) -> Dict[str, str]:
    return _env(**S.function_env(endpoint, **extra))


def start_server(endpoint: str, env: Dict[str, str], *args: str) -> Tuple[Proc, int]:
    proc = Proc([sys.executable, "-m", "redraw.tools", "serve", "--port", "0", "--endpoint", endpoint,
                 "--no-reload", *args], env)
    _, _, match = proc.wait_line(proc.err, r"serving the function on http://127\.0\.0\.1:(\d+)")
    return proc, int(match.group(1))


class QuietServer:
    """``redraw serve`` with stdout to /dev/null and stderr to a file: no reader thread in this process
    competes with the measured client (the direct side writes its log lines to /dev/null too)."""

    def __init__(self, endpoint: str, env: Dict[str, str], *args: str) -> None:
        self.err_path = Path(tempfile.mkstemp(prefix="serve-bench-", suffix=".err")[1])
        with open(os.devnull, "w") as out, open(self.err_path, "w") as err:
            self.p = subprocess.Popen([sys.executable, "-m", "redraw.tools", "serve", "--port", "0", "--endpoint",
                                       endpoint, "--no-reload", *args], cwd=ROOT, env=env, stdout=out, stderr=err)
        deadline = time.monotonic() + 60
        while True:
            match = re.search(r"serving the function on http://127\.0\.0\.1:(\d+)", self.errors())
            if match:
                self.port = int(match.group(1))
                return
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start: " + self.errors()[-2000:])
            time.sleep(0.05)

    def errors(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(2)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.err_path.unlink(missing_ok=True)


def post(conn: http.client.HTTPConnection) -> int:
    conn.request("POST", "/redraw", body=BODY, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    answer.read()
    return answer.status


# --- warm overhead -------------------------------------------------------------------------------

def warm_overhead(rounds: int, per_round: int, latency: float = 0.0) -> Dict[str, Any]:
    emulator, endpoint = start_emulator(latency, 0)
    fast = {"VOD_PACING": "fixed", "VOD_MAX_RPS": "1000"}
    server = QuietServer(endpoint, function_env(endpoint, **fast), "--instances", "4")
    port = server.port
    try:
        S.apply_env(S.function_env(endpoint, **fast))
        S.reset_container()
        from handler import main_handler
        from redraw.tools import serve
        from redraw.tools.common import invocation_context

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = [("Host", f"127.0.0.1:{port}"), ("Accept-Encoding", "identity"),
                   ("Content-Length", str(len(BODY))), ("Content-Type", "application/json")]

        def direct() -> None:
            event = serve.url_event("POST", "/redraw", headers, BODY, "127.0.0.1")
            result = main_handler(event, invocation_context(60000))
            assert result["statusCode"] == 200, result

        with S.quiet_stdout():
            for _ in range(40 if latency == 0 else 8):   # warm: this container, and the server's instances
                direct()
                assert post(conn) == 200
            direct_s: List[float] = []
            served_s: List[float] = []
            mark = len(server.errors())
            for _ in range(rounds):
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    direct()
                    direct_s.append(time.perf_counter() - t0)
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    status = post(conn)
                    served_s.append(time.perf_counter() - t0)
                    assert status == 200
        conn.close()
        time.sleep(0.5)
        inside = [float(m.group(1)) / 1000
                  for m in re.finditer(r"POST /redraw -> 200 in ([0-9.]+) ms", server.errors()[mark:])]
    finally:
        server.stop()
        emulator.stop()
    d, s, i = S.median(direct_s), S.median(served_s), S.median(inside)
    return {"direct": d, "served": s, "server_side": i, "ratio": s / d, "n": len(served_s)}


BARE_SERVER = r"""
import http.server, socket, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"TaskId":"t","RequestId":"r","SessionId":"s"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def bare_http(requests: int) -> float:
    """The floor: one keep-alive round trip, http.client to an http.server that runs no function."""
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline()) if proc.stdout else 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times = []
        for i in range(requests + 50):
            t0 = time.perf_counter()
            assert post(conn) == 200
            if i >= 50:
                times.append(time.perf_counter() - t0)
        conn.close()
    finally:
        proc.kill()
        proc.wait()
    return S.median(times)


# --- concurrency ---------------------------------------------------------------------------------

def burst(clients: int, rounds: int, latency: float, rps: int, fast: bool) -> Dict[str, Any]:
    emulator, endpoint = start_emulator(latency, rps)
    extra = {"VOD_PACING": "fixed", "VOD_MAX_RPS": "1000"} if fast else {}
    server, port = start_server(endpoint, function_env(endpoint, **extra), "--instances", "4", "--quiet")
    walls, answered, ok, statuses = [], 0, 0, {}
    try:
        def one(_: int) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                return post(conn)
            finally:
                conn.close()

        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one, range(4)))  # every instance warm
            for _ in range(rounds):
                t0 = time.perf_counter()
                results = list(pool.map(one, range(clients)))
                walls.append(time.perf_counter() - t0)
                answered += len(results)
                ok += sum(1 for r in results if r == 200)
                for r in results:
                    statuses[r] = statuses.get(r, 0) + 1
    finally:
        server.stop()
        emulator.stop()
    return {"sent": clients * rounds, "answered": answered, "ok": ok, "statuses": statuses,
            "wall": S.median(walls), "wall_max": max(walls)}


# --- watch latency -------------------------------------------------------------------------------

def watch_latency(files: int) -> Dict[str, Any]:
    emulator, endpoint = start_emulator(0.0, 0)
    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    (folder / "uploads").mkdir()
    fast = {"VOD_PACING": "fixed", "VOD_MAX_RPS": "1000"}  # the function's pacing is not what is measured here
    server, _ = start_server(endpoint, function_env(endpoint, **fast), "--instances", "4", "--watch", str(folder))
    latencies, inside, fired = [], [], []
    try:
        for i in range(files + 3):
            key = f"uploads/clip-{i:03d}.mp4"
            with open(folder / key, "wb") as handle:
                handle.write(os.urandom(256 * 1024))
                mark = len(server.out)
                t0 = time.perf_counter()
            _, seen, _ = server.wait_line(server.out, re.escape(f'"key": "{key}"'), 30, mark)
            if i >= 3:  # the first events warm the instances (COS module, client)
                latencies.append(seen - t0)
                line = json.loads(server.out[[t for t, _ in server.out].index(seen)][1])
                inside.append(line.get("duration_ms", 0) / 1000)
                fired.append(latencies[-1] - inside[-1])
            time.sleep(0.05)
    finally:
        server.stop()
        emulator.stop()
    return {"n": len(latencies), "median": S.median(latencies), "max": max(latencies),
            "p90": S.percentile(latencies, 0.9), "function": S.median(inside), "fired": S.median(fired),
            "fired_max": max(fired)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, writes nothing")
    parser.add_argument("--out", default=str(BENCH / "serve-results.md"))
    args = parser.parse_args(argv)
    rounds, per_round, files, burst_rounds = (2, 10, 3, 1) if args.smoke else (20, 25, 20, 3)

    def timed(name: str, run: Any) -> Any:
        started = time.perf_counter()
        value = run()
        print(f"[serve-bench] {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        return value

    warm = timed("warm overhead", lambda: warm_overhead(rounds, per_round))
    floor = timed("bare HTTP", lambda: bare_http(rounds * per_round))
    # information only: not in the smoke run
    slow = None if args.smoke else timed("warm, 50 ms VOD", lambda: warm_overhead(4, 25, latency=0.05))
    fast = timed("burst, unlimited", lambda: burst(50, burst_rounds, 0.0, 0, fast=True))
    paced = timed("burst, paced", lambda: burst(10 if args.smoke else 50, burst_rounds, 0.2, 20, fast=False))
    watched = timed("watch", lambda: watch_latency(files))

    ms = lambda v: f"{v * 1000:.2f} ms"  # noqa: E731
    rows = [
        ["warm request: main_handler called directly (function URL event, median)", ms(warm["direct"]), "", "info"],
        ["warm request through `redraw serve` (HTTP keep-alive, median)", ms(warm["served"]),
         "≤ 1.2× direct", f"{warm['ratio']:.2f}× " + ("✔" if warm["ratio"] <= 1.2 else "✘")],
        ["… of which inside the server (request read → answer written)", ms(warm["server_side"]), "", "info"],
        ["a bare HTTP round trip (http.client → http.server running no function, median)", ms(floor),
         "", f"{(warm['direct'] + floor) / warm['direct']:.2f}× direct: the floor"],
        ["the same with the emulator answering in 50 ms (direct; through serve)",
         f"{ms(slow['direct'])}; {ms(slow['served'])}" if slow else "(not in --smoke)", "",
         f"{slow['ratio']:.3f}× info" if slow else "info"],
        ["50 concurrent requests, unlimited emulator (answered / 200)",
         f"{fast['answered']}/{fast['sent']} / {fast['ok']}, {fast['wall']:.2f} s per 50",
         "all answered", "✔" if fast["answered"] == fast["sent"] else "✘"],
        [f"{paced['sent'] // burst_rounds} concurrent requests, emulator 0.2 s latency and 20 req/s, default config",
         f"{paced['answered']}/{paced['sent']} / {paced['ok']}, {paced['wall']:.2f} s per burst",
         "all answered", "✔" if paced["answered"] == paced["sent"] else "✘"],
        ["watch: file closed → its cos.record logged (median; p90, max)",
         f"{ms(watched['median'])} ({ms(watched['p90'])}, {ms(watched['max'])})", "≤ 1 s",
         "✔" if watched["median"] <= 1.0 else "✘"],
        ["… of which the function's own duration_ms (median)", ms(watched["function"]), "", "info"],
        ["… the rest: watch + event + dispatch to an instance (median; max)",
         f"{ms(watched['fired'])}; {ms(watched['fired_max'])}", "", "info"],
    ]
    table = S.markdown_table(["Measure", "Value", "Target", "Result"], rows)
    notes = [
        f"- warm overhead: {warm['n']} requests each side, {rounds} alternating rounds; the HTTP client, "
        f"http.server and the pipe hop add {ms(warm['served'] - warm['direct'])} per request "
        f"(client + HTTP: {ms(warm['served'] - warm['server_side'])}; inside the server beyond the direct call: "
        f"{ms(warm['server_side'] - warm['direct'])})",
        f"- statuses of the paced bursts: {paced['statuses']}",
        f"- watch: {watched['n']} files of 256 KB, one at a time, 50 ms apart; the function with VOD_PACING=fixed "
        "(its adaptive slow start would add its own waits to a burst of uploads)",
    ]
    print(table)
    print("\n".join(notes))
    failed = warm["ratio"] > 1.2 or fast["answered"] != fast["sent"] or paced["answered"] != paced["sent"] \
        or watched["median"] > 1.0
    if not args.smoke:
        text = ["# `redraw serve` benchmark", "", *S.machine_lines(), "", table, "", *notes, ""]
        Path(args.out).write_text("\n".join(text), encoding="utf-8")
        print(f"written to {args.out}", file=sys.stderr)
    if args.smoke:
        broken = fast["answered"] != fast["sent"] or paced["answered"] != paced["sent"]
        return 2 if broken else 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
