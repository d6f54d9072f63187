#!/usr/bin/env python3
"""A virtual-time model of `make scale`: the real pacer code, no processes, seconds per run.

    python benchmarks/scale_model.py                          # adaptive and oracle, N = 1, 4, 8, 16, 32, 4 seeds
    python benchmarks/scale_model.py --instances 32 --seeds 1 --timeline

For tuning pacing, where `make scale` takes 15 minutes per table. It replays
scale.py's setting in simulated time: the same uploads in events of 1–20
records (same seed), N instances taking events first-in first-out, each
submitting an event's records with ``VOD_MAX_CONCURRENCY`` (10) workers under
a 60 s timeout minus the safety margin; per record: a slot from the pacer
(``AdaptiveLimiter.reserve``, the code the function runs), a send, VOD's
answer 0.2 s later from ONE sliding-second limit of 20 accepted requests,
a send arriving within 3 ms, RequestLimitExceeded answered with a pause of 0.05–0.3 s and a new slot; an
event with a record left when time ran out is redelivered 2 s later, twice.
Per container, accepted SessionIds are remembered (a redelivery to the same
container asks VOD nothing).

Pacers:
- ``adaptive``: ``redraw.pacing.AdaptiveLimiter`` (each container alone);
- ``oracle``: a pacer that knows how many instances are busy right now and
  paces at ``--oracle-rate``/busy (what no container can know without shared
  state): the bound that local learning works against.

The figures track `make scale`'s adaptive rows within their run-to-run spread
(compare both before trusting a change); `make scale` stays the measurement.
"""
from __future__ import annotations

import argparse
import collections
import heapq
import random
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))
from redraw.pacing import AdaptiveLimiter, SlidingLog  # noqa: E402
from redraw.retries import MIN_ATTEMPT_TIME as MIN_ATTEMPT, THROTTLE_WAIT  # noqa: E402
from scale import LATENCY, LIMIT, plan_events  # noqa: E402  (the same setting as make scale)

TIMEOUT, MARGIN = 60.0, 1.5   # serverless.yml's timeout, REDRAW_SAFETY_MARGIN_MS
CONCURRENCY = 10              # VOD_MAX_CONCURRENCY
NET_JITTER = 0.003            # seconds between a send and its arrival, at most


class Oracle:
    """Paces at ``total``/busy instances, evenly, with a random phase per instance."""

    def __init__(self, clock: Callable[[], float], busy: Set[int], total: float, phase: float) -> None:
        self.clock, self.busy, self.total = clock, busy, total
        self._log, self._phase = SlidingLog(LIMIT), phase

    def reserve(self, end: float) -> Tuple[Optional[float], Optional[float]]:
        now, rate = self.clock(), self.total / max(1, len(self.busy))
        if self._phase is not None:
            self._log._tat, self._phase = now + self._phase / rate, None
        at = self._log.next_slot(now, rate)
        if at > end:
            return None, None
        if at - now <= 0.1:
            self._log.take(at, rate)
            return at, None
        return None, now + min(at - now - 0.05, 0.25)

    def on_throttle(self) -> None:
        pass

    def on_success(self) -> None:
        pass


def run(instances: int, pacer: str = "adaptive", uploads: int = 1000, seed: int = 7, rng_seed: int = 0,
        oracle_rate: float = 18.0, retry_delay: float = 2.0, retries: int = 2) -> Dict[str, Any]:
    """One simulated run; returns the figures scale.py reports (tasks/s from the first dispatch)."""
    rng = random.Random(rng_seed)
    now = [0.0]
    heap: List[Any] = []
    seq = [0]

    def at(t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(heap, (t, seq[0], fn))
        seq[0] += 1

    window: Deque[float] = collections.deque()
    created: Set[str] = set()
    stats = {"calls": 0, "throttled": 0, "redeliveries": 0, "dead": 0, "last": 0.0}
    accepted_at: List[float] = []
    throttled_at: List[float] = []
    sizes = [len(keys) for keys in plan_events(uploads, 20, seed)]
    queue: Deque[Tuple[int, int]] = collections.deque((i, 0) for i in range(len(sizes)))
    later: List[Tuple[float, int, int]] = []
    busy: Set[int] = set()

    def vod(session: str) -> str:
        t = now[0]
        while window and t - window[0] >= 1.0:
            window.popleft()
        stats["calls"] += 1
        if len(window) >= LIMIT:
            stats["throttled"] += 1
            throttled_at.append(t)
            return "throttled"
        window.append(t)
        if session in created:
            return "duplicate"
        created.add(session)
        accepted_at.append(t)
        stats["last"] = t
        return "created"

    class Instance:
        def __init__(self, number: int) -> None:
            self.number, self.pacer, self.accepted = number, None, set()  # type: Any, Any, Set[str]

        def next_event(self) -> None:
            later.sort()
            if queue:
                index, attempt = queue.popleft()
            elif later and later[0][0] <= now[0]:
                _, index, attempt = later.pop(0)
            else:
                busy.discard(self.number)
                if later:
                    at(later[0][0] + 1e-6, self.next_event)
                return
            busy.add(self.number)
            if self.pacer is None:
                clock = lambda: now[0]  # noqa: E731
                self.pacer = (AdaptiveLimiter(float(LIMIT), clock=clock) if pacer == "adaptive"
                              else Oracle(clock, busy, oracle_rate, random.Random(rng_seed * 1000 + self.number).random()))
            self.handle(index, attempt, now[0] + TIMEOUT - MARGIN)

        def handle(self, index: int, attempt: int, end: float) -> None:
            todo = collections.deque(f"e{index}-{j}" for j in range(sizes[index]))
            state = {"left": len(todo), "failed": 0}

            def finished(ok: bool) -> None:
                state["left"] -= 1
                state["failed"] += not ok
                at(now[0], worker)
                if state["left"]:
                    return
                if state["failed"] and attempt < retries:
                    stats["redeliveries"] += 1
                    later.append((now[0] + retry_delay, index, attempt + 1))
                elif state["failed"]:
                    stats["dead"] += 1
                at(now[0] + 0.001, self.next_event)

            def worker() -> None:
                if not todo:
                    return
                session = todo.popleft()
                if session in self.accepted:
                    finished(True)
                else:
                    attempt_send(session)

            def attempt_send(session: str) -> None:
                if end - now[0] < MIN_ATTEMPT:
                    finished(False)
                    return
                stop = end - MIN_ATTEMPT

                def poll() -> None:
                    slot, again = self.pacer.reserve(stop)
                    if slot is not None:
                        at(max(slot, now[0]) + rng.uniform(0, NET_JITTER), lambda: arrive(session))
                    elif again is None:
                        finished(False)
                    else:
                        at(max(again, now[0]), poll)
                poll()

            def arrive(session: str) -> None:
                answer = vod(session)
                at(now[0] + LATENCY, lambda: answered(session, answer))

            def answered(session: str, answer: str) -> None:
                if answer == "throttled":
                    self.pacer.on_throttle()
                    wait = rng.uniform(*THROTTLE_WAIT)
                    if wait > end - now[0] - MIN_ATTEMPT:
                        finished(False)
                    else:
                        at(now[0] + wait, lambda: attempt_send(session))
                    return
                self.pacer.on_success()
                self.accepted.add(session)
                finished(True)

            for _ in range(min(CONCURRENCY, len(todo))):
                at(now[0], worker)

    for number in range(instances):
        at(0.0, Instance(number).next_event)
    while heap:
        now[0], _, fn = heapq.heappop(heap)
        fn()
    return {"instances": instances, "pacer": pacer, "uploads": uploads, "tasks": len(created),
            "calls": stats["calls"], "throttled": stats["throttled"], "redeliveries": stats["redeliveries"],
            "dead_events": stats["dead"], "rate": len(created) / max(1e-9, stats["last"]),
            "accepted_per_5s": _per(accepted_at, 5.0), "throttled_per_5s": _per(throttled_at, 5.0)}


def _per(times: List[float], width: float) -> List[int]:
    counts = collections.Counter(int(t // width) for t in times)
    return [counts[i] for i in range(max(counts, default=-1) + 1)]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default="1,4,8,16,32")
    parser.add_argument("--pacers", default="adaptive,oracle", help="adaptive, oracle")
    parser.add_argument("--seeds", type=int, default=4, help="runs per cell (random answers' pauses, oracle phases)")
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--oracle-rate", type=float, default=18.0, help="the oracle's total rate, requests/s")
    parser.add_argument("--timeline", action="store_true", help="print accepted and throttled per 5 s")
    args = parser.parse_args(argv)
    print("| N | pacer | tasks/s median (min–max) | throttled % of calls (median) | redeliveries | dead-lettered |")
    print("|---|---|---|---|---|---|")
    for n in [int(x) for x in args.instances.split(",") if x.strip()]:
        for pacer in [p.strip() for p in args.pacers.split(",") if p.strip()]:
            runs = [run(n, pacer, uploads=args.uploads, rng_seed=s, oracle_rate=args.oracle_rate)
                    for s in range(args.seeds)]
            rates = [r["rate"] for r in runs]
            shares = [100.0 * r["throttled"] / max(1, r["calls"]) for r in runs]
            assert all(r["tasks"] == args.uploads for r in runs), "the model lost an upload"
            print(f"| {n} | {pacer} | {statistics.median(rates):.1f} ({min(rates):.1f}–{max(rates):.1f}) "
                  f"| {statistics.median(shares):.1f} | {sum(r['redeliveries'] for r in runs)} "
                  f"| {sum(r['dead_events'] for r in runs)} |")
            if args.timeline:
                for r in runs:
                    print(f"    accepted/5 s {r['accepted_per_5s']}; throttled/5 s {r['throttled_per_5s']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
