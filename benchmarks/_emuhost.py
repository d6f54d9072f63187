"""An emulator in a process of its own, driven by JSON lines on stdin (used by followup_bench.py).

    python benchmarks/_emuhost.py vod '{"task_duration": 0.5, "output_bytes": 1048576}'
    python benchmarks/_emuhost.py cos '{"root": "/tmp/x", "buckets": ["media-1250000000"]}'

The first stdout line is ``{"url": ...}``. Then each stdin line is a command, answered by one
stdout line: ``{"op": "add_tasks", "n": 10, "sub_app_id": 1, "age": 60, "sources": [...]}`` (VOD:
the TaskIds), ``{"op": "finish_times", "task_ids": [...]}`` (VOD: each task's FinishTime),
``{"op": "stats"}`` (calls by action/operation, limit hits, this process's CPU
seconds), ``{"op": "reset"}`` (forget calls; tasks and objects stay), ``{"op": "stop"}``. Keeping the
emulators out of the measured process means their CPU time is their own (``stats`` reports it).
"""
from __future__ import annotations

import collections
import json
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    kind, options = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    if kind == "vod":
        from redraw.tools.emulator import VodEmulator

        durations = options.get("task_durations")
        emu = VodEmulator(rps=options.get("rps"), task_duration=options.get("task_duration", 0.5),
                          output_bytes=options.get("output_bytes"),
                          describe_rps=options.get("describe_rps", 100),
                          task_durations=tuple(durations) if durations else None, slots=options.get("slots"),
                          progress_mode=options.get("progress_mode", "honest"),
                          progress_noise=options.get("progress_noise", 0.0), fault_seed=options.get("fault_seed"))
    elif kind == "cos":
        from redraw.tools.cos_emulator import CosEmulator

        emu = CosEmulator(root=options["root"])
        for bucket in options.get("buckets", []):
            emu.add_bucket(bucket)
    else:
        raise SystemExit(f"unknown emulator {kind!r}")
    emu.start()
    print(json.dumps({"url": emu.url}), flush=True)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            op = command.get("op")
            if op == "stop":
                break
            if op == "add_tasks":
                sources = command.get("sources") or ["https://example.com/in.mp4"] * int(command["n"])
                contexts = command.get("contexts") or [""] * len(sources)
                ids = [emu.add_task(int(command["sub_app_id"]), src, age=float(command.get("age", 60.0)),
                                    session_context=ctx)
                       for src, ctx in zip(sources, contexts)]
                answer: dict = {"task_ids": ids}
            elif op == "finish_times":  # VOD's FinishTime of each task (epoch seconds; by its model)
                tasks = emu.tasks
                answer = {"finish": {tid: emu.state_at(tasks[tid], 0.0)[3] for tid in command["task_ids"]
                                     if tid in tasks}}
            elif op == "output_url":
                answer = {"url": emu.output_url(command["task_id"])}
            elif op == "stats":
                calls = emu.calls
                if kind == "vod":
                    by = collections.Counter(c["action"] for c in calls)
                    answer = {"calls": dict(by), "describe_limit_hits": emu.describe_limit_hits,
                              "rate_limit_hits": emu.rate_limit_hits, "connections": emu.connections}
                    times = sorted(c["time"] for c in calls if c["action"] == "DescribeTaskDetail")
                    answer["describe_first"], answer["describe_last"] = (times[0], times[-1]) if times else (0, 0)
                    answer["describe_max_per_second"] = _max_in_window(times)
                else:
                    by = collections.Counter(f'{c["method"]} {c["operation"]}' for c in calls)
                    answer = {"calls": dict(by), "errors": sum(1 for c in calls if (c["status"] or 0) >= 500)}
                answer["cpu_s"] = _cpu()
            elif op == "reset":
                if kind == "cos":
                    emu.reset()
                else:  # VodEmulator.reset() would forget the tasks too
                    with emu._lock:
                        emu._calls.clear()
                answer = {"ok": True}
            else:
                answer = {"error": f"unknown op {op!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        emu.stop()
    return 0


def _max_in_window(times: list, window: float = 1.0) -> int:
    """The most requests in any sliding window of ``window`` seconds (what the emulator's limit counts)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


if __name__ == "__main__":
    raise SystemExit(main())
