"""Streamed uploads (``CosStore.upload_stream``, what delivery uses) hold one part at a time (parts made
small here so the test runs in a blink), and a multipart output is delivered by the sweep: real SDK, both emulators."""
from __future__ import annotations

import json
import time

import pytest

from redraw import cosclient
from redraw.config import load_settings
from redraw.followup import delivery
from redraw.retries import Deadline
from redraw.tools import samples
from redraw.tools.cos_emulator import CosEmulator

BUCKET = "media-1250000000"
STATE = "redraw-state-1250000000"
PART = 64 * 1024
TIMER = {"Type": "Timer", "TriggerName": "redraw-sweep", "Time": "2026-12-05T08:00:00Z", "Message": "sweep"}


@pytest.fixture
def cos(tmp_path, monkeypatch):
    monkeypatch.setattr(cosclient, "PART_SIZE", PART)
    monkeypatch.setattr(delivery, "PART_SIZE", PART)
    emu = CosEmulator(root=tmp_path / "cos", min_part_size=PART)
    emu.add_bucket(BUCKET)
    emu.add_bucket(STATE)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def store(env, cos):
    env.setenv("REDRAW_FOLLOW_UP", "true")
    env.setenv("REDRAW_STATE_BUCKET", STATE)
    env.setenv("TENCENTCLOUD_REGION", "ap-guangzhou")
    env.setenv("REDRAW_COS_ENDPOINT", cos.url)
    return cosclient.CosStore(load_settings())


def _uploaded_parts(cos) -> int:
    return sum(1 for c in cos.calls if c["method"] == "PUT" and "partnumber" in c["query"] and c["status"] == 200)


@pytest.mark.parametrize("sizes", [[PART, PART, PART // 3], [PART, PART], [PART]])
def test_each_full_part_is_uploaded_before_the_next_is_read(store, cos, sizes):
    """One part in memory at a time: part n+1 is only asked for once part n is in COS."""
    data = [bytes([65 + i]) * size for i, size in enumerate(sizes)]

    def parts():
        for i, chunk in enumerate(data):
            assert _uploaded_parts(cos) == i, f"part {i + 1} read while {i - _uploaded_parts(cos)} earlier ones wait"
            yield chunk
    assert store.upload_stream(BUCKET, "ap-guangzhou", "out/clip.mp4", parts(), Deadline(20000, 0),
                               content_type="video/mp4", metadata={"x-cos-meta-redraw-task-id": "t-1"})
    assert cos.read(BUCKET, "out/clip.mp4") == b"".join(data)
    assert cos.metadata(BUCKET, "out/clip.mp4")["x-cos-meta-redraw-task-id"] == "t-1"
    assert _uploaded_parts(cos) == len(sizes)  # multipart, even for one full part


@pytest.mark.parametrize("size", [0, 10, PART - 1])
def test_a_short_output_is_one_put(store, cos, size):
    assert store.upload_stream(BUCKET, "ap-guangzhou", "out/small.mp4", iter([b"x" * size] if size else []),
                               Deadline(20000, 0), content_type="video/mp4", metadata={})
    assert cos.read(BUCKET, "out/small.mp4") == b"x" * size
    assert [c["operation"] for c in cos.calls] == ["PutObject"]


def test_a_multipart_upload_that_exists_is_not_overwritten_with_create_only(store, cos):
    cos.add_bucket(BUCKET)
    (cos.buckets[BUCKET] / "out").mkdir(exist_ok=True)
    (cos.buckets[BUCKET] / "out" / "taken.mp4").write_bytes(b"original")
    assert store.upload_stream(BUCKET, "ap-guangzhou", "out/taken.mp4", iter([b"a" * PART, b"b"]), Deadline(20000, 0),
                               content_type="video/mp4", metadata={}, create_only=True) is False
    assert cos.read(BUCKET, "out/taken.mp4") == b"original"


def test_the_sweep_delivers_a_multipart_output_beside_the_upload(invoke, store, cos, env, emulator):
    env.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    env.setenv("REDRAW_POLL_MAX_INTERVAL_S", "0")
    emulator.task_duration = 0.2
    emulator.output_bytes = 2 * PART + 1000
    out = invoke(samples.cos_event(["uploads/big.mp4"], bucket=BUCKET))
    assert out.result["results"][0]["recorded"] is True
    time.sleep(0.3)
    done = invoke(dict(TIMER), {"request_id": "sweep-1", "time_limit_in_ms": 20000})
    [line] = done.lines("task.finished")
    assert line["outcome"] == "succeeded" and line["delivered_to"] == f"cos://{BUCKET}/redrawn/uploads/big.mp4"
    assert len(cos.read(BUCKET, "redrawn/uploads/big.mp4")) == 2 * PART + 1000
    assert _uploaded_parts(cos) == 3
    receipt = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/big.mp4.json"))
    assert receipt["state"] == "succeeded" and receipt["delivered_to"] == line["delivered_to"]
