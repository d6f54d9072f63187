"""Failure behaviour through main_handler, with faults injected into the emulator over HTTP."""
from __future__ import annotations

import socket
import time

import pytest

from redraw import app
from redraw.errors import RedrawError, RetryableFailuresError, UpstreamError
from redraw.tools.emulator import DEFAULT_SECRET_KEY
from redraw.tools.samples import apigw_event, cos_event, redraw_body

URL = "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/in/clip.mp4"
RETRYABLE_FAULTS = ["InternalError", "RequestLimitExceeded", "RequestLimitExceeded.UinLimitExceeded",
                    "http500", "http503", "drop", "malformed", "empty"]


@pytest.mark.parametrize("fault", RETRYABLE_FAULTS)
def test_each_transient_fault_is_retried_to_success(invoke, emulator, fault):
    emulator.inject(fault)
    out = invoke(cos_event(["a.mp4"]))
    assert out.error is None, out.error
    [result] = out.result["results"]
    assert result["status"] == "submitted"
    assert emulator.task_count == 1
    [line] = out.lines("cos.record")
    assert line["attempts"] == 2 and line["retried_after"]


def test_faults_in_sequence(invoke, emulator):
    emulator.inject("InternalError", "drop", "http500")
    out = invoke(cos_event(["a.mp4"]))
    assert out.result["results"][0]["status"] == "submitted"
    assert out.lines("cos.record")[0]["attempts"] == 4
    assert emulator.task_count == 1


def test_dropped_connection_after_accept_ends_as_duplicate_with_one_task(invoke, emulator):
    emulator.inject("drop_after_accept")
    out = invoke(cos_event(["a.mp4"]))
    [result] = out.result["results"]
    assert result["status"] == "duplicate"
    assert out.error is None
    assert emulator.task_count == 1


def test_timeout_after_accept_via_slow_response_is_duplicate(invoke, emulator, env):
    env.setenv("VOD_HTTP_TIMEOUT", "0.5")
    emulator.inject("slow:1.5")
    out = invoke(cos_event(["a.mp4"]))
    assert out.result["results"][0]["status"] == "duplicate"
    assert emulator.task_count == 1


def test_partial_failure_raises_listing_only_the_failed_record_and_redelivery_dedups(invoke, emulator, env):
    env.setenv("VOD_MAX_ATTEMPTS", "2")
    env.setenv("VOD_MAX_CONCURRENCY", "1")  # records in order: the faults hit the first one
    emulator.inject("InternalError", "InternalError")
    event = cos_event(["a.mp4", "b.mp4"])
    first = invoke(event)
    assert isinstance(first.error, RetryableFailuresError)
    assert [f["key"] for f in first.error.failures] == ["a.mp4"]
    assert "a.mp4" in str(first.error)
    levels = {line["key"]: line["level"] for line in first.lines("cos.record")}
    assert levels == {"a.mp4": "warning", "b.mp4": "info"}
    again = invoke(event)  # SCF redelivers the same event
    assert again.error is None
    assert [r["status"] for r in again.result["results"]] == ["submitted", "duplicate"]
    assert emulator.task_count == 2


def test_all_records_failing_transiently_raise(invoke, emulator, env):
    env.setenv("VOD_MAX_ATTEMPTS", "2")
    emulator.inject(*["http500"] * 4)
    out = invoke(cos_event(["a.mp4", "b.mp4"]))
    assert isinstance(out.error, RetryableFailuresError)
    assert sorted(f["key"] for f in out.error.failures) == ["a.mp4", "b.mp4"]
    assert emulator.task_count == 0


def test_wrong_secret_key_makes_one_attempt_per_record_and_keeps_the_event(invoke, emulator, env):
    """A configuration fault: one attempt per record, then the handler raises so SCF retries the event
    and its dead-letter queue keeps it for a replay once the key is fixed (the upload is not dropped)."""
    env.setenv("TENCENTCLOUD_SECRETKEY", "not-the-right-key-000")
    out = invoke(cos_event(["a.mp4", "b.mp4", "c.mp4"]))
    assert isinstance(out.error, RetryableFailuresError)
    assert [f["status"] for f in out.error.failures] == ["failed"] * 3
    assert len(emulator.calls) == 3
    lines = out.lines("cos.record")
    assert all(line["level"] == "error" and line["retryable"] is False for line in lines)
    assert all("secret" in line["fix"].lower() for line in lines)
    assert all(line["error_code"] == "AuthFailure.SignatureFailure" for line in lines)
    assert "not-the-right-key" not in out.stdout
    env.setenv("TENCENTCLOUD_SECRETKEY", DEFAULT_SECRET_KEY)  # fixed; the redelivered event goes through
    app.reset()  # a new container picks up the fixed configuration
    again = invoke(cos_event(["a.mp4", "b.mp4", "c.mp4"]))
    assert again.error is None and [r["status"] for r in again.result["results"]] == ["submitted"] * 3


def test_callers_input_fault_fails_the_record_without_raising(invoke, emulator):
    emulator.inject("InvalidParameterValue")
    out = invoke(cos_event(["a.mp4", "b.mp4"]))
    assert out.error is None
    assert sorted(r["status"] for r in out.result["results"]) == ["failed", "submitted"]


def test_unknown_error_is_retried_once_then_terminal(invoke, emulator):
    emulator.inject("FailedOperation.SomethingNew", "FailedOperation.SomethingNew", "FailedOperation.SomethingNew")
    out = invoke(cos_event(["a.mp4"]))
    assert out.error is None
    assert out.result["results"][0]["status"] == "failed"
    assert len(emulator.calls) == 2


def test_slow_upstream_never_runs_past_the_time_limit(invoke, emulator, env):
    emulator.inject(*["slow:5"] * 10)
    started = time.monotonic()
    out = invoke(cos_event(["a.mp4", "b.mp4"]), {"request_id": "r", "time_limit_in_ms": 2000})
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    assert isinstance(out.error, RetryableFailuresError)


def test_rate_limit_pressure_is_absorbed(invoke, emulator, env):
    emulator.rps = 5
    env.setenv("VOD_PACING", "fixed")
    env.setenv("VOD_MAX_RPS", "50")  # the function believes in more than VOD allows
    out = invoke(cos_event([f"k{i}.mp4" for i in range(12)]), {"request_id": "r", "time_limit_in_ms": 20000})
    assert out.error is None, out.error
    assert [r["status"] for r in out.result["results"]] == ["submitted"] * 12
    assert emulator.rate_limit_hits > 0
    assert emulator.task_count == 12


def test_limiter_keeps_a_burst_under_the_api_limit(invoke, emulator, env):
    emulator.rps = 20
    out = invoke(cos_event([f"k{i}.mp4" for i in range(30)]), {"request_id": "r", "time_limit_in_ms": 20000})
    assert [r["status"] for r in out.result["results"]] == ["submitted"] * 30
    # the limiter keeps to 20 sends per second; only scheduling jitter on a loaded machine
    # can make two windows touch at VOD, and then the retries absorb it
    assert emulator.rate_limit_hits <= 3


@pytest.mark.parametrize("fault, status, retry_after", [
    ("InternalError", 503, True), ("RequestLimitExceeded", 503, True), ("drop", 503, True),
    ("AuthFailure.SecretIdNotFound", 502, False), ("UnauthorizedOperation", 502, False),
    ("FailedOperation.InvalidVodUser", 502, False), ("InvalidParameterValue.FileId", 400, False),
])
def test_api_status_codes_follow_the_decision(invoke, emulator, env, fault, status, retry_after):
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    emulator.inject(*[fault] * 40)  # throttling is retried until the time budget ends
    out = invoke(apigw_event(redraw_body(URL)), {"request_id": "r", "time_limit_in_ms": 2500})
    assert out.result["statusCode"] == status
    assert ("Retry-After" in out.result["headers"]) is retry_after
    assert out.body["SessionId"]


def test_direct_invocation_raises_package_errors(invoke, emulator, env):
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    emulator.inject("InternalError")
    out = invoke(redraw_body(URL))
    assert isinstance(out.error, UpstreamError) and out.error.decision == "retry"
    bad = invoke({"FileInfo": {"Type": "Url", "Url": "gopher://x"}})
    assert isinstance(bad.error, RedrawError) and "FileInfo.Url" in str(bad.error)
    ok = invoke(redraw_body(URL, SessionId="direct-1"))
    assert ok.result == {"TaskId": ok.result["TaskId"], "RequestId": ok.result["RequestId"],
                         "SessionId": "direct-1", "Status": "submitted"}


def test_direct_failure_names_the_session_id_so_a_retry_creates_nothing_twice(invoke, emulator, env):
    env.setenv("VOD_HTTP_TIMEOUT", "0.5")
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    emulator.inject("slow:1.5")  # VOD creates the task, the answer comes too late
    out = invoke(redraw_body(URL), context={"request_id": "d-1", "time_limit_in_ms": 3000})
    assert isinstance(out.error, UpstreamError) and out.error.decision == "retry"
    session_id = out.error.session_id
    assert session_id and session_id in str(out.error) and out.error.to_dict()["SessionId"] == session_id
    again = invoke(redraw_body(URL, SessionId=session_id))
    assert again.result["Status"] == "duplicate" and again.result["SessionId"] == session_id
    assert emulator.task_count == 1


def test_platform_retry_of_a_direct_invocation_creates_nothing_twice(invoke, emulator, env):
    """SCF retries an asynchronous invocation that raised with the same event (no SessionId in it)."""
    env.setenv("VOD_HTTP_TIMEOUT", "0.5")
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    emulator.inject("slow:1.5")  # VOD creates the task, the answer comes too late: the handler raises
    first = invoke(redraw_body(URL), context={"request_id": "d-2", "time_limit_in_ms": 3000})
    assert isinstance(first.error, UpstreamError) and first.error.decision == "retry"
    retried = invoke(redraw_body(URL), context={"request_id": "d-3", "time_limit_in_ms": 3000})
    assert retried.result["Status"] == "duplicate" and retried.result["SessionId"] == first.error.session_id
    assert emulator.task_count == 1
    other = invoke(redraw_body(URL, TaskInfo={"Style": "anime"}))  # a different request is a different task
    assert other.result["Status"] == "submitted" and other.result["SessionId"] != first.error.session_id
    assert emulator.task_count == 2


def test_one_client_and_connection_per_warm_container(invoke, emulator):
    for i in range(5):
        assert invoke(cos_event([f"w{i}.mp4"])).error is None
    assert emulator.connections == 1


def test_an_unexpected_bug_is_logged_and_reported_in_package_terms(invoke, emulator, monkeypatch):
    from redraw import core
    from redraw.errors import UnexpectedError

    def broken(*args, **kwargs):
        raise KeyError("boom")
    monkeypatch.setattr(core, "submit_all", broken)
    monkeypatch.setattr(core, "prepare_request", broken)
    out = invoke(cos_event(["a.mp4"]))
    assert isinstance(out.error, UnexpectedError) and out.error.__cause__ is None  # "boom" may hold secrets
    assert out.error.__suppress_context__  # a traceback printed by the runtime does not show it
    [line] = out.lines("handler.crashed")
    assert line["level"] == "error" and "KeyError" in line["exception"]
    api = invoke(apigw_event(redraw_body(URL)))
    assert api.result["statusCode"] == 500 and api.body["error"]["code"] == "UnexpectedError"


@pytest.mark.parametrize("code", ["InvalidParameter", "UnknownParameter", "MissingParameter", "UnsupportedOperation",
                                  "AuthFailure.InvalidAuthorization", "InvalidParameterValue.Url"])
def test_every_terminal_failure_says_what_to_fix(invoke, emulator, code):
    emulator.inject(code)
    out = invoke(cos_event(["a.mp4"]))
    [line] = out.lines("cos.record")
    assert line["level"] == "error" and line["fix"] and line["error_code"] == code
    assert len(emulator.calls) == 1


def test_unknown_code_family_is_retried_once_then_terminal_with_a_hint(invoke, emulator):
    emulator.inject("ResourceUnavailable.Something", "ResourceUnavailable.Something")
    out = invoke(cos_event(["a.mp4"]))
    assert out.error is None and out.result["results"][0]["status"] == "failed"
    assert len(emulator.calls) == 2
    assert "vod_message" in out.lines("cos.record")[0]["fix"]


def test_api_duplicate_after_a_lost_answer_says_so(invoke, emulator):
    emulator.inject("drop_after_accept")
    out = invoke(apigw_event(redraw_body(URL)))
    assert out.result["statusCode"] == 409
    assert "earlier attempt" in out.body["error"]["message"]
    assert emulator.task_count == 1



def _closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("case, status, level", [
    ("unreachable", 503, "warning"), ("wrong key", 502, "error"), ("unknown task", 404, "warning")])
def test_a_task_lookup_vod_was_asked_for_is_logged_failed_not_rejected(invoke, emulator, env, case, status, level):
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    if case == "unreachable":
        env.setenv("VOD_ENDPOINT", _closed_port_url())
    elif case == "wrong key":
        env.setenv("TENCENTCLOUD_SECRETKEY", "not-the-key")
    out = invoke(apigw_event(None, method="GET", path="/tasks/1500000001-AigcVideoRedrawTask-x"))
    assert out.result["statusCode"] == status
    [line] = out.lines("api.status")
    assert line["outcome"] == "failed" and line["level"] == level and line["status_code"] == status
    assert ("fix" in line) is (level == "error") and not out.lines("api.request")
    calls = len(emulator.calls)
    invalid = invoke(apigw_event(None, method="GET", path="/tasks/%3Cscript%3E"))
    assert invalid.result["statusCode"] == 400 and len(emulator.calls) == calls  # nothing sent: rejected
    assert [line["outcome"] for line in invalid.lines("api.status")] == ["rejected"]
