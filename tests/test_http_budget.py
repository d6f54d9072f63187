"""HTTP on the caller's clock: an HTTP request is answered within REDRAW_HTTP_BUDGET_MS (503 with
Retry-After and the SessionId past it); COS events keep the whole invocation time limit."""
from __future__ import annotations

import json
import time

import pytest

from redraw.tools.samples import apigw_event, cos_event, redraw_body, url_event

URL = "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/uploads/clip.mp4"
LONG = {"request_id": "budget", "function_name": "redraw", "time_limit_in_ms": 60000}


@pytest.mark.parametrize("build", [url_event, apigw_event])
def test_a_slow_vod_is_answered_503_within_the_budget_and_the_retry_creates_nothing_twice(invoke, emulator, env,
                                                                                          build):
    env.setenv("REDRAW_HTTP_BUDGET_MS", "1000")
    emulator.latency = 2.5  # VOD accepts the task, then answers late
    started = time.monotonic()
    out = invoke(build(redraw_body(URL)), LONG)
    took = time.monotonic() - started
    assert out.result["statusCode"] == 503, out.result
    assert took < 1.8, took  # the budget (1 s), not the 60 s time limit
    assert out.result["headers"]["Retry-After"]
    body = json.loads(out.result["body"])
    session_id = body["SessionId"]
    assert session_id.startswith("redraw-")
    [line] = out.lines("api.request")
    assert line["status_code"] == 503 and line["session_id"] == session_id

    emulator.latency = 0.0
    time.sleep(2.6 - min(2.6, time.monotonic() - started))  # the late answer has left the emulator
    retried = invoke(build(redraw_body(URL, SessionId=session_id)), LONG)
    assert retried.result["statusCode"] == 409  # the first attempt's task: no second one
    assert emulator.task_count == 1


def test_throttling_past_the_budget_is_503_with_retry_after_1(invoke, emulator, env):
    env.setenv("REDRAW_HTTP_BUDGET_MS", "1000")
    emulator.inject(*["RequestLimitExceeded"] * 200)
    started = time.monotonic()
    out = invoke(url_event(redraw_body(URL, SessionId="order-42")), LONG)
    assert time.monotonic() - started < 1.8
    assert out.result["statusCode"] == 503 and out.result["headers"]["Retry-After"] == "1"
    assert json.loads(out.result["body"])["SessionId"] == "order-42"
    assert emulator.task_count == 0


def test_cos_events_keep_the_whole_time_limit(invoke, emulator, env):
    env.setenv("REDRAW_HTTP_BUDGET_MS", "1000")
    emulator.latency = 1.5  # longer than the HTTP budget, well within the time limit
    out = invoke(cos_event(["uploads/slow.mp4"]), LONG)
    assert out.error is None, out.error
    assert [r["status"] for r in out.result["results"]] == ["submitted"]


def test_the_budget_does_not_lengthen_a_shorter_time_limit(invoke, emulator, env):
    emulator.latency = 2.5
    started = time.monotonic()
    out = invoke(url_event(redraw_body(URL)), {"request_id": "short", "time_limit_in_ms": 2000})
    assert out.result["statusCode"] == 503
    assert time.monotonic() - started < 1.8  # 2 s limit minus the safety margin (at most half)


def test_the_budget_is_one_setting_with_a_range(env):
    from redraw.config import load_settings
    from redraw.errors import ConfigError
    import os

    assert load_settings().http_budget_ms == 10000
    for bad in ("999", "900001", "ten"):
        with pytest.raises(ConfigError, match="REDRAW_HTTP_BUDGET_MS"):
            load_settings({**os.environ, "REDRAW_HTTP_BUDGET_MS": bad})
