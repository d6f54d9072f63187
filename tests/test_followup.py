"""The follow-up over real HTTP: the function records each task in a COS bucket (the project's COS
emulator, real SDK signing), the timer sweep checks the VOD emulator's tasks and finishes each one
exactly once: one task.finished line, the receipt, and (with delivery) the output in the bucket."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from conftest import BUCKET, STATE, SUB_APP_ID, end_tasks
from redraw.tools import samples

TIMER = {"Type": "Timer", "TriggerName": "redraw-sweep", "Time": "2026-12-05T08:00:00Z", "Message": "sweep"}


def sweep(invoke, **context):
    return invoke(dict(TIMER), {"request_id": "sweep-1", "time_limit_in_ms": 20000, **context})


def upload(invoke, key="uploads/2026/clip.mp4"):
    out = invoke(samples.cos_event([key], bucket=BUCKET))
    assert out.error is None, out.error
    return out


def wait_ended(emulator):
    """The tasks VOD runs have ended (conftest.end_tasks: nothing waits)."""
    end_tasks(emulator)


def finisher_gone(cos, task_id):
    """As if the invocation that finished ``task_id`` had ended: its claims expired, its done record past
    ``finisher_gone_at``."""
    root = Path(cos.buckets[STATE])
    for key in cos.keys(STATE, f"redraw/claims/{task_id}/"):
        claim = root / key
        claim.write_text(json.dumps({**json.loads(claim.read_text(encoding="utf-8")), "expires": 0}))
    done = root / f"redraw/done/{task_id}.json"
    done.write_text(json.dumps({**json.loads(done.read_text(encoding="utf-8")), "finisher_gone_at": 0}))


def test_an_upload_is_recorded_with_a_readable_receipt_and_a_pending_record(invoke, follow, cos):
    out = upload(invoke)
    [result] = out.result["results"]
    assert result["status"] == "submitted" and result["recorded"] is True
    receipt = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/2026/clip.mp4.json"))
    assert receipt["state"] == "pending" and receipt["task_id"] == result["task_id"]
    assert receipt["session_id"] == result["session_id"] and receipt["sub_app_id"] == SUB_APP_ID
    assert receipt["source"] == {"bucket": BUCKET, "region": "ap-guangzhou", "key": "uploads/2026/clip.mp4"}
    assert receipt["trigger"] == "cos" and receipt["created_at"].endswith("Z")
    [pending] = cos.keys(STATE, "redraw/pending/")
    assert pending.endswith(f"-{result['task_id']}.json")
    # two COS requests for the record, and the upload still made exactly one VOD call
    puts = [c for c in cos.calls if c["method"] == "PUT"]
    assert len(puts) == 2


def test_the_sweep_finishes_each_task_once_with_one_line(invoke, follow, cos, emulator):
    keys = [f"uploads/a{i}.mp4" for i in range(3)]
    out = invoke(samples.cos_event(keys, bucket=BUCKET))
    tasks = {r["key"]: r for r in out.result["results"]}
    assert all(r["recorded"] for r in tasks.values())
    first = sweep(invoke)  # the tasks are still running: checked, nothing finished
    assert first.error is None, first.error
    assert first.result["sweep"]["running"] == 3 and not first.lines("task.finished")
    wait_ended(emulator)
    second = sweep(invoke)
    lines = second.lines("task.finished")
    assert sorted(line["task_id"] for line in lines) == sorted(r["task_id"] for r in tasks.values())
    for line in lines:
        task = next(r for r in tasks.values() if r["task_id"] == line["task_id"])
        assert line["outcome"] == "succeeded" and line["session_id"] == task["session_id"]
        assert line["source_bucket"] == BUCKET and line["source_key"] == task["key"]
        assert json.loads(line["session_context"])["key"] == task["key"]  # VOD's string, as redraw sent it
        assert "?" not in (line["output_url"] or "") and line["duration_s"] >= 0
        receipt = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/{task['key']}.json"))
        assert receipt["state"] == "succeeded" and receipt["output_url"] == line["output_url"]
        assert receipt["finished_by"] == line["request_id"] == "sweep-1"
    assert cos.keys(STATE, "redraw/pending/") == []
    third = sweep(invoke)  # nothing left: no second line, no VOD call
    assert not third.lines("task.finished") and third.result["sweep"]["pending"] == 0


def test_a_failed_redraw_ends_failed_with_its_error(invoke, follow, cos, emulator):
    body = samples.redraw_body("https://media-1250000000.cos.ap-guangzhou.myqcloud.com/uploads/abort-me.mp4")
    out = invoke(body)
    assert out.result["Recorded"] is True
    wait_ended(emulator)
    [line] = sweep(invoke).lines("task.finished")
    assert line["outcome"] == "failed" and line["error_code"] and line["message"]
    assert line["trigger"] == "direct" and line["delivered_to"] is None
    receipt = json.loads(cos.read(STATE, f"redraw/tasks/{out.result['TaskId']}.json"))
    assert receipt["state"] == "failed" and receipt["error_code"] == line["error_code"]


@pytest.mark.slow
def test_overlapping_sweeps_log_each_task_once(invoke, follow, cos, emulator, capsys):
    from handler import main_handler

    out = invoke(samples.cos_event([f"uploads/o{i}.mp4" for i in range(8)], bucket=BUCKET))
    assert all(r["recorded"] for r in out.result["results"])
    wait_ended(emulator)
    capsys.readouterr()
    errors = []

    def run(n):
        try:
            main_handler(dict(TIMER), {"request_id": f"sweep-{n}", "time_limit_in_ms": 20000})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finished = [line["task_id"] for line in logs if line["event"] == "task.finished"]
    assert not errors
    assert sorted(finished) == sorted(r["task_id"] for r in out.result["results"])  # each exactly once
    assert cos.keys(STATE, "redraw/pending/") == []


def test_a_timer_event_with_the_follow_up_off_names_the_setting(invoke, env):
    out = invoke(dict(TIMER))
    assert out.error is not None and "REDRAW_FOLLOW_UP" in str(out.error)
    [line] = out.lines("event.rejected")
    assert line["trigger"] == "timer" and "REDRAW_FOLLOW_UP" in line["reason"]


def test_a_timer_event_with_an_unexpected_message_is_refused(invoke, follow):
    out = invoke({**TIMER, "Message": "rm -rf"})
    assert out.error is not None and "Message" in str(out.error)
    assert "rm -rf" not in str(out.error)


def test_a_record_that_is_not_redraws_is_named_and_the_sweep_goes_on(invoke, follow, cos, emulator):
    out = upload(invoke)
    task_id = out.result["results"][0]["task_id"]
    Path(cos.buckets[STATE], "redraw/pending/junk.txt").write_text("hello")
    Path(cos.buckets[STATE], "redraw/pending/1764057600-bogus.json").write_text("{not json")
    wait_ended(emulator)
    done = sweep(invoke)
    assert done.error is None
    invalid = done.lines("task.record_invalid")
    assert {line["record"] for line in invalid} == {"redraw/pending/junk.txt", "redraw/pending/1764057600-bogus.json"}
    assert [line["task_id"] for line in done.lines("task.finished")] == [task_id]


def test_recording_that_cannot_be_written_is_said_with_the_task_id(invoke, follow, cos):
    cos.inject(*["AccessDenied"] * 20, method="PUT")
    out = upload(invoke)
    [result] = out.result["results"]
    assert result["status"] == "submitted" and result["recorded"] is False
    [line] = out.lines("task.unrecorded")
    assert line["task_id"] == result["task_id"] and "cos:PutObject" in line["reason"]
    assert line["level"] == "error"


def test_a_task_vod_no_longer_knows_ends_with_an_error_line(invoke, follow, cos, emulator):
    out = upload(invoke)
    task_id = out.result["results"][0]["task_id"]
    emulator.reset()  # VOD forgot it (older than 3 days)
    [key] = cos.keys(STATE, "redraw/pending/")
    old = Path(cos.buckets[STATE], key)
    old.rename(old.with_name(f"{int(time.time()) - 4 * 86400}-{task_id}.json"))
    done = sweep(invoke)
    [line] = done.lines("task.lost")
    assert line["task_id"] == task_id and line["level"] == "error"
    assert not done.lines("task.finished") and cos.keys(STATE, "redraw/pending/") == []
    assert not sweep(invoke).lines("task.lost")  # not retried for ever


def test_a_task_recorded_by_hand_as_the_readme_says_is_followed(invoke, follow, cos, emulator):
    out = invoke(samples.redraw_body("https://example.com/in/by-hand.mp4"))
    task_id = out.result["TaskId"]
    for key in cos.keys(STATE, "redraw/"):  # as if recording had failed: nothing in the bucket
        Path(cos.buckets[STATE], key).unlink()
    by_hand = {"task_id": task_id, "sub_app_id": SUB_APP_ID}
    Path(cos.buckets[STATE], "redraw/pending").mkdir(parents=True, exist_ok=True)
    Path(cos.buckets[STATE], f"redraw/pending/{int(time.time())}-{task_id}.json").write_text(json.dumps(by_hand))
    wait_ended(emulator)
    [line] = sweep(invoke).lines("task.finished")
    assert line["task_id"] == task_id and line["outcome"] == "succeeded"
    assert line["session_id"] is None and line["output_url"] and "?" not in line["output_url"]


def test_a_cos_answer_cut_short_is_retried_not_read_as_the_object(invoke, follow, cos, emulator):
    """COS promised the whole body (Content-Length) and sent half: a truncated pending record is not
    'not redraw's', and a truncated claim is not 'expired' (the sweep holding it is still at work)."""
    out = upload(invoke)
    task_id = out.result["results"][0]["task_id"]
    wait_ended(emulator)
    held = {"task_id": task_id, "claimed_at": "2026-12-05T08:00:00Z", "expires": time.time() + 600,
            "request_id": "another-sweep"}
    claim = Path(cos.buckets[STATE], f"redraw/claims/{task_id}/000000")
    claim.parent.mkdir(parents=True)
    claim.write_text(json.dumps(held, indent=2))
    cos.inject("cut", method="GET", key_prefix="redraw/pending/")
    cos.inject("cut", method="GET", key_prefix="redraw/claims/")
    done = sweep(invoke)
    assert done.error is None, done.error
    assert not done.lines("task.record_invalid") and not done.lines("task.check_failed")
    assert not done.lines("task.finished")  # another sweep holds the task: not finished here
    assert done.result["sweep"]["claimed_elsewhere"] == 1 and cos.pending_faults == []
    claim.unlink()  # that sweep went away without finishing: the next one finishes the task, once
    [line] = sweep(invoke).lines("task.finished")
    assert line["task_id"] == task_id


def test_a_task_whose_create_answer_was_lost_is_said_unrecorded(invoke, follow, cos, emulator):
    """VOD created the task and the answer (its TaskId) was lost; the retry gets 'SessionId already
    used', without the TaskId. The task cannot be followed: an error line names its SessionId and key."""
    emulator.inject("drop_after_accept")
    event = samples.cos_event(["uploads/2026/clip.mp4"], bucket=BUCKET)
    out = invoke(event)
    [result] = out.result["results"]
    assert result["status"] == "duplicate" and result["task_id"] is None and result["recorded"] is False
    [line] = out.lines("task.unrecorded")
    assert line["level"] == "error" and line["task_id"] is None and line["session_id"] == result["session_id"]
    assert line["error"] == "TaskIdUnknown" and line["source_key"] == "uploads/2026/clip.mp4"
    assert "SessionId" in line["fix"]
    [task] = emulator.tasks.values()
    assert task["SessionId"] == result["session_id"] and cos.keys(STATE, "redraw/pending/") == []
    again = invoke(event)  # a redelivery: said once, not on every delivery
    assert again.error is None and not again.lines("task.unrecorded") and emulator.task_count == 1


def test_a_claim_let_go_is_never_taken_twice(invoke, follow, cos, emulator):
    """Sweep A holds a task's claim and lets it go (its delivery failed). Sweep B had listed the claims
    just before; sweep C lists them just after. Each takes the next claim: at most one of them may get it
    (two claims at once are two finishes: two task.finished lines, two deliveries)."""
    from redraw import app, logs
    from redraw.followup.sweep import Sweep
    from redraw.retries import Deadline

    out = upload(invoke)
    task_id = out.result["results"][0]["task_id"]
    rt = app.runtime()
    log = logs.get_logger()
    a, b, c = (Sweep(rt, Deadline(20000, 0), log) for _ in range(3))
    held = a._claim(task_id)
    assert held is not None
    got = {}

    def claim(name, sweep):
        got[name] = sweep._claim(task_id)

    def listed_slowly(name, sweep, seconds):
        """The sweep's list of claims is taken now and answered ``seconds`` later (a slow COS)."""
        cos.inject(f"slow:{seconds}", method="GET")
        thread = threading.Thread(target=claim, args=(name, sweep))
        thread.start()
        while cos.pending_faults:
            time.sleep(0.01)
        time.sleep(0.05)
        return thread

    late_b = listed_slowly("b", b, 0.6)   # B's list: A's claim
    a._release(task_id, held)             # A lets the task go
    late_c = listed_slowly("c", c, 0.9)   # C's list: after the release; answered after B has claimed
    late_b.join()
    late_c.join()
    assert [name for name in ("b", "c") if got[name]] in (["b"], ["c"])


def test_a_tidy_cut_short_is_finished_by_the_next_sweep(invoke, follow, cos, emulator):
    """The task is finished (done record, line); removing its claim fails. The pending record stays, so
    the next sweep tidies again, without a second line: no claim is left behind for good."""
    out = upload(invoke)
    task_id = out.result["results"][0]["task_id"]
    wait_ended(emulator)
    cos.inject("AccessDenied", method="DELETE", key_prefix="redraw/claims/")
    first = sweep(invoke)
    assert [line["task_id"] for line in first.lines("task.finished")] == [task_id]
    assert cos.keys(STATE, "redraw/pending/") and cos.keys(STATE, f"redraw/claims/{task_id}/")
    early = sweep(invoke)  # the finisher's invocation may still be running: it is left to tidy
    assert "tidied" not in early.result["sweep"] and cos.keys(STATE, "redraw/pending/")
    finisher_gone(cos, task_id)
    second = sweep(invoke)  # that invocation has ended: tidied, and said (its line may be missing)
    assert not second.lines("task.finished") and second.result["sweep"]["tidied"] == 1
    assert [line["task_id"] for line in second.lines("task.recovered")] == [task_id]
    assert cos.keys(STATE, "redraw/pending/") == [] and cos.keys(STATE, "redraw/claims/") == []


@pytest.mark.slow
def test_the_done_record_and_its_line_are_never_left_to_the_time_limit(invoke, follow, cos, emulator, env):
    """SCF ends an invocation at its time limit. A sweep whose delivery ends too close to it writes no done
    record (a kill between that record and the line would lose the line): the next sweep finishes the
    task, without delivering again."""
    env.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    env.setenv("VOD_HTTP_TIMEOUT", "1")
    out = upload(invoke)
    task_id = out.result["results"][0]["task_id"]
    wait_ended(emulator)
    emulator.inject_output("slow:3.6")  # the download ends about 0.9 s before this sweep's deadline
    late = sweep(invoke, time_limit_in_ms=6000)
    assert not late.lines("task.finished") and late.result["sweep"]["left"] == 1
    assert cos.exists(BUCKET, "redrawn/uploads/2026/clip.mp4")
    assert not cos.exists(STATE, f"redraw/done/{task_id}.json")
    [line] = sweep(invoke).lines("task.finished")
    assert line["task_id"] == task_id and line["delivered_to"] == f"cos://{BUCKET}/redrawn/uploads/2026/clip.mp4"
    writes = [c for c in cos.calls if c["method"] == "PUT" and c["key"].startswith("redrawn/")]
    assert len(writes) == 1


def test_a_finisher_that_stopped_before_tidying_is_recovered_with_a_line_of_its_own(invoke, follow, cos, emulator):
    """The done record is written, then the sweep stops (killed) before its line or its tidying: the next
    sweep, once that one cannot be running any more, logs task.recovered with the same fields."""
    out = upload(invoke)
    task_id = out.result["results"][0]["task_id"]
    wait_ended(emulator)
    cos.inject(*["AccessDenied"] * 40, method="DELETE", key_prefix="redraw/pending/")  # tidying cut short
    first = sweep(invoke)
    assert [line["task_id"] for line in first.lines("task.finished")] == [task_id]
    second = sweep(invoke)  # the finisher may still be at work: nothing said, nothing twice
    assert not second.lines("task.finished") and not second.lines("task.recovered")
    cos.clear_faults()
    finisher_gone(cos, task_id)  # its invocation has ended
    third = sweep(invoke)
    [line] = third.lines("task.recovered")
    assert line["task_id"] == task_id and line["outcome"] == "succeeded" and line["level"] == "warning"
    assert line["source_key"] == "uploads/2026/clip.mp4" and line["finished_by"] == "sweep-1"
    assert not third.lines("task.finished") and cos.keys(STATE, "redraw/pending/") == []
    assert not sweep(invoke).lines("task.recovered")
