#!/usr/bin/env python3
"""The sweep's schedule in simulated time: notice delay and DescribeTaskDetail rate, new against old.

    python benchmarks/notice_sim.py            # every scenario (~1 min): table on stdout and in
                                               # benchmarks/notice-sim-results.md
    python benchmarks/notice_sim.py --smoke    # short horizons, a few seconds, writes nothing

No server, no clock: tasks are the VOD emulator's status model (``VodEmulator.model_task`` /
``state_at``: a tenth of the duration WAITING, then PROCESSING with Progress as ``progress_mode``
says, noise by seed), created at random (Poisson) at the scenario's rate. Two schedules check them:

- ``new``: ``redraw.followup.schedule.next_check``, the function's own code, as the sweep runs it
  with ``REDRAW_SWEEP_WINDOW_S`` 50 of every 60 s (a 10 s gap between invocations, during which
  nothing is checked); a task is known from the first listing after its creation (every 5 s);
  checks are taken in the sweep's order (predicted to have ended first, the earliest first; then
  those due by age, the oldest task first) at most ``--rps`` per second (a token bucket refilled
  every 50 ms, and never more than ``--rps`` in a second).
- ``old``: ``redraw.followup.schedule.old_ladder_due``, the schedule before: a sweep at each minute checks, at
  ``--rps``, the tasks due by their age, the longest waiting first.

Notice delay: from the task's FinishTime to the check that sees it ended (the sweep's own work
after that, claim, delivery, log line, is not in it: ``notice_bench.py`` measures it for real).
Only tasks created after the warm-up (in flight has reached its steady level) are counted.
"""
from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from redraw.followup import schedule  # noqa: E402
from redraw.followup.schedule import Knobs, Load, Seen  # noqa: E402
from redraw.followup.schedule import old_ladder_due as old_due  # noqa: E402
from redraw.tools.emulator import VodEmulator  # noqa: E402

TICK = 0.05            # seconds of simulated time per step of the new sweep's loop
PERIOD, WINDOW = 60.0, 50.0
RELIST = 5.0
ENDED = ("FINISH", "ABORTED")


def pct(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Scenario:
    def __init__(self, name: str, rate: float, durations: tuple, mode: str, noise: float, horizon: float,
                 warmup: float, slots: Optional[int] = None) -> None:
        self.name, self.rate, self.durations, self.mode, self.noise = name, rate, durations, mode, noise
        self.horizon, self.warmup, self.slots = horizon, warmup, slots

    def tasks(self, seed: int) -> tuple:
        emu = VodEmulator(progress_mode=self.mode, progress_noise=self.noise, fault_seed=seed, slots=self.slots)
        rng = random.Random(seed)
        t, out = 0.0, []
        while True:
            t += rng.expovariate(self.rate)
            if t > self.horizon:
                return emu, out
            out.append(emu.model_task(f"t{len(out)}", t, rng.uniform(*self.durations)))


class Result:
    def __init__(self) -> None:
        self.delays: List[float] = []
        self.checks = 0
        self.counted_checks = 0
        self.per_second: Counter = Counter()
        self.predicted = 0

    def check(self, t: float, counted: bool) -> None:
        self.checks += 1
        self.counted_checks += counted
        self.per_second[int(t + 1e-9)] += 1


def run_new(sc: Scenario, seed: int, rps: float, knobs: Knobs) -> Result:
    emu, tasks = sc.tasks(seed)
    res = Result()
    end = sc.horizon + sc.durations[1] * 3 + 600
    heaps: Dict[str, list] = {schedule.PREDICTED: [], schedule.BY_AGE: []}
    ready: list = []  # due by age, by creation time
    seen: Dict[int, Optional[Seen]] = {}
    version: Dict[int, int] = {}
    known = 0            # tasks[:known] have been listed
    alive = 0
    tokens, t, next_list, seq, step = 0.0, 0.0, 0.0, 0, 0

    def plan(i: int, at: float) -> None:
        nonlocal seq
        when, why = schedule.next_check(tasks[i]["created"], seen[i], Load(alive, rps), knobs, last_checked=at)
        version[i] = version.get(i, 0) + 1
        seq += 1
        heapq.heappush(heaps[why], (when, seq, i, version[i]))

    while t < end and (known < len(tasks) or alive):
        in_window = (t % PERIOD) < WINDOW
        if in_window and t >= next_list:
            while known < len(tasks) and tasks[known]["created"] <= t:
                seen[known] = None
                alive += 1
                plan(known, tasks[known]["created"])
                known += 1
            next_list = t + RELIST
        if in_window:
            tokens = min(tokens + rps * TICK, rps * TICK + 1.0)
            age_heap = heaps[schedule.BY_AGE]
            while age_heap and age_heap[0][0] <= t:  # due by age: the oldest tasks go first
                when, _, i, ver = heapq.heappop(age_heap)
                heapq.heappush(ready, (tasks[i]["created"], when, i, ver))
            while tokens >= 1.0 and res.per_second[step // int(round(1 / TICK))] < rps:
                heap = next((h for h in (heaps[schedule.PREDICTED],) if h and h[0][0] <= t), ready or None)
                if heap is None:
                    break
                _, _, i, ver = heapq.heappop(heap)
                if ver != version[i]:
                    continue
                tokens -= 1.0
                task = tasks[i]
                counted = task["created"] >= sc.warmup
                res.check(t, counted)
                res.predicted += heap is heaps[schedule.PREDICTED]
                status, progress, begin, finish = emu.state_at(task, t)
                if status in ENDED:
                    alive -= 1
                    version[i] += 1
                    if counted:
                        res.delays.append(t - finish)
                    continue
                begin_at = begin if status != "WAITING" else None
                progress = None if progress is None else float(progress)
                seen[i] = seen[i].then(t, status, progress, begin_at) if seen[i] else Seen(t, status, progress,
                                                                                           begin_at)
                plan(i, t)
        step += 1
        t = step * TICK
    return res


def run_old(sc: Scenario, seed: int, rps: float, max_interval: int = 300) -> Result:
    emu, tasks = sc.tasks(seed)
    res = Result()
    last = {i: task["created"] for i, task in enumerate(tasks)}
    alive = set()
    known, sweep_at = 0, 0.0
    end = sc.horizon + sc.durations[1] * 3 + 900
    while sweep_at < end and (known < len(tasks) or alive):
        while known < len(tasks) and tasks[known]["created"] <= sweep_at:
            alive.add(known)
            known += 1
        todo = sorted((i for i in alive if old_due(sweep_at, tasks[i]["created"], last[i], max_interval)),
                      key=lambda i: last[i])
        for n, i in enumerate(todo):
            t = sweep_at + n / rps
            if t > sweep_at + WINDOW:
                break
            task = tasks[i]
            counted = task["created"] >= sc.warmup
            res.check(t, counted)
            status, _, _, finish = emu.state_at(task, t)
            if status in ENDED:
                alive.discard(i)
                if counted:
                    res.delays.append(t - finish)
            else:
                last[i] = t
        sweep_at += PERIOD
    return res


def row(sc: Scenario, policy: str, res: Result, wall: float) -> str:
    counted = len(res.delays)
    peak = max(res.per_second.values()) if res.per_second else 0
    busy = [n for s, n in res.per_second.items() if sc.warmup <= s <= sc.horizon]
    mean = statistics.mean(busy) if busy else 0.0
    return (f"| {sc.name} | {sc.mode}{f' ±{sc.noise:g}' if sc.noise else ''} | {policy} | {counted} | "
            f"{pct(res.delays, 0.5):.1f} | {pct(res.delays, 0.95):.1f} | {max(res.delays, default=float('nan')):.1f} | "
            f"{res.counted_checks / max(counted, 1):.1f} | {mean:.1f} | {peak} | {wall:.1f} |")


HEADER = ("| scenario | Progress | schedule | tasks | notice p50 (s) | p95 (s) | max (s) | Describe per task | "
          "Describe/s (steady mean) | Describe/s (peak second) | sim wall (s) |\n"
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def scenarios(smoke: bool) -> List[Scenario]:
    light_h, worst_h = (300.0, 120.0) if smoke else (3600.0, 1200.0)
    light_w, worst_w = (60.0, 60.0) if smoke else (600.0, 400.0)
    worst_rate = 2.0 if smoke else 20.0
    out = []
    for mode, noise in (("honest", 3.0), ("silent", 0.0)):
        out.append(Scenario("light: 1 task/s, 1-10 min", 1.0, (60.0, 600.0), mode, noise, light_h, light_w))
        out.append(Scenario(f"worst: {worst_rate:g} tasks/s, 5 min", worst_rate, (300.0, 300.0), mode, noise,
                            worst_h, worst_w))
    if not smoke:
        for minutes in (5, 3):  # the "today" figures: light load, one length
            out.append(Scenario(f"today's case: 0.2 task/s, {minutes} min", 0.2, (60.0 * minutes, 60.0 * minutes),
                                "honest", 3.0, light_h, light_w))
        for mode in ("stall", "backwards", "missing", "over"):
            out.append(Scenario("light: 1 task/s, 1-10 min", 1.0, (60.0, 600.0), mode, 0.0, light_h, light_w))
        out.append(Scenario("light, queued (VOD busy: 300 slots)", 1.0, (60.0, 600.0), "honest", 3.0, light_h,
                            light_w, slots=300))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="short horizons; writes nothing")
    parser.add_argument("--rps", type=float, default=90.0,
                        help="DescribeTaskDetail budget (default 90, as serverless.yml sets it)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="", help="run only the scenarios whose name contains this")
    parser.add_argument("--out", default=None, help="markdown file ('-': none)")
    args = parser.parse_args(argv)
    out = args.out or ("-" if args.smoke else str(ROOT / "benchmarks" / "notice-sim-results.md"))
    lines = [HEADER]
    print(HEADER, flush=True)
    simulated = 0.0
    started = time.perf_counter()
    for sc in (s for s in scenarios(args.smoke) if args.only in s.name):
        for policy in ("new", "old"):
            t0 = time.perf_counter()
            res = run_new(sc, args.seed, args.rps, Knobs()) if policy == "new" else run_old(sc, args.seed, args.rps)
            line = row(sc, policy, res, time.perf_counter() - t0)
            simulated += sc.horizon * sc.rate * statistics.mean(sc.durations)
            lines.append(line)
            print(line, flush=True)
    wall = time.perf_counter() - started
    note = (f"\nDescribeTaskDetail budget {args.rps:g}/s. {simulated / 1e6:.1f} M task-seconds simulated in "
            f"{wall:.0f} s ({simulated / wall / 1e6:.2f} M/s).")
    print(note)
    if out != "-":
        Path(out).write_text("# Notice delay, simulated (benchmarks/notice_sim.py)\n\n" + "\n".join(lines) + "\n"
                             + note + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
