"""CKafka batches through main_handler: one task per message, nothing created twice."""
from __future__ import annotations

import json

import pytest

from conftest import load_event
from redraw.errors import RetryableFailuresError
from redraw.sources import ckafka
from redraw.tools.samples import ckafka_event, redraw_body

BASE = "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/batch/"


def _statuses(out):
    return [r["status"] for r in out.result["results"]]


def test_sample_batch_submits_each_message(invoke, emulator):
    out = invoke(load_event("ckafka.json"))
    assert out.error is None
    results = out.result["results"]
    assert _statuses(out) == ["submitted", "submitted"] and emulator.task_count == 2
    assert [(r["topic"], r["partition"], r["offset"]) for r in results] == [
        ("redraw-requests", 1, 36), ("redraw-requests", 1, 37)]
    assert results[0]["session_id"].startswith("redraw-kafka-") and len(results[0]["session_id"]) <= 50
    assert results[1]["session_id"] == "order-A-1002"  # the body's own SessionId is kept
    assert all(r["task_id"] in emulator.tasks and r["request_id"] for r in results)
    lines = out.lines("ckafka.message")
    assert [line["offset"] for line in lines] == [36, 37]
    assert {line["trigger"] for line in lines} == {"ckafka"}
    [first] = [c["params"] for c in emulator.calls if c["params"]["SessionId"] == results[0]["session_id"]]
    assert json.loads(first["SessionContext"]) == {"trigger": "ckafka", "topic": "redraw-requests",
                                                   "partition": 1, "offset": 36}
    assert first["TaskInfo"] == {"Style": "anime"}


def test_redelivered_batch_creates_nothing_twice(invoke, emulator):
    event = ckafka_event([redraw_body(BASE + f"{i}.mp4") for i in range(5)])
    first = invoke(event)
    again = invoke(json.loads(json.dumps(event)))
    assert _statuses(first) == ["submitted"] * 5
    assert _statuses(again) == ["duplicate"] * 5
    assert [r["session_id"] for r in again.result["results"]] == [r["session_id"] for r in first.result["results"]]
    assert emulator.task_count == 5


def test_same_body_at_another_offset_is_another_task(invoke, emulator):
    body = redraw_body(BASE + "same.mp4")
    out = invoke(ckafka_event([body, body]))
    assert _statuses(out) == ["submitted", "submitted"] and emulator.task_count == 2


def test_a_recreated_topic_reusing_offsets_is_not_taken_for_its_old_messages(invoke, emulator):
    old = invoke(ckafka_event([redraw_body(BASE + "old.mp4")]))
    new = invoke(ckafka_event([redraw_body(BASE + "new.mp4")]))  # same topic, partition and offset
    assert _statuses(old) == _statuses(new) == ["submitted"] and emulator.task_count == 2
    assert old.result["results"][0]["session_id"] != new.result["results"][0]["session_id"]
    event = ckafka_event([redraw_body(BASE + "parsed.mp4")])
    event["Records"][0]["Ckafka"]["msgBody"] = redraw_body(BASE + "parsed.mp4")  # an object, not text
    assert _statuses(invoke(event)) == ["submitted"]
    again = invoke(json.loads(json.dumps(event)))
    assert _statuses(again) == ["duplicate"] and emulator.task_count == 3


def test_invalid_messages_fail_alone_naming_their_fields(invoke, emulator):
    secret = "https://evil.example/secret-value-123.mp4"
    event = ckafka_event([
        redraw_body(BASE + "ok-1.mp4"),
        "Hello from Ckafka!",
        {"FileInfo": {"Type": "Url"}, "TasksPriority": 99},
        [1, 2],
        {"FileInfo": {"Type": "Video", "Url": secret}},
        redraw_body(BASE + "ok-2.mp4"),
    ])
    event["Records"].insert(3, {"CMQ": {"msgBody": "x"}})
    event["Records"].insert(4, {"Ckafka": {"topic": "t", "offset": "not-a-number", "msgBody": "{}"}})
    out = invoke(event)
    assert out.error is None
    results = out.result["results"]
    assert _statuses(out) == ["submitted", "failed", "failed", "failed", "failed", "failed", "failed", "submitted"]
    assert results[1]["fields"] == ["msgBody"]
    assert results[2]["fields"] == ["FileInfo.Url", "TasksPriority"]
    assert results[3]["fields"] == ["Ckafka"] and results[3]["offset"] is None
    assert results[4]["fields"] == ["Ckafka"] and "Ckafka.offset" in results[4]["reason"]
    assert results[5]["fields"] == ["msgBody"]
    assert results[6]["fields"] == ["FileInfo.Type"]
    assert "secret-value-123" not in json.dumps(out.result) + out.stdout
    assert emulator.task_count == 2
    failed = [line for line in out.lines("ckafka.message") if line["outcome"] == "failed"]
    assert len(failed) == 6 and all(line["level"] == "error" and line["fix"] for line in failed)
    assert failed[1]["fields"] == ["FileInfo.Url", "TasksPriority"]
    assert "FileInfo.Url" in failed[1]["fix"]


def test_retryable_leftovers_raise_so_the_trigger_retries_the_batch(invoke, emulator, env):
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    event = ckafka_event([redraw_body(BASE + "a.mp4"), redraw_body(BASE + "b.mp4"), "not json"],
                         topic="jobs", partition=3, first_offset=100)
    env.setenv("VOD_MAX_CONCURRENCY", "1")  # the faults are consumed in message order
    emulator.inject("slow:0", "InternalError")
    out = invoke(event)
    assert isinstance(out.error, RetryableFailuresError)
    assert "'jobs/3/101'" in str(out.error) and len(out.error.failures) == 1
    assert emulator.task_count == 1
    retried = invoke(json.loads(json.dumps(event)))  # the trigger redelivers the whole batch
    assert retried.error is None
    assert _statuses(retried) == ["duplicate", "submitted", "failed"]
    assert emulator.task_count == 2


def test_derived_session_id_is_short_and_deterministic():
    message = ckafka.CkafkaMessage(topic="t" * 300, partition=0, offset=10 ** 12, msgBody="{}")
    sid = ckafka.session_id_for(message)
    assert len(sid) == 50 and sid == ckafka.session_id_for(message.model_copy())
    other = message.model_copy(update={"offset": 10 ** 12 + 1})
    assert ckafka.session_id_for(other) != sid
    assert ckafka.session_id_for(message.model_copy(update={"msgBody": '{"a":1}'})) != sid
    surrogate = message.model_copy(update={"topic": "t\ud800", "msgBody": "\udfff"})
    assert len(ckafka.session_id_for(surrogate)) == 50


@pytest.mark.parametrize("raw", [{"Ckafka": None}, {"Ckafka": {"topic": "", "offset": 1}},
                                 {"Ckafka": {"topic": "t", "offset": True}}, {"Ckafka": {"topic": "t"}}])
def test_broken_envelopes_fail_alone(invoke, emulator, raw):
    event = ckafka_event([redraw_body(BASE + "ok.mp4")])
    event["Records"].append(raw)
    out = invoke(event)
    assert _statuses(out) == ["submitted", "failed"] and out.result["results"][1]["fields"] == ["Ckafka"]
    assert "Ckafka.(body)" not in out.result["results"][1]["reason"]


def test_a_null_envelope_is_named_ckafka(invoke, emulator):
    out = invoke({"Records": [{"Ckafka": None}]})
    assert out.result["results"][0]["reason"] == "invalid CKafka message: Ckafka (Input should be a valid dictionary)"


def test_a_message_nested_too_deeply_fails_alone(invoke, emulator):
    event = ckafka_event([redraw_body(BASE + "a.mp4"), redraw_body(BASE + "b.mp4")])
    event["Records"].insert(1, json.loads(json.dumps(event["Records"][0])))
    event["Records"][1]["Ckafka"].update(offset=99, msgBody='{"FileInfo": ' + "[" * 5000 + "]" * 5000 + "}")
    out = invoke(event)
    assert out.error is None and _statuses(out) == ["submitted", "failed", "submitted"]
    assert out.result["results"][1]["fields"] == ["msgBody"] and emulator.task_count == 2


def test_a_null_session_context_gets_the_message_context(invoke, emulator):
    out = invoke(ckafka_event([redraw_body(BASE + "a.mp4", SessionContext=None)]))
    assert _statuses(out) == ["submitted"]
    assert json.loads(emulator.calls[-1]["params"]["SessionContext"])["trigger"] == "ckafka"
