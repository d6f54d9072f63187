"""The sweep's pure rules: when a task is due, and how a DescribeTaskDetail answer reads."""
from __future__ import annotations

import pytest

from redraw.followup.schedule import old_ladder_due as due
from redraw.followup.sweep import BadAnswer, read_detail, without_query


def answer(status="FINISH", **task):
    return {"TaskType": "AigcVideoRedrawTask", "Status": status,
            "AigcVideoRedrawTask": {"TaskId": "t", "Status": status, **task}}


def test_checks_come_at_growing_intervals_up_to_the_maximum():
    created = 1000.0
    assert due(created + 1, created, created, 300)               # first sweep after creation
    assert not due(created + 59, created, created + 30, 300)     # checked at 30 s of age: next at 60
    assert due(created + 60, created, created + 30, 300)
    assert not due(created + 3000 + 299, created, created + 3000, 300)  # old: every 300 s
    assert due(created + 3000 + 300, created, created + 3000, 300)
    assert due(created + 5, created, created + 4, 0)              # 0: every sweep


def test_a_running_task_reads_as_not_ended():
    assert read_detail(answer("PROCESSING", Progress=40)) is None
    assert read_detail(answer("WAITING")) is None


def test_success_failure_and_abort():
    ok = read_detail(answer(ErrCode=0, Output={"FileInfo": {"FileUrl": "https://x/o.mp4?sign=s", "FileType": "mp4"}}))
    assert ok is not None and ok.outcome == "succeeded" and without_query(ok.file_url) == "https://x/o.mp4"
    failed = read_detail(answer(ErrCode=70000, ErrCodeExt="InternalError", Message="boom", Output=None))
    assert failed is not None and failed.outcome == "failed" and failed.error_code == "InternalError"
    aborted = read_detail(answer("ABORTED", ErrCode=0))
    assert aborted is not None and aborted.outcome == "failed" and aborted.error_code == "ABORTED"
    empty = read_detail(answer(ErrCode=0, Output={"FileInfo": {}}))
    assert empty is not None and empty.outcome == "failed" and empty.error_code == "NoOutput"


@pytest.mark.parametrize("response, named", [
    ("not a dict", "Response"),
    ({"TaskType": "Procedure", "Status": "FINISH"}, "AigcVideoRedrawTask"),
    ({"AigcVideoRedrawTask": {"TaskId": "t"}}, "Status"),
    (answer(ErrCode="70000"), "ErrCode"),
])
def test_an_answer_without_the_expected_fields_names_the_field(response, named):
    with pytest.raises(BadAnswer) as caught:
        read_detail(response)
    assert named in caught.value.message
