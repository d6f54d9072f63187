"""Upload rules, per-upload metadata and media names (docs/rules.md), end to end: ``main_handler``
against the VOD emulator over loopback HTTP, with the follow-up's COS emulator where records matter."""
from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime

import pytest
import yaml

from conftest import BUCKET, ROOT, STATE
from redraw import app, rules
from redraw.config import load_settings
from redraw.errors import ConfigError
from redraw.tools import cli, watch
from redraw.tools.samples import cos_event, cos_record

RULES = [
    {"name": "anime", "prefix": "uploads/anime/", "Style": "anime", "TasksPriority": 5},
    {"name": "anime-hd", "prefix": "uploads/anime/hd/", "Style": "anime-hd", "StorageMode": "Permanent",
     "ClassId": 3, "MediaName": "{stem} (hd)", "ExpireTime": "P30D"},
    {"prefix": "uploads/", "suffix": ".mov", "TasksPriority": -2},
    {"name": "drafts", "prefix": "uploads/drafts/", "skip": True},
]
CANARY = "CANARY-value-never-shown-7f3a"


def with_meta(key: str, **meta) -> dict:
    return {"Records": [cos_record(key, meta=meta)]}


def reconfigure(env, **values: str) -> None:
    """A new container with these variables (settings are read once per container)."""
    for name, value in values.items():
        env.setenv(name, value)
    app.reset()


def sent(emulator) -> dict:
    return emulator.calls[-1]["params"]


def base_env(**extra: str) -> dict:
    return {"VOD_SUB_APP_ID": "1", "TENCENTCLOUD_SECRETID": "id", "TENCENTCLOUD_SECRETKEY": "key", **extra}


def config_error(**extra: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(base_env(**extra))
    return caught.value.message


# --- 1. rules by prefix ------------------------------------------------------------------------

def test_the_longest_matching_prefix_wins_and_other_keys_get_the_defaults(invoke, emulator, env):
    env.setenv("REDRAW_RULES", json.dumps(RULES))
    env.setenv("REDRAW_STYLE", "default-style")
    out = invoke(cos_event(["uploads/anime/a.mp4", "uploads/anime/hd/b.mp4", "uploads/c.mov", "uploads/d.mp4",
                            "uploads/drafts/e.mp4"]))
    results = out.result["results"]
    assert [r["status"] for r in results] == ["submitted"] * 4 + ["skipped"]
    by_key = {c["params"]["FileInfo"]["Url"].rsplit("/", 1)[1]: c["params"] for c in emulator.calls}
    assert by_key["a.mp4"]["TaskInfo"] == {"Style": "anime"} and by_key["a.mp4"]["TasksPriority"] == 5
    assert by_key["a.mp4"]["OutputConfig"] == {"MediaName": "a.mp4"}
    hd = by_key["b.mp4"]
    assert hd["TaskInfo"] == {"Style": "anime-hd"} and "TasksPriority" not in hd
    expire = datetime.fromisoformat(hd["OutputConfig"].pop("ExpireTime").replace("Z", "+00:00"))
    assert abs(expire.timestamp() - (time.time() + 30 * 86400)) < 120
    assert hd["OutputConfig"] == {"StorageMode": "Permanent", "MediaName": "b (hd)", "ClassId": 3}
    assert by_key["c.mov"]["TasksPriority"] == -2 and by_key["c.mov"]["TaskInfo"] == {"Style": "default-style"}
    assert by_key["d.mp4"]["TaskInfo"] == {"Style": "default-style"} and "TasksPriority" not in by_key["d.mp4"]
    assert "e.mp4" not in by_key and results[4]["reason"] == 'rule "drafts" skips these uploads'
    lines = out.lines("cos.record")
    assert [line.get("rule") for line in lines] == ["anime", "anime-hd", "uploads/*.mov", None, "drafts"]
    assert lines[1]["applied"] == {"style": "anime-hd", "priority": None, "storage_mode": "Permanent",
                                   "media_name": "b (hd)"}
    assert [r.get("rule") for r in results] == ["anime", "anime-hd", "uploads/*.mov", None, "drafts"]


def test_rules_from_a_file_beside_handler_py(invoke, emulator, env, tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES), encoding="utf-8")
    env.setenv("REDRAW_RULES_FILE", os.path.relpath(path, ROOT))  # relative: read beside handler.py
    out = invoke(cos_event(["uploads/anime/a.mp4"]))
    assert out.result["results"][0]["rule"] == "anime" and sent(emulator)["TaskInfo"] == {"Style": "anime"}


def test_the_session_context_names_the_rule_within_1000_characters(invoke, emulator, env):
    env.setenv("REDRAW_RULES", json.dumps(RULES))
    invoke(cos_event(["uploads/anime/a.mp4", "uploads/anime/" + "k" * 1200 + ".mp4"]))
    contexts = sorted((json.loads(c["params"]["SessionContext"]) for c in emulator.calls), key=lambda c: len(c["key"]))
    assert all(c["rule"] == "anime" for c in contexts)
    assert all(len(c["params"]["SessionContext"]) <= 1000 for c in emulator.calls)
    assert contexts[1]["key_truncated"] is True


# --- 3. media names --------------------------------------------------------------------------------

def test_media_name_is_the_file_name_cut_to_64_and_can_be_templated_or_turned_off(invoke, emulator, env):
    long_name = "夏" * 70 + ".mp4"
    invoke(cos_event(["uploads/deep/folder/My Clip.mp4", f"uploads/{long_name}"]))
    assert sorted(c["params"]["OutputConfig"]["MediaName"] for c in emulator.calls) == \
        sorted(["My Clip.mp4", long_name[:64]])
    reconfigure(env, REDRAW_MEDIA_NAME="{folder}/{stem}.{ext} redrawn")
    invoke(cos_event(["uploads/x/clip.mp4"]))
    assert sent(emulator)["OutputConfig"]["MediaName"] == "uploads/x/clip.mp4 redrawn"
    reconfigure(env, REDRAW_MEDIA_NAME="")  # set but empty: no MediaName
    invoke(cos_event(["uploads/y.mp4"]))
    assert "OutputConfig" not in sent(emulator)
    reconfigure(env, REDRAW_MEDIA_NAME="{name}", REDRAW_RULES=json.dumps([{"prefix": "uploads/quiet/", "MediaName": ""}]))
    invoke(cos_event(["uploads/quiet/z.mp4"]))
    assert "OutputConfig" not in sent(emulator)


def test_the_vod_task_carries_the_source_name(invoke, emulator):
    out = invoke(cos_event(["uploads/trip/beach day.mp4"]))
    task = emulator.tasks[out.result["results"][0]["task_id"]]
    detail = emulator.task_detail(task, now=time.time() + 3600)  # DescribeTaskDetail once it has finished
    assert detail["AigcVideoRedrawTask"]["Output"]["FileInfo"]["MediaName"] == "beach day.mp4"


# --- 2. metadata -------------------------------------------------------------------------------------

def test_metadata_overrides_the_rule_for_that_object_only(invoke, emulator, env):
    env.setenv("REDRAW_RULES", json.dumps(RULES))
    event = cos_event(["uploads/anime/a.mp4"])
    event["Records"].append(cos_record("uploads/anime/b.mp4", meta={
        "X-Cos-Meta-Redraw-Style": "%E6%B0%B4%E5%BD%A9 wash", "x-cos-meta-redraw-PRIORITY": " -7 "}))
    event["Records"].append(cos_record("uploads/anime/c.mp4", meta={"x-cos-meta-redraw-style": "水彩"}))
    out = invoke(event)
    assert [r["status"] for r in out.result["results"]] == ["submitted"] * 3
    params = sorted((c["params"] for c in emulator.calls), key=lambda p: p["FileInfo"]["Url"])
    assert [(p["TaskInfo"]["Style"], p.get("TasksPriority")) for p in params] == \
        [("anime", 5), ("水彩 wash", -7), ("水彩", 5)]
    line = out.lines("cos.record")[1]
    assert line["metadata"] == ["x-cos-meta-redraw-style", "x-cos-meta-redraw-priority"]
    assert line["applied"]["style"] == "水彩 wash" and line["rule"] == "anime"


def test_headers_the_deployment_does_not_allow_are_ignored_and_the_line_says_so(invoke, emulator, env):
    env.setenv("REDRAW_METADATA_OVERRIDES", "style")
    out = invoke(with_meta("uploads/a.mp4", **{"x-cos-meta-redraw-style": "ink",
                                               "x-cos-meta-redraw-priority": "99",
                                               "x-cos-meta-redraw-stlye": "typo", "x-cos-meta-other": "x"}))
    assert out.result["results"][0]["status"] == "submitted"
    assert sent(emulator)["TaskInfo"] == {"Style": "ink"} and "TasksPriority" not in sent(emulator)
    [line] = out.lines("cos.record")
    assert line["metadata_ignored"] == ["x-cos-meta-redraw-priority", "x-cos-meta-redraw-stlye"]
    reconfigure(env, REDRAW_METADATA_OVERRIDES="")  # set but empty: none
    out = invoke(with_meta("uploads/b.mp4", **{"x-cos-meta-redraw-style": "ink"}))
    assert "TaskInfo" not in sent(emulator)
    assert out.lines("cos.record")[0]["metadata_ignored"] == ["x-cos-meta-redraw-style"]


def test_more_headers_can_be_allowed(invoke, emulator, env):
    env.setenv("REDRAW_METADATA_OVERRIDES", "style,media-name,storage-mode")
    invoke(with_meta("uploads/a.mp4", **{"x-cos-meta-redraw-media-name": "Holiday %231",
                                         "x-cos-meta-redraw-storage-mode": "permanent"}))
    assert sent(emulator)["OutputConfig"] == {"StorageMode": "Permanent", "MediaName": "Holiday #1"}


@pytest.mark.parametrize("header, value, words", [
    ("x-cos-meta-redraw-style", CANARY * 3, "x-cos-meta-redraw-style is longer than 50 characters"),
    ("x-cos-meta-redraw-priority", "11", "x-cos-meta-redraw-priority must be an integer from -10 to 10"),
    ("x-cos-meta-redraw-priority", CANARY, "x-cos-meta-redraw-priority must be an integer from -10 to 10"),
    ("x-cos-meta-redraw-style", "  ", "x-cos-meta-redraw-style is empty"),
    ("x-cos-meta-redraw-style", 7, "x-cos-meta-redraw-style is not text"),
    ("x-cos-meta-redraw-style", ["a"], "x-cos-meta-redraw-style is not text"),
    ("X-COS-META-REDRAW-STYLE", "%FF%FE", "x-cos-meta-redraw-style is not valid percent-encoded UTF-8"),
    ("x-cos-meta-redraw-style", "a\x07b", "x-cos-meta-redraw-style holds control characters"),
])
def test_a_bad_metadata_value_fails_that_record_alone(invoke, emulator, header, value, words):
    event = cos_event(["uploads/good-1.mp4"])
    event["Records"].append(cos_record("uploads/bad.mp4", meta={header: value}))
    event["Records"].append(cos_record("uploads/good-2.mp4"))
    out = invoke(event)
    assert out.error is None  # not redelivered: a retry cannot fix an uploader's header
    statuses = [r["status"] for r in out.result["results"]]
    assert statuses == ["submitted", "failed", "submitted"]
    assert out.result["results"][1]["reason"].startswith(words)
    assert sorted(c["params"]["FileInfo"]["Url"].rsplit("/", 1)[1] for c in emulator.calls) == \
        ["good-1.mp4", "good-2.mp4"]
    line = out.lines("cos.record")[1]
    assert line["level"] == "error" and line["error_code"] == "InvalidMetadata" and "upload the object again" in line["fix"]
    assert CANARY not in out.stdout and CANARY not in json.dumps(out.result)


# --- 4. what was applied is kept; 5. the same SessionId ---------------------------------------------

def test_the_record_and_receipt_name_the_rule_and_the_settings_sent(invoke, follow, cos, emulator):
    follow.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    follow.setenv("REDRAW_RULES", json.dumps(RULES + [
        {"name": "elsewhere", "prefix": "uploads/elsewhere/", "deliver_prefix": "out/elsewhere/"},
        {"name": "kept", "prefix": "uploads/kept/", "deliver_prefix": ""}]))
    out = invoke(with_meta("uploads/anime/a.mp4", **{"x-cos-meta-redraw-priority": "8"}))
    [result] = out.result["results"]
    assert result["recorded"] is True
    receipt = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/anime/a.mp4.json"))
    assert receipt["rule"] == "anime"
    assert receipt["applied"] == {"style": "anime", "priority": 8, "storage_mode": None, "media_name": "a.mp4"}
    pending = [k for k in cos.keys(STATE) if k.startswith("redraw/pending/")]
    assert json.loads(cos.read(STATE, pending[0]))["applied"] == receipt["applied"]
    assert receipt["deliver_to"]["key"] == "redrawn/uploads/anime/a.mp4"
    invoke(cos_event(["uploads/elsewhere/b.mp4", "uploads/kept/c.mp4", "out/elsewhere/uploads/x.mp4"]))
    other = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/elsewhere/b.mp4.json"))
    assert other["deliver_to"]["key"] == "out/elsewhere/uploads/elsewhere/b.mp4"
    assert json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/kept/c.mp4.json"))["deliver_to"] is None
    assert not any(c["params"]["FileInfo"]["Url"].endswith("/x.mp4") for c in emulator.calls)  # a delivery


def test_a_redelivered_event_keeps_its_session_id_whatever_the_rules_say(invoke, emulator, env):
    event = with_meta("uploads/anime/a.mp4", **{"x-cos-meta-redraw-style": "ink"})
    first = invoke(event).result["results"][0]
    reconfigure(env, REDRAW_RULES=json.dumps(RULES))  # a new container with other rules gets the same event
    again = invoke(event).result["results"][0]
    assert first["status"] == "submitted" and again["status"] == "duplicate"
    assert again["session_id"] == first["session_id"] and len(emulator.tasks) == 1


# --- bad configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, words", [
    ('[{"prefix": "a/", ', "REDRAW_RULES is not valid JSON (line 1, column"),
    ('{"prefix": "a/"}', "REDRAW_RULES must be a JSON list of rules"),
    ('[{"prefix": "a/", "Colour": "x"}]', "REDRAW_RULES[0].Colour is not a rule field"),
    ('[{"Style": "x"}]', "REDRAW_RULES[0].prefix is required"),
    ('[{"prefix": "a/"}, 3]', "REDRAW_RULES[1] must be a JSON object"),
    (json.dumps([{"prefix": "a/", "name": "mine", "Style": CANARY * 2}]),
     'REDRAW_RULES[0].Style must have at most 50 characters (rule "mine")'),
    ('[{"prefix": "a/", "TasksPriority": "3"}]', "REDRAW_RULES[0].TasksPriority must be a valid integer"),
    ('[{"prefix": "a/", "TasksPriority": 11}]', "REDRAW_RULES[0].TasksPriority must be less than or equal to 10"),
    ('[{"prefix": "a/", "StorageMode": "Forever"}]', "REDRAW_RULES[0].StorageMode must be 'Permanent' or"),
    ('[{"prefix": "a/", "MediaName": "{stem}-{colour}"}]', "REDRAW_RULES[0].MediaName names an unknown placeholder {colour}"),
    ('[{"prefix": "a/", "MediaName": "{name.__class__}"}]', "REDRAW_RULES[0].MediaName names an unknown placeholder"),
    ('[{"prefix": "a/", "ExpireTime": "P1Y"}]', "REDRAW_RULES[0].ExpireTime must be an ISO 8601 duration"),
    ('[{"prefix": "a/", "Style": "x"}, {"prefix": "a/", "Style": "y"}]',
     "REDRAW_RULES[1] has the same prefix and suffix as REDRAW_RULES[0]"),
    ('[{"prefix": "a/", "name": "n"}, {"prefix": "b/", "name": "n"}]', "REDRAW_RULES[1].name is the name of"),
    ('[{"prefix": "a/", "skip": true, "Style": "x"}]', "REDRAW_RULES[0] skips its uploads, so it cannot also set Style"),
    ('[{"prefix": "a/", "suffix": ".jpg"}]', "REDRAW_RULES[0].suffix fits none of REDRAW_VIDEO_SUFFIXES"),
    ('[{"prefix": "/a/"}]', "REDRAW_RULES[0].prefix must not start with /"),
    ('[{"prefix": "a/", "deliver_prefix": "out/"}]', "REDRAW_RULES[0].deliver_prefix needs REDRAW_FOLLOW_UP=true"),
])
def test_a_bad_rule_is_a_configuration_error_naming_the_rule_and_field(value, words):
    message = config_error(REDRAW_RULES=value)
    assert words in message
    assert CANARY not in message


def test_other_bad_rule_settings():
    assert "REDRAW_RULES[0].prefix lies under a delivery prefix" in config_error(
        REDRAW_RULES='[{"prefix": "redrawn/x/"}]', REDRAW_DELIVER_PREFIX="redrawn/")
    assert "REDRAW_RULES and REDRAW_RULES_FILE are both set" in config_error(
        REDRAW_RULES="[]", REDRAW_RULES_FILE="rules.json")
    assert "REDRAW_RULES_FILE cannot be read" in config_error(REDRAW_RULES_FILE="/nonexistent/rules.json")
    assert "REDRAW_METADATA_OVERRIDES names what no header can override" in config_error(
        REDRAW_METADATA_OVERRIDES="style,colour")
    assert "REDRAW_MEDIA_NAME names an unknown placeholder {nmae}" in config_error(REDRAW_MEDIA_NAME="{nmae}")
    assert "REDRAW_RULES must have at most 4096 characters" in config_error(REDRAW_RULES="[" + " " * 5000 + "]")


def test_at_most_500_rules(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps([{"prefix": f"uploads/{i}/"} for i in range(501)]), encoding="utf-8")
    assert "REDRAW_RULES_FILE must have at most 500 items" in config_error(REDRAW_RULES_FILE=str(path))
    path.write_text(json.dumps([{"prefix": f"uploads/{i}/"} for i in range(500)]), encoding="utf-8")
    assert len(load_settings(base_env(REDRAW_RULES_FILE=str(path))).rules.rules) == 500


def test_a_bad_rule_stops_the_function_with_a_config_line(invoke, emulator, env):
    env.setenv("REDRAW_RULES", '[{"prefix": "uploads/", "Colour": "red"}]')
    out = invoke(cos_event(["uploads/a.mp4"]))
    assert isinstance(out.error, ConfigError) and emulator.calls == []
    [line] = out.lines("config.invalid")
    assert "REDRAW_RULES[0].Colour is not a rule field" in line["reason"]


def test_rules_against_the_trigger_filter():
    ruleset, problems = rules.load_rules(json.dumps([
        {"prefix": "uploads/a/"}, {"prefix": "other/"}, {"prefix": "up"}, {"prefix": "uploads/", "suffix": ".mov"}]),
        None, deliver_prefix=None, follow_up=False, video_suffixes=(".mp4", ".mov"))
    assert problems == []
    errors, warnings = rules.filter_problems(ruleset, "uploads/", ".mp4")
    assert sorted(errors) == ["rule \"other/\": its prefix lies outside the trigger's prefix 'uploads/': it never applies",
                      "rule \"uploads/*.mov\": its suffix does not fit the trigger's suffix '.mp4': it never applies"]
    assert warnings == ["rule \"up\": its prefix is shorter than the trigger's 'uploads/', so it applies to every "
                        "upload the trigger sends (a catch-all)"]


def test_serverless_yml_example_rules_are_valid_and_fit_the_trigger():
    text = (ROOT / "serverless.yml").read_text(encoding="utf-8")
    block = text.split("# rules-example:start\n")[1].split("# rules-example:end")[0]
    example = yaml.safe_load("\n".join(line.strip()[2:] for line in block.splitlines()))
    settings = load_settings(base_env(REDRAW_RULES=example["REDRAW_RULES"], REDRAW_FOLLOW_UP="false"))
    assert len(settings.rules.rules) == 4
    prefix, suffix, _ = watch.trigger_filter(str(ROOT / "serverless.yml"))
    assert rules.filter_problems(settings.rules, prefix, suffix) == ([], [])


def test_durations_and_templates():
    assert rules.duration_seconds("P1W2DT3H4M5S") == ((9 * 24 + 3) * 60 + 4) * 60 + 5
    for bad in ("P", "PT", "P1DT", "30D", "P0D", "P1M"):
        with pytest.raises(ValueError):
            rules.duration_seconds(bad)
    assert rules.template("{stem}{{x}}").render("a/b.c.mp4") == "b.c{x}"
    assert rules.template("{ext}").render("a/noext") is None
    assert rules.template("").render("a.mp4") is None


# --- the CLI and serve --watch --------------------------------------------------------------------

def test_generate_event_meta_and_invoke_rules_try_a_rule_locally(env, emulator, capsys, tmp_path):
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(RULES), encoding="utf-8")
    assert cli.main(["generate-event", "cos", "--key", "uploads/anime/a.mp4",
                     "--meta", "x-cos-meta-redraw-style=watercolor"]) == 0
    event = tmp_path / "event.json"
    event.write_text(capsys.readouterr().out, encoding="utf-8")
    assert json.loads(event.read_text())["Records"][0]["cos"]["cosObject"]["meta"]["x-cos-meta-redraw-style"] == \
        "watercolor"
    assert cli.main(["invoke", str(event), "--rules", str(rules_file)]) == 0
    result = json.loads(capsys.readouterr().out.split("\n{\n", 1)[1].join(["{\n", ""]))
    assert result["results"][0]["rule"] == "anime" and result["results"][0]["applied"]["style"] == "watercolor"
    assert sent(emulator)["TasksPriority"] == 5
    assert cli.main(["generate-event", "cos", "--meta", "style=x"]) == 2
    assert "--meta takes x-cos-meta-NAME=VALUE" in capsys.readouterr().err


def test_redraw_config_lists_the_rules_and_checks_the_trigger_filter(env, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    env.setenv("REDRAW_RULES", json.dumps(RULES + [{"prefix": "elsewhere/"}]))
    assert cli.main(["config"]) == 1
    out = capsys.readouterr().out
    assert out.index("anime-hd") < out.index("drafts") < out.index("anime:")  # the order they are tried
    assert "error: rule \"elsewhere/\": its prefix lies outside the trigger's prefix 'uploads/'" in out
    assert cli.main(["config", "--json", "--prefix", ""]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rules"][0] == {"rule": "anime-hd", "prefix": "uploads/anime/hd/", "Style": "anime-hd",
                                  "StorageMode": "Permanent", "ClassId": 3, "MediaName": "{stem} (hd)",
                                  "ExpireTime": "+2592000 s"}
    assert report["metadata_headers"] == ["x-cos-meta-redraw-style", "x-cos-meta-redraw-priority"]
    env.setenv("REDRAW_RULES", "[oops")
    assert cli.main(["config"]) == 2
    assert "REDRAW_RULES is not valid JSON" in capsys.readouterr().err


def test_watch_reads_metadata_from_a_sidecar(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"video")
    assert watch.put_event(str(clip), "uploads/clip.mp4", bucket=BUCKET, region="ap-guangzhou")[
        "Records"][0]["cos"]["cosObject"]["meta"].get("x-cos-meta-redraw-style") is None
    (tmp_path / "clip.mp4.meta.json").write_text('{"X-Cos-Meta-Redraw-Style": "ink"}', encoding="utf-8")
    meta = watch.put_event(str(clip), "uploads/clip.mp4", bucket=BUCKET, region="ap-guangzhou")[
        "Records"][0]["cos"]["cosObject"]["meta"]
    assert meta["x-cos-meta-redraw-style"] == "ink"
    (tmp_path / "clip.mp4.meta.json").write_text('["ink"]', encoding="utf-8")
    with pytest.raises(watch.SidecarError, match="must be a JSON object of x-cos-meta-"):
        watch.put_event(str(clip), "uploads/clip.mp4", bucket=BUCKET, region="ap-guangzhou")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--watch needs Linux (inotify)")
def test_serve_watch_applies_rules_and_sidecar_metadata(tmp_path):
    from serving import Served, emulator_without_limit, function_env, wait_for

    vod = emulator_without_limit()
    bucket = tmp_path / "bucket"
    (bucket / "uploads" / "anime").mkdir(parents=True)
    try:
        with Served("--endpoint", vod.url, "--no-reload", "--watch", str(bucket),
                    env=function_env(REDRAW_RULES=json.dumps(RULES + [{"prefix": "elsewhere/"}]))) as server:
            wait_for(lambda: any("prefix 'uploads/'" in line for line in server.errors()))
            assert any("warning: rule \"elsewhere/\": its prefix lies outside" in line for line in server.errors())
            (bucket / "uploads" / "anime" / "a.mp4.meta.json").write_text(
                json.dumps({"x-cos-meta-redraw-style": "sumi-e", "x-cos-meta-redraw-priority": "9"}))
            (bucket / "uploads" / "anime" / "a.mp4").write_bytes(b"\x00" * 1024)
            [line] = wait_for(lambda: server.records("uploads/anime/a.mp4"), 10, "the cos.record")
            assert line["outcome"] == "submitted" and line["rule"] == "anime"
            assert line["applied"] == {"style": "sumi-e", "priority": 9, "storage_mode": None, "media_name": "a.mp4"}
            assert server.records("uploads/anime/a.mp4.meta.json") == []
    finally:
        vod.stop()


def test_the_sample_event_with_metadata(invoke, emulator, env):
    from conftest import load_event

    reconfigure(env, REDRAW_RULES=json.dumps(RULES))
    out = invoke(load_event("cos-put-meta.json"))
    [result] = out.result["results"]
    assert result["status"] == "submitted" and result["rule"] == "anime"
    assert result["applied"] == {"style": "水彩", "priority": 8, "storage_mode": None, "media_name": "demo-clip.mp4"}


def test_a_skipping_rule_wins_over_bad_metadata_and_non_videos_never_read_it(invoke, emulator, env):
    reconfigure(env, REDRAW_RULES=json.dumps(RULES))
    bad = {"x-cos-meta-redraw-priority": "eleven"}
    event = {"Records": [cos_record("uploads/drafts/a.mp4", meta=bad), cos_record("uploads/notes.txt", meta=bad)]}
    out = invoke(event)
    assert [r["status"] for r in out.result["results"]] == ["skipped", "skipped"] and emulator.calls == []


def test_a_rules_delivery_prefix_and_the_final_receipt_after_the_sweep(invoke, follow, cos, emulator):
    from test_followup import sweep, wait_ended

    follow.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    follow.setenv("REDRAW_RULES", json.dumps(RULES + [
        {"name": "elsewhere", "prefix": "uploads/elsewhere/", "deliver_prefix": "out/"}]))
    out = invoke(cos_event(["uploads/elsewhere/a.mp4", "uploads/anime/b.mp4"], bucket=BUCKET))
    assert [r["status"] for r in out.result["results"]] == ["submitted", "submitted"]
    wait_ended(emulator)
    lines = sweep(invoke).lines("task.finished")
    assert sorted(line["delivered_to"] for line in lines) == [
        f"cos://{BUCKET}/out/uploads/elsewhere/a.mp4", f"cos://{BUCKET}/redrawn/uploads/anime/b.mp4"]
    final = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/anime/b.mp4.json"))
    assert final["state"] == "succeeded" and final["rule"] == "anime"
    assert final["applied"] == {"style": "anime", "priority": 5, "storage_mode": None, "media_name": "b.mp4"}
    # the delivered object fires the trigger again: under the rule's delivery prefix, it starts nothing
    again = invoke(cos_event(["out/uploads/elsewhere/a.mp4"], bucket=BUCKET))
    assert again.result["results"][0]["status"] == "skipped" and emulator.task_count == 2
