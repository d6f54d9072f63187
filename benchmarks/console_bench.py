#!/usr/bin/env python3
"""The web console of ``redraw serve``: how fast its page is interactive, what it costs the server while idle.

    python benchmarks/console_bench.py            # table on stdout and in benchmarks/console-results.md
    python benchmarks/console_bench.py --smoke    # short (< 30 s), writes nothing

Setup: ``redraw serve --port 0 --watch DIR --follow-up`` as a user starts it (2 warm instances, the
in-process VOD emulator, the default sweep every 5 s), and headless Chromium (Debian's, through
/usr/bin/chromedriver, the flags of tests/browser.py).

Page: the console loaded N times in the same browser (a new navigation each time, the browser's cache
kept as a person's would be); ``domInteractive`` of the navigation, and the moment the first state from
the server (server-sent events) is on the page (``data-ready``, set by console.js). Median and max.

Idle cost: the server process's CPU time (user + system, all its threads; its instances are other
processes) from /proc, over D seconds, (a) with no page open, then (b) with the console open on one
finished task (uploaded through the page's file input, both videos loaded). Both include the timer's
sweep every 5 s, which the function does with or without a console; (b) - (a) is the console's own.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]
SAMPLE = ROOT / "redraw" / "tools" / "data" / "redrawn-sample.mp4"
TICKS = os.sysconf("SC_CLK_TCK")

from _support import machine_lines, markdown_table  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS   # utime, stime


def idle_share(pid: int, seconds: float) -> float:
    """The share of one core the process used over ``seconds``."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def start_server(folder: Path) -> tuple:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_", "SCF_"))}
    env["PYTHONPATH"] = str(ROOT)
    log = open(folder.parent / "serve.err", "w+")
    process = subprocess.Popen([sys.executable, "-m", "redraw.tools", "serve", "--port", "0", "--instances", "2",
                                "--no-reload", "--quiet", "--watch", str(folder), "--follow-up"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log.seek(0)
        match = re.search(r"console: (http://\S+)", log.read())
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    log.seek(0)
    raise SystemExit("redraw serve did not start:\n" + log.read())


def wait(driver, script: str, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="short, writes nothing")
    parser.add_argument("--loads", type=int, default=20, help="page loads (default %(default)s)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of each idle measurement (default %(default)g)")
    args = parser.parse_args()
    loads, idle = (3, 6.0) if args.smoke else (args.loads, args.idle)

    from browser import chromium

    work = Path(tempfile.mkdtemp(prefix="redraw-console-bench-"))
    folder = work / "bucket"
    (folder / "uploads").mkdir(parents=True)
    process, url = start_server(folder)
    browsers = chromium()
    try:
        time.sleep(2.0)  # the first sweeps and imports settle
        without_page = idle_share(process.pid, idle)
        driver = next(browsers)
        interactive, first_state = [], []
        for _ in range(loads):
            driver.get(url)
            first_state.append(int(wait(driver, "return document.documentElement.dataset.ready")))
            interactive.append(driver.execute_script(
                "return Math.round(performance.getEntriesByType('navigation')[0].domInteractive)"))
        clip = work / "clip.mp4"
        shutil.copyfile(SAMPLE, clip)
        driver.find_element("css selector", "#file").send_keys(str(clip))
        wait(driver, "const v = [...document.querySelectorAll('#tasks li.task video')]; "
                     "return v.length === 2 && v.every(x => x.readyState >= 1)")
        time.sleep(1.0)
        with_page = idle_share(process.pid, idle)
    finally:
        browsers.close()
        process.send_signal(2)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(work, ignore_errors=True)

    table = markdown_table(("Measure", "Value", "Target", "Result"), [
        (f"page: DOM interactive ({loads} loads, median / max)",
         f"{statistics.median(interactive):.0f} ms / {max(interactive)} ms", "< 1 s", _mark(max(interactive) < 1000)),
        (f"page: first state shown ({loads} loads, median / max)",
         f"{statistics.median(first_state):.0f} ms / {max(first_state)} ms", "< 1 s", _mark(max(first_state) < 1000)),
        (f"server idle, no page ({idle:g} s)", f"{without_page * 100:.2f} % of one core", "", "info"),
        (f"server idle, console open on 1 task ({idle:g} s)", f"{with_page * 100:.2f} % of one core", "< 2 %",
         _mark(with_page < 0.02)),
        ("the console's own idle cost", f"{(with_page - without_page) * 100:+.2f} % of one core", "", "info"),
    ])
    print(table)
    if not args.smoke:
        (ROOT / "benchmarks" / "console-results.md").write_text(
            "# `redraw serve`'s web console benchmark (benchmarks/console_bench.py)\n\n" + "\n".join(machine_lines())
            + f"\n- browser: {_chromium_version()} headless (Debian), through /usr/bin/chromedriver\n"
            "- server: `redraw serve --port 0 --instances 2 --watch DIR --follow-up` (the sweep every 5 s)\n\n"
            + table + "\n", encoding="utf-8")
    return 0


def _mark(ok: bool) -> str:
    return "✔" if ok else "✘"


def _chromium_version() -> str:
    out = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True).stdout.strip()
    return " ".join(out.split()[:2]) or "Chromium"


if __name__ == "__main__":
    raise SystemExit(main())
