#!/usr/bin/env python3
"""Soak: 1,000 uploads through main_handler against a faulty, rate-limited VOD emulator.

    python benchmarks/soak.py                 # what `make soak` runs; writes benchmarks/soak-results.md
    python benchmarks/soak.py --records 200   # shorter

The uploads are cut into COS events of 1–50 records (random sizes, seeded; about
3 % of the objects are not videos and must be skipped). Events are handled by
``handler.main_handler`` in ``--parallel`` threads (as several SCF containers
would run them, except that here they share one process, one VOD client and one
rate limiter), with a context ``time_limit_in_ms`` of 30 s. The emulator allows
20 requests/s, answers after ~50 ms, and injects a random fault into 5 % of the
create calls (InternalError, RequestLimitExceeded, HTTP 500, dropped connection
before or after the task is accepted, malformed body, 0.5 s delay).

When ``main_handler`` raises (``RetryableFailuresError``: records still need a
retry), the same event is delivered again, as SCF does for asynchronous (COS)
invocations: up to 2 retries. SCF waits about a minute between them; the soak
waits ``--retry-delay`` (1 s) so it finishes in about a minute.

Then every record is accounted for, from the function's own log lines (one
``cos.record`` line per record and delivery) and the emulator's task list:
final status, records lost (a video neither created in the emulator nor
reported failed: must be 0), tasks created twice (two emulator tasks for the
same SessionId or the same object URL: must be 0).
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _support as S  # noqa: E402
from _support import BENCH  # noqa: E402

from redraw.tools.emulator import VodEmulator  # noqa: E402
from redraw.tools.samples import cos_event  # noqa: E402


def plan_events(records: int, max_size: int, seed: int) -> List[List[str]]:
    rng = random.Random(seed)
    events: List[List[str]] = []
    made = 0
    while made < records:
        size = min(rng.randint(1, max_size), records - made)
        keys = []
        for i in range(size):
            suffix = ".jpg" if rng.random() < 0.03 else ".mp4"
            keys.append(f"soak/e{len(events):04d}/clip-{i:02d}{suffix}")
        events.append(keys)
        made += size
    return events


def run_soak(records: int = 1000, max_size: int = 50, seed: int = 7, parallel: int = 3,
             rps: int = 20, latency: float = 0.05, fault_rate: float = 0.05,
             retries: int = 2, retry_delay: float = 1.0, time_limit_ms: int = 30000,
             max_attempts: Optional[int] = None) -> Dict[str, Any]:
    import handler

    plans = plan_events(records, max_size, seed)
    deliveries: List[dict] = []
    deliveries_lock = threading.Lock()
    capture = S.LogCapture()
    with VodEmulator(rps=rps, latency=latency, fault_rate=fault_rate, fault_seed=seed) as emu:
        extra = {"VOD_MAX_ATTEMPTS": str(max_attempts)} if max_attempts else {}
        S.apply_env(S.function_env(emu.url, **extra))      # the function's defaults otherwise
        S.reset_container()

        def deliver(index: int) -> None:
            event = cos_event(plans[index], request_id=f"soak-{seed}-{index}")
            for attempt in range(retries + 1):
                request_id = f"soak-{index}-{attempt}"
                context = {"request_id": request_id, "function_name": "redraw-soak",
                           "time_limit_in_ms": time_limit_ms, "memory_limit_in_mb": 64}
                started = time.monotonic()
                error: Optional[str] = None
                try:
                    handler.main_handler(event, context)
                except Exception as exc:  # noqa: BLE001 - SCF retries on any error
                    error = type(exc).__name__
                with deliveries_lock:
                    deliveries.append({"event": index, "attempt": attempt, "request_id": request_id,
                                       "error": error, "seconds": time.monotonic() - started})
                if error is None:
                    return
                if attempt < retries:
                    time.sleep(retry_delay)

        saved, sys.stdout = sys.stdout, capture
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="scf") as pool:
                for future in [pool.submit(deliver, i) for i in range(len(plans))]:
                    future.result()
        finally:
            wall = time.monotonic() - started
            sys.stdout = saved
            S.reset_container()
        tasks = list(emu.tasks.values())
        calls = emu.calls
        rate_limit_hits = emu.rate_limit_hits
    return account(plans, deliveries, capture.lines(), tasks, calls, rate_limit_hits, wall,
                   dict(records=records, max_size=max_size, seed=seed, parallel=parallel, rps=rps,
                        latency=latency, fault_rate=fault_rate, retries=retries,
                        retry_delay=retry_delay, time_limit_ms=time_limit_ms,
                        max_attempts=max_attempts or 4))


def account(plans, deliveries, lines, tasks, calls, rate_limit_hits, wall, params) -> Dict[str, Any]:
    by_request: Dict[str, List[dict]] = collections.defaultdict(list)
    for line in lines:
        if line.get("event") == "cos.record":
            by_request[line.get("request_id")].append(line)
    final: Dict[str, dict] = {}          # key -> cos.record line of the last delivery that saw it
    ever_submitted: set = set()
    retried_codes: collections.Counter = collections.Counter()
    for d in sorted(deliveries, key=lambda d: (d["event"], d["attempt"])):
        for line in by_request.get(d["request_id"], []):
            final[line["key"]] = line
            if line.get("outcome") == "submitted":
                ever_submitted.add(line["key"])
            retried_codes.update(str(c) for c in line.get("retried_after", []))
    host = "http://media-1250000000.cos.ap-guangzhou.myqcloud.com/"
    by_url: Dict[str, int] = collections.Counter(t["params"]["FileInfo"].get("Url") for t in tasks)
    by_session: Dict[str, int] = collections.Counter(t["SessionId"] for t in tasks)
    all_keys = [k for keys in plans for k in keys]
    videos = [k for k in all_keys if k.endswith(".mp4")]
    last_status = collections.Counter(final[k]["outcome"] if k in final else "no log line" for k in all_keys)
    ever_duplicate = {k for d in deliveries for line in by_request.get(d["request_id"], [])
                      for k in [line["key"]] if line.get("outcome") == "duplicate"}

    def settled(key: str) -> str:
        """Across all deliveries: submitted by one of them, else the evidence of the last."""
        if key in ever_submitted:
            return "submitted"
        if key in ever_duplicate:
            return "duplicate"
        return final[key]["outcome"] if key in final else "no log line"

    statuses = collections.Counter(settled(k) for k in all_keys)
    lost = [k for k in videos if by_url.get(host + k, 0) == 0 and settled(k) != "failed"]
    unlogged = [k for k in all_keys if k not in final]
    twice_url = [u for u, n in by_url.items() if n > 1]
    twice_session = [s for s, n in by_session.items() if n > 1]
    skipped_created = [k for k in all_keys if not k.endswith(".mp4") and by_url.get(host + k, 0)]
    claimed_missing = [k for k in all_keys if settled(k) in ("submitted", "duplicate")
                       and by_url.get(host + k, 0) == 0]
    failed = [k for k in all_keys if settled(k) == "failed"]
    failed_created = [k for k in failed if by_url.get(host + k, 0)]
    dead = {d["event"] for d in deliveries if d["error"] and d["attempt"] == params["retries"]}
    errors = collections.Counter(d["error"] for d in deliveries if d["error"])
    faults = collections.Counter(c["fault"] for c in calls if c.get("fault"))
    not_json = [line for line in lines if line.get("event") == "<not json>"]
    return {
        "params": params, "events": len(plans), "sizes": [len(p) for p in plans], "records": len(all_keys),
        "videos": len(videos), "deliveries": len(deliveries),
        "redeliveries": sum(1 for d in deliveries if d["attempt"] > 0),
        "delivery_errors": dict(errors), "dead_lettered": len(dead), "statuses": dict(statuses),
        "last_statuses": dict(last_status),
        "ever_submitted": len(ever_submitted), "tasks": len(tasks), "lost": lost, "unlogged": unlogged,
        "twice_url": twice_url, "twice_session": twice_session, "skipped_created": skipped_created,
        "claimed_missing": claimed_missing, "failed": failed, "failed_created": failed_created,
        "calls": sum(1 for c in calls if c["action"] == "CreateAigcVideoRedrawTask"),
        "faults": dict(faults), "rate_limit_hits": rate_limit_hits, "retried": dict(retried_codes),
        "wall": wall, "not_json": len(not_json),
        "max_delivery_s": max((d["seconds"] for d in deliveries), default=0.0),
    }


def problems(r: Dict[str, Any]) -> List[str]:
    out = []
    if r["lost"]:
        out.append(f"{len(r['lost'])} records lost, e.g. {r['lost'][:3]}")
    if r["twice_url"] or r["twice_session"]:
        out.append(f"tasks created twice: {len(r['twice_url'])} URLs, {len(r['twice_session'])} SessionIds")
    if r["unlogged"]:
        out.append(f"{len(r['unlogged'])} records without a cos.record log line")
    if r["skipped_created"]:
        out.append(f"{len(r['skipped_created'])} non-video objects were submitted")
    if r["claimed_missing"]:
        out.append(f"{len(r['claimed_missing'])} records reported submitted/duplicate with no task")
    if r["not_json"]:
        out.append(f"{r['not_json']} stdout lines that are not JSON")
    return out


def render(r: Dict[str, Any]) -> str:
    p = r["params"]
    fmt = S.counts
    rows = [
        ["records", f"{r['records']} ({r['videos']} videos, {r['records'] - r['videos']} other objects)", "", ""],
        ["events", f"{r['events']} (sizes {min(r['sizes'])}–{max(r['sizes'])}, seed {p['seed']}), "
                   f"{p['parallel']} in parallel", "", ""],
        ["deliveries", f"{r['deliveries']} ({r['redeliveries']} redeliveries after "
                       f"{fmt(r['delivery_errors'])})", "", ""],
        ["events dead-lettered (still failing after 2 retries)", str(r["dead_lettered"]), "0",
         r["dead_lettered"] == 0],
        ["final status per record (across deliveries)", fmt(r["statuses"]), "", ""],
        ["status reported by the last delivery", fmt(r["last_statuses"]), "", ""],
        ["records ever reported submitted", str(r["ever_submitted"]), "", ""],
        ["tasks in the emulator", f"{r['tasks']} (videos: {r['videos']})", "", ""],
        ["records lost (not created, not reported failed)", str(len(r["lost"])), "0", not r["lost"]],
        ["tasks created twice (same SessionId / same URL)",
         f"{len(r['twice_session'])} / {len(r['twice_url'])}", "0 / 0",
         not r["twice_session"] and not r["twice_url"]],
        ["records failed (never created as far as the function knows)",
         f"{len(r['failed'])} (of which created anyway: {len(r['failed_created'])})", "", ""],
        ["non-video objects submitted", str(len(r["skipped_created"])), "0", not r["skipped_created"]],
        ["reported submitted/duplicate but no task", str(len(r["claimed_missing"])), "0",
         not r["claimed_missing"]],
        ["records with no cos.record log line", str(len(r["unlogged"])), "0", not r["unlogged"]],
        ["create calls sent to VOD", str(r["calls"]), "", ""],
        ["faults injected by the emulator", fmt(r["faults"]), "", ""],
        ["emulator rate-limit rejections", str(r["rate_limit_hits"]), "", ""],
        ["retries inside the handler (by cause)", fmt(r["retried"]), "", ""],
        ["wall time / throughput", f"{r['wall']:.1f} s / {r['records'] / r['wall']:.1f} records/s "
                                   f"(slowest delivery {r['max_delivery_s']:.1f} s)", "", ""],
    ]
    table = S.check_table(rows)
    head = ["# redraw soak", "", *S.machine_lines(),
            f"- emulator: {p['rps']} requests/s, latency {p['latency']} s, fault rate {p['fault_rate']} "
            f"(seed {p['seed']}); function: default configuration (VOD_MAX_RPS=20, VOD_MAX_CONCURRENCY=10, "
            f"VOD_MAX_ATTEMPTS={p['max_attempts']}), context time limit {p['time_limit_ms']} ms",
            f"- redelivery: an event whose handler raised is delivered again up to {p['retries']} times, "
            f"{p['retry_delay']} s apart (SCF: about 1 minute apart)", ""]
    return "\n".join(head) + "\n" + table + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--max-event", type=int, default=50, help="largest event (records)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--parallel", type=int, default=3, help="events handled at once")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--retry-delay", type=float, default=1.0)
    parser.add_argument("--max-attempts", type=int, default=None,
                        help="VOD_MAX_ATTEMPTS for the function (default: its own, 4); 1 makes "
                             "every fault a redelivery")
    parser.add_argument("--output", type=Path, default=BENCH / "soak-results.md")
    args = parser.parse_args(argv)
    result = run_soak(records=args.records, max_size=args.max_event, seed=args.seed,
                      parallel=args.parallel, fault_rate=args.fault_rate, latency=args.latency,
                      retry_delay=args.retry_delay, max_attempts=args.max_attempts)
    text = render(result)
    print(text)
    args.output.write_text(text)
    print(f"[soak] wrote {args.output}", file=sys.stderr)
    found = problems(result)
    for problem in found:
        print(f"[soak] PROBLEM: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
