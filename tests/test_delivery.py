"""Delivery over real HTTP: a succeeded task's output, served by the VOD emulator at a signed
expiring URL, streamed by the sweep into the COS emulator; never twice, never half-written."""
from __future__ import annotations

import json
import time

import pytest

from redraw.cosclient import PART_SIZE
from redraw.tools import samples
from redraw.tools.emulator import sample_mp4
from conftest import BUCKET, STATE
from test_followup import sweep, upload, wait_ended

KEY = "uploads/2026/clip.mp4"
TARGET = f"redrawn/{KEY}"


@pytest.fixture
def deliver(follow, env):
    env.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    return env


def finished(out):
    [line] = out.lines("task.finished")
    return line


def no_multipart_left(cos, bucket):
    """Nothing half-written: no object under redrawn/ and no multipart upload left open."""
    return not cos.keys(bucket, "redrawn/") and not list((cos.buckets[bucket] / ".cos").glob("mpu/*/*"))


def test_an_uploads_redrawn_video_lands_beside_it_with_its_task_named(invoke, deliver, cos, emulator):
    [result] = upload(invoke, KEY).result["results"]
    wait_ended(emulator)
    line = finished(sweep(invoke))
    assert line["outcome"] == "succeeded" and line["delivered_to"] == f"cos://{BUCKET}/{TARGET}"
    assert cos.read(BUCKET, TARGET) == sample_mp4()  # the real MP4 VOD served
    meta = cos.metadata(BUCKET, TARGET)
    assert meta["x-cos-meta-redraw-task-id"] == result["task_id"]
    assert meta["x-cos-meta-redraw-session-id"] == result["session_id"]
    receipt = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/{KEY}.json"))
    assert receipt["delivered_to"] == line["delivered_to"] and "sign=" not in json.dumps(receipt)


def test_the_delivered_object_does_not_start_a_new_task(invoke, deliver, cos, emulator):
    upload(invoke, KEY)
    wait_ended(emulator)
    sweep(invoke)
    before = emulator.task_count
    out = invoke(samples.cos_event([TARGET], bucket=BUCKET))  # COS fires for the delivered object
    [result] = out.result["results"]
    assert result["status"] == "skipped" and "REDRAW_DELIVER_PREFIX" in result["reason"]
    assert emulator.task_count == before


def test_other_triggers_deliver_into_the_state_bucket_by_task_id(invoke, deliver, cos, emulator):
    out = invoke(samples.redraw_body("https://example.com/in/clip.mp4"))
    task_id = out.result["TaskId"]
    wait_ended(emulator)
    line = finished(sweep(invoke))
    assert line["delivered_to"] == f"cos://{STATE}/redrawn/{task_id}.mp4"
    assert cos.read(STATE, f"redrawn/{task_id}.mp4") == sample_mp4()


def test_a_download_cut_off_leaves_nothing_visible_and_the_next_sweep_delivers_once(invoke, deliver, cos,
                                                                                      emulator):
    upload(invoke, KEY)
    wait_ended(emulator)
    emulator.inject_output("cut")
    first = sweep(invoke)
    assert not first.lines("task.finished")
    [retry] = first.lines("task.delivery_failed")
    assert retry["outcome"] == "retry" and "cut off" in retry["reason"]
    assert no_multipart_left(cos, BUCKET)
    assert cos.keys(STATE, "redraw/pending/")  # still pending
    second = sweep(invoke)
    assert finished(second)["delivered_to"] == f"cos://{BUCKET}/{TARGET}"
    assert cos.read(BUCKET, TARGET) == sample_mp4()
    assert not sweep(invoke).lines("task.finished")


def test_an_output_that_expired_before_delivery_fails_the_task(invoke, deliver, cos, emulator):
    [result] = upload(invoke, KEY).result["results"]
    wait_ended(emulator)
    emulator.expire_output(result["task_id"])
    line = finished(sweep(invoke))
    assert line["outcome"] == "failed" and line["error_code"] == "OutputExpired"
    assert "expired" in line["message"] and line["delivered_to"] is None
    assert not cos.keys(BUCKET, "redrawn/")


def test_cos_failing_during_the_sweep_keeps_the_task_pending_then_finishes_it_once(invoke, deliver, cos,
                                                                                     emulator):
    upload(invoke, KEY)
    wait_ended(emulator)
    cos.inject(*["http503"] * 200, key_prefix="redraw/claims/")
    first = sweep(invoke, time_limit_in_ms=8000)
    assert not first.lines("task.finished")
    assert first.lines("task.check_failed")[0]["outcome"] == "retry"
    cos.clear_faults()
    assert finished(sweep(invoke))["outcome"] == "succeeded"
    assert not sweep(invoke).lines("task.finished")


def test_cos_refusing_names_the_missing_permission(invoke, deliver, cos, emulator):
    upload(invoke, KEY)
    wait_ended(emulator)
    cos.inject(*["AccessDenied"] * 50, key_prefix="redrawn/")
    out = sweep(invoke)
    assert not out.lines("task.finished")
    reasons = " ".join(line["reason"] for line in out.lines("task.delivery_failed") + out.lines("task.check_failed"))
    assert "cos:" in reasons and "redrawn/" in reasons
    assert cos.keys(STATE, "redraw/pending/")


def test_a_sweep_that_stopped_after_delivering_does_not_deliver_twice(invoke, deliver, cos, emulator):
    upload(invoke, KEY)
    wait_ended(emulator)
    cos.inject(*["AccessDenied"] * 50, method="PUT", key_prefix="redraw/done/")  # delivered, but cannot say so
    first = sweep(invoke)
    assert not first.lines("task.finished") and cos.exists(BUCKET, TARGET)
    cos.clear_faults()
    cos.reset()
    line = finished(sweep(invoke))
    assert line["delivered_to"] == f"cos://{BUCKET}/{TARGET}"
    writes = [c for c in cos.calls if c["key"] == TARGET and c["method"] in ("PUT", "POST")]
    assert writes == []  # found already delivered (its metadata names the task): not copied again


def test_a_large_output_is_streamed_in_parts(invoke, deliver, cos, emulator):
    emulator.output_bytes = 2 * PART_SIZE + 12345
    upload(invoke, KEY)
    wait_ended(emulator)
    line = finished(sweep(invoke, time_limit_in_ms=60000))
    assert line["delivered_to"] == f"cos://{BUCKET}/{TARGET}"
    assert (cos.buckets[BUCKET] / TARGET).stat().st_size == 2 * PART_SIZE + 12345
    parts = [c for c in cos.calls if c["key"] == TARGET and c["method"] == "PUT"]
    assert len(parts) == 3  # three parts of one multipart upload, then one completion
    assert [c for c in cos.calls if c["key"] == TARGET and c["method"] == "POST"]


def test_an_instance_streams_at_most_two_deliveries_at_once(invoke, deliver, cos, emulator):
    """Memory: each delivery holds one 8 MB part, so an instance runs two at once (16 MB), not one per
    sweep thread. Four outputs that each take 1 s to start arrive in two rounds, all delivered once."""
    keys = [f"uploads/m{i}.mp4" for i in range(4)]
    invoke(samples.cos_event(keys, bucket=BUCKET))
    wait_ended(emulator)
    emulator.inject_output(*["slow:1"] * 4)
    started = time.monotonic()
    out = sweep(invoke)
    took = time.monotonic() - started
    assert sorted(line["source_key"] for line in out.lines("task.finished")) == keys
    assert took >= 2.0, f"{took:.2f} s: more than two outputs were streamed at once"
    assert sorted(cos.keys(BUCKET, "redrawn/")) == [f"redrawn/{k}" for k in keys]
