"""No secret reaches logs, results or exceptions; presigned URLs for private buckets."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import SECRET_CANARY, TOKEN_CANARY, load_event
from redraw import logs
from redraw.tools.emulator import DEFAULT_SECRET_ID, VodEmulator
from redraw.tools.samples import apigw_event, cos_event, redraw_body


@pytest.fixture
def canary_emulator(env):
    emu = VodEmulator(secret_id=DEFAULT_SECRET_ID, secret_key=SECRET_CANARY, token=TOKEN_CANARY).start()
    env.setenv("VOD_ENDPOINT", emu.url)
    env.setenv("TENCENTCLOUD_SECRETKEY", SECRET_CANARY)
    env.setenv("TENCENTCLOUD_SESSIONTOKEN", TOKEN_CANARY)
    yield emu
    emu.stop()


def _assert_clean(out):
    text = out.stdout + json.dumps(out.result, default=str) + repr(out.error) + str(out.error)
    for secret in (SECRET_CANARY, TOKEN_CANARY, "q-signature=0000", "AKIDEXAMPLEonly&"):
        assert secret not in text, secret


EVENTS = ["cos-put.json", "cos-put-multi.json", "cos-put-unicode.json", "cos-put-meta.json", "cos-delete.json",
          "url-post.json", "apigw-post.json", "apigw-post-base64.json", "ckafka.json", "direct.json"]


@pytest.mark.parametrize("name", EVENTS)
def test_no_secret_in_any_output_of_sample_events(invoke, canary_emulator, name):
    out = invoke(load_event(name))
    assert out.error is None, out.error
    assert all(c["outcome"] == "ok" for c in canary_emulator.calls)
    assert canary_emulator.calls or name == "cos-delete.json"
    _assert_clean(out)


@pytest.mark.parametrize("fault", ["AuthFailure.TokenFailure", "InternalError", "drop", "malformed"])
def test_no_secret_in_failures(invoke, canary_emulator, env, fault):
    env.setenv("VOD_MAX_ATTEMPTS", "1")
    canary_emulator.inject(fault)
    _assert_clean(invoke(load_event("cos-put.json")))
    canary_emulator.inject(fault)
    _assert_clean(invoke(apigw_event(redraw_body())))
    canary_emulator.inject(fault)
    _assert_clean(invoke(redraw_body()))


def test_secret_submitted_as_a_field_value_is_not_echoed(invoke, canary_emulator):
    out = invoke(apigw_event({"FileInfo": {"Type": "Url", "Url": "ftp://" + SECRET_CANARY}, "Password": TOKEN_CANARY}))
    assert out.result["statusCode"] == 400
    _assert_clean(out)


def test_config_error_names_the_variable_not_the_value(invoke, env):
    env.setenv("TENCENTCLOUD_SECRETKEY", SECRET_CANARY)
    env.setenv("VOD_SUB_APP_ID", "not-a-number-" + TOKEN_CANARY)
    out = invoke(load_event("cos-put.json"))
    assert out.error is not None and "VOD_SUB_APP_ID" in str(out.error)
    _assert_clean(out)
    api = invoke(load_event("apigw-post.json"))
    assert api.result["statusCode"] == 500
    _assert_clean(api)


def test_redaction_by_key_and_value_including_exceptions(capsys):
    logs.configure("INFO", [SECRET_CANARY, TOKEN_CANARY])
    log = logs.get_logger()
    log.info("probe", headers={"Authorization": "TC3-HMAC-SHA256 Credential=x", "X-Api-Key": "k1"},
             nested=[{"SecretKey": "v1", "sessionToken": "v2", "PASSWORD": "v3", "ok": "fine"}],
             url="https://b.cos.ap-guangzhou.myqcloud.com/a.mp4?q-signature=abc123&x-cos-security-token=tok9",
             text=f"the key is {SECRET_CANARY}")
    try:
        raise RuntimeError(f"boom {TOKEN_CANARY}")
    except RuntimeError:
        log.exception("failure")
    lines = [json.loads(raw) for raw in capsys.readouterr().out.splitlines()]
    text = json.dumps(lines)
    for leaked in ("Credential=x", "k1", "v1", "v2", "v3", "abc123", "tok9", SECRET_CANARY, TOKEN_CANARY):
        assert leaked not in text, leaked
    assert lines[0]["nested"][0]["ok"] == "fine"
    assert "RuntimeError" in lines[1]["exception"]


def test_presigned_urls_for_private_buckets(invoke, canary_emulator, env):
    env.setenv("REDRAW_PRESIGN_URLS", "true")
    env.setenv("REDRAW_PRESIGN_EXPIRES", "900")
    out = invoke(cos_event(["private/clip 1.mp4"]))
    assert out.result["results"][0]["status"] == "submitted"
    url = canary_emulator.calls[-1]["params"]["FileInfo"]["Url"]
    query = parse_qs(urlsplit(url).query)
    assert query["q-signature"] and query["x-cos-security-token"] == [TOKEN_CANARY]
    start, end = query["q-sign-time"][0].split(";")
    assert 900 <= int(end) - int(start) <= 960  # the COS SDK backdates the start by 60 s
    assert urlsplit(url).path == "/private/clip%201.mp4"
    [line] = out.lines("cos.record")
    assert "?" not in line["url"] and line["url"] == url.split("?", 1)[0]  # as sent, https
    assert query["q-signature"][0] not in out.stdout + json.dumps(out.result)
    _assert_clean(out)


def test_vod_error_text_kept_for_logs_is_redacted_too():
    from redraw import vod
    from redraw.errors import UpstreamError
    logs.configure("INFO", [SECRET_CANARY, TOKEN_CANARY])
    body = {"Response": {"Error": {"Code": "AuthFailure.TokenFailure",
                                   "Message": f"token {TOKEN_CANARY} rejected; Authorization: TC3-HMAC-SHA256 abc"}},
            "RequestId": "r"}
    with pytest.raises(UpstreamError) as info:
        vod.unwrap(body)
    assert TOKEN_CANARY not in (info.value.vod_message or "") + str(info.value)
    assert "abc" not in (info.value.vod_message or "")


def test_validation_errors_never_carry_the_input_in_their_text():
    """Defence in depth: a pydantic-core ValidationError's own text shows no submitted value."""
    from pydantic_core import ValidationError

    from redraw import config
    from redraw.sources import cos

    for validate, bad in [
        (cos.record_validator().validate_python,
         {"cos": {"cosObject": {"key": 12345, "url": "CANARY-URL"}, "cosBucket": 5}, "event": {"eventName": 5}}),
        (config._settings_validator().validate_python, {"VOD_SUB_APP_ID": "CANARY-ID", "VOD_MAX_RPS": "CANARY-RPS"}),
    ]:
        with pytest.raises(ValidationError) as info:
            validate(bad)
        assert "CANARY" not in str(info.value) and "12345" not in str(info.value)
