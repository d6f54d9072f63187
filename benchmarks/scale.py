#!/usr/bin/env python3
"""Scale-out: N warm SCF instances (separate processes) share ONE account-wide VOD budget.

    python benchmarks/scale.py                       # what `make scale` runs: N = 1, 4, 16, 32; fixed, adaptive, redis
    python benchmarks/scale.py --instances 4 --modes adaptive --uploads 200   # a quick look

Setting, as SCF runs the function:

- ``--uploads`` video uploads (1,000) in COS events of 1–``--max-event`` (20) records
  (seeded), queued first-in first-out like SCF's async queue;
- N instances, each a separate process that imports ``handler`` once and handles one
  event at a time (``redraw.tools.instance``), with the serverless.yml environment and
  its 60 s timeout (``time_limit_in_ms``);
- an invocation that raised is redelivered twice, ``--retry-delay`` (2 s; SCF waits about
  one and two minutes) after it failed, then its event is dead-lettered;
- ONE emulator with ONE account-wide limit of 20 CreateAigcVideoRedrawTask per sliding
  second and 0.2 s latency (``--fault-rate`` adds random faults);
- modes: ``fixed`` (VOD_PACING=fixed: 20/s per instance, the pacing of earlier versions),
  ``adaptive`` (the default), ``redis`` (REDRAW_REDIS_URL: a real redis-server on loopback).

Per run it reports uploads, tasks created, created twice, events and records
dead-lettered, uploads never created, throttled answers, VOD calls, aggregate tasks/s
(tasks created / time from the first dispatch to the last task created) and its ratio
to 20/s, wall time (until every event was answered or dead-lettered). The table goes to
stdout and to ``benchmarks/scale-results.md``.
"""
from __future__ import annotations

import argparse
import collections
import heapq
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _support as S  # noqa: E402
from _support import BENCH, ROOT, WORK  # noqa: E402

from redraw.tools.emulator import VodEmulator  # noqa: E402
from redraw.tools.instance import Instance  # noqa: E402
from redraw.tools.samples import cos_event  # noqa: E402

LIMIT = 20          # the account's CreateAigcVideoRedrawTask limit, requests/s
LATENCY = 0.2       # seconds VOD takes to answer
HOST = "http://media-1250000000.cos.ap-guangzhou.myqcloud.com/"
REMEMBERED_MARK = "remembered by redraw"


def serverless_env() -> Dict[str, str]:
    """The literal variables serverless.yml gives the function (those that need ${env:...} left out)."""
    try:
        import yaml
        sls = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))
        variables = sls["inputs"]["environment"]["variables"]
        timeout = int(sls["inputs"].get("timeout", 60))
    except Exception:  # noqa: BLE001 - the defaults then
        variables, timeout = {}, 60
    env = {k: str(v) for k, v in variables.items() if "${" not in str(v) and k != "VOD_ENDPOINT"}
    env["_TIMEOUT_MS"] = str(timeout * 1000)
    # This benchmark measures task creation against the account limit; the follow-up's COS records
    # (and its state bucket, which serverless.yml takes from ${env:COS_BUCKET}) are measured apart.
    env["REDRAW_FOLLOW_UP"] = "false"
    return env


def plan_events(uploads: int, max_size: int, seed: int, prefix: str = "scale/") -> List[List[str]]:
    """COS events of 1..max_size records (seeded): keys ``<prefix>eNNNN/clip-NN.mp4``."""
    rng = random.Random(seed)
    events: List[List[str]] = []
    made = 0
    while made < uploads:
        size = min(rng.randint(1, max_size), uploads - made)
        events.append([f"{prefix}e{len(events):04d}/clip-{i:02d}.mp4" for i in range(size)])
        made += size
    return events


class AsyncQueue:
    """SCF's async queue for one function: first in, first out; redeliveries wait their delay."""

    def __init__(self) -> None:
        self._heap: List[Any] = []
        self._seq = 0
        self._open = 0          # deliveries queued or running
        self._cond = threading.Condition()

    def put(self, item: Any, due: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, self._seq, item))
            self._seq += 1
            self._open += 1
            self._cond.notify_all()

    def get(self) -> Optional[Any]:
        with self._cond:
            while True:
                if not self._heap and self._open == 0:
                    return None
                if self._heap:
                    due, _, item = self._heap[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        return item
                    self._cond.wait(min(wait, 0.5))
                else:
                    self._cond.wait(0.5)

    def done(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify_all()


def run(instances: int, mode: str, uploads: int = 1000, max_event: int = 20, seed: int = 7,
        retry_delay: float = 2.0, retries: int = 2, fault_rate: float = 0.0,
        redis_url: Optional[str] = None, workdir: Optional[Path] = None) -> Dict[str, Any]:
    plans = plan_events(uploads, max_event, seed)
    base = serverless_env()
    time_limit_ms = int(base.pop("_TIMEOUT_MS"))
    workdir = workdir or WORK / "scale" / f"{mode}-{instances}"
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("instance-*.log"):
        old.unlink()
    with VodEmulator(rps=LIMIT, latency=LATENCY, fault_rate=fault_rate, fault_seed=seed) as emu:
        extra = dict(base)
        if mode == "fixed":
            extra["VOD_PACING"] = "fixed"
        elif mode == "adaptive":
            extra["VOD_PACING"] = "adaptive"
        elif mode == "redis":
            if not redis_url:
                raise ValueError("redis mode needs a Redis URL")
            import redis
            client = redis.Redis.from_url(redis_url)
            client.flushall()  # a new account: no budget history, no accepted SessionIds of earlier runs
            client.close()
            extra["REDRAW_REDIS_URL"] = redis_url
            extra["REDRAW_REDIS_KEY"] = f"redraw:bench:{mode}-{instances}-{time.time_ns()}"
        else:
            raise ValueError(f"unknown mode {mode}")
        env = S.function_env(emu.url, **extra)
        pool = [Instance(env, workdir / f"instance-{i:02d}.log") for i in range(instances)]
        try:
            for instance in pool:
                instance.ready()
            # each event is built once: a redelivery is the same event (same request id and time)
            events = [cos_event(keys, request_id=f"scale-{seed}-{i}", event_time=1_790_000_000 + i)
                      for i, keys in enumerate(plans)]
            queue = AsyncQueue()
            outcomes: Dict[int, Dict[str, Any]] = {}
            lock = threading.Lock()
            started = time.monotonic()
            for index in range(len(plans)):
                queue.put((index, 0), started)

            def serve(instance: Instance, number: int) -> None:
                while True:
                    item = queue.get()
                    if item is None:
                        return
                    index, attempt = item
                    event = events[index]
                    context = {"request_id": f"e{index}-a{attempt}", "function_name": "redraw-scale",
                               "time_limit_in_ms": time_limit_ms, "memory_limit_in_mb": 64}
                    answer = instance.invoke(event, context)
                    with lock:
                        state = outcomes.setdefault(index, {"attempts": 0, "errors": [], "dead": False})
                        state["attempts"] += 1
                        if not answer["ok"]:
                            state["errors"].append(answer["error"])
                            if attempt < retries:
                                queue.put((index, attempt + 1), time.monotonic() + retry_delay)
                            else:
                                state["dead"] = True
                    queue.done()

            threads = [threading.Thread(target=serve, args=(inst, i), daemon=True) for i, inst in enumerate(pool)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - started
            wall_epoch_start = time.time() - wall
        finally:
            for instance in pool:
                instance.close()
        tasks = list(emu.tasks.values())
        calls = [c for c in emu.calls if c["action"] == "CreateAigcVideoRedrawTask"]
        throttled = emu.rate_limit_hits
    by_url = collections.Counter(t["params"]["FileInfo"].get("Url") for t in tasks)
    videos = [k for keys in plans for k in keys]
    last_task = max((t["created"] for t in tasks), default=wall_epoch_start)
    active = max(1e-9, last_task - wall_epoch_start)
    remembered = 0
    for path in workdir.glob("instance-*.log"):
        for raw in path.read_text(encoding="utf-8").splitlines():
            if REMEMBERED_MARK in raw:
                try:
                    remembered += json.loads(raw).get("event") == "cos.record"
                except ValueError:
                    pass
    accepted_times = sorted(c["time"] for c in calls if c["outcome"] not in (None, "RequestLimitExceeded"))
    dead_events = [i for i, s in outcomes.items() if s["dead"]]
    return {
        "instances": instances, "mode": mode, "uploads": len(videos), "events": len(plans),
        "tasks": len(tasks), "created_twice": sum(n - 1 for n in by_url.values() if n > 1),
        "dead_events": len(dead_events), "dead_records": sum(len(plans[i]) for i in dead_events),
        "never_created": sum(1 for k in videos if by_url.get(HOST + k, 0) == 0),
        "throttled": throttled, "calls": len(calls),
        "redeliveries": sum(s["attempts"] - 1 for s in outcomes.values()),
        "remembered": remembered,
        "rate": len(tasks) / active, "wall": wall,
        "max_accepted_per_second": _max_in_window(accepted_times),
        "max_arrivals_per_second": _max_in_window(sorted(c["time"] for c in calls)),
        "throttled_per_5s": _histogram([c["time"] - wall_epoch_start for c in calls
                                        if c["outcome"] == "RequestLimitExceeded"], 5.0),
        "accepted_per_5s": _histogram([c["time"] - wall_epoch_start for c in calls
                                       if c["outcome"] not in (None, "RequestLimitExceeded")], 5.0),
    }


def _histogram(offsets: List[float], width: float) -> List[int]:
    counts: List[int] = []
    for offset in offsets:
        slot = max(0, int(offset // width))
        counts.extend([0] * (slot + 1 - len(counts)))
        counts[slot] += 1
    return counts


def _max_in_window(times: List[float], window: float = 1.0) -> int:
    best = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


HEADER = ["N", "mode", "uploads", "tasks created", "created twice", "events / records dead-lettered",
          "never created", "throttled answers (% of calls)", "VOD calls", "redeliveries", "remembered duplicates",
          "tasks/s (÷ 20)", "wall s"]


def row(r: Dict[str, Any]) -> List[str]:
    share = 100.0 * r["throttled"] / r["calls"] if r["calls"] else 0.0
    return [str(r["instances"]), r["mode"], str(r["uploads"]), str(r["tasks"]), str(r["created_twice"]),
            f"{r['dead_events']} / {r['dead_records']}", str(r["never_created"]),
            f"{r['throttled']} ({share:.1f} %)", str(r["calls"]), str(r["redeliveries"]), str(r["remembered"]),
            f"{r['rate']:.1f} ({r['rate'] / LIMIT:.2f})", f"{r['wall']:.0f}"]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default="1,4,16,32", help="comma-separated N (default 1,4,16,32)")
    parser.add_argument("--modes", default="fixed,adaptive,redis", help="comma-separated: fixed, adaptive, redis")
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--max-event", type=int, default=20, help="largest event (records)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--retry-delay", type=float, default=2.0,
                        help="seconds before a redelivery (SCF: about 60 and 120)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="random emulator faults (e.g. 0.02)")
    parser.add_argument("--quick", action="store_true", help="N = 4 only, 200 uploads")
    parser.add_argument("--out", type=Path, default=BENCH / "scale-results.md", help="'-' writes no file")
    args = parser.parse_args(argv)
    if args.quick:
        args.instances, args.uploads = "4", 200
    counts = [int(n) for n in args.instances.split(",") if n.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    server = None
    if "redis" in modes:
        from redraw.tools.redisserver import RedisServer
        server = RedisServer(password="bench-" + format(random.getrandbits(64), "x")).start()
    results = []
    try:
        for n in counts:
            for mode in modes:
                print(f"N={n} {mode} …", file=sys.stderr, flush=True)
                result = run(n, mode, uploads=args.uploads, max_event=args.max_event, seed=args.seed,
                             retry_delay=args.retry_delay, fault_rate=args.fault_rate,
                             redis_url=server.url if server else None)
                results.append(result)
                print("  " + " | ".join(row(result)), file=sys.stderr, flush=True)
                print(f"  per 5 s: accepted {result['accepted_per_5s']}; throttled {result['throttled_per_5s']}",
                      file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
    table = S.markdown_table(HEADER, [row(r) for r in results])
    lines = ["# Scale-out benchmark (`make scale`)", "", *S.machine_lines(),
             f"- setting: {args.uploads} video uploads in COS events of 1–{args.max_event} records (seed {args.seed}); "
             f"one emulator, {LIMIT} requests/s for the whole account, {LATENCY} s latency, fault rate {args.fault_rate}; "
             f"redelivery {args.retry_delay} s after a raise, twice, then dead-lettered", "", table, ""]
    print("\n".join(lines))
    if str(args.out) != "-":
        args.out.write_text("\n".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
