"""The sweep's schedule over real HTTP (VOD and COS emulators, real signing): a sweep that keeps working
through its window checks each task just after the end its Progress predicts, falls back to its age
when Progress says nothing, and stays within its DescribeTaskDetail budget. Times are compressed:
REDRAW_CHECK_MIN_GAP_S 0.1 (2 s in production), tasks of a few seconds."""
from __future__ import annotations

import json

import pytest

from conftest import BUCKET, STATE
from redraw.tools import samples

TIMER = {"Type": "Timer", "TriggerName": "redraw-sweep", "Time": "2026-12-05T08:00:00Z", "Message": "sweep"}
DESCRIBE = "DescribeTaskDetail"


@pytest.fixture
def window(follow, emulator):
    follow.setenv("REDRAW_POLL_MAX_INTERVAL_S", "30")
    follow.setenv("REDRAW_CHECK_MIN_GAP_S", "0.1")
    follow.setenv("REDRAW_SWEEP_WINDOW_S", "15")
    emulator.task_duration = 1.5
    return follow


def upload(invoke, n=1):
    out = invoke(samples.cos_event([f"uploads/s{i}.mp4" for i in range(n)], bucket=BUCKET))
    assert out.error is None, out.error
    return [r["task_id"] for r in out.result["results"]]


def sweep(invoke):
    out = invoke(dict(TIMER), {"request_id": "sweep-w", "time_limit_in_ms": 30000})
    assert out.error is None, out.error
    return out


def describes(emulator, task_id):
    """(time, Status, Progress) of each DescribeTaskDetail of the task, as the emulator's model answered."""
    task = emulator.tasks[task_id]
    calls = [c for c in emulator.calls if c["action"] == DESCRIBE and (c["params"] or {}).get("TaskId") == task_id]
    # the time the answer describes (a request is recorded when it arrives, answered a moment later)
    return ([(c["answered"], *emulator.state_at(task, c["answered"])[:2]) for c in calls if "answered" in c],
            emulator.state_at(task, 0)[3])


def test_a_task_is_checked_just_after_the_end_its_progress_predicts(invoke, window, emulator, cos):
    [task_id] = upload(invoke)
    out = sweep(invoke)  # works until the task is finished and nothing is pending any more
    [line] = out.lines("task.finished")
    assert line["task_id"] == task_id and out.result["sweep"]["pending"] == 0
    checks, finish = describes(emulator, task_id)
    after = [t for t, status, _ in checks if status == "FINISH"]
    assert len(after) == 1  # seen ended once, then finished
    assert 0 <= after[0] - finish <= 0.5, after[0] - finish  # just after the end (0.1 s gap + HTTP)
    processing = [(t, p) for t, status, p in checks if status == "PROCESSING"]
    assert processing and any(p > 0 for _, p in processing)  # it looked at Progress on the way
    # not a poll every 0.1 s for 1.5 s (15 checks): a handful, half of them in the last third
    assert len(checks) <= 8, checks
    assert sum(1 for t, _, _ in checks if t >= finish - 0.5) >= len(checks) // 2
    record = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/s0.mp4.json"))
    assert record["state"] == "succeeded"


def test_progress_that_says_nothing_falls_back_to_the_age_and_still_notices_the_end(invoke, window, emulator):
    emulator.progress_mode = "silent"
    [task_id] = upload(invoke)
    out = sweep(invoke)
    assert [line["task_id"] for line in out.lines("task.finished")] == [task_id]
    checks, finish = describes(emulator, task_id)
    assert all(p == 0 for _, status, p in checks if status == "PROCESSING")
    after = [t for t, status, _ in checks if status == "FINISH"]
    # by age: a share of the task's age at light load (0.2 s here), never the old ladder's (its age)
    assert after and after[0] - finish <= 0.6, after[0] - finish


@pytest.mark.parametrize("mode", ["missing", "backwards", "over", "stall"])
def test_faulty_progress_never_stalls_the_schedule(invoke, window, emulator, mode):
    emulator.progress_mode = mode
    emulator.fault_seed = 7
    task_ids = upload(invoke, 3)
    out = sweep(invoke)
    assert sorted(line["task_id"] for line in out.lines("task.finished")) == sorted(task_ids)
    for task_id in task_ids:
        checks, finish = describes(emulator, task_id)
        after = [t for t, status, _ in checks if status == "FINISH"]
        assert after and after[0] - finish <= 0.8, (mode, after[0] - finish)


def test_the_sweep_stays_within_its_describe_budget(invoke, window, emulator):
    """12 tasks, a budget of 5/s: the emulator (limit 6/s) never refuses, and every task is finished. The
    headroom is serverless.yml's (90 of 100): on a loaded machine paced sends can arrive bunched."""
    window.setenv("REDRAW_DESCRIBE_RPS", "5")
    emulator.describe_rps = 6
    emulator.task_duration = 1.0
    task_ids = upload(invoke, 12)
    out = sweep(invoke)
    assert sorted(line["task_id"] for line in out.lines("task.finished")) == sorted(task_ids)
    assert emulator.describe_limit_hits == 0
    times = sorted(c["time"] for c in emulator.calls if c["action"] == DESCRIBE)
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 6


def test_an_invocation_too_short_for_the_window_still_sweeps_once(invoke, window, emulator):
    """REDRAW_SWEEP_WINDOW_S set, but the invocation's time is shorter than what the window keeps in
    reserve (VOD_HTTP_TIMEOUT + 5 s): one pass, every task that is due checked."""
    window.setenv("REDRAW_POLL_MAX_INTERVAL_S", "0")
    [task_id] = upload(invoke)
    out = invoke(dict(TIMER), {"request_id": "sweep-short", "time_limit_in_ms": 8000})
    assert out.error is None, out.error
    assert out.result["sweep"]["checked"] == 1 and "passes" not in out.result["sweep"]
    assert describes(emulator, task_id)[0]
