"""The benchmarks run (at tiny sizes); their figures live in docs/performance.md and docs/scale-out.md, not in assertions here."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, in_background

pytestmark = pytest.mark.slow  # subprocesses: scheduled first (conftest)


def _run(script: str, *args: str, timeout: float = 120, background: bool = True) -> str:
    """``benchmarks/<script> <args>`` in a clean environment (no VOD_/REDRAW_/TENCENTCLOUD_ variables),
    at nice 10 unless it measures timing itself; its stdout, after asserting it exited 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_"))}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout, preexec_fn=in_background if background else None)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return out.stdout


def _table(stdout: str) -> dict:
    """A report's markdown rows, by their first cell: the other cells."""
    return {cells[1]: cells[2:] for cells in ([c.strip() for c in line.split("|")]
                                              for line in stdout.splitlines() if line.startswith("| "))}


def _bench_smoke(part: str) -> str:
    """``bench.py --smoke`` in two halves that run side by side: the cold starts, and the rest."""
    return _run("bench.py", "--smoke", part, timeout=240).lower()


def test_benchmark_smoke_run_cold_start():
    assert "cold start" in _bench_smoke("--cold-only")


def test_benchmark_smoke_run():
    report = _bench_smoke("--no-cold")
    for row in ("warm overhead", "connections", "burst", "soak"):
        assert row in report, row


def test_scale_benchmark_smoke_run():
    """make scale at a tiny size: two instance processes per mode, a real redis-server for the redis mode."""
    stdout = _run("scale.py", "--instances", "2", "--modes", "fixed,adaptive,redis", "--uploads", "12", "--max-event", "4",
                  "--out", "-", timeout=240)
    rows = [line for line in stdout.splitlines() if line.startswith("| 2 ")]
    assert [row.split("|")[2].strip() for row in rows] == ["fixed", "adaptive", "redis"]
    for row in rows:
        cells = [c.strip() for c in row.split("|")]
        assert cells[3:6] == ["12", "12", "0"], row  # uploads, tasks created, created twice


def test_scale_model_smoke_run():
    """The virtual-time model runs the real pacer; it asserts itself that no upload is lost."""
    stdout = _run("scale_model.py", "--instances", "1,4", "--seeds", "1", "--uploads", "200")
    rows = [line.split("|")[1:3] for line in stdout.splitlines() if line.startswith(("| 1 ", "| 4 "))]
    assert [[c.strip() for c in r] for r in rows] == [["1", "adaptive"], ["1", "oracle"], ["4", "adaptive"],
                                                       ["4", "oracle"]]


def test_serve_benchmark_smoke_run():
    """benchmarks/serve_bench.py at tiny sizes: a real server, real bursts, a real watched folder."""
    stdout = _run("serve_bench.py", "--smoke", timeout=240)
    for row in ("warm request through `redraw serve`", "50 concurrent requests", "watch: file closed"):
        assert row in stdout, row


def test_followup_soak_smoke_run():
    """benchmarks/followup_soak.py at a tiny size: 20 uploads, 2 instance processes, faulty COS and VOD,
    sweeps SIGKILLed mid-way; every upload finished once and delivered, or said unrecorded."""
    stdout = _run("followup_soak.py", "--smoke", timeout=120)
    rows = _table(stdout)
    assert rows["tasks finished twice"][0] == "0"
    accounted = rows["uploads accounted for: finished / `task.recovered` only / `task.unrecorded` / missed"][0]
    finished, recovered, unrecorded, missed = (int(n.split()[0]) for n in accounted.split(" / "))
    # a sweep killed between a task's done record and its line: task.recovered says it, nothing is missed
    assert finished + recovered + unrecorded == 20 and missed == 0, accounted
    assert not rows["sweeps killed (SIGKILL) mid-way"][0].startswith("0 ")


def test_followup_benchmark_smoke_run():
    """benchmarks/followup_bench.py at tiny sizes: cold starts, a 12-task sweep, a 20 MiB delivery, all real."""
    stdout = _run("followup_bench.py", "--smoke", timeout=120)
    for row in ("cold start: development tree + COS SDK, follow-up on", "cold start ratio: ten upload rules / none",
                "tasks finished per second of sweep time", "throughput: function / bare", "importing qcloud_cos"):
        assert row in stdout, row


def test_notice_sim_smoke_run():
    """benchmarks/notice_sim.py at short horizons: the schedule's own code in simulated time, new and old."""
    stdout = _run("notice_sim.py", "--smoke", timeout=60, background=False)
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in stdout.splitlines()
            if line.startswith("| light") or line.startswith("| worst")]
    assert {(r[1].split()[0], r[2]) for r in rows} == {("honest", "new"), ("honest", "old"), ("silent", "new"),
                                                       ("silent", "old")}
    for row in rows:
        assert int(row[9]) <= 100, row  # DescribeTaskDetail in the busiest second


def test_notice_benchmark_smoke_run():
    """benchmarks/notice_bench.py --smoke: the real sweep in a timer-fired process against both emulators in
    processes of their own, its webhooks to a local receiver; every task noticed and its webhook arrived
    and verified, DescribeTaskDetail never over 100/s (else exit 2)."""
    stdout = _run("notice_bench.py", "--smoke", timeout=90, background=False)
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in stdout.splitlines()
            if line.startswith("| smoke")]
    delays = {row[2]: row for row in rows if len(row) == 13}
    assert set(delays) == {"task.finished line", "webhook arrival"}, rows
    for row in delays.values():
        done, total = row[3].split("/")
        assert done == total and int(total) > 0, row
    # the webhook arrives after the line that precedes its sending
    assert float(delays["webhook arrival"][7]) >= float(delays["task.finished line"][7]), rows
    [hooks] = [row for row in rows if len(row) == 7]
    tasks, received, verified, duplicates, missing = map(int, hooks[2:])
    assert received == verified >= tasks > 0 and missing == 0 and duplicates == received - tasks, hooks


def test_rules_benchmark_quick_run():
    """benchmarks/rules_bench.py --quick: matching and applying rules per record, and at a container's start."""
    stdout = _run("rules_bench.py", "--quick", "--out", "-", background=False)
    for row in ("RuleSet.match, 500 rules, key: no rule", "cos.plan_record, whole record, ten rules",
                "What ten rules add to a container's start"):
        assert row in stdout, row


def test_redraw_output_benchmark_smoke_run():
    """The emulator's ffmpeg output at a tiny size, alone and end to end through a presigned COS URL."""
    from media import ffmpeg_or_skip

    ffmpeg_or_skip()
    stdout = _run("redraw_output_bench.py", "--smoke", background=False)
    assert "| 2 s 320x240 |" in stdout


def test_webhook_soak_smoke_run():
    """benchmarks/webhook_soak.py at a tiny size: 10 tasks, a receiver that fails and goes down, a sweep
    killed after sending: every task's end accepted at least once, verified, duplicates only by webhook-id."""
    stdout = _run("webhook_soak.py", "--smoke", timeout=120)
    rows = _table(stdout)
    assert rows["tasks whose end reached the receiver (accepted, verified), of those the follow-up finished"][0] \
        == "10 of 10"
    assert rows["duplicates under another webhook-id"][0] == "0"
    assert rows["whole deliveries that did not verify (standardwebhooks)"][0] == "0"
