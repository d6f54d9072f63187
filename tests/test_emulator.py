"""Tests of redraw.tools.emulator alone, driven by the real Tencent Cloud SDK as the client."""

from __future__ import annotations

import http.client
import importlib
import json
import re
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tencentcloud.common import abstract_client
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

emulator_module = importlib.import_module("redraw.tools.emulator")
DEFAULT_SECRET_ID = emulator_module.DEFAULT_SECRET_ID
DEFAULT_SECRET_KEY = emulator_module.DEFAULT_SECRET_KEY
RANDOM_FAULTS = emulator_module.RANDOM_FAULTS
VodEmulator = emulator_module.VodEmulator

CREATE = "CreateAigcVideoRedrawTask"
DESCRIBE = "DescribeTaskDetail"
KNOWN_FILE = "5285890781234567890"
ABORT_FILE = "5285890700000abort"
TASK_ID_RE = re.compile(r"^(\d+)-AigcVideoRedrawTask-[0-9a-f]{32}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def url_params(**extra):
    params = {"SubAppId": 221073, "FileInfo": {"Type": "Url", "Url": "https://example.com/in.mp4"}}
    params.update(extra)
    return params


@pytest.fixture
def emu():
    with VodEmulator(known_file_ids={KNOWN_FILE, ABORT_FILE}, task_duration=0.3) as emulator:
        yield emulator


def make_client(emulator, *, secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY, token=None,
                timeout=5, keep_alive=False, service="vod", version="2018-07-17"):
    http_profile = HttpProfile(endpoint=emulator.endpoint, protocol="http", reqTimeout=timeout,
                               keepAlive=keep_alive)
    profile = ClientProfile(httpProfile=http_profile)
    return CommonClient(service, version, Credential(secret_id, secret_key, token), "ap-guangzhou", profile)


def api_error(client, action, params):
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json(action, params)
    return info.value


def signed_request(client, action, params):
    """Headers and body exactly as the SDK would send them."""
    req = RequestInternal(client._get_endpoint(), "POST", "/", header={})
    client._build_req_inter(action, params, req)
    return dict(req.header), req.data


def raw_post(emulator, headers, body, method="POST", path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, resp.getheader("Content-Type"), json.loads(payload)
    finally:
        conn.close()


# --------------------------------------------------------------------------- success
def test_create_success_and_task_id_format(emu):
    client = make_client(emu)
    params = url_params(SessionId="s-1", SessionContext="ctx", TasksPriority=3,
                        TaskInfo={"Style": "anime"},
                        OutputConfig={"StorageMode": "Permanent", "MediaName": "out", "ClassId": 7,
                                      "ExpireTime": "2030-12-28T00:35:00+08:00"},
                        ExtInfo="x")
    resp = client.call_json(CREATE, params)["Response"]
    assert set(resp) == {"TaskId", "RequestId"}
    m = TASK_ID_RE.match(resp["TaskId"])
    assert m and m.group(1) == "221073"
    assert UUID_RE.match(resp["RequestId"])
    assert emu.task_count == 1
    task = emu.tasks[resp["TaskId"]]
    assert task["params"] == params
    assert task["SessionId"] == "s-1" and task["SessionContext"] == "ctx"
    [call] = emu.calls
    assert call["action"] == CREATE and call["params"] == params and call["outcome"] == "ok"
    assert call["task_id"] == resp["TaskId"] and call["request_id"] == resp["RequestId"]


def test_known_file_id_and_sub_app_id_restriction():
    with VodEmulator(sub_app_ids=[1001], known_file_ids=[KNOWN_FILE]) as emu:
        client = make_client(emu)
        ok = client.call_json(CREATE, {"SubAppId": 1001, "FileInfo": {"Type": "File", "FileId": KNOWN_FILE}})
        assert ok["Response"]["TaskId"].startswith("1001-AigcVideoRedrawTask-")
        err = api_error(client, CREATE, {"SubAppId": 1002, "FileInfo": {"Type": "File", "FileId": KNOWN_FILE}})
        assert err.code == "InvalidParameterValue.SubAppId"
        assert emu.task_count == 1


def test_error_answers_are_http_200_json(emu):
    client = make_client(emu, secret_key="wrong")
    headers, body = signed_request(client, CREATE, url_params())
    status, ctype, payload = raw_post(emu, headers, body)
    assert (status, ctype) == (200, "application/json")
    assert payload["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"
    assert UUID_RE.match(payload["Response"]["RequestId"])


# --------------------------------------------------------------------------- authentication
def test_wrong_secret_key_is_signature_failure(emu):
    err = api_error(make_client(emu, secret_key="not-the-key"), CREATE, url_params())
    assert err.code == "AuthFailure.SignatureFailure"
    assert DEFAULT_SECRET_KEY not in err.message and "not-the-key" not in err.message
    assert emu.task_count == 0
    assert emu.calls[-1]["outcome"] == "AuthFailure.SignatureFailure"


def test_signature_not_echoed(emu):
    client = make_client(emu, secret_key="not-the-key")
    headers, body = signed_request(client, CREATE, url_params())
    signature = headers["Authorization"].rsplit("Signature=", 1)[1]
    _, _, payload = raw_post(emu, headers, body)
    assert signature not in json.dumps(payload)


def test_unknown_secret_id(emu):
    err = api_error(make_client(emu, secret_id="AKIDsomebodyElse"), CREATE, url_params())
    assert err.code == "AuthFailure.SecretIdNotFound"


def test_token_required():
    with VodEmulator(token="session-token-1") as emu:
        assert api_error(make_client(emu), CREATE, url_params()).code == "AuthFailure.TokenFailure"
        assert api_error(make_client(emu, token="other"), CREATE, url_params()).code == "AuthFailure.TokenFailure"
        assert emu.task_count == 0
        resp = make_client(emu, token="session-token-1").call_json(CREATE, url_params())
        assert TASK_ID_RE.match(resp["Response"]["TaskId"])


@pytest.mark.parametrize("offset", [-1000, 1000])
def test_stale_or_future_timestamp_is_signature_expire(emu, monkeypatch, offset):
    fake_time = types.SimpleNamespace(time=lambda: time.time() + offset)
    monkeypatch.setattr(abstract_client, "time", fake_time)  # only the SDK's signing clock
    err = api_error(make_client(emu), CREATE, url_params())
    assert err.code == "AuthFailure.SignatureExpire"
    monkeypatch.undo()
    assert make_client(emu).call_json(CREATE, url_params())["Response"]["TaskId"]


def test_timestamp_within_skew_is_accepted(emu, monkeypatch):
    monkeypatch.setattr(abstract_client, "time", types.SimpleNamespace(time=lambda: time.time() - 200))
    assert make_client(emu).call_json(CREATE, url_params())["Response"]["TaskId"]


def test_tampered_body_is_signature_failure(emu):
    headers, body = signed_request(make_client(emu), CREATE, url_params())
    tampered = body.replace("221073", "221074")
    assert tampered != body
    _, _, payload = raw_post(emu, headers, tampered)
    assert payload["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"
    _, _, payload = raw_post(emu, headers, body)
    assert "TaskId" in payload["Response"]


def test_tampered_signed_header_is_signature_failure(emu):
    headers, body = signed_request(make_client(emu), CREATE, url_params())
    headers["Host"] = "vod.tencentcloudapi.com"
    _, _, payload = raw_post(emu, headers, body)
    assert payload["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


def test_wrong_credential_date_is_signature_failure(emu):
    headers, body = signed_request(make_client(emu), CREATE, url_params())
    headers["Authorization"] = re.sub(r"/\d{4}-\d{2}-\d{2}/", "/2001-01-01/", headers["Authorization"])
    _, _, payload = raw_post(emu, headers, body)
    assert payload["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


def test_wrong_service_is_signature_failure(emu):
    err = api_error(make_client(emu, service="cvm"), CREATE, url_params())
    assert err.code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "AuthFailure.SignatureFailure"),
        ("Basic dXNlcjpwYXNz", "AuthFailure.InvalidAuthorization"),
        ("TC3-HMAC-SHA256 garbage", "AuthFailure.InvalidAuthorization"),
    ],
)
def test_missing_or_garbled_authorization(emu, authorization, code):
    headers, body = signed_request(make_client(emu), CREATE, url_params())
    del headers["Authorization"]
    if authorization is not None:
        headers["Authorization"] = authorization
    _, _, payload = raw_post(emu, headers, body)
    assert payload["Response"]["Error"]["Code"] == code


def test_non_integer_timestamp_is_signature_expire(emu):
    headers, body = signed_request(make_client(emu), CREATE, url_params())
    headers["X-TC-Timestamp"] = "yesterday"
    _, _, payload = raw_post(emu, headers, body)
    assert payload["Response"]["Error"]["Code"] == "AuthFailure.SignatureExpire"


def test_get_is_rejected(emu):
    headers, _ = signed_request(make_client(emu), CREATE, url_params())
    status, ctype, payload = raw_post(emu, headers, b"", method="GET")
    assert (status, ctype) == (200, "application/json")
    assert payload["Response"]["Error"]["Code"] == "UnsupportedProtocol"


# --------------------------------------------------------------------------- action / version
def test_invalid_action(emu):
    assert api_error(make_client(emu), "DescribeMediaInfos", {}).code == "InvalidAction"


def test_no_such_version(emu):
    assert api_error(make_client(emu, version="2017-01-01"), CREATE, url_params()).code == "NoSuchVersion"


def test_body_not_a_json_object(emu):
    assert api_error(make_client(emu), CREATE, [1, 2]).code == "InvalidParameter"


# --------------------------------------------------------------------------- validation
LONG = "x" * 51
VALIDATION_CASES = [
    ({"Bogus": 1}, "UnknownParameter"),
    ({"FileInfo": {"Type": "Url", "Url": "https://a/b.mp4", "Extra": 1}}, "UnknownParameter"),
    ({"OutputConfig": {"Format": "mp4"}}, "UnknownParameter"),
    ({"TaskInfo": {"Style": "a", "Strength": 1}}, "UnknownParameter"),
    ({"SubAppId": None}, "MissingParameter"),
    ({"SubAppId": "221073"}, "InvalidParameterValue.SubAppId"),
    ({"SubAppId": 1.5}, "InvalidParameterValue.SubAppId"),
    ({"SubAppId": True}, "InvalidParameterValue.SubAppId"),
    ({"SubAppId": 0}, "InvalidParameterValue.SubAppId"),
    ({"FileInfo": None}, "MissingParameter"),
    ({"FileInfo": "https://a/b.mp4"}, "InvalidParameter"),
    ({"FileInfo": {"Url": "https://a/b.mp4"}}, "MissingParameter"),
    ({"FileInfo": {"Type": "Cos", "Url": "https://a/b.mp4"}}, "InvalidParameterValue"),
    ({"FileInfo": {"Type": "Url", "Url": "ftp://a/b.mp4"}}, "InvalidParameterValue"),
    ({"FileInfo": {"Type": "Url", "Url": ""}}, "InvalidParameterValue"),
    ({"FileInfo": {"Type": "Url"}}, "MissingParameter"),
    ({"FileInfo": {"Type": "Url", "Url": 5}}, "InvalidParameter"),
    ({"FileInfo": {"Type": "File"}}, "MissingParameter"),
    ({"FileInfo": {"Type": "File", "FileId": "123"}}, "InvalidParameterValue.FileId"),
    ({"TaskInfo": {"Style": LONG}}, "InvalidParameterValue"),
    ({"TaskInfo": {"Style": 3}}, "InvalidParameter"),
    ({"TaskInfo": []}, "InvalidParameter"),
    ({"OutputConfig": {"MediaName": "m" * 65}}, "InvalidParameterValue"),
    ({"OutputConfig": {"StorageMode": "Forever"}}, "InvalidParameterValue"),
    ({"OutputConfig": {"ClassId": "7"}}, "InvalidParameter"),
    ({"OutputConfig": {"ClassId": 2**63}}, "InvalidParameter"),  # beyond the API's int64
    ({"OutputConfig": {"ExpireTime": "2025-12-28 00:35:00"}}, "InvalidParameterValue"),
    ({"OutputConfig": {"ExpireTime": "2025-12-28T00:35:00"}}, "InvalidParameterValue"),
    ({"OutputConfig": {"ExpireTime": "2025-13-28T00:35:00Z"}}, "InvalidParameterValue"),
    ({"OutputConfig": {"ExpireTime": 1735000000}}, "InvalidParameter"),
    ({"TasksPriority": 11}, "InvalidParameterValue"),
    ({"TasksPriority": -11}, "InvalidParameterValue"),
    ({"TasksPriority": "1"}, "InvalidParameter"),
    ({"SessionId": LONG}, "InvalidParameterValue.SessionIdTooLong"),
    ({"SessionId": 12}, "InvalidParameter"),
    ({"SessionContext": "c" * 1001}, "InvalidParameterValue.SessionContextTooLong"),
    ({"ExtInfo": {"a": 1}}, "InvalidParameter"),
]


@pytest.mark.parametrize(("override", "code"), VALIDATION_CASES)
def test_validation_errors(emu, override, code):
    params = url_params(**override)
    params = {k: v for k, v in params.items() if not (k in override and v is None)}
    err = api_error(make_client(emu), CREATE, params)
    assert err.code == code, err.message
    assert emu.task_count == 0


def test_missing_sub_app_id_and_unknown_field_named(emu):
    client = make_client(emu)
    err = api_error(client, CREATE, {"FileInfo": {"Type": "Url", "Url": "https://a/b.mp4"}})
    assert err.code == "MissingParameter" and "SubAppId" in err.message
    err = api_error(client, CREATE, url_params(OutputConfig={"Format": "mp4"}))
    assert "OutputConfig.Format" in err.message


@pytest.mark.parametrize(
    "override",
    [
        {"TaskInfo": {"Style": "s" * 50}},
        {"OutputConfig": {"MediaName": "m" * 64, "StorageMode": "Temporary", "ClassId": 0}},
        {"OutputConfig": {"ExpireTime": "2025-12-28T00:35:00Z"}},
        {"OutputConfig": {"ExpireTime": "2025-12-28T08:35:00.5+08:00"}},
        {"TasksPriority": -10},
        {"TasksPriority": 10},
        {"SessionId": "s" * 50, "SessionContext": "c" * 1000},
        {"FileInfo": {"Type": "Url", "Url": "http://a/b.mp4"}},
        {"ExtInfo": None, "TaskInfo": None},
    ],
)
def test_boundary_values_accepted(emu, override):
    resp = make_client(emu).call_json(CREATE, url_params(**override))
    assert TASK_ID_RE.match(resp["Response"]["TaskId"])


def test_session_id_dedup(emu):
    client = make_client(emu)
    client.call_json(CREATE, url_params(SessionId="evt-1"))
    err = api_error(client, CREATE, url_params(SessionId="evt-1"))
    assert err.code == "InvalidParameterValue.SessionId"
    client.call_json(CREATE, url_params(SessionId="evt-2"))
    client.call_json(CREATE, url_params(SessionId=""))
    client.call_json(CREATE, url_params(SessionId=""))
    client.call_json(CREATE, url_params())
    assert emu.task_count == 5


def test_failed_request_does_not_consume_session_id(emu):
    client = make_client(emu)
    bad = url_params(SessionId="evt-9", FileInfo={"Type": "File", "FileId": "nope"})
    assert api_error(client, CREATE, bad).code == "InvalidParameterValue.FileId"
    assert client.call_json(CREATE, url_params(SessionId="evt-9"))["Response"]["TaskId"]


def test_reset_forgets_everything(emu):
    client = make_client(emu)
    client.call_json(CREATE, url_params(SessionId="evt-r"))
    emu.inject("InternalError")
    emu.reset()
    assert (emu.task_count, emu.calls, emu.connections, emu.rate_limit_hits) == (0, [], 0, 0)
    assert client.call_json(CREATE, url_params(SessionId="evt-r"))["Response"]["TaskId"]


# --------------------------------------------------------------------------- rate limiting
def test_rate_limit():
    with VodEmulator(rps=5) as emu:
        client = make_client(emu, keep_alive=True)
        codes = []
        for _ in range(8):
            try:
                client.call_json(CREATE, url_params())
                codes.append("ok")
            except TencentCloudSDKException as exc:
                codes.append(exc.code)
        assert codes.count("ok") == 5
        assert codes.count("RequestLimitExceeded") == 3
        assert emu.rate_limit_hits == 3 and emu.task_count == 5
        # DescribeTaskDetail is not limited.
        task_id = next(iter(emu.tasks))
        assert client.call_json(DESCRIBE, {"TaskId": task_id})["Response"]["Status"]
        time.sleep(1.05)
        assert client.call_json(CREATE, url_params())["Response"]["TaskId"]


def test_rate_limit_disabled():
    with VodEmulator(rps=0) as emu:
        client = make_client(emu, keep_alive=True)
        for _ in range(30):
            client.call_json(CREATE, url_params())
        assert emu.rate_limit_hits == 0 and emu.task_count == 30


# --------------------------------------------------------------------------- faults
def test_fault_error_code_then_normal(emu):
    emu.inject("InternalError", "AuthFailure.SignatureFailure", "FailedOperation.InvalidVodUser")
    client = make_client(emu)
    assert api_error(client, CREATE, url_params()).code == "InternalError"
    assert api_error(client, CREATE, url_params()).code == "AuthFailure.SignatureFailure"
    assert api_error(client, CREATE, url_params()).code == "FailedOperation.InvalidVodUser"
    assert client.call_json(CREATE, url_params())["Response"]["TaskId"]
    assert emu.task_count == 1
    assert [c["outcome"] for c in emu.calls] == [
        "InternalError", "AuthFailure.SignatureFailure", "FailedOperation.InvalidVodUser", "ok"]


def test_fault_not_consumed_by_bad_signature_or_describe(emu):
    emu.inject("RequestLimitExceeded")
    assert api_error(make_client(emu, secret_key="bad"), CREATE, url_params()).code == (
        "AuthFailure.SignatureFailure")
    assert api_error(make_client(emu), DESCRIBE, {"TaskId": "x"}).code == "InvalidParameterValue.TaskId"
    assert emu.pending_faults == ["RequestLimitExceeded"]
    assert api_error(make_client(emu), CREATE, url_params()).code == "RequestLimitExceeded"
    assert emu.rate_limit_hits == 0


def test_fault_drop(emu):
    emu.inject("drop")
    client = make_client(emu)
    err = api_error(client, CREATE, url_params(SessionId="d-1"))
    assert err.code == "ClientNetworkError"
    assert emu.task_count == 0
    assert emu.calls[-1]["outcome"] == "drop"
    assert client.call_json(CREATE, url_params(SessionId="d-1"))["Response"]["TaskId"]


def test_fault_drop_after_accept(emu):
    emu.inject("drop_after_accept")
    client = make_client(emu)
    assert api_error(client, CREATE, url_params(SessionId="daa-1")).code == "ClientNetworkError"
    assert emu.task_count == 1
    retry = api_error(client, CREATE, url_params(SessionId="daa-1"))
    assert retry.code == "InvalidParameterValue.SessionId"
    assert emu.task_count == 1


@pytest.mark.parametrize("fault", ["malformed", "empty"])
def test_fault_malformed_or_empty_body(emu, fault):
    emu.inject(fault)
    # The SDK does not wrap a JSON decoding failure: a raw ValueError escapes.
    with pytest.raises(ValueError):
        make_client(emu).call_json(CREATE, url_params())
    assert emu.task_count == 0
    assert emu.calls[-1]["outcome"] == fault


@pytest.mark.parametrize(("fault", "status"), [("http500", 500), ("http502", 502), ("http503", 503)])
def test_fault_http_status(emu, fault, status):
    emu.inject(fault)
    err = api_error(make_client(emu), CREATE, url_params())
    assert err.code == "ServerNetworkError"
    assert str(status).encode() in err.message
    emu.inject(fault)
    headers, body = signed_request(make_client(emu), CREATE, url_params())
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    conn.request("POST", "/", body=body.encode(), headers=headers)
    resp = conn.getresponse()
    assert resp.status == status and resp.read()
    conn.close()
    assert emu.task_count == 0


def test_fault_slow_times_out(emu):
    emu.inject("slow:1")
    client = make_client(emu, timeout=0.3)
    started = time.monotonic()
    err = api_error(client, CREATE, url_params())
    assert err.code == "ClientNetworkError"
    assert "timed out" in err.message.lower()
    assert time.monotonic() - started < 0.9


def test_fault_slow_answers_eventually(emu):
    emu.inject("slow:0.3")
    started = time.monotonic()
    assert make_client(emu).call_json(CREATE, url_params())["Response"]["TaskId"]
    assert time.monotonic() - started >= 0.3


def test_clear_faults_and_bad_fault_names(emu):
    emu.inject("InternalError", "slow:2.5", "http502")
    emu.clear_faults()
    assert make_client(emu).call_json(CREATE, url_params())["Response"]["TaskId"]
    for bad in ("internalError", "boom", "slow:", "slow:x", "http404", "Internal Error"):
        with pytest.raises(ValueError):
            emu.inject(bad)
    assert emu.pending_faults == []


def test_random_faults_are_seeded():
    def run():
        with VodEmulator(fault_rate=1.0, fault_seed=7, rps=0) as emu:
            emu.latency = 0.0
            client = make_client(emu, timeout=2)
            for _ in range(6):
                try:
                    client.call_json(CREATE, url_params())
                except (TencentCloudSDKException, ValueError):
                    pass
            return [c["fault"] for c in emu.calls]

    first = run()
    assert len(first) == 6 and all(f in RANDOM_FAULTS for f in first)
    assert first == run()


def test_fault_rate_zero_means_no_faults():
    with VodEmulator(fault_rate=0.0, fault_seed=1, rps=0) as emu:
        client = make_client(emu, keep_alive=True)
        for _ in range(10):
            client.call_json(CREATE, url_params())
        assert all(c["fault"] is None for c in emu.calls)


# --------------------------------------------------------------------------- transport
def test_url_and_endpoint(emu):
    assert emu.port > 0
    assert emu.endpoint == f"127.0.0.1:{emu.port}"
    assert emu.url == f"http://127.0.0.1:{emu.port}"
    assert DEFAULT_SECRET_KEY not in repr(emu)


def test_keep_alive_reuses_one_connection(emu):
    client = make_client(emu, keep_alive=True)
    for _ in range(5):
        client.call_json(CREATE, url_params())
    assert emu.connections == 1
    other = make_client(emu, keep_alive=True)
    other.call_json(CREATE, url_params())
    assert emu.connections == 2


def test_latency_overlaps_between_concurrent_requests(emu):
    emu.latency = 0.3
    errors = []

    def worker():
        try:
            make_client(emu).call_json(CREATE, url_params())
        except (TencentCloudSDKException, ValueError) as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert not errors
    assert 0.3 <= elapsed < 0.9
    assert emu.task_count == 4


def test_stop_closes_kept_alive_connections():
    emu = VodEmulator().start()
    client = make_client(emu, keep_alive=True)
    client.call_json(CREATE, url_params())
    emu.stop()
    assert api_error(client, CREATE, url_params()).code == "ClientNetworkError"
    emu.stop()  # idempotent


# --------------------------------------------------------------------------- DescribeTaskDetail
def describe(client, task_id, **extra):
    return client.call_json(DESCRIBE, {"TaskId": task_id, **extra})["Response"]


def wait_final(client, task_id, deadline=3.0):
    end = time.monotonic() + deadline
    while True:
        resp = describe(client, task_id)
        if resp["Status"] in ("FINISH", "ABORTED") or time.monotonic() > end:
            return resp
        time.sleep(0.05)


def test_describe_lifecycle_finish_permanent(emu):
    client = make_client(emu, keep_alive=True)
    output = {"StorageMode": "Permanent", "MediaName": "redrawn", "ClassId": 3,
              "ExpireTime": "2030-01-01T00:00:00Z"}
    params = url_params(SessionId="life-1", SessionContext="ctx-1", TaskInfo={"Style": "ink"},
                        OutputConfig=output)
    task_id = client.call_json(CREATE, params)["Response"]["TaskId"]
    first = describe(client, task_id, SubAppId=221073)
    assert first["TaskType"] == "AigcVideoRedrawTask"
    assert first["Status"] in ("WAITING", "PROCESSING")
    assert first["FinishTime"] == ""
    assert first["AigcVideoRedrawTask"]["Output"] is None
    assert first["AigcVideoRedrawTask"]["Progress"] < 100
    final = wait_final(client, task_id)
    assert final["Status"] == "FINISH"
    task = final["AigcVideoRedrawTask"]
    assert (task["TaskId"], task["Status"], task["ErrCode"], task["Progress"]) == (task_id, "FINISH", 0, 100)
    assert task["Input"] == {"FileInfo": params["FileInfo"], "TaskInfo": {"Style": "ink"}, "OutputConfig": output}
    assert (task["SessionId"], task["SessionContext"]) == ("life-1", "ctx-1")
    info = task["Output"]["FileInfo"]
    assert info["StorageMode"] == "Permanent" and info["FileType"] == "mp4"
    assert (info["MediaName"], info["ClassId"], info["ExpireTime"]) == ("redrawn", 3, "2030-01-01T00:00:00Z")
    assert re.fullmatch(r"5285890\d{12}", info["FileId"])
    # a signed URL on the emulator, valid until the requested ExpireTime (2030-01-01T00:00:00Z)
    assert info["FileUrl"] == (f"{emu.url}/aigc/{task_id}.mp4?t={1893456000:x}&sign="
                               + info["FileUrl"].rsplit("&sign=", 1)[1])
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    for key in ("CreateTime", "BeginProcessTime", "FinishTime"):
        assert iso.match(final[key]), key
    assert UUID_RE.match(final["RequestId"])


def test_describe_temporary_output_has_url_only(emu):
    client = make_client(emu)
    task_id = client.call_json(CREATE, url_params())["Response"]["TaskId"]
    info = wait_final(client, task_id)["AigcVideoRedrawTask"]["Output"]["FileInfo"]
    assert info["StorageMode"] == "Temporary"
    assert info["FileId"] == ""
    assert re.fullmatch(re.escape(f"{emu.url}/aigc/{task_id}.mp4?t=") + r"[0-9a-f]+&sign=[0-9a-f]{64}",
                        info["FileUrl"])


def test_describe_progress_is_time_driven(emu):
    emu.task_duration = 100.0
    client = make_client(emu)
    task_id = client.call_json(CREATE, url_params())["Response"]["TaskId"]
    waiting = describe(client, task_id)
    assert waiting["Status"] == "WAITING" and waiting["BeginProcessTime"] == ""
    assert waiting["AigcVideoRedrawTask"]["Progress"] == 0
    emu.tasks[task_id]["created"] -= 55.0  # halfway through processing
    processing = describe(client, task_id)
    assert processing["Status"] == "PROCESSING" and processing["BeginProcessTime"]
    assert 49 <= processing["AigcVideoRedrawTask"]["Progress"] <= 51
    emu.tasks[task_id]["created"] -= 50.0
    assert describe(client, task_id)["Status"] == "FINISH"


@pytest.mark.parametrize(
    "file_info",
    [{"Type": "Url", "Url": "https://example.com/abort.mp4"}, {"Type": "File", "FileId": ABORT_FILE}],
)
def test_describe_aborted(emu, file_info):
    client = make_client(emu)
    task_id = client.call_json(CREATE, url_params(FileInfo=file_info))["Response"]["TaskId"]
    final = wait_final(client, task_id)
    assert final["Status"] == "ABORTED"
    task = final["AigcVideoRedrawTask"]
    assert task["Status"] == "ABORTED" and task["ErrCode"] == 70000
    assert task["Message"] == "The source video could not be processed."
    assert task["Output"] is None


def test_describe_unknown_task(emu):
    client = make_client(emu)
    err = api_error(client, DESCRIBE, {"TaskId": "221073-AigcVideoRedrawTask-" + "0" * 32})
    assert (err.code, err.message) == ("InvalidParameterValue.TaskId", "TaskId does not exist")
    task_id = client.call_json(CREATE, url_params())["Response"]["TaskId"]
    assert api_error(client, DESCRIBE, {"TaskId": task_id, "SubAppId": 999}).code == (
        "InvalidParameterValue.TaskId")
    assert api_error(client, DESCRIBE, {}).code == "MissingParameter"
    assert api_error(client, DESCRIBE, {"TaskId": task_id, "Foo": 1}).code == "UnknownParameter"


# --------------------------------------------------------------------------- module / CLI
def test_import_is_cheap_and_side_effect_free():
    code = (
        "import sys, threading; import redraw.tools.emulator; "
        "bad = [m for m in ('pydantic', 'structlog', 'tencentcloud', 'requests') if m in sys.modules]; "
        "print(bad, threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=10,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] 1"
    assert out.stderr == ""


def test_main_serves_and_never_prints_secret_key(monkeypatch):
    env_key = "cli-test-secret-key-value"
    cmd = [sys.executable, "-m", "redraw.tools.emulator", "--port", "0", "--rps", "5", "--latency", "0",
           "--fault", "InternalError", "--fault-rate", "0"]
    env = {"PATH": "/usr/bin:/bin", "VOD_EMULATOR_SECRET_KEY": env_key, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"VOD emulator listening on http://127\.0\.0\.1:(\d+) \(secret id (\S+)\)\n", line)
        assert m, line
        assert m.group(2) == DEFAULT_SECRET_ID
        assert env_key not in line and DEFAULT_SECRET_KEY not in line
        port = int(m.group(1))
        cli = types.SimpleNamespace(endpoint=f"127.0.0.1:{port}")
        client = make_client(cli, secret_key=env_key)
        assert api_error(client, CREATE, url_params()).code == "InternalError"  # the queued --fault
        assert client.call_json(CREATE, url_params())["Response"]["TaskId"]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert env_key not in out + err and DEFAULT_SECRET_KEY not in out + err
    assert err == ""


def test_main_rejects_bad_fault():
    out = subprocess.run([sys.executable, "-m", "redraw.tools.emulator", "--port", "0", "--fault", "nonsense"],
                         cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
    assert out.returncode == 2
    assert "unknown fault" in out.stderr


# --------------------------------------------------------------------------- how tasks end
FAIL_URL = "https://example.com/will-fail.mp4"
DAY = 24 * 3600.0
SAMPLE = ROOT / "redraw" / "tools" / "data" / "redrawn-sample.mp4"
ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def iso_epoch(text):
    import calendar
    return calendar.timegm(time.strptime(text, ISO_Z))


@pytest.fixture
def fast():
    with VodEmulator(known_file_ids={KNOWN_FILE, "52858907failing"}, task_duration=0.05) as emulator:
        yield emulator


def finished(emulator, client=None, **params):
    """Create a task and wait for its end; returns (TaskId, DescribeTaskDetail response)."""
    client = client or make_client(emulator, keep_alive=True)
    task_id = client.call_json(CREATE, url_params(**params))["Response"]["TaskId"]
    return task_id, wait_final(client, task_id)


def fetch(url, method="GET", headers=None, timeout=5):
    """(status, headers, body) of a plain HTTP/1.1 request."""
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=timeout)
    try:
        conn.request(method, split.path + ("?" + split.query if split.query else ""), headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def output_url(detail):
    return detail["AigcVideoRedrawTask"]["Output"]["FileInfo"]["FileUrl"]


def assert_failed(detail):
    assert detail["Status"] == "FINISH" and detail["FinishTime"]
    task = detail["AigcVideoRedrawTask"]
    assert (task["Status"], task["ErrCode"], task["ErrCodeExt"]) == ("FINISH", 70000, "InternalError")
    assert task["Message"] and task["Output"] is None


@pytest.mark.parametrize(
    "file_info", [{"Type": "Url", "Url": FAIL_URL}, {"Type": "File", "FileId": "52858907failing"}])
def test_fail_keyword_ends_finish_with_err_code_and_no_output(fast, file_info):
    task_id, final = finished(fast, FileInfo=file_info)
    assert_failed(final)
    assert final["AigcVideoRedrawTask"]["Progress"] == 100
    assert fetch(fast.output_url(task_id))[0] == 404  # nothing to download


def test_failure_rate_and_abort_rate():
    with VodEmulator(task_duration=0.05, failure_rate=1.0, rps=0) as emu:
        assert_failed(finished(emu)[1])
    with VodEmulator(task_duration=0.05, abort_rate=1.0, rps=0) as emu:
        _, final = finished(emu)
        task = final["AigcVideoRedrawTask"]
        assert (final["Status"], task["Status"], task["ErrCode"], task["Output"]) == ("ABORTED", "ABORTED", 70000, None)
    with pytest.raises(ValueError):
        VodEmulator(failure_rate=1.5)
    with pytest.raises(ValueError):
        VodEmulator(failure_rate=0.6, abort_rate=0.6)


def ending(detail):
    task = detail["AigcVideoRedrawTask"]
    return detail["Status"], task["ErrCode"], task["Output"] is None


def test_a_tasks_fate_is_drawn_once_and_never_changes():
    with VodEmulator(task_duration=0.05, failure_rate=0.4, abort_rate=0.3, fault_seed=11, rps=0) as emu:
        client = make_client(emu, keep_alive=True)
        ids = [client.call_json(CREATE, url_params())["Response"]["TaskId"] for _ in range(40)]
        time.sleep(0.1)
        first = {t: ending(describe(client, t)) for t in ids}
        assert set(first.values()) == {("FINISH", 0, False), ("FINISH", 70000, True), ("ABORTED", 70000, True)}
        emu.failure_rate, emu.abort_rate = 0.0, 1.0  # later tasks only
        assert {t: ending(describe(client, t)) for t in ids} == first
        assert ending(wait_final(client, client.call_json(CREATE, url_params())["Response"]["TaskId"]))[0] == (
            "ABORTED")


def test_task_durations_are_drawn_per_task():
    with VodEmulator(task_durations=(100.0, 200.0), fault_seed=3, rps=0) as emu:
        client = make_client(emu, keep_alive=True)
        ids = [client.call_json(CREATE, url_params())["Response"]["TaskId"] for _ in range(20)]
        for task_id in ids:
            emu.age_task(task_id, 150.0)
        states = [describe(client, t)["Status"] for t in ids]
        assert set(states) == {"FINISH", "PROCESSING"}  # half-way through the range: some done, some not
        emu.task_durations = (0.0, 0.0)  # applies to new tasks only
        emu.task_duration = 0.0
        again = [describe(client, t)["Status"] for t in ids]
        assert "PROCESSING" in again
        assert all(b == "FINISH" for a, b in zip(states, again) if a == "FINISH")
        times = {describe(client, t)["FinishTime"] for t in ids if describe(client, t)["Status"] == "FINISH"}
        assert len(times) > 1
    with pytest.raises(ValueError):
        VodEmulator(task_durations=(2.0, 1.0))


def test_tasks_older_than_three_days_are_unknown(fast):
    client = make_client(fast, keep_alive=True)
    task_id, _ = finished(fast, client, SessionId="old-1")
    fast.age_task(task_id, 3 * DAY - 60)
    assert describe(client, task_id)["Status"] == "FINISH"
    assert api_error(client, CREATE, url_params(SessionId="old-1")).code == "InvalidParameterValue.SessionId"
    fast.age_task(task_id, 120)
    err = api_error(client, DESCRIBE, {"TaskId": task_id, "SubAppId": 221073})
    assert (err.code, err.message) == ("InvalidParameterValue.TaskId", "TaskId does not exist")
    assert client.call_json(CREATE, url_params(SessionId="old-1"))["Response"]["TaskId"]  # dedup window over too
    recent = fast.add_task(221073, age=2 * DAY)
    assert describe(client, recent, SubAppId=221073)["Status"] == "FINISH"
    old = fast.add_task(221073, FAIL_URL, age=3 * DAY + 1)
    assert api_error(client, DESCRIBE, {"TaskId": old}).code == "InvalidParameterValue.TaskId"
    assert TASK_ID_RE.match(old) and fast.calls[-1]["action"] == DESCRIBE  # add_task sends nothing


# --------------------------------------------------------------------------- outputs
def test_sample_is_a_small_real_mp4():
    data = SAMPLE.read_bytes()
    assert 1000 < len(data) < 50_000
    boxes, pos = [], 0
    while pos < len(data):  # top-level ISO BMFF boxes cover the file exactly
        size = int.from_bytes(data[pos:pos + 4], "big")
        assert size >= 8
        boxes.append(data[pos + 4:pos + 8])
        pos += size
    assert pos == len(data)
    assert boxes[0] == b"ftyp" and b"moov" in boxes and b"mdat" in boxes
    assert b"avc1" in data  # H.264
    assert emulator_module.sample_mp4() == data


def test_succeeded_task_serves_its_mp4(fast):
    client = make_client(fast, keep_alive=True)
    task_id, final = finished(fast, client, SessionId="out-1")
    info = final["AigcVideoRedrawTask"]["Output"]["FileInfo"]
    assert (info["StorageMode"], info["FileType"], info["FileId"]) == ("Temporary", "mp4", "")
    assert iso_epoch(info["ExpireTime"]) == iso_epoch(final["FinishTime"]) + 7 * 86400
    url = info["FileUrl"]
    assert urlsplit(url).path == f"/aigc/{task_id}.mp4"
    query = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    assert abs(int(query["t"], 16) - iso_epoch(info["ExpireTime"])) <= 1
    status, headers, body = fetch(url)
    assert status == 200 and headers["content-type"] == "video/mp4"
    assert body == SAMPLE.read_bytes() and body[4:8] == b"ftyp"
    assert int(headers["content-length"]) == len(body)
    assert headers["etag"].startswith('"') and headers["accept-ranges"] == "bytes"
    status, head_headers, head_body = fetch(url, "HEAD")
    assert (status, head_body) == (200, b"")
    assert (head_headers["content-length"], head_headers["etag"]) == (headers["content-length"], headers["etag"])
    assert fetch(url)[2] == body
    assert fast.downloads == 2  # two GETs; HEAD is not a download
    record = fast.calls[-1]
    assert (record["action"], record["task_id"], record["outcome"], record["bytes"]) == (
        "GetOutput", task_id, "ok", len(body))
    assert url.split("sign=")[1] not in json.dumps(fast.calls)  # the signature is not recorded
    # still a POST-only API at "/"
    assert fetch(f"{fast.url}/")[0] == 200 and json.loads(fetch(f"{fast.url}/")[2])["Response"]["Error"]


def test_permanent_output_has_file_id_and_url(fast):
    _, final = finished(fast, OutputConfig={"StorageMode": "Permanent"})
    info = final["AigcVideoRedrawTask"]["Output"]["FileInfo"]
    assert re.fullmatch(r"5285890\d{12}", info["FileId"])
    assert iso_epoch(info["ExpireTime"]) == iso_epoch(final["FinishTime"]) + 7 * 86400
    assert fetch(info["FileUrl"])[2][4:8] == b"ftyp"


def test_range_requests(fast):
    url = output_url(finished(fast)[1])
    full = fetch(url)[2]
    size = len(full)
    status, headers, body = fetch(url, headers={"Range": "bytes=0-7"})
    assert (status, body, headers["content-range"]) == (206, full[:8], f"bytes 0-7/{size}")
    assert headers["content-length"] == "8"
    assert fetch(url, headers={"Range": "bytes=-100"})[2] == full[-100:]
    assert fetch(url, headers={"Range": f"bytes=100-{size + 50}"})[2] == full[100:]
    parts = [fetch(url, headers={"Range": f"bytes={a}-{a + 999}"})[2] for a in range(0, size, 1000)]
    assert b"".join(parts) == full
    status, headers, _ = fetch(url, headers={"Range": f"bytes={size}-"})
    assert (status, headers["content-range"]) == (416, f"bytes */{size}")
    assert fetch(url, headers={"Range": "bytes=0-1,5-9"})[:1] == (200,)  # several ranges: the whole file
    assert [c["outcome"] for c in fast.calls if c["action"] == "GetOutput"][1:3] == ["partial", "partial"]


def test_bad_or_missing_signature_is_403(fast):
    url = output_url(finished(fast)[1])
    base, sign = url.rsplit("&sign=", 1)
    bad_sign = base + "&sign=" + ("0" if sign[0] != "0" else "1") + sign[1:]
    other_task = url.replace("-AigcVideoRedrawTask-", "-AigcVideoRedrawTask-0")
    later_t = re.sub(r"t=([0-9a-f]+)", lambda m: f"t={int(m.group(1), 16) + 1:x}", url)
    for wrong in (bad_sign, base, url.split("?")[0], other_task, later_t):
        status, headers, body = fetch(wrong)
        assert status == 403, wrong
        assert headers["content-type"].startswith("text/plain") and b"signature" in body and b"expired" not in body
    assert fetch(url)[0] == 200


def test_expired_url_is_403_saying_so(fast):
    client = make_client(fast, keep_alive=True)
    task_id, final = finished(fast, client)
    url = output_url(final)
    status, _, body = fetch(fast.output_url(task_id, expires=time.time() - 5))
    assert status == 403 and b"expired" in body
    fast.expire_output(task_id)
    status, _, body = fetch(url)  # the URL handed out before
    assert status == 403 and b"expired" in body
    info = describe(client, task_id)["AigcVideoRedrawTask"]["Output"]["FileInfo"]
    assert iso_epoch(info["ExpireTime"]) < time.time()
    assert fetch(info["FileUrl"])[0] == 403
    fast.output_ttl = 0.0  # a task whose output lifetime is over when it finishes
    assert fetch(output_url(finished(fast, client)[1]))[0] == 403


def test_unknown_or_unfinished_output_is_404(fast):
    assert fetch(fast.output_url("221073-AigcVideoRedrawTask-" + "0" * 32))[0] == 404
    assert fetch(f"{fast.url}/aigc/nothing-here")[0] == 404
    fast.task_duration = 60.0
    running = make_client(fast).call_json(CREATE, url_params())["Response"]["TaskId"]
    assert fetch(fast.output_url(running))[0] == 404
    fast.task_duration = 0.05
    task_id, final = finished(fast)
    fast.reset()  # the emulator forgot the task: a correctly signed URL of nothing
    assert fetch(output_url(final))[0] == 404
    assert fast.calls[-1]["task_id"] == task_id and fast.calls[-1]["outcome"] == "not_found"


def test_large_output_is_streamed_with_constant_memory():
    import hashlib
    import tracemalloc

    size = 20 * 1024 * 1024
    with VodEmulator(task_duration=0.05, output_bytes=size) as emu:
        url = output_url(finished(emu)[1])

        def download():
            split = urlsplit(url)
            conn = http.client.HTTPConnection(split.hostname, split.port, timeout=10)
            conn.request("GET", f"{split.path}?{split.query}")
            resp = conn.getresponse()
            digest, total, head, window = hashlib.sha256(), 0, b"", b""
            while True:
                chunk = resp.read(64 * 1024)
                if not chunk:
                    break
                if total < 4096:
                    head += chunk[:4096]
                if total <= 10_000_000 < total + len(chunk):
                    window = chunk[10_000_000 - total:10_000_000 - total + 100]
                digest.update(chunk)
                total += len(chunk)
            conn.close()
            return resp, total, digest.hexdigest(), head, window

        tracemalloc.start()
        try:
            resp, total, first, head, window = download()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert resp.status == 200 and total == size == int(resp.getheader("Content-Length"))
        assert peak < 4 * 1024 * 1024, peak  # server and client together: nothing near 20 MB
        sample = SAMPLE.read_bytes()
        assert head[:len(sample)] == sample and head[4:8] == b"ftyp"
        assert head[len(sample) + 4:len(sample) + 8] == b"free"  # the filler is one MP4 box
        assert int.from_bytes(head[len(sample):len(sample) + 4], "big") == size - len(sample)
        again = download()
        assert (again[2], again[0].getheader("ETag")) == (first, resp.getheader("ETag"))
        assert fetch(url, headers={"Range": "bytes=10000000-10000099"})[2] == window
        one = fetch(url, headers={"Range": "bytes=1048576-1114111"})[2]
        two = fetch(url, headers={"Range": "bytes=2097152-2162687"})[2]
        assert len(one) == len(two) == 65536 and one != two  # misplaced parts would change the hash
        emu.output_bytes = 1000  # the size of an output is fixed at its first download
        assert int(fetch(url, "HEAD")[1]["content-length"]) == size
        assert int(fetch(output_url(finished(emu)[1]), "HEAD")[1]["content-length"]) == len(sample)


# --------------------------------------------------------------------------- output faults
def test_output_fault_cut_is_a_detectable_short_read(fast):
    import requests

    url = output_url(finished(fast)[1])
    size = len(SAMPLE.read_bytes())
    fast.inject_output("cut", "cut")
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=5)
    conn.request("GET", f"{split.path}?{split.query}")
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.getheader("Content-Length")) == size
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    assert len(info.value.partial) == size // 2
    conn.close()
    with requests.get(url, timeout=5, stream=True) as streamed:  # as a downloader would read it
        assert streamed.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            b"".join(streamed.iter_content(1024))
    assert fetch(url)[2] == SAMPLE.read_bytes()
    assert [c["outcome"] for c in fast.calls[-3:]] == ["cut", "cut", "ok"]
    assert fast.calls[-3]["bytes"] == size // 2


def test_output_faults_http_drop_slow(fast):
    url = output_url(finished(fast)[1])
    fast.inject_output("http500", "http503", "drop", "slow:1", "slow:0.2")
    assert fast.pending_faults_for("GetOutput") == ["http500", "http503", "drop", "slow:1", "slow:0.2"]
    assert fetch(url)[0] == 500
    assert fetch(url)[0] == 503
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        fetch(url)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        fetch(url, timeout=0.2)
    assert time.monotonic() - started < 0.8
    started = time.monotonic()
    assert fetch(url)[0] == 200
    assert time.monotonic() - started >= 0.2
    assert fast.pending_faults_for("GetOutput") == [] and fast.pending_faults == []
    assert fetch(fast.output_url(finished(fast)[0]))[0] == 200
    for bad in ("InternalError", "malformed", "cut:1", "http404"):
        with pytest.raises(ValueError):
            fast.inject_output(bad)
    fast.inject_output("http500")
    assert fetch(url.replace("sign=", "sign=0"))[0] == 403  # a bad signature consumes no fault
    assert fast.pending_faults_for("GetOutput") == ["http500"]


def test_random_output_faults():
    with VodEmulator(task_duration=0.05, output_fault_rate=1.0, fault_seed=5) as emu:
        url = output_url(finished(emu)[1])
        for _ in range(6):
            try:
                fetch(url, timeout=2)
            except (OSError, http.client.HTTPException):
                pass
        faults = [c["fault"] for c in emu.calls if c["action"] == "GetOutput"]
        assert len(faults) == 6 and all(f in emulator_module.RANDOM_OUTPUT_FAULTS for f in faults)
        assert not any(c["fault"] for c in emu.calls if c["action"] != "GetOutput")


# --------------------------------------------------------------------------- DescribeTaskDetail limit and faults
def test_describe_rate_limit_is_its_own():
    with VodEmulator(rps=5, task_duration=0.05) as emu:
        client = make_client(emu, keep_alive=True)
        task_id = client.call_json(CREATE, url_params())["Response"]["TaskId"]
        started = time.monotonic()
        codes = []
        for _ in range(110):
            try:
                describe(client, task_id)
                codes.append("ok")
            except TencentCloudSDKException as exc:
                codes.append(exc.code)
        assert time.monotonic() - started < 1.0  # all within one second of the first
        assert codes[:100] == ["ok"] * 100 and codes[100:] == ["RequestLimitExceeded"] * 10
        assert (emu.describe_limit_hits, emu.rate_limit_hits) == (10, 0)
        for _ in range(4):  # creating is not limited by the describes
            client.call_json(CREATE, url_params())
        assert api_error(client, CREATE, url_params()).code == "RequestLimitExceeded"
        assert (emu.describe_limit_hits, emu.rate_limit_hits) == (10, 1)
        time.sleep(1.05)
        assert describe(client, task_id)["Status"] == "FINISH"  # describing is not limited by the creates
        emu.reset()
        assert emu.describe_limit_hits == 0
    with VodEmulator(describe_rps=0) as emu:
        client = make_client(emu, keep_alive=True)
        for _ in range(150):
            assert api_error(client, DESCRIBE, {"TaskId": "x"}).code == "InvalidParameterValue.TaskId"
        assert emu.describe_limit_hits == 0


def test_faults_per_action(fast):
    client = make_client(fast, keep_alive=True)
    task_id = client.call_json(CREATE, url_params())["Response"]["TaskId"]
    fast.inject("InternalError", "RequestLimitExceeded", "http503", action=DESCRIBE)
    fast.inject("FailedOperation")
    assert fast.pending_faults == ["FailedOperation"]
    assert fast.pending_faults_for(DESCRIBE) == ["InternalError", "RequestLimitExceeded", "http503"]
    assert api_error(client, DESCRIBE, {"TaskId": task_id}).code == "InternalError"
    assert api_error(client, CREATE, url_params()).code == "FailedOperation"
    assert client.call_json(CREATE, url_params())["Response"]["TaskId"]  # create's queue is empty now
    assert api_error(client, DESCRIBE, {"TaskId": task_id}).code == "RequestLimitExceeded"
    assert api_error(client, DESCRIBE, {"TaskId": task_id}).code == "ServerNetworkError"
    assert describe(client, task_id)["TaskType"] == "AigcVideoRedrawTask"
    assert fast.describe_limit_hits == 0  # an injected RequestLimitExceeded is not the limit
    fast.inject("drop", "malformed", "slow:1", action=DESCRIBE)
    assert api_error(client, DESCRIBE, {"TaskId": task_id}).code == "ClientNetworkError"
    with pytest.raises(ValueError):
        client.call_json(DESCRIBE, {"TaskId": task_id})
    err = api_error(make_client(fast, timeout=0.3), DESCRIBE, {"TaskId": task_id})
    assert err.code == "ClientNetworkError" and "timed out" in err.message.lower()
    described = [c["fault"] for c in fast.calls if c["action"] == DESCRIBE and c["fault"]]
    assert described == ["InternalError", "RequestLimitExceeded", "http503", "drop", "malformed", "slow:1"]
    with pytest.raises(ValueError):
        fast.inject("InternalError", action="GetOutput")
    with pytest.raises(ValueError):
        fast.inject("boom", action=DESCRIBE)
    fast.inject("InternalError", action=DESCRIBE)
    fast.clear_faults()
    assert fast.pending_faults_for(DESCRIBE) == []


def test_random_describe_faults_leave_create_alone():
    def run(interleave):
        with VodEmulator(fault_rate=0.5, describe_fault_rate=1.0 if interleave else 0.0, fault_seed=9,
                         rps=0) as emu:
            client = make_client(emu, timeout=2)
            for _ in range(8):
                try:
                    client.call_json(CREATE, url_params())
                except (TencentCloudSDKException, ValueError):
                    pass
                if interleave:
                    try:
                        client.call_json(DESCRIBE, {"TaskId": "x"})
                    except (TencentCloudSDKException, ValueError):
                        pass
            calls = emu.calls
            return ([c["fault"] for c in calls if c["action"] == CREATE],
                    [c["fault"] for c in calls if c["action"] == DESCRIBE])

    plain, _ = run(False)
    create_faults, describe_faults = run(True)
    assert create_faults == plain  # describing (with faults) does not shift create's seeded faults
    assert len(describe_faults) == 8 and all(f in emulator_module.RANDOM_DESCRIBE_FAULTS for f in describe_faults)


# --------------------------------------------------------------------------- CLI
def test_main_new_options(tmp_path):
    cmd = [sys.executable, "-m", "redraw.tools.emulator", "--port", "0", "--task-duration", "0.05",
           "--output-bytes", "5000", "--describe-rps", "3", "--failure-rate", "0", "--abort-rate", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+) ", proc.stdout.readline()).group(1))
        client = make_client(types.SimpleNamespace(endpoint=f"127.0.0.1:{port}"), keep_alive=True)
        task_id = client.call_json(CREATE, url_params())["Response"]["TaskId"]
        time.sleep(0.1)
        detail = describe(client, task_id)
        status, headers, body = fetch(output_url(detail))
        assert status == 200 and len(body) == 5000 and body[4:8] == b"ftyp"
        describe(client, task_id)
        describe(client, task_id)
        assert api_error(client, DESCRIBE, {"TaskId": task_id}).code == "RequestLimitExceeded"
    finally:
        proc.terminate()
        proc.communicate(timeout=5)
    for bad in (["--failure-rate", "1.5"], ["--abort-rate", "-0.1"], ["--failure-rate", "0.7", "--abort-rate", "0.7"]):
        out = subprocess.run([sys.executable, "-m", "redraw.tools.emulator", "--port", "0", *bad], cwd=ROOT,
                             capture_output=True, text=True, timeout=10, check=False)
        assert out.returncode == 2 and "rate" in out.stderr, bad
