"""The function URL, served exactly like the API Gateway trigger, answered in its own shape."""
from __future__ import annotations

import json

import pytest

from conftest import SUB_APP_ID, load_event
from redraw import app, pacing
from redraw.tools.samples import apigw_event, redraw_body, url_event

URL = "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/in/clip.mp4"
URL_SHAPE = {"statusCode", "headers", "body"}


def _body(result):
    assert set(result) == URL_SHAPE, set(result)  # no isBase64Encoded: the function URL's own shape
    assert result["headers"]["Content-Type"].startswith("application/json")
    return json.loads(result["body"])


def test_sample_post_creates_a_task_and_its_get_reports_it(invoke, emulator):
    out = invoke(load_event("url-post.json"))
    assert out.result["statusCode"] == 200
    body = _body(out.result)
    assert set(body) == {"TaskId", "RequestId", "SessionId"} and body["TaskId"] in emulator.tasks
    params = emulator.calls[-1]["params"]
    assert params["SubAppId"] == SUB_APP_ID and params["SessionId"] == body["SessionId"]
    assert params["SessionContext"] == '{"order":"A-1001"}'
    [line] = out.lines("api.request")
    assert line["trigger"] == "url" and line["outcome"] == "submitted" and line["status_code"] == 200

    get = load_event("url-get-task.json")
    get["path"] = f"/tasks/{body['TaskId']}"
    status = invoke(get)
    assert status.result["statusCode"] == 200
    report = _body(status.result)
    assert report["TaskId"] == body["TaskId"] and report["SessionId"] == body["SessionId"]
    assert report["Status"] in ("WAITING", "PROCESSING", "FINISH")
    [line] = status.lines("api.status")
    assert line["trigger"] == "url"


def test_sample_get_of_an_unknown_task_is_404(invoke, emulator):
    out = invoke(load_event("url-get-task.json"))
    assert out.result["statusCode"] == 404 and _body(out.result)["error"]["code"] == "NotFound"


def _pair(build):
    """The same request through API Gateway and through the function URL."""
    return build(apigw_event), build(url_event)


CASES = {
    "created": lambda make: make(redraw_body(URL, SessionId="same-1")),
    "invalid": lambda make: make({"FileInfo": {"Type": "File"}, "Surprise": 1}),
    "not json": lambda make: make("{not json"),
    "empty": lambda make: make(None),
    "405": lambda make: make(redraw_body(URL), method="PUT"),
    "405 on task": lambda make: make(None, method="DELETE", path="/tasks/abc"),
    "404": lambda make: make(None, method="GET", path="/tasks/1500000001-AigcVideoRedrawTask-nope"),
    "bad task id": lambda make: make(None, method="GET", path="/tasks/%3Cscript%3E"),
    "any path": lambda make: make(redraw_body(URL, SessionId="same-2"), path="/"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_status_body_and_headers_as_api_gateway(invoke, emulator, case):
    apigw, url = _pair(CASES[case])
    answers = []
    for event in (apigw, url):
        emulator.reset()  # the same SessionId may create again through the other trigger,
        app.reset()  # in a container that has not seen it yet
        pacing.reset_limiters()
        result = invoke(event).result
        answers.append(result)
    a, u = answers
    assert a.pop("isBase64Encoded") is False and set(u) == URL_SHAPE
    assert a["statusCode"] == u["statusCode"] and a["headers"] == u["headers"]
    strip = ("TaskId", "RequestId")
    ja, ju = json.loads(a["body"]), json.loads(u["body"])
    assert {k: v for k, v in ja.items() if k not in strip} == {k: v for k, v in ju.items() if k not in strip}


@pytest.mark.parametrize("fault, status", [("InternalError", 503), ("UnauthorizedOperation", 502),
                                           ("InvalidParameterValue.SessionId", 409)])
def test_upstream_failures_map_to_the_same_statuses(invoke, emulator, env, fault, status):
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    emulator.inject(fault)
    out = invoke(url_event(redraw_body(URL, SessionId="order-7")))
    assert out.result["statusCode"] == status
    body = _body(out.result)
    assert body["SessionId"] == "order-7"
    assert ("Retry-After" in out.result["headers"]) == (status == 503)


def test_oversized_body_is_413(invoke, emulator, env):
    env.setenv("REDRAW_MAX_BODY_BYTES", "2048")
    out = invoke(url_event(redraw_body(URL, ExtInfo="x" * 3000)))
    assert out.result["statusCode"] == 413 and emulator.calls == []


def test_configuration_error_answers_500_in_the_url_shape(invoke, emulator, env):
    env.delenv("VOD_SUB_APP_ID")
    out = invoke(url_event(redraw_body(URL)))
    assert out.error is None and out.result["statusCode"] == 500
    assert _body(out.result)["error"]["code"] == "ConfigurationError"
    apigw = invoke(apigw_event(redraw_body(URL)))
    assert apigw.result["statusCode"] == 500 and apigw.result["isBase64Encoded"] is False


def test_function_url_event_is_not_taken_for_a_direct_invocation(invoke, emulator):
    out = invoke(url_event({"FileInfo": {"Type": "Url", "Url": URL}}))
    assert out.error is None and out.result["statusCode"] == 200


def test_an_unexpected_bug_answers_500_in_the_url_shape(invoke, emulator, monkeypatch):
    from redraw import core

    def broken(*args, **kwargs):
        raise KeyError("boom")
    monkeypatch.setattr(core, "prepare_request", broken)
    out = invoke(url_event(redraw_body(URL)))
    assert out.error is None and out.result["statusCode"] == 500
    assert _body(out.result)["error"]["code"] == "UnexpectedError"
    [line] = out.lines("handler.crashed")
    assert line["trigger"] == "url"


@pytest.mark.parametrize("build", [url_event, apigw_event])
def test_a_body_nested_too_deeply_is_a_400_not_a_crash(invoke, emulator, build):
    body = '{"FileInfo": ' + "[" * 5000 + "]" * 5000 + "}"
    out = invoke(build(body))
    assert out.result["statusCode"] == 400 and json.loads(out.result["body"])["error"]["fields"] == [
        {"field": "(body)", "problem": "invalid JSON"}]
    assert not out.lines("handler.crashed") and emulator.calls == []


def test_unknown_task_404_names_the_field_not_the_submitted_id(invoke, emulator):
    out = invoke(url_event(None, method="GET", path="/tasks/zzzqqq"))
    assert out.result["statusCode"] == 404
    error = _body(out.result)["error"]
    assert "TaskId" in error["message"] and "zzzqqq" not in out.result["body"]
    [line] = out.lines("api.status")
    assert "zzzqqq" not in line["reason"] and line["task_id"] == "zzzqqq"  # the id is logged as its field
