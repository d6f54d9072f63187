"""Helpers shared by the benchmarks (not a benchmark itself)."""
from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
WORK = BENCH / ".work"
SUB_APP_ID = 1500000001

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY  # noqa: E402


def load_packager():
    """scripts/package.py as a module (dependency installs are shared with it)."""
    spec = importlib.util.spec_from_file_location("redraw_package", ROOT / "scripts" / "package.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def function_env(endpoint_url: str, **extra: str) -> dict:
    """The variables SCF + serverless.yml would give the function, pointed at the emulator."""
    env = {
        "VOD_SUB_APP_ID": str(SUB_APP_ID),
        "VOD_ENDPOINT": endpoint_url,
        "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY,
        "TENCENTCLOUD_REGION": "ap-guangzhou",
        "TENCENTCLOUD_RUNENV": "SCF",
        "SCF_FUNCTIONNAME": "redraw-bench",
    }
    env.update(extra)
    return env


def apply_env(values: dict) -> None:
    """Replace the function's variables in this process (and drop proxies: loopback only)."""
    for name in list(os.environ):
        if name.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_", "SCF_")) or \
                name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            del os.environ[name]
    os.environ.update(values)


def reset_container() -> None:
    """Forget the warm container state (runtime + shared limiters), as a new container would."""
    from redraw import app, pacing

    app.reset()
    pacing.reset_limiters()


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Log lines go to /dev/null (they are still formatted: that cost is measured)."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def machine_lines() -> List[str]:
    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip() or \
        datetime.datetime.now(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")
    return [
        f"- date: {date}",
        f"- machine: {platform.machine()} ({os.uname().machine}), {os.cpu_count()} cores "
        f"(nproc {len(os.sched_getaffinity(0))}), {platform.system()} {platform.release()}",
        f"- python: {platform.python_implementation()} {platform.python_version()} ({sys.executable})",
    ]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def counts(counter: Dict[str, int]) -> str:
    """``name n, name n`` most first (then by name); ``none`` when empty."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))) or "none"


def check_table(rows: Sequence[Sequence[Any]]) -> str:
    """The soaks' table: rows of ``[what, value, target, ok]`` where ok is True/False (PASS/FAIL) or "" (info)."""
    return markdown_table(["what", "value", "target", "result"],
                          [[a, b, c or "—", "info" if d == "" else ("PASS" if d else "FAIL")] for a, b, c, d in rows])


def finish_report(report: str, out: Optional[str], log: Callable[[str], None], mode: str, started: float,
                  fails: Sequence[str], strict: bool) -> int:
    """Print a benchmark's report, write it to ``out`` (None or "-": nowhere), say what was missed; the exit code."""
    print(report)
    if out and out != "-":
        Path(out).write_text(report if report.endswith("\n") else report + "\n")
        log(f"wrote {out}")
    log(f"{mode} run took {time.monotonic() - started:.1f} s; "
        + (f"targets missed: {'; '.join(fails)}" if fails else "all targets met"))
    return 1 if (fails and strict) else 0


class LogCapture:
    """Thread-safe stand-in for sys.stdout keeping every JSON log line."""

    def __init__(self) -> None:
        self._parts: List[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def lines(self) -> List[dict]:
        out = []
        for raw in "".join(self._parts).splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"event": "<not json>", "raw": raw[:200]})
        return out
