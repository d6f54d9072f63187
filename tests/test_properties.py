"""Property-based tests: arbitrary events, SessionId/SessionContext invariants, no leaked secrets."""
from __future__ import annotations

import json

import pytest

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import SECRET_CANARY, TOKEN_CANARY
from redraw.sources import cos
from redraw.tools.emulator import DEFAULT_SECRET_ID, VodEmulator
from redraw.errors import RedrawError
from redraw.tools.samples import apigw_event, ckafka_event, cos_record, url_event

FIXTURES_OK = settings(max_examples=120, deadline=None,
                       suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_leaf = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)

request_keys = st.sampled_from(["FileInfo", "TaskInfo", "OutputConfig", "SessionId", "SessionContext",
                                "TasksPriority", "ExtInfo", "SubAppId", "Type", "Url", "FileId", "Style",
                                "StorageMode", "MediaName", "ClassId", "ExpireTime", "Other"])
file_info = st.fixed_dictionaries({}, optional={
    "Type": st.sampled_from(["File", "Url", "url", ""]) | json_leaf,
    "Url": st.sampled_from(["https://b.example/a.mp4", "http://b.example/x y.mp4", "ftp://b/a", "https://", ""]) | json_leaf,
    "FileId": st.sampled_from(["5285890799999999999", ""]) | json_leaf,
})
request_like = st.fixed_dictionaries({}, optional={
    "FileInfo": file_info | json_value,
    "TaskInfo": st.fixed_dictionaries({}, optional={"Style": st.text(max_size=60)}) | json_value,
    "OutputConfig": st.fixed_dictionaries({}, optional={
        "StorageMode": st.sampled_from(["Permanent", "Temporary", "x"]),
        "MediaName": st.text(max_size=70), "ClassId": st.integers(-3, 5) | json_leaf,
        "ExpireTime": st.sampled_from(["2030-01-01T00:00:00Z", "2030-13-01T00:00:00Z", "soon"])}),
    "SessionId": st.text(max_size=60) | json_leaf,
    "SessionContext": st.text(max_size=30) | json_leaf,
    "TasksPriority": st.integers(-12, 12) | json_leaf,
    "ExtInfo": st.text(max_size=10),
    "SubAppId": st.integers(-1, 3) | json_leaf,
}) | st.dictionaries(request_keys, json_value, max_size=5)

keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=120)


@st.composite
def cos_events(draw):
    records = []
    for _ in range(draw(st.integers(0, 4))):
        record = cos_record(draw(keys) + draw(st.sampled_from([".mp4", ".MOV", ".jpg", "/", ""])),
                            size=draw(st.integers(0, 3 * 1024 ** 3)),
                            event_name=draw(st.sampled_from(["cos:ObjectCreated:Put", "cos:ObjectCreated:*",
                                                             "cos:ObjectRemove:Delete", "cos:Other"])),
                            request_id=draw(st.text(max_size=10)))
        mutation = draw(st.integers(0, 6))
        if mutation == 1:
            record["cos"]["cosObject"][draw(st.sampled_from(["key", "url", "size", "meta"]))] = draw(json_value)
        elif mutation == 2:
            record[draw(st.sampled_from(["cos", "event"]))] = draw(json_value)
        elif mutation == 3:
            record["event"]["eventTime"] = draw(json_value)
        records.append(record if mutation != 4 else draw(json_value))
    return {"Records": records if draw(st.integers(0, 9)) else draw(json_value)}


@st.composite
def api_events(draw):
    body = draw(request_like)
    event = apigw_event(body, method=draw(st.sampled_from(["POST", "GET", "PUT", "post"])),
                        path=draw(st.sampled_from(["/redraw", "/tasks/abc", "/tasks/", "/"])),
                        base64_body=draw(st.booleans()))
    if draw(st.integers(0, 5)) == 0:
        event["body"] = draw(json_value)
    if draw(st.integers(0, 5)) == 0:
        event["isBase64Encoded"] = draw(json_leaf)
    return event


@st.composite
def url_events(draw):
    event = url_event(draw(request_like), method=draw(st.sampled_from(["POST", "GET", "PUT", "post"])),
                      path=draw(st.sampled_from(["/redraw", "/tasks/abc", "/tasks/", "/", ""])))
    if draw(st.integers(0, 4)) == 0:
        event[draw(st.sampled_from(["body", "headers", "path", "httpMethod", "queryString"]))] = draw(json_value)
    return event


@st.composite
def ckafka_events(draw):
    event = ckafka_event([draw(request_like | json_value) for _ in range(draw(st.integers(1, 4)))],
                         partition=draw(st.integers(0, 3)), first_offset=draw(st.integers(0, 2**40)))
    for record in event["Records"]:
        mutation = draw(st.integers(0, 6))
        if mutation == 1:
            record["Ckafka"][draw(st.sampled_from(["topic", "partition", "offset", "msgBody"]))] = draw(json_value)
        elif mutation == 2:
            record["Ckafka"] = draw(json_value)
    return event


#: the other triggers' markers on arbitrary payloads: never a VOD call
other_triggers = st.one_of(
    st.fixed_dictionaries({"Type": st.just("Timer"), "Message": json_value}),
    st.fixed_dictionaries({"clslogs": json_value}),
    st.fixed_dictionaries({"specversion": json_value, "data": json_value}),
    st.fixed_dictionaries({"EventType": json_value}),
    st.fixed_dictionaries({"headers": json_value, "payload": json_value}),
    st.fixed_dictionaries({"Records": st.lists(st.fixed_dictionaries({"CMQ": json_value}), min_size=1, max_size=3)}),
)

any_event = json_value | cos_events() | api_events() | url_events() | ckafka_events() | other_triggers | request_like

SERVER_SIDE = ("InvalidParameterValue.SessionId", "InvalidParameterValue.FileId")
VALIDATION_CODES = ("InvalidParameter", "UnknownParameter", "MissingParameter")


def _fast(env, emulator):
    env.setenv("VOD_MAX_RPS", "100000")
    env.setenv("VOD_PACING", "fixed")
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    emulator.rps = 0


@FIXTURES_OK
@given(event=any_event)
def test_any_event_returns_or_raises_only_package_errors_and_sends_only_valid_requests(invoke, emulator, env, event):
    _fast(env, emulator)
    before = len(emulator.calls)
    out = invoke(event)
    assert out.error is None or isinstance(out.error, RedrawError), repr(out.error)
    if isinstance(out.result, dict) and "statusCode" in out.result:
        assert out.result["statusCode"] in (200, 400, 404, 405, 409, 413)
        json.loads(out.result["body"])
    for call in emulator.calls[before:]:
        # VOD never sees a request it would reject as invalid (a reused SessionId aside)
        # (a reused SessionId or a FileId that does not exist are facts only VOD knows)
        if call["action"] == "CreateAigcVideoRedrawTask" and call["outcome"] not in SERVER_SIDE:
            assert not str(call["outcome"]).startswith(VALIDATION_CODES), call["outcome"]
            assert call["outcome"] == "ok", call["outcome"]


@pytest.mark.slow
@FIXTURES_OK
@given(event=any_event)
def test_no_secret_canary_ever_appears(invoke, env, event):
    emu = VodEmulator(secret_id=DEFAULT_SECRET_ID, secret_key=SECRET_CANARY, token=TOKEN_CANARY, rps=0).start()
    try:
        env.setenv("VOD_ENDPOINT", emu.url)
        env.setenv("TENCENTCLOUD_SECRETKEY", SECRET_CANARY)
        env.setenv("TENCENTCLOUD_SESSIONTOKEN", TOKEN_CANARY)
        env.setenv("VOD_MAX_RPS", "100000")
        env.setenv("VOD_PACING", "fixed")
        env.setenv("VOD_MAX_ATTEMPTS", "1")
        from redraw import app
        app.reset()
        out = invoke(event)
    finally:
        emu.stop()
    text = out.stdout + json.dumps(out.result, default=str) + repr(out.error)
    assert SECRET_CANARY not in text and TOKEN_CANARY not in text


uploads = st.fixed_dictionaries({
    "key": keys, "request_id": st.text(min_size=1, max_size=40), "event_time": st.integers(0, 2**31),
    "size": st.integers(0, 2**40), "bucket": st.sampled_from(["media-1250000000", "x-1", "a-b-c-99"]),
})


def _record(u):
    return cos.parse_record(cos_record(u["key"], bucket=u["bucket"], size=u["size"],
                                   request_id=u["request_id"], event_time=u["event_time"]))


@settings(max_examples=300, deadline=None)
@given(a=uploads, b=uploads)
def test_session_id_is_short_stable_and_distinct(a, b):
    ra, rb = _record(a), _record(b)
    sid_a = cos.upload_of(ra).session_id
    assert len(sid_a) <= 50
    assert cos.upload_of(_record(dict(a))).session_id == sid_a  # same upload delivered again
    assume(a != b)
    assert cos.upload_of(rb).session_id != sid_a


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=1200), bucket=st.text(min_size=1, max_size=300))
def test_session_context_always_fits(key, bucket):
    text = cos.session_context_for("cos", bucket, key, {"event": "cos:ObjectCreated:Put"})
    assert len(text) <= 1000
    data = json.loads(text)
    assert data["trigger"] == "cos"
    if "key" in data:
        assert key.startswith(data["key"])


@settings(max_examples=200, deadline=None)
@given(key=keys)
def test_object_url_round_trips_any_key(key):
    upload = cos.upload_of(_record({"key": key, "request_id": "r", "event_time": 1, "size": 1,
                                    "bucket": "media-1250000000"}))
    assert upload.key == key
    from urllib.parse import unquote, urlsplit
    assert unquote(urlsplit(upload.url).path)[1:] == key


@FIXTURES_OK
@given(event=other_triggers)
def test_other_triggers_never_call_vod_and_raise_naming_the_trigger(invoke, emulator, env, event):
    from redraw.errors import UnsupportedTriggerError

    out = invoke(event)
    assert isinstance(out.error, UnsupportedTriggerError), repr(out.error)
    assert str(out.error).split(" trigger events are not a redraw source")[0] in (
        "timer", "CLS", "EventBridge", "MPS", "CLB", "CMQ topic")
    assert emulator.calls == []
