#!/usr/bin/env python3
"""Notice delay of the real sweep against the real emulators, in compressed time.

    python benchmarks/notice_bench.py            # light and heavy load, honest and silent Progress (~10 min):
                                                 # table on stdout and in benchmarks/notice-results.md
    python benchmarks/notice_bench.py --smoke    # 12 tasks in a few seconds; writes nothing
    python benchmarks/notice_bench.py --only heavy --compress 10
    python benchmarks/notice_bench.py --only light --only heavy-honest --out benchmarks/notice-webhook-results.md

Everything runs on loopback, each part in a process of its own: the VOD emulator (``_emuhost.py``:
TC3 signatures, DescribeTaskDetail limited to 100 in any sliding second, its status model with a
queue of ``slots``, task lengths drawn from a range, Progress honest with noise or silent), the COS
emulator, and the function (``_timerproc.py``: a warm container whose timer fires a sweep every
period, with REDRAW_SWEEP_WINDOW_S, delivery on). This process creates the tasks: each in the VOD
emulator (``add_tasks``) and recorded in the state bucket as ``records.new_record`` makes it, at
random (Poisson) times at the case's rate.

Time is compressed by ``--compress`` (10): task lengths, the timer's period (60 s), the sweep's
window (50 s), REDRAW_CHECK_MIN_GAP_S (2 s) and REDRAW_POLL_MAX_INTERVAL_S (300 s) are divided by
it; the creation rate and the DescribeTaskDetail budget (100/s) are not, so tasks in flight are
divided by it too and each task gets as many checks in its (shorter) life as it would at full
scale. Delays are given as measured and multiplied back (real-time equivalent); fixed costs
(HTTP, COS, the sweep's CPU) are multiplied with them, so the real-time figures err on the long side.

The function sends its webhooks (``REDRAW_WEBHOOK_URL``, a generated secret, private addresses
allowed) to a real local receiver in this process (``redraw.tools.inbox.WebhookInbox``: each delivery
verified with the reference ``standardwebhooks`` library and stamped with its arrival).

Only tasks created after a warm-up (one longest task length: tasks in flight have reached their
steady level) are counted. Notice delay: from the task's FinishTime (the emulator's model, exact) to
the timestamp of its ``task.finished`` line (after the claim, the output's delivery and the done
record), and to the arrival of its first verified webhook at the receiver. Both are wall-clock epochs
on this machine, as FinishTime is (the emulator runs compressed lengths in real time), so both are
multiplied back alike. Webhooks are counted too: received, verified, duplicates (a webhook-id seen
before) and missing (a task with no verified webhook: the run fails, as for a task never noticed).
To add a timestamp, add a function to ``STAMPS``: Seen (log lines, deliveries) -> {TaskId: epoch}.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(ROOT), str(BENCH)):
    if path not in sys.path:
        sys.path.insert(0, path)

from followup_bench import BUCKET, REGION, STATE, BenchError, Host, function_env  # noqa: E402

from _support import SUB_APP_ID, machine_lines  # noqa: E402


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _finished_lines(lines: List[dict]) -> Dict[str, float]:
    return {line["task_id"]: _epoch(line["timestamp"]) for line in lines if line.get("event") == "task.finished"}


class Seen(NamedTuple):
    """What a case leaves: the function's log lines and the receiver's deliveries."""

    lines: List[dict]
    deliveries: List[Dict[str, Any]]


def _webhook_arrivals(deliveries: List[Dict[str, Any]]) -> Dict[str, float]:
    """Per TaskId, the arrival of its first verified webhook."""
    out: Dict[str, float] = {}
    for d in deliveries:
        if d["verified"] and d["task_id"]:
            out[d["task_id"]] = min(out.get(d["task_id"], d["received_at"]), d["received_at"])
    return out


#: what is measured from VOD's FinishTime: name -> (Seen -> {TaskId: epoch seconds})
STAMPS: Dict[str, Callable[[Seen], Dict[str, float]]] = {
    "task.finished line": lambda seen: _finished_lines(seen.lines),
    "webhook arrival": lambda seen: _webhook_arrivals(seen.deliveries),
}


def webhook_counts(deliveries: List[Dict[str, Any]], task_ids: List[str]) -> Dict[str, int]:
    """Received, verified, duplicates (a webhook-id seen before) and missing (tasks with no verified one)."""
    ids = [d["webhook_id"] for d in deliveries]
    arrived = _webhook_arrivals(deliveries)
    return {"received": len(deliveries), "verified": sum(1 for d in deliveries if d["verified"]),
            "duplicates": len(ids) - len(set(ids)), "missing": sum(1 for t in task_ids if t not in arrived)}


class Case:
    def __init__(self, name: str, rate: float, durations: tuple, slots, mode: str, noise: float, create_s: float,
                 warmup: float = 0.0):
        self.name, self.rate, self.durations, self.slots = name, rate, durations, slots
        self.mode, self.noise, self.create_s, self.warmup = mode, noise, create_s, warmup
        self.key = f"{name.split(':')[0]}-{mode}"  # light-honest, heavy-silent, ...

    def chosen(self, only: List[str]) -> bool:
        return not only or any(word in self.name or word in self.key for word in only)


def cases(smoke: bool, compress: float) -> List[Case]:
    if smoke:
        return [Case("smoke: 3 tasks/s, 1-3 min", 3.0, (60.0, 180.0), 6, "honest", 3.0, 4.0)]
    out = []
    for mode, noise in (("honest", 3.0), ("silent", 0.0)):
        # light: 1 task/s, 1-10 minutes, VOD busy now and then (400 processing slots at full scale)
        out.append(Case("light: 1 task/s, 1-10 min", 1.0, (60.0, 600.0), max(1, int(400 / compress)), mode, noise,
                        240.0, 600.0))
        # the worst case: 20 tasks/s, 5-minute redraws (6,000 in flight at full scale)
        out.append(Case("heavy: 20 tasks/s, 5 min", 20.0, (300.0, 300.0), max(1, int(6500 / compress)), mode,
                        noise, 90.0, 300.0))
    return out


def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def read_lines(path: Path) -> List[dict]:
    out = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def run_case(case: Case, compress: float, seed: int, tmp: Path, budget: float = 90.0) -> dict:
    from redraw.config import load_settings
    from redraw.followup import records
    from redraw.sources.cos import session_context_for
    from redraw.tools.inbox import WebhookInbox
    from redraw.webhooks.signing import new_secret

    c = compress
    cos_root = tmp / "cos"
    cos = Host("cos", {"root": str(cos_root), "buckets": [BUCKET, STATE]})
    vod = Host("vod", {"rps": None, "describe_rps": 100, "task_durations": [d / c for d in case.durations],
                       "slots": case.slots, "progress_mode": case.mode, "progress_noise": case.noise,
                       "fault_seed": seed, "task_duration": case.durations[0] / c})
    period, window = 60.0 / c, 50.0 / c
    env = function_env(vod.url, cos.url, str(ROOT), True, REDRAW_POLL_MAX_INTERVAL_S=str(max(1, round(300 / c))),
                       REDRAW_CHECK_MIN_GAP_S=f"{2.0 / c:g}", REDRAW_SWEEP_WINDOW_S=f"{window:g}",
                       REDRAW_DESCRIBE_RPS=f"{budget:g}", REDRAW_DELIVER_PREFIX="redrawn/",
                       REDRAW_LOG_LEVEL="INFO")
    inbox = WebhookInbox(new_secret(), quiet=True).start()
    env.update(REDRAW_WEBHOOK_URL=f"{inbox.url}/webhook", REDRAW_WEBHOOK_SECRET=inbox.secret,
               REDRAW_WEBHOOK_ALLOW_PRIVATE="true")
    log_path = tmp / "function.log"
    fn_out = open(log_path, "wb")
    fn = subprocess.Popen([sys.executable, str(BENCH / "_timerproc.py"),
                           json.dumps({"period": period, "time_limit_ms": 60000})],
                          stdin=subprocess.PIPE, stdout=fn_out, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert fn.stderr is not None
        if fn.stderr.readline().strip() != "ready":
            raise BenchError("the function process did not start")
        settings = load_settings(env)
        layout = records.layout_of(settings)
        state = cos_root / STATE
        rng = random.Random(seed)
        task_ids: List[str] = []
        steady: List[str] = []  # created after the warm-up: tasks in flight at their steady level
        started = time.time()
        at = started
        while True:
            at += rng.expovariate(case.rate)
            if at - started > case.create_s:
                break
            time.sleep(max(0.0, at - time.time()))
            key = f"uploads/bench/clip-{len(task_ids):05d}.mp4"
            url = f"https://{BUCKET}.cos.{REGION}.myqcloud.com/{key}"
            [task_id] = vod.ask("add_tasks", n=1, sub_app_id=SUB_APP_ID, age=0.0, sources=[url],
                                contexts=[session_context_for("cos", BUCKET, key)])["task_ids"]
            created = time.time()
            params = {"SubAppId": SUB_APP_ID, "FileInfo": {"Type": "Url", "Url": url}}
            record = records.new_record(settings, params, task_id, f"redraw-bench-{task_id[-12:]}", "bench",
                                        {"trigger": "cos", "bucket": BUCKET, "region": REGION, "key": key}, created)
            body = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
            for name in (layout.pending_key(created, task_id), record["receipt"]):
                path = state / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(body, encoding="utf-8")
            task_ids.append(task_id)
            if created - started >= case.warmup / c:
                steady.append(task_id)
        deadline = time.time() + 3 * case.durations[1] / c + 4 * period + 10
        while time.time() < deadline:
            if len(_finished_lines(read_lines(log_path))) >= len(task_ids) and \
                    len(_webhook_arrivals(inbox.deliveries())) >= len(task_ids):
                break
            time.sleep(0.5)
    finally:
        if fn.stdin:
            fn.stdin.close()
        _, _, usage = os.wait4(fn.pid, 0)
        fn_out.close()
        stats = vod.ask("stats")
        finish = vod.ask("finish_times", task_ids=task_ids)["finish"]
        vod.stop()
        cos.stop()
        deliveries = inbox.deliveries()
        inbox.stop()
    lines = read_lines(log_path)
    seen = Seen(lines, deliveries)
    measured = {}
    for name, stamp in STAMPS.items():
        at = stamp(seen)
        measured[name] = [at[t] - finish[t] for t in steady if t in at]
    elapsed = max(1e-9, stats["describe_last"] - stats["describe_first"])
    return {"case": case, "tasks": len(steady), "all_tasks": len(task_ids), "measured": measured,
            "missed": sum(1 for t in task_ids if t not in _finished_lines(lines)),
            "webhooks": webhook_counts(deliveries, task_ids),
            "describes": stats["calls"].get("DescribeTaskDetail", 0), "describe_peak": stats["describe_max_per_second"],
            "describe_mean": stats["calls"].get("DescribeTaskDetail", 0) / elapsed,
            "limit_hits": stats["describe_limit_hits"], "fn_cpu": usage.ru_utime + usage.ru_stime,
            "wall": time.time() - started}


HEADER = ("| case | Progress | timestamp | tasks | p50 (s, real-time equiv.) | p95 | max | p50 measured (s) | "
          "p95 measured | Describe per task | Describe/s peak (sliding 1 s) | refused | function CPU (s) / wall (s) |\n"
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def rows(r: dict, c: float) -> List[str]:
    case = r["case"]
    out = []
    for name, delays in r["measured"].items():
        out.append(f"| {case.name} | {case.mode}{f' ±{case.noise:g}' if case.noise else ''} | {name} | "
                   f"{len(delays)}/{r['tasks']} | {pct(delays, .5) * c:.1f} | {pct(delays, .95) * c:.1f} | "
                   f"{max(delays, default=float('nan')) * c:.1f} | {pct(delays, .5):.2f} | {pct(delays, .95):.2f} | "
                   f"{r['describes'] / max(r['all_tasks'], 1):.1f} | {r['describe_peak']} | {r['limit_hits']} | "
                   f"{r['fn_cpu']:.0f} / {r['wall']:.0f} |")
    return out


WEBHOOK_HEADER = ("| case | Progress | tasks (all) | webhooks received | verified | duplicates (webhook-id) | "
                  "missing |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |")


def webhook_row(r: dict) -> str:
    case, w = r["case"], r["webhooks"]
    return (f"| {case.name} | {case.mode}{f' ±{case.noise:g}' if case.noise else ''} | {r['all_tasks']} | "
            f"{w['received']} | {w['verified']} | {w['duplicates']} | {w['missing']} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--compress", type=float, default=None, help="time compression (default 10; smoke 60)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only the cases whose name or key (light-honest, heavy-silent, ...) contains "
                             "this (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--describe-rps", type=float, default=90.0,
                        help="REDRAW_DESCRIBE_RPS (default 90, as serverless.yml; VOD refuses over 100)")
    parser.add_argument("--out", default=None, help="markdown file ('-': none)")
    args = parser.parse_args(argv)
    c = args.compress or (60.0 if args.smoke else 10.0)
    out = args.out or ("-" if args.smoke else str(BENCH / "notice-results.md"))
    lines = [HEADER]
    print(HEADER, flush=True)
    hooks = [WEBHOOK_HEADER]
    failed = False
    for case in (k for k in cases(args.smoke, c) if k.chosen(args.only)):
        with tempfile.TemporaryDirectory(prefix="redraw-notice-") as tmp:
            r = run_case(case, c, args.seed, Path(tmp), args.describe_rps)
        w = r["webhooks"]
        failed |= r["missed"] > 0 or r["describe_peak"] > 100 or w["missing"] > 0 or w["verified"] < w["received"]
        for line in rows(r, c):
            lines.append(line)
            print(line, flush=True)
        hooks.append(webhook_row(r))
    print("\n" + "\n".join(hooks))
    note = (f"\nTime compressed {c:g}x; real-time equivalents are the measured delays x {c:g}. "
            f"REDRAW_DESCRIBE_RPS {args.describe_rps:g}. Webhooks to a local WebhookInbox (standardwebhooks). "
            f"{'A task missed, a webhook missing or not verified, or DescribeTaskDetail over 100/s: FAILED.' if failed else ''}")
    print(note)
    if out != "-":
        command = " ".join(["python", "benchmarks/notice_bench.py", *(argv if argv is not None else sys.argv[1:])])
        Path(out).write_text("# Notice delay, the real sweep (benchmarks/notice_bench.py)\n\n"
                             + "\n".join([*machine_lines(), f"- command: `{command}`"]) + "\n\n"
                             + "\n".join(lines) + "\n\n" + "\n".join(hooks) + "\n" + note + "\n", encoding="utf-8")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
