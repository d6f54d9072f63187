"""Streamed uploads (``CosStore.upload_stream``, what delivery uses) hold one part at a time (parts made
small here so the test runs in a blink), and a multipart output is delivered by the sweep: real SDK, both emulators."""
from __future__ import annotations

import json

import pytest

from redraw import cosclient
from redraw.config import load_settings
from redraw.followup import delivery
from redraw.retries import Deadline
from redraw.tools import samples
from conftest import BUCKET, STATE, end_tasks
from test_followup import sweep

PART = 64 * 1024


@pytest.fixture
def cos(cos, monkeypatch):
    """conftest's COS emulator, with parts this small (the emulator's minimum too)."""
    monkeypatch.setattr(cosclient, "PART_SIZE", PART)
    monkeypatch.setattr(delivery, "PART_SIZE", PART)
    cos.min_part_size = PART
    return cos


@pytest.fixture
def store(follow):
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
    emulator.output_bytes = 2 * PART + 1000
    out = invoke(samples.cos_event(["uploads/big.mp4"], bucket=BUCKET))
    assert out.result["results"][0]["recorded"] is True
    end_tasks(emulator)
    done = sweep(invoke)
    [line] = done.lines("task.finished")
    assert line["outcome"] == "succeeded" and line["delivered_to"] == f"cos://{BUCKET}/redrawn/uploads/big.mp4"
    assert len(cos.read(BUCKET, "redrawn/uploads/big.mp4")) == 2 * PART + 1000
    assert _uploaded_parts(cos) == 3
    receipt = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/big.mp4.json"))
    assert receipt["state"] == "succeeded" and receipt["delivered_to"] == line["delivered_to"]
