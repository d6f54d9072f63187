"""COS upload events through main_handler, against the emulator over HTTP."""
from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

import pytest
import urllib3

from conftest import SUB_APP_ID, load_event
from redraw.errors import RedrawError
from redraw.tools.samples import cos_event, cos_record


def test_sample_upload_becomes_a_task(invoke, emulator):
    out = invoke(load_event("cos-put.json"))
    assert out.error is None
    [result] = out.result["results"]
    assert result["status"] == "submitted"
    assert result["task_id"] in emulator.tasks
    assert result["request_id"] and result["session_id"]
    params = emulator.calls[-1]["params"]
    assert params["SubAppId"] == SUB_APP_ID
    assert params["FileInfo"] == {"Type": "Url", "Url": "http://media-1250000000.cos.ap-guangzhou.myqcloud.com/uploads/2026/demo-clip.mp4"}
    assert params["SessionId"] == result["session_id"]
    [line] = out.lines("cos.record")
    assert line["outcome"] == "submitted" and line["task_id"] == result["task_id"]
    assert line["request_id"] == "test-request-1" and line["trigger"] == "cos"
    assert line["vod_request_id"] == result["request_id"] and line["session_id"] == result["session_id"]
    assert isinstance(line["duration_ms"], int)


@pytest.mark.parametrize("key", ["旅行/海边 日落 #1+2.mp4", "a b/c+d#e%f?.MP4", "dir/100% real & (final).mov"])
def test_keys_reach_vod_as_the_same_object(invoke, emulator, key):
    out = invoke(cos_event([key]))
    assert out.result["results"][0]["status"] == "submitted"
    url = emulator.calls[-1]["params"]["FileInfo"]["Url"]
    parts = urlsplit(url)
    assert parts.query == "" and parts.fragment == ""  # '#' and '?' were encoded
    assert unquote(parts.path) == "/" + key
    assert " " not in url and "+" not in url
    assert out.result["results"][0]["key"] == key


@pytest.mark.parametrize("presign", [False, True])
def test_dot_segments_of_a_key_are_encoded_so_the_url_names_the_object(invoke, emulator, env, presign):
    env.setenv("REDRAW_PRESIGN_URLS", str(presign).lower())
    event = cos_event(["../../etc.mp4", "a/./b/../c.mp4", "..x/.y/...mp4"])
    for record in event["Records"][:2]:  # as COS writes them: dots percent-encoded too
        obj = record["cos"]["cosObject"]
        obj["key"], obj["url"] = (obj["key"].replace(".", "%2e"), obj["url"].replace("./", "%2e/"))
    out = invoke(event)
    assert [r["status"] for r in out.result["results"]] == ["submitted"] * 3
    urls = {c["params"]["SessionId"]: c["params"]["FileInfo"]["Url"] for c in emulator.calls}
    sent = [urlsplit(urls[r["session_id"]]) for r in out.result["results"]]
    for parts, key in zip(sent, ["../../etc.mp4", "a/./b/../c.mp4", "..x/.y/...mp4"]):
        assert unquote(parts.path) == "/" + key
        assert not {".", ".."} & set(parts.path.split("/"))
        assert urllib3.util.parse_url(parts.geturl()).path == parts.path  # clients keep the path as sent
    if not presign:  # the COS SDK writes "./" as ".%2F" itself: the same object
        assert sent[0].path == "/%2E%2E/%2E%2E/etc.mp4" and sent[2].path == "/..x/.y/...mp4"


def test_multi_record_event_keeps_record_order(invoke, emulator):
    out = invoke(load_event("cos-put-multi.json"))
    statuses = [r["status"] for r in out.result["results"]]
    assert statuses == ["submitted", "skipped", "submitted"]
    assert [r["key"] for r in out.result["results"]] == ["uploads/a.mp4", "uploads/cover.jpg", "uploads/B-Roll.MOV"]
    assert emulator.task_count == 2
    assert [line["event"] for line in out.logs] == ["cos.record"] * 3  # one line per record


def test_delete_and_non_videos_and_huge_objects_are_skipped_without_a_call(invoke, emulator):
    event = {"Records": [
        cos_record("a.mp4", event_name="cos:ObjectRemove:Delete"),
        cos_record("notes.txt"),
        cos_record("big.mp4", size=2 * 1024 ** 3),
        cos_record("folder/", size=0),
    ]}
    event["Records"][2]["cos"]["cosObject"]["size"] = str(2 * 1024 ** 3)  # older events: string size
    out = invoke(event)
    assert [r["status"] for r in out.result["results"]] == ["skipped"] * 4
    assert all(r["reason"] for r in out.result["results"])
    assert "2 GB" in out.result["results"][2]["reason"]
    assert emulator.calls == []


def test_just_under_two_gigabytes_is_submitted(invoke, emulator):
    out = invoke(cos_event(["edge.mp4"], size=2 * 1024 ** 3 - 1))
    assert out.result["results"][0]["status"] == "submitted"


def test_redelivered_event_is_duplicate_and_new_upload_is_new(invoke, emulator):
    event = cos_event(["clip.mp4"], request_id="req-1", event_time=1764057600)
    first, again = invoke(event), invoke(json.loads(json.dumps(event)))
    assert first.result["results"][0]["status"] == "submitted"
    assert again.result["results"][0]["status"] == "duplicate"
    assert again.result["results"][0]["session_id"] == first.result["results"][0]["session_id"]
    assert again.error is None
    reupload = invoke(cos_event(["clip.mp4"], request_id="req-2", event_time=1764057700))
    assert reupload.result["results"][0]["status"] == "submitted"
    assert reupload.result["results"][0]["session_id"] != first.result["results"][0]["session_id"]
    assert emulator.task_count == 2


def test_session_context_is_compact_json_even_for_long_keys(invoke, emulator):
    key = "长" * 400 + "/" + "k" * 399 + ".mp4"
    out = invoke(cos_event([key]))
    assert out.result["results"][0]["status"] == "submitted"
    params = emulator.calls[-1]["params"]
    assert len(params["SessionContext"]) <= 1000 and len(params["SessionId"]) <= 50
    context = json.loads(params["SessionContext"])
    assert context["trigger"] == "cos" and context["bucket"] == "media-1250000000"
    assert key.startswith(context["key"])
    short = invoke(cos_event(["short.mp4"]))
    assert json.loads(emulator.calls[-1]["params"]["SessionContext"])["key"] == "short.mp4"
    assert short.error is None


def test_invalid_record_fails_alone(invoke, emulator):
    event = cos_event(["ok.mp4"])
    event["Records"].append({"event": {"eventName": "cos:ObjectCreated:Put"}})
    out = invoke(event)
    assert [r["status"] for r in out.result["results"]] == ["submitted", "failed"]
    assert "cos" in out.result["results"][1]["reason"]
    assert emulator.task_count == 1


@pytest.mark.parametrize("event", [{}, [], None, "x", 42, {"Records": "x"}, {"Records": []},
                                   {"Records": None}])
def test_unusable_events_raise_the_package_error(invoke, emulator, event):
    out = invoke(event)
    assert isinstance(out.error, RedrawError), out.error
    assert str(out.error)
    assert emulator.calls == []
    [line] = out.lines("event.rejected")
    assert line["level"] == "error"


def test_task_defaults_from_configuration(invoke, emulator, env):
    env.setenv("REDRAW_STYLE", "anime")
    env.setenv("REDRAW_STORAGE_MODE", "Permanent")
    env.setenv("REDRAW_CLASS_ID", "7")
    env.setenv("REDRAW_TASKS_PRIORITY", "3")
    env.setenv("REDRAW_VIDEO_SUFFIXES", "mp4, .webm")
    out = invoke(cos_event(["a.webm", "b.mov"]))
    assert [r["status"] for r in out.result["results"]] == ["submitted", "skipped"]
    params = emulator.calls[-1]["params"]
    assert params["TaskInfo"] == {"Style": "anime"}
    assert params["OutputConfig"] == {"StorageMode": "Permanent", "ClassId": 7, "MediaName": "a.webm"}
    assert params["TasksPriority"] == 3


def test_uploader_signature_never_logged(invoke, emulator):
    event = cos_event(["a.mp4"])
    secret = "q-sign-algorithm=sha1&q-ak=AKIDuploader&q-signature=feedface0123456789"
    event["Records"][0]["event"]["requestParameters"]["requestHeaders"]["Authorization"] = secret
    out = invoke(event)
    assert "feedface0123456789" not in out.stdout
    assert "feedface0123456789" not in json.dumps(out.result)


def test_bucket_name_that_already_carries_the_appid(invoke, emulator):
    event = cos_event(["in/a b.mp4"])
    event["Records"][0]["cos"]["cosBucket"]["name"] = "media-1250000000"
    out = invoke(event)
    [result] = out.result["results"]
    assert result["status"] == "submitted" and result["key"] == "in/a b.mp4"
    assert json.loads(emulator.calls[-1]["params"]["SessionContext"])["bucket"] == "media-1250000000"


def test_string_event_time_and_missing_request_id_still_give_a_stable_session_id(invoke, emulator):
    event = cos_event(["legacy.mp4"], event_time=0)
    record = event["Records"][0]
    record["event"]["eventTime"] = "2018-12-19T07:49:30Z"
    record["cos"]["cosObject"]["size"] = "1029"
    del record["cos"]["cosObject"]["meta"]["x-cos-request-id"]
    first = invoke(event)
    again = invoke(json.loads(json.dumps(event)))
    assert first.result["results"][0]["status"] == "submitted"
    assert again.result["results"][0]["status"] == "duplicate"


def test_key_that_is_not_utf8_fails_alone_with_a_reason(invoke, emulator):
    event = cos_event(["ok.mp4", "bad.mp4"])
    bad = event["Records"][1]["cos"]["cosObject"]
    bad["key"] = bad["key"].replace("bad.mp4", "bad%FF.mp4")
    bad["url"] = bad["url"].replace("bad.mp4", "bad%FF.mp4")
    out = invoke(event)
    assert [r["status"] for r in out.result["results"]] == ["submitted", "failed"]
    assert "UTF-8" in out.result["results"][1]["reason"]
    assert emulator.task_count == 1


@pytest.mark.parametrize("spaced, compact, status", [
    ("cos: ObjectCreated: *", "cos:ObjectCreated:*", "submitted"),
    ("cos: ObjectCreated:Post", "cos:ObjectCreated:Post", "submitted"),
    ("cos: ObjectRemove:Delete", "cos:ObjectRemove:Delete", "skipped"),
])
def test_event_names_with_spaces_mean_their_compact_forms(invoke, emulator, spaced, compact, status):
    event = cos_event(["in/a.mp4"], event_name=spaced)
    out = invoke(event)
    [result] = out.result["results"]
    assert result["status"] == status
    if status == "submitted":
        assert json.loads(emulator.calls[-1]["params"]["SessionContext"])["event"] == compact
    else:
        assert result["reason"] == "object removed: nothing to redraw" and emulator.calls == []
    # the same upload under its compact name is the same upload: nothing twice
    again = invoke(cos_event(["in/a.mp4"], event_name=compact, request_id=event["Records"][0]["cos"]["cosObject"]
                             ["meta"]["x-cos-request-id"], event_time=event["Records"][0]["event"]["eventTime"]))
    assert again.result["results"][0]["status"] == ("duplicate" if status == "submitted" else "skipped")


def test_failed_record_names_its_key_decoded_like_every_other(invoke, emulator):
    event = cos_event(["in/My Clip 夏.mp4", "in/Other Clip.mp4"])
    event["Records"][1]["cos"]["cosObject"]["url"] = "ftp://media-1250000000.cos.ap-guangzhou.myqcloud.com/x"
    out = invoke(event)
    first, second = out.result["results"]
    assert first["key"] == "in/My Clip 夏.mp4" and first["status"] == "submitted"
    assert second["key"] == "in/Other Clip.mp4" and second["status"] == "failed"
    [_, line] = out.lines("cos.record")
    assert line["key"] == "in/Other Clip.mp4" and line["error_code"] == "InvalidEvent"
    assert line["fix"].startswith("cos.cosObject.url must be an http(s) URL")
    assert "does not know" not in line["fix"]


def test_record_failing_the_model_names_the_field_in_its_fix(invoke, emulator):
    event = cos_event(["ok.mp4", "bad.mp4"])
    del event["Records"][1]["cos"]["cosBucket"]
    out = invoke(event)
    assert [r["status"] for r in out.result["results"]] == ["submitted", "failed"]
    assert out.result["results"][1]["key"] == "bad.mp4"
    [_, line] = out.lines("cos.record")
    assert "cos.cosBucket" in line["fix"] and "shape the trigger sends" in line["fix"]


def test_presigned_url_is_https_whatever_the_event_url_scheme(invoke, emulator, env):
    env.setenv("REDRAW_PRESIGN_URLS", "true")
    event = cos_event(["private/clip.mp4"])
    assert event["Records"][0]["cos"]["cosObject"]["url"].startswith("http://")  # as real COS events
    out = invoke(event)
    assert out.result["results"][0]["status"] == "submitted"
    url = emulator.calls[-1]["params"]["FileInfo"]["Url"]
    assert url.startswith("https://media-1250000000.cos.ap-guangzhou.myqcloud.com/private/clip.mp4?")
    assert "q-signature=" in url


def test_line_separators_in_a_key_stay_inside_one_log_line(invoke):
    key = "uploads/a\u2028b\u2029c\u0085d.mp4"
    out = invoke(cos_event([key]))
    [line] = [raw for raw in out.stdout.split("\n") if '"cos.record"' in raw]
    assert "\u2028" not in line and "\u2029" not in line and "\u0085" not in line
    assert "\\u2028" in line and json.loads(line)["key"] == key
