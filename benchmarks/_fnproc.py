"""A warm function container for followup_bench.py: imports ``handler`` once, runs timer sweeps on cue.

    python -B -S benchmarks/_fnproc.py '{"time_limit_ms": 60000, "profile": false}'

Run with PYTHONPATH = the function's code tree only (``-S``: no site-packages), the function's
environment, stdout to a file (the function's log lines). After importing the handler and one
warm-up sweep (nothing pending yet: it builds the runtime and the COS client, as a container's
earlier sweeps would have), it writes ``ready`` to stderr and reads commands from stdin, one per
line: ``go EXPECT OUT`` runs timer invocations until EXPECT tasks have been finished (or an
invocation finds nothing due), then writes OUT (JSON: each invocation's wall and CPU time and
summary, the profile when asked) and ``done`` to stderr. EOF ends it; the parent reads its peak
RSS from ``os.wait4``.

With ``"profile": true`` the COS adapter's calls (by operation and key kind), VOD HTTP calls,
DescribeTaskDetail including its pacing, and whole task checks are timed: wall time
(``time.perf_counter``) and the calling thread's CPU time (``time.thread_time``), a few µs per
call; the measured runs leave it off.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time

TIMER = {"Type": "Timer", "TriggerName": "redraw-sweep", "Time": "2026-12-05T08:00:00Z", "Message": "sweep"}
FINISHED = ("succeeded", "failed", "lost")


class Profile:
    def __init__(self) -> None:
        self.entries: dict = {}
        self.lock = threading.Lock()

    def add(self, label: str, seconds: float, cpu: float) -> None:
        with self.lock:
            entry = self.entries.setdefault(label, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += seconds
            entry[2] += cpu

    def timed(self, label_of, fn):
        """``fn`` with its wall time and its thread's CPU time (``time.thread_time``) added under a label."""
        profile = self

        def wrapper(*args, **kwargs):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                profile.add(label_of(*args, **kwargs), time.perf_counter() - started, time.thread_time() - cpu)
        return wrapper


def instrument(profile: Profile, prefix: str) -> None:
    from redraw import cosclient
    from redraw.followup import sweep
    from redraw.vod import VodClient

    def cos_label(_self, op, _bucket, key, *_a, **_k):
        rest = key[len(prefix):] if key.startswith(prefix) else key
        return f"COS {op} {rest.split('/', 1)[0]}/"
    cosclient.CosStore._call = profile.timed(cos_label, cosclient.CosStore._call)
    VodClient.call = profile.timed(lambda _self, action, *_a, **_k: f"VOD {action} (HTTP)", VodClient.call)
    sweep.Sweep._describe = profile.timed(lambda *_a, **_k: "DescribeTaskDetail incl. pacing and retries",
                                          sweep.Sweep._describe)
    sweep.Sweep.check = profile.timed(lambda *_a, **_k: "task check (whole)", sweep.Sweep.check)
    sweep.deliver = profile.timed(lambda *_a, **_k: "delivery (whole)", sweep.deliver)


#: What-ifs (``"what_if": [...]``): changes to the sweep's COS work tried at run time, to measure what they
#: would gain. None of them is in redraw; see followup_bench.py --what-if.
WHAT_IFS = ("no-done-get", "optimistic-claim", "no-trust-env")


def apply_what_ifs(names: list) -> None:
    """- ``no-done-get``: ``Sweep.finish`` without its GET of the done record before the claim (the HEAD after
      the claim still guards exactly-once; a task whose done record exists is tidied by whoever claims it);
    - ``optimistic-claim``: ``Sweep._claim`` first tries to create ``claims/<TaskId>/000000`` and lists the
      claims only when it exists (safe only if no claim is ever deleted after it expired: see the results);
    - ``no-trust-env``: the COS SDK's requests session with ``trust_env = False`` (no proxy/CA variables
      read from the environment on every request: changes behaviour where HTTP(S)_PROXY is set)."""
    from redraw import cosclient
    from redraw.followup import records, sweep

    unknown = set(names) - set(WHAT_IFS)
    if unknown:
        raise SystemExit(f"unknown what-if {sorted(unknown)}")
    local = threading.local()
    if "no-done-get" in names:
        finish, get_json = sweep.Sweep.finish, cosclient.CosStore.get_json

        def finish_without_done_get(self, pending, record, ending):
            local.skip_done = self.layout.done_key(record["task_id"])
            try:
                return finish(self, pending, record, ending)
            finally:
                local.skip_done = None

        def get_json_skipping(self, bucket, region, key, deadline):
            if getattr(local, "skip_done", None) == key:  # the first GET of the done record in finish()
                local.skip_done = None
                return None
            return get_json(self, bucket, region, key, deadline)
        sweep.Sweep.finish, cosclient.CosStore.get_json = finish_without_done_get, get_json_skipping
    if "optimistic-claim" in names:
        claim = sweep.Sweep._claim

        def optimistic(self, task_id):
            first = f"{self.layout.claims_prefix(task_id)}{0:06d}"
            body = {"task_id": task_id, "claimed_at": records.iso(time.time()),
                    "expires": time.time() + self.deadline.remaining() + sweep.CLAIM_MARGIN_S,
                    "request_id": sweep._request_id()}
            if self.store.put_json(self.bucket, self.region, first, body, self.deadline, create_only=True):
                return first
            return claim(self, task_id)
        sweep.Sweep._claim = optimistic
    if "no-trust-env" in names:
        client = cosclient.CosStore._client

        def client_without_env(self, region, bulk=False):
            made = client(self, region, bulk)
            made._session.trust_env = False
            return made
        cosclient.CosStore._client = client_without_env


def time_reads(acc: list) -> None:
    """Add the time spent reading the output download (``delivery._parts``, 8 MiB per step) to ``acc[0]``;
    the part is handed on as is (no copy, no extra reference kept past the next read)."""
    from redraw.followup import delivery

    parts = delivery._parts

    def timed_parts(response, expected):
        source = parts(response, expected)
        while True:
            started = time.perf_counter()
            try:
                chunk = next(source)
            except StopIteration:
                return
            finally:
                acc[0] += time.perf_counter() - started
            yield chunk
            del chunk
    delivery._parts = timed_parts


def main() -> int:
    cfg = json.loads(sys.argv[1])
    started = time.perf_counter()
    import handler

    import_s = time.perf_counter() - started
    profile = Profile() if cfg.get("profile") else None
    if profile is not None:
        instrument(profile, os.environ.get("REDRAW_STATE_PREFIX", "redraw/"))
    apply_what_ifs(cfg.get("what_if") or [])
    reads = [0.0]
    if cfg.get("time_reads"):
        time_reads(reads)
    n = 0

    def invoke() -> dict:
        nonlocal n
        n += 1
        context = {"request_id": f"sweep-{n}", "function_name": "redraw-bench", "time_limit_in_ms": cfg["time_limit_ms"],
                   "memory_limit_in_mb": 64}
        wall, cpu = time.perf_counter(), time.process_time()
        answer = handler.main_handler(dict(TIMER), context)
        return {"elapsed": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "summary": answer["sweep"]}

    warmup = invoke()
    sys.stderr.write("ready\n")
    sys.stderr.flush()
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] != "go":
            continue
        expect, out_path = int(parts[1]), parts[2]
        if profile is not None:
            profile.entries.clear()
        reads[0] = 0.0
        rounds, finished = [], 0
        while finished < expect and len(rounds) < cfg.get("max_invocations", 20):
            result = invoke()
            rounds.append(result)
            finished += sum(int(result["summary"].get(k, 0)) for k in FINISHED)
            if not result["summary"].get("due"):
                break
        with open(out_path, "w") as f:
            json.dump({"import_s": import_s, "warmup": warmup, "invocations": rounds, "finished": finished,
                       "profile": profile.entries if profile else None,
                       "read_s": reads[0] if cfg.get("time_reads") else None}, f)
        sys.stderr.write("done\n")
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
