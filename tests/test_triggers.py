"""Every trigger told apart by its own marker, with the real event shapes kept as fixtures.

The fixtures in tests/fixtures/events/ are the SCF docs' trigger examples, Tencent's
``scf`` CLI templates and the SCF console's test templates (see the README there).
Each runs through ``main_handler`` against the emulator: the redraw sources get their
outcome, every other trigger one UnsupportedTriggerError naming it and no VOD call.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT
from redraw import sources
from redraw.errors import InvalidEventError, RedrawError, UnsupportedTriggerError

FIXTURES = ROOT / "tests" / "fixtures" / "events"

# fixture -> (trigger, what main_handler must give)
#   ("http", status)            an HTTP answer with this status code
#   ("results", [statuses])     a batch result, one status per record/message
#   ("unsupported", name)       UnsupportedTriggerError whose message starts with the trigger's name
EXPECTED = {
    "scf-docs-apigw.json": ("apigw", ("http", 400)),              # body {"test": "body"}: not a request
    "scf-cli-apigateway-proxy.json": ("apigw", ("http", 400)),
    "function-url-post.json": ("url", ("http", 200)),
    "scf-docs-cos.json": ("cos", ("results", ["skipped"])),        # "testfile" is not a video
    "scf-cli-cos-put.json": ("cos", ("results", ["skipped"])),
    "console-cos-post.json": ("cos", ("results", ["skipped"])),
    "console-cos-put.json": ("cos", ("results", ["skipped"])),
    "console-cos-delete.json": ("cos", ("results", ["skipped"])),
    "console-cos-sample-placeholders.json": ("cos", ("results", ["failed"])),  # url is a placeholder
    "scf-docs-ckafka.json": ("ckafka", ("results", ["failed", "failed"])),     # "Hello from Ckafka!"
    "console-ckafka.json": ("ckafka", ("results", ["failed"])),
    "scf-docs-cmq.json": ("cmq", ("unsupported", "CMQ topic trigger events are not a redraw source")),
    "scf-cli-cmq-notify.json": ("cmq", ("unsupported", "CMQ topic trigger events are not a redraw source")),
    "scf-docs-timer.json": ("timer", ("unsupported", "timer trigger events are not a redraw source")),
    "scf-cli-timer-timeout.json": ("timer", ("unsupported", "timer trigger events are not a redraw source")),
    "scf-docs-cls.json": ("cls", ("unsupported", "CLS trigger events are not a redraw source")),
    "scf-docs-mps.json": ("mps", ("unsupported", "MPS trigger events are not a redraw source")),
    "scf-docs-clb.json": ("clb", ("unsupported", "CLB trigger events are not a redraw source")),
    "eventbridge-ckafka-connector.json": ("eventbridge",
                                          ("unsupported", "EventBridge trigger events are not a redraw source")),
    "console-hello-world.json": ("unknown", ("unsupported", "event is from no trigger redraw knows")),
}


def _fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_every_fixture_has_an_expected_outcome():
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_documented_event_shapes_through_main_handler(invoke, emulator, name):
    trigger, (kind, expected) = EXPECTED[name]
    out = invoke(_fixture(name))
    assert out.error is None or isinstance(out.error, RedrawError), repr(out.error)
    creates = [c for c in emulator.calls if c["action"] == "CreateAigcVideoRedrawTask"]
    if kind == "unsupported":
        assert isinstance(out.error, UnsupportedTriggerError), repr(out.error)
        assert out.error.trigger == trigger and out.error.code == "UnsupportedTrigger"
        assert str(out.error).startswith(expected), str(out.error)
        assert "invalid request fields" not in str(out.error) and "invalid COS record" not in str(out.error)
        assert emulator.calls == []
        [line] = out.lines("event.rejected")
        assert line["trigger"] == trigger and line["error"] == "UnsupportedTrigger" and line["level"] == "error"
        return
    assert out.error is None, out.error
    assert {line.get("trigger") for line in out.logs} == {trigger}
    if kind == "http":
        assert out.result["statusCode"] == expected
        shape = {"statusCode", "headers", "body"} | ({"isBase64Encoded"} if trigger == "apigw" else set())
        assert set(out.result) == shape
        assert len(creates) == (1 if expected == 200 else 0)
    else:
        assert [r["status"] for r in out.result["results"]] == expected
        assert creates == []


def test_detect_names_each_redraw_source_by_its_marker():
    for name, (trigger, _) in EXPECTED.items():
        event = _fixture(name)
        if trigger in (sources.COS, sources.APIGW, sources.URL, sources.CKAFKA, sources.TIMER):
            assert sources.detect(event) == trigger, name  # timer: served with REDRAW_FOLLOW_UP on
        else:
            with pytest.raises(UnsupportedTriggerError) as info:
                sources.detect(event)
            assert info.value.trigger == trigger
    assert sources.detect(json.loads((ROOT / "events" / "direct.json").read_text())) == sources.DIRECT


def test_request_fields_of_detect_are_the_models():
    from redraw.request import RedrawRequest

    assert set(sources.REQUEST_FIELDS) == set(RedrawRequest.model_fields)


@pytest.mark.parametrize("event, message", [
    ({"Records": [{"s3": {"bucket": {}}, "eventName": "ObjectCreated:Put"}]}, "carries no trigger marker"),
    ({"Records": [{"cos": {}}]}, "carries no trigger marker"),       # COS needs cos and event
    ({"Records": [1, None]}, "carries no trigger marker"),
])
def test_records_without_a_marker_are_a_clear_error(invoke, emulator, event, message):
    out = invoke(event)
    assert isinstance(out.error, InvalidEventError) and message in str(out.error)
    assert "invalid COS record" not in str(out.error)
    assert emulator.calls == []


def test_first_record_with_a_marker_decides_and_a_bad_cos_record_fails_alone(invoke, emulator):
    from redraw.tools.samples import cos_event

    event = cos_event(["a.mp4"])
    event["Records"].insert(0, {"garbage": True})
    out = invoke(event)
    assert [r["status"] for r in out.result["results"]] == ["failed", "submitted"]
    assert emulator.task_count == 1


def test_fixture_readme_names_every_source():
    text = (FIXTURES / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED:
        assert name in text, name


def test_fixtures_are_kept_as_json_files():
    for path in FIXTURES.glob("*.json"):
        assert isinstance(json.loads(Path(path).read_text(encoding="utf-8")), dict)
