"""Configuration: validated once when the handler first runs, errors name variables."""
from __future__ import annotations

import pytest

from redraw.config import DEFAULT_ENDPOINT, load_settings, parse_endpoint
from redraw.errors import ConfigError

BASE = {"VOD_SUB_APP_ID": "1500000001", "TENCENTCLOUD_SECRETID": "AKIDx", "TENCENTCLOUD_SECRETKEY": "sk-value"}


def test_defaults():
    s = load_settings(BASE)
    assert s.sub_app_id == 1500000001
    assert s.endpoint.url == f"https://{DEFAULT_ENDPOINT}"
    assert s.max_rps == 20 and s.http_timeout < 60 and not s.presign_urls
    assert ".mp4" in s.video_suffixes and s.region == ""
    assert "sk-value" not in repr(s)


@pytest.mark.parametrize("raw, url", [
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
    ("vod.tencentcloudapi.com", "https://vod.tencentcloudapi.com"),
    ("https://vod.intl.tencentcloudapi.com", "https://vod.intl.tencentcloudapi.com"),
    ("localhost:8080", "https://localhost:8080"),
])
def test_endpoint_forms(raw, url):
    assert parse_endpoint(raw).url == url


def test_region_falls_back_to_the_function_region():
    assert load_settings({**BASE, "TENCENTCLOUD_REGION": "ap-shanghai"}).region == "ap-shanghai"
    assert load_settings({**BASE, "TENCENTCLOUD_REGION": "ap-shanghai", "VOD_REGION": "ap-guangzhou"}).region == "ap-guangzhou"


@pytest.mark.parametrize("env, names", [
    ({}, ["VOD_SUB_APP_ID", "TENCENTCLOUD_SECRETID"]),
    ({**BASE, "VOD_SUB_APP_ID": "abc"}, ["VOD_SUB_APP_ID"]),
    ({**BASE, "VOD_ENDPOINT": "ftp://x"}, ["VOD_ENDPOINT"]),
    ({**BASE, "VOD_MAX_RPS": "0"}, ["VOD_MAX_RPS"]),
    ({**BASE, "REDRAW_STORAGE_MODE": "Forever"}, ["REDRAW_STORAGE_MODE"]),
    ({**BASE, "REDRAW_STYLE": "s" * 51}, ["REDRAW_STYLE"]),
    ({**BASE, "REDRAW_TASKS_PRIORITY": "11"}, ["REDRAW_TASKS_PRIORITY"]),
    ({**BASE, "REDRAW_PRESIGN_URLS": "maybe"}, ["REDRAW_PRESIGN_URLS"]),
    ({**BASE, "VOD_ALLOWED_SUB_APP_IDS": "1,x"}, ["VOD_ALLOWED_SUB_APP_IDS"]),
    ({**BASE, "REDRAW_LOG_LEVEL": "LOUD", "VOD_HTTP_TIMEOUT": "-1"}, ["REDRAW_LOG_LEVEL", "VOD_HTTP_TIMEOUT"]),
])
def test_errors_name_every_bad_variable(env, names):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    for name in names:
        assert name in str(info.value)


def test_importing_the_package_validates_nothing(tmp_path):
    import subprocess
    import sys
    from conftest import ROOT
    env = {"PATH": "/usr/bin:/bin"}
    code = "import handler, redraw, redraw.tools.cli, redraw.app; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_missing_configuration_at_first_invocation_is_a_clear_error(invoke, env):
    env.delenv("VOD_SUB_APP_ID")
    out = invoke({"FileInfo": {"Type": "Url", "Url": "https://a.example/a.mp4"}})
    assert isinstance(out.error, ConfigError)
    assert "VOD_SUB_APP_ID is required" in str(out.error)
    [line] = out.lines("config.invalid")
    assert line["level"] == "error"


def test_presign_switch_requires_the_cos_sdk(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    assert load_settings({**BASE, "REDRAW_PRESIGN_URLS": "true"}).presign_urls  # installed here
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "qcloud_cos" else real(name, *a))
    with pytest.raises(ConfigError, match="cos-python-sdk-v5"):
        load_settings({**BASE, "REDRAW_PRESIGN_URLS": "true"})


def test_errors_never_carry_values():
    env = {"VOD_SUB_APP_ID": "canary-sub", "TENCENTCLOUD_SECRETID": "AKIDcanary",
           "TENCENTCLOUD_SECRETKEY": "canary-secret-key", "VOD_MAX_RPS": "canary-rps", "REDRAW_STYLE": "canary" * 20}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    message = str(info.value)
    assert "VOD_SUB_APP_ID" in message and "VOD_MAX_RPS" in message and "REDRAW_STYLE" in message
    assert "canary" not in message.lower()


def test_empty_values_are_unset_and_text_forms_are_parsed():
    s = load_settings({**BASE, "VOD_MAX_RPS": " ", "REDRAW_STYLE": "", "REDRAW_PRESIGN_URLS": "off",
                       "REDRAW_VIDEO_SUFFIXES": "MP4, .Mov,", "VOD_ALLOWED_SUB_APP_IDS": "7, 8",
                       "REDRAW_ALLOWED_URL_HOSTS": "*.Example.com", "REDRAW_LOG_LEVEL": "debug"})
    assert s.max_rps == 20 and s.style is None and s.presign_urls is False
    assert s.video_suffixes == (".mp4", ".mov") and s.allowed_sub_app_ids == (7, 8)
    assert s.allowed_url_hosts == ("*.example.com",) and s.log_level == "DEBUG"
    for raw, value in (("yes", True), ("ON", True), ("1", True), ("no", False), ("0", False)):
        assert load_settings({**BASE, "REDRAW_PRESIGN_URLS": raw}).presign_urls is value


def test_every_settings_field_is_one_documented_variable():
    from dataclasses import fields

    from redraw.config import VARIABLES, Settings
    names = [f.metadata["env"] for f in fields(Settings)]
    assert names == list(VARIABLES) and len(set(names)) == len(names)
    assert all(meaning for _default, meaning in VARIABLES.values())


def test_pacing_and_redis_defaults():
    s = load_settings(BASE)
    assert s.pacing == "adaptive" and s.redis_url is None
    assert s.redis_key == "redraw:vod:CreateAigcVideoRedrawTask" and s.redis_timeout_ms == 300
    s = load_settings({**BASE, "VOD_PACING": "Fixed", "REDRAW_REDIS_URL": "redis://:pw-secret@10.0.0.5:6379/2",
                       "REDRAW_REDIS_KEY": "acct:vod", "VOD_MAX_RPS": "1.25"})
    assert (s.pacing, s.redis_key, s.max_rps) == ("fixed", "acct:vod", 1.25)
    assert "pw-secret" not in repr(s)


@pytest.mark.parametrize("env, name", [
    ({**BASE, "VOD_PACING": "turbo"}, "VOD_PACING"),
    ({**BASE, "REDRAW_REDIS_URL": "http://:hunter2-secret@host:6379"}, "REDRAW_REDIS_URL"),
    ({**BASE, "REDRAW_REDIS_URL": "redis://:hunter2-secret@:99999"}, "REDRAW_REDIS_URL"),
    ({**BASE, "REDRAW_REDIS_KEY": "a key"}, "REDRAW_REDIS_KEY"),
    ({**BASE, "REDRAW_REDIS_TIMEOUT_MS": "0"}, "REDRAW_REDIS_TIMEOUT_MS"),
])
def test_pacing_and_redis_errors_name_the_variable_never_the_value(env, name):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert name in str(info.value) and "hunter2" not in str(info.value)
