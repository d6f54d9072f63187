"""A warm function container fired by a timer, for notice_bench.py: imports ``handler`` once, then runs a
timer invocation (``Message: sweep``) every ``period`` seconds, as the SCF timer trigger would, until its
stdin closes. Run with the function's environment and stdout to a file (the function's log lines).

    python benchmarks/_timerproc.py '{"period": 6.0, "time_limit_ms": 60000}'

An invocation that runs past the next firing delays it (one container runs one invocation at a time;
the sweep's window keeps each within its period). Each invocation's start and end go to stderr as JSON.
"""
from __future__ import annotations

import json
import sys
import threading
import time

TIMER = {"Type": "Timer", "TriggerName": "redraw-sweep", "Time": "2026-12-05T08:00:00Z", "Message": "sweep"}


def main() -> int:
    options = json.loads(sys.argv[1])
    period, limit = float(options["period"]), int(options["time_limit_ms"])
    from handler import main_handler

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    sys.stderr.write("ready\n")
    sys.stderr.flush()
    n, next_at = 0, time.time()
    while not stop.is_set():
        n += 1
        started = time.time()
        try:
            summary = main_handler(dict(TIMER), {"request_id": f"sweep-{n}", "time_limit_in_ms": limit})
        except Exception as exc:  # noqa: BLE001 - the platform would retry; the benchmark goes on
            summary = {"error": type(exc).__name__}
        sys.stderr.write(json.dumps({"invocation": n, "start": started, "end": time.time(),
                                     "summary": summary}) + "\n")
        sys.stderr.flush()
        next_at = max(next_at + period, time.time())
        stop.wait(max(0.0, next_at - time.time()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
