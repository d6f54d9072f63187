"""API Gateway requests through main_handler: routes, validation, status codes."""
from __future__ import annotations

import base64
import json

import pytest

from conftest import SUB_APP_ID, end_tasks, load_event
from redraw.tools.samples import apigw_event, redraw_body

URL = "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/in/clip.mp4"


def _assert_shape(result):
    assert set(result) == {"isBase64Encoded", "statusCode", "headers", "body"}
    assert result["isBase64Encoded"] is False
    assert result["headers"]["Content-Type"].startswith("application/json")
    return json.loads(result["body"])


@pytest.mark.parametrize("name", ["apigw-post.json", "apigw-post-base64.json"])
def test_sample_post_creates_a_task(invoke, emulator, name):
    out = invoke(load_event(name))
    body = _assert_shape(out.result)
    assert out.result["statusCode"] == 200
    assert set(body) == {"TaskId", "RequestId", "SessionId"}
    assert body["TaskId"] in emulator.tasks
    params = emulator.calls[-1]["params"]
    assert params["SessionContext"] == '{"order":"A-1001"}'  # passed through verbatim
    assert params["SubAppId"] == SUB_APP_ID
    assert params["SessionId"] == body["SessionId"]
    [line] = out.lines("api.request")
    assert line["outcome"] == "submitted" and line["status_code"] == 200


def test_caller_session_id_is_kept_and_reuse_is_409(invoke, emulator):
    event = apigw_event(redraw_body(URL, SessionId="order-42"))
    first = invoke(event)
    assert first.body["SessionId"] == "order-42"
    second = invoke(event)
    assert second.result["statusCode"] == 409
    assert second.body["SessionId"] == "order-42"
    assert second.body["error"]["code"] == "InvalidParameterValue.SessionId"
    assert emulator.task_count == 1


def test_generated_session_id_lets_callers_retry(invoke, emulator):
    out = invoke(apigw_event(redraw_body(URL)))
    sid = out.body["SessionId"]
    assert sid and len(sid) <= 50
    retry = invoke(apigw_event(redraw_body(URL, SessionId=sid)))
    assert retry.result["statusCode"] == 409


@pytest.mark.parametrize("flag", [True, "true", "TRUE"])
def test_base64_flags(invoke, emulator, flag):
    event = apigw_event(redraw_body(URL), base64_body=True)
    event["isBase64Encoded"] = flag
    assert invoke(event).result["statusCode"] == 200


SECRETISH = "https://evil.example/secret-value-123.mp4"


@pytest.mark.parametrize("body, fields", [
    ({"FileInfo": {"Type": "Url", "Url": "ftp://h/a.mp4"}}, ["FileInfo.Url"]),
    ({"FileInfo": {"Type": "Url", "Url": "file:///etc/passwd"}}, ["FileInfo.Url"]),
    ({"FileInfo": {"Type": "File"}}, ["FileInfo.FileId"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "TasksPriority": 11}, ["TasksPriority"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "TasksPriority": -11}, ["TasksPriority"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "SessionId": "s" * 51}, ["SessionId"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "SessionContext": "c" * 1001}, ["SessionContext"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "TaskInfo": {"Style": "x" * 51}}, ["TaskInfo.Style"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "OutputConfig": {"MediaName": "m" * 65}}, ["OutputConfig.MediaName"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "OutputConfig": {"StorageMode": "Forever"}}, ["OutputConfig.StorageMode"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "OutputConfig": {"ExpireTime": "tomorrow"}}, ["OutputConfig.ExpireTime"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "OutputConfig": {"ClassId": 99999999999999999999999}},
     ["OutputConfig.ClassId"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "OutputConfig": {"ClassId": 2 ** 63}}, ["OutputConfig.ClassId"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "SubAppId": 2 ** 63}, ["SubAppId"]),
    ({"FileInfo": {"Type": "Url", "Url": URL, "FileId": "x"}}, ["FileInfo.FileId"]),
    ({"FileInfo": {"Type": "File", "FileId": "x", "Url": SECRETISH}}, ["FileInfo.Url"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "Surprise": SECRETISH}, ["Surprise"]),
    ({"FileInfo": {"Type": "Url", "Url": URL}, "SubAppId": 99}, ["SubAppId"]),
    ({"FileInfo": {"Type": "Video", "Url": SECRETISH}}, ["FileInfo.Type"]),
    ({}, ["FileInfo"]),
    ([1, 2], ["(body)"]),
])
def test_invalid_bodies_are_400_naming_fields_without_values(invoke, emulator, body, fields):
    out = invoke(apigw_event(body))
    assert out.result["statusCode"] == 400
    payload = _assert_shape(out.result)
    assert [f["field"] for f in payload["error"]["fields"]] == fields
    assert "secret-value-123" not in out.result["body"] and "secret-value-123" not in out.stdout
    assert "passwd" not in out.result["body"]
    assert emulator.calls == []


def test_a_long_unknown_key_is_named_by_its_first_64_characters_only(invoke, emulator):
    key = "k" * 64 + "s" * 2936
    out = invoke(apigw_event({**redraw_body(URL), key: 1}))
    assert out.result["statusCode"] == 400
    [field] = out.body["error"]["fields"]
    assert field["field"] == "k" * 64 + "…" and "s" not in out.body["error"]["message"].split(":", 1)[1]
    [line] = out.lines("api.request")
    assert line["fields"] == ["k" * 64 + "…"] and "kkks" not in line["reason"]
    assert "k" * 65 not in out.result["body"] + out.stdout


def test_integer_ids_up_to_int64_are_sent(invoke, emulator):
    out = invoke(apigw_event(redraw_body(URL, OutputConfig={"ClassId": 2 ** 63 - 1})))
    assert out.result["statusCode"] == 200
    assert emulator.calls[-1]["params"]["OutputConfig"]["ClassId"] == 2 ** 63 - 1


def test_sub_app_id_allowed_when_allow_listed(invoke, emulator, env):
    env.setenv("VOD_ALLOWED_SUB_APP_IDS", "99, 100")
    out = invoke(apigw_event(redraw_body(URL, SubAppId=99)))
    assert out.result["statusCode"] == 200
    assert emulator.calls[-1]["params"]["SubAppId"] == 99


def test_url_host_allow_list(invoke, emulator, env):
    env.setenv("REDRAW_ALLOWED_URL_HOSTS", "*.cos.ap-guangzhou.myqcloud.com,videos.example.com")
    assert invoke(apigw_event(redraw_body(URL))).result["statusCode"] == 200
    assert invoke(apigw_event(redraw_body("https://videos.example.com/a.mp4"))).result["statusCode"] == 200
    denied = invoke(apigw_event(redraw_body("https://attacker.example/a.mp4")))
    assert denied.result["statusCode"] == 400
    assert denied.body["error"]["fields"][0]["field"] == "FileInfo.Url"
    assert emulator.task_count == 2


@pytest.mark.parametrize("raw", ["{not json", "", None])
def test_unparseable_or_missing_body_is_400(invoke, emulator, raw):
    event = apigw_event(None)
    event["body"] = raw
    assert invoke(event).result["statusCode"] == 400


def test_bad_base64_is_400(invoke, emulator):
    event = apigw_event("@@@not-base64@@@")
    event["isBase64Encoded"] = True
    assert invoke(event).result["statusCode"] == 400


@pytest.mark.parametrize("b64", [False, True])
def test_oversized_body_is_413_before_parsing(invoke, emulator, env, b64):
    env.setenv("REDRAW_MAX_BODY_BYTES", "2048")
    body = redraw_body(URL, ExtInfo="x" * 1000, SessionContext="y" * 1000)
    out = invoke(apigw_event(body, base64_body=b64))
    assert out.result["statusCode"] == 413
    assert emulator.calls == []


@pytest.mark.parametrize("encode", [base64.b64encode, base64.encodebytes])
def test_a_body_of_exactly_the_limit_is_accepted_wrapped_or_not(invoke, emulator, encode):
    raw = json.dumps(redraw_body(URL, ExtInfo=""))
    raw = raw[:-2] + "x" * (65536 - len(raw)) + raw[-2:]  # exactly REDRAW_MAX_BODY_BYTES
    event = apigw_event(None)
    event.update(body=encode(raw.encode()).decode(), isBase64Encoded=True)
    assert invoke(event).result["statusCode"] == 200
    event["body"] = encode(raw.encode() + b" ").decode()
    assert invoke(event).result["statusCode"] == 413
    event["body"] = "\n" * (3 * 65536)  # whitespace alone is bounded too
    assert invoke(event).result["statusCode"] == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(invoke, emulator, method):
    out = invoke(apigw_event(redraw_body(URL), method=method))
    assert out.result["statusCode"] == 405
    assert out.result["headers"]["Allow"] == "POST"
    assert emulator.calls == []


def test_a_finished_tasks_status_shows_its_output_without_the_signature(invoke, emulator):
    task_id = invoke(apigw_event(redraw_body(URL))).body["TaskId"]
    end_tasks(emulator)
    status = invoke(apigw_event(None, method="GET", path=f"/tasks/{task_id}", path_parameters={"TaskId": task_id}))
    assert status.body["Status"] == "FINISH"
    assert status.body["Output"]["FileUrl"] == f"{emulator.url}/aigc/{task_id}.mp4"  # no ?t=…&sign=…
    assert "sign=" not in status.result["body"]


def test_get_task_status_and_404(invoke, emulator):
    created = invoke(apigw_event(redraw_body(URL, SessionContext="ctx-1")))
    task_id = created.body["TaskId"]
    status = invoke(apigw_event(None, method="GET", path=f"/tasks/{task_id}",
                                path_parameters={"TaskId": task_id}))
    assert status.result["statusCode"] == 200
    assert status.body["TaskId"] == task_id
    assert status.body["Status"] in ("WAITING", "PROCESSING", "FINISH")
    assert status.body["SessionContext"] == "ctx-1"
    missing = invoke(apigw_event(None, method="GET", path="/tasks/1500000001-AigcVideoRedrawTask-nope"))
    assert missing.result["statusCode"] == 404
    assert missing.body["error"]["code"] == "NotFound"
    bad = invoke(apigw_event(None, method="GET", path="/tasks/%3Cscript%3E"))
    assert bad.result["statusCode"] == 400
    assert invoke(apigw_event(None, method="POST", path=f"/tasks/{task_id}")).result["statusCode"] == 405


def test_configured_defaults_fill_only_what_the_request_leaves_out(invoke, emulator, env):
    env.setenv("REDRAW_STYLE", "anime")
    env.setenv("REDRAW_STORAGE_MODE", "Permanent")
    env.setenv("REDRAW_TASKS_PRIORITY", "2")
    out = invoke(apigw_event(redraw_body(URL, OutputConfig={"MediaName": "mine"}, TasksPriority=-1)))
    assert out.result["statusCode"] == 200
    params = emulator.calls[-1]["params"]
    assert params["OutputConfig"] == {"StorageMode": "Permanent", "MediaName": "mine"}
    assert params["TaskInfo"] == {"Style": "anime"} and params["TasksPriority"] == -1
    invoke(apigw_event(redraw_body(URL, TaskInfo={"Style": "ink"})))
    assert emulator.calls[-1]["params"]["TaskInfo"] == {"Style": "ink"}


def test_vod_error_text_is_not_echoed_to_callers(invoke, emulator):
    # VOD's own messages may quote the submitted values; callers get a description of the code.
    out = invoke(apigw_event({"FileInfo": {"Type": "File", "FileId": "5285890799999999999-private-id"}}))
    assert out.result["statusCode"] == 400
    assert out.body["error"]["code"] == "InvalidParameterValue.FileId"
    assert "private-id" not in out.result["body"]
    [line] = out.lines("api.request")
    assert line["error_code"] == "InvalidParameterValue.FileId" and line["level"] == "error"


@pytest.mark.parametrize("url", ["https://evil.example%2f.myqcloud.com/a.mp4", "https://a_b.example/a.mp4",
                                 "https://user:pw@media.example/a.mp4"])
def test_urls_must_name_their_host_plainly(invoke, emulator, url):
    out = invoke(apigw_event(redraw_body(url)))
    assert out.result["statusCode"] == 400
    assert out.body["error"]["fields"][0]["field"] == "FileInfo.Url"
    assert emulator.calls == []
