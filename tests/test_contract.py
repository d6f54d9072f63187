"""Contract: our request model is exactly what the SDK's CreateAigcVideoRedrawTaskRequest accepts."""
from __future__ import annotations

import inspect
import re
import time
import typing
import warnings

import pytest
from pydantic import BaseModel
from tencentcloud.common.abstract_model import AbstractModel
from tencentcloud.vod.v20180717 import models as sdk

from redraw.request import RedrawRequest, parse_request
from redraw.tools.samples import cos_record
from redraw.sources import cos

FULL = {
    "FileInfo": {"Type": "Url", "Url": "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/a.mp4"},
    "TaskInfo": {"Style": "anime"},
    "OutputConfig": {"StorageMode": "Permanent", "MediaName": "out", "ClassId": 3,
                     "ExpireTime": "2030-12-28T00:35:00Z"},
    "SessionId": "s-1", "SessionContext": "ctx", "TasksPriority": -3, "ExtInfo": "x",
}


def _sdk_fields(cls) -> dict:
    """Field name → nested SDK model class (or None), read from the SDK model itself."""
    nested_types = dict(re.findall(r":type (\w+): :class:`tencentcloud\.vod\.v20180717\.models\.(\w+)`",
                                   cls.__init__.__doc__ or ""))
    return {attr[1:]: getattr(sdk, nested_types[attr[1:]]) if attr[1:] in nested_types else None
            for attr in vars(cls()) if attr != "_headers"}


def _our_fields(model) -> dict:
    out = {}
    for name, info in model.model_fields.items():
        nested = None
        for arg in typing.get_args(info.annotation) or (info.annotation,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                nested = arg
        out[name] = nested
    return out


#: redraw's own request fields, never sent to VOD (``to_params`` leaves them out)
REDRAW_FIELDS = {"Webhook"}


def _compare(sdk_cls, our_cls, path="") -> None:
    theirs, ours = _sdk_fields(sdk_cls), _our_fields(our_cls)
    ours = {k: v for k, v in ours.items() if path or k not in REDRAW_FIELDS}
    assert set(theirs) == set(ours), f"{path or sdk_cls.__name__}: SDK {sorted(theirs)} vs ours {sorted(ours)}"
    for name, nested in theirs.items():
        if nested is not None:
            assert ours[name] is not None, f"{path}{name} should be a nested model"
            _compare(nested, ours[name], f"{path}{name}.")


def test_every_sdk_field_is_covered_and_nothing_more():
    _compare(sdk.CreateAigcVideoRedrawTaskRequest, RedrawRequest)
    nested = {k for k, v in _sdk_fields(sdk.CreateAigcVideoRedrawTaskRequest).items() if v}
    assert nested == {"FileInfo", "TaskInfo", "OutputConfig"}  # the comparison did recurse


def _round_trip(params: dict) -> dict:
    request = sdk.CreateAigcVideoRedrawTaskRequest()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the SDK warns about fields it does not know
        request._deserialize(params)
    return request._serialize()


def test_full_request_serialises_to_exactly_what_the_sdk_accepts():
    params = parse_request(FULL).to_params(1500000001)
    assert _round_trip(params) == params
    assert params == {**FULL, "SubAppId": 1500000001}


def test_minimal_request_round_trips():
    params = parse_request({"FileInfo": {"Type": "File", "FileId": "5285890799999999999"}}).to_params(7)
    assert _round_trip(params) == params


def test_upload_request_round_trips():
    from redraw.config import load_settings
    from redraw.sources.cos import plan_record as _plan_record

    settings = load_settings({"VOD_SUB_APP_ID": "1", "TENCENTCLOUD_SECRETID": "id", "TENCENTCLOUD_SECRETKEY": "key",
                              "REDRAW_STYLE": "anime", "REDRAW_STORAGE_MODE": "Permanent",
                              "REDRAW_CLASS_ID": "2", "REDRAW_TASKS_PRIORITY": "1"})
    plan = _plan_record(cos_record("a/b c.mp4"), settings)
    assert plan.params is not None
    assert _round_trip(plan.params) == plan.params
    assert cos.upload_of(cos.parse_record(cos_record("x.mp4"))).session_id


def test_the_sdk_warns_on_unknown_fields_so_the_round_trip_can_fail():
    with pytest.raises(Warning):
        _round_trip({"SubAppId": 1, "Bogus": 1})


def test_response_model_matches_sdk_response():
    fields = set(_sdk_fields(sdk.CreateAigcVideoRedrawTaskResponse))
    from redraw.core import CREATED_FIELDS
    assert fields == set(CREATED_FIELDS)
    assert issubclass(sdk.CreateAigcVideoRedrawTaskResponse, AbstractModel)


# --- the SDK internals vod.py relies on -------------------------------------------------------------
# The SDK has one timeout per client (HttpProfile.reqTimeout, copied into its ProxyConnection;
# ApiRequest.set_req_timeout does not reach the connection) and no per-call option, so vod.py swaps
# the client's connection for one that reads a per-thread timeout. These tests fail, naming the SDK
# version, the day an upgrade moves what that swap touches.

def _sdk_version() -> str:
    import tencentcloud
    return f"tencentcloud-sdk-python-common {getattr(tencentcloud, '__version__', '(unknown version)')}"


def test_the_sdk_connection_still_has_what_the_per_call_timeout_uses():
    import requests
    from tencentcloud.common.common_client import CommonClient
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    client = CommonClient("vod", "2018-07-17", Credential("id", "key"), "",
                          ClientProfile(httpProfile=HttpProfile(endpoint="127.0.0.1:1", reqTimeout=7)))
    moved = f"{_sdk_version()} moved CommonClient.request.conn internals: update redraw/vod.py's _DeadlineConnection"
    conn = getattr(getattr(client, "request", None), "conn", None)
    assert conn is not None, moved + " (client.request.conn is gone)"
    for name in ("request_host", "proxy", "certification", "timeout", "request_length"):
        assert hasattr(conn, name), f"{moved} (conn.{name} is gone)"
    assert isinstance(getattr(conn, "_session", None), requests.Session), moved + " (conn._session is not a Session)"
    assert conn.timeout == 7, moved + " (conn.timeout no longer holds the profile's reqTimeout)"
    source = inspect.getsource(type(client.request))
    assert "self.conn.request(" in source and "self.conn.request_length" in source, \
        moved + " (ApiRequest no longer sends through self.conn.request)"


def test_each_call_gets_its_own_timeout_through_the_sdk(emulator):
    from redraw.config import load_settings
    from redraw.errors import UpstreamError
    from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
    from redraw.vod import VodClient

    settings = load_settings({"VOD_SUB_APP_ID": "1", "VOD_ENDPOINT": emulator.url, "VOD_HTTP_TIMEOUT": "30",
                              "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY})
    client = VodClient(settings)
    emulator.latency = 1.0
    started = time.monotonic()
    with pytest.raises(UpstreamError) as info:
        client.call("DescribeTaskDetail", {"TaskId": "x", "SubAppId": 1}, timeout=0.2)
    assert time.monotonic() - started < 0.9, f"{_sdk_version()}: the per-call timeout did not reach the socket"
    assert info.value.vod_code == "Timeout"
