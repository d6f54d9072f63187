"""The command line (redraw.tools.cli, redraw.tools.manifest): mostly in-process through ``cli.main``,
plus a few subprocess runs that prove what a fresh clone sees."""
from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Tuple

import pytest

from conftest import EVENTS, ROOT, SUB_APP_ID, end_tasks
from redraw import sources as events
from redraw.sources.cos import parse_record
from redraw.tools import cli, manifest
from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY

CREATE = "CreateAigcVideoRedrawTask"
BASE_URL = "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/uploads"


def run(capsys, *argv: str) -> Tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def split_invoke(out: str) -> Tuple[List[dict], object]:
    """``invoke`` output: one JSON log line each, then the indented result."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("{", "["))
    logs = [json.loads(line) for line in lines[:start]]
    return logs, json.loads("\n".join(lines[start:]))


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("redraw: "), err
    assert "Traceback" not in err
    return lines[0]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_"))}


@pytest.fixture
def bare_env(monkeypatch):
    """No VOD configuration at all, as on a fresh machine."""
    for name in list(os.environ):
        if name.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_")):
            monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def no_network(monkeypatch):
    """Records (and blocks) every name lookup and connection attempt."""
    attempts: list = []

    def lookup(host, *args, **kwargs):
        attempts.append(("getaddrinfo", host))
        raise socket.gaierror("network blocked by the test")

    def connect(self, address):
        attempts.append(("connect", address))
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def create_task(url: str) -> str:
    from redraw.config import load_settings
    from redraw.vod import VodClient

    settings = load_settings()
    response = VodClient(settings).call(CREATE, {"SubAppId": settings.sub_app_id,
                                                 "FileInfo": {"Type": "Url", "Url": url}}, 5.0)
    return response["TaskId"]


def creates(emulator) -> list:
    return [c for c in emulator.calls if c["action"] == CREATE]


# --- fresh clone: subprocesses ------------------------------------------------------------------

def test_help_in_a_subprocess_needs_no_configuration():
    done = subprocess.run([sys.executable, "-m", "redraw.tools", "--help"], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("invoke", "generate-event", "emulator", "status", "submit"):
        assert command in done.stdout
    assert "example" in done.stdout


def test_generate_event_in_a_subprocess_needs_no_configuration():
    done = subprocess.run([sys.executable, "-m", "redraw.tools", "generate-event", "cos", "--key", "a b.mp4"],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout)
    assert event["Records"][0]["cos"]["cosObject"]["key"].endswith("/a%20b.mp4")


def test_importing_the_cli_imports_nothing_heavy():
    code = ("import sys, redraw.tools.cli as c; c.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'structlog', 'tencentcloud'})"
            " + sorted(m for m in sys.modules if m in ('redraw.config', 'redraw.app', 'redraw.vod')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [None, "invoke", "generate-event", "emulator", "status", "submit"])
def test_every_help_has_an_example(capsys, command):
    code, out, _ = run(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert "example" in out.lower()


def test_usage_errors_are_one_line(capsys):
    code, out, err = run(capsys, "status")
    assert code == 2
    assert "TASK_ID" in one_error_line(err)
    code, _, err = run(capsys, "generate-event", "nonsense")
    assert code == 2
    one_error_line(err)


def test_ctrl_c_exits_130_with_one_line(capsys, monkeypatch):
    from redraw.tools import samples

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(samples, "cos_event", interrupted)
    code, _, err = run(capsys, "generate-event", "cos")
    assert code == 130
    assert one_error_line(err) == "redraw: interrupted"


# --- invoke -------------------------------------------------------------------------------------

def test_invoke_cos_put_prints_json_logs_then_the_result(env, emulator, capsys):
    code, out, err = run(capsys, "invoke", EVENTS / "cos-put.json")
    assert code == 0, err
    logs, result = split_invoke(out)
    assert logs and all(isinstance(line, dict) and "event" in line for line in logs)
    assert [r["status"] for r in result["results"]] == ["submitted"]
    assert result["results"][0]["task_id"] in emulator.tasks   # the configured (loopback) emulator


def test_invoke_from_stdin(env, emulator, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO((EVENTS / "direct.json").read_text(encoding="utf-8")))
    code, out, _ = run(capsys, "invoke", "-")
    assert code == 0
    _, result = split_invoke(out)
    assert result["Status"] == "submitted"
    assert list(emulator.tasks) == [result["TaskId"]]


@pytest.mark.parametrize("case", ["not-an-event", "bad-http-body", "rejected-record"])
def test_invoke_exits_1_on_failure(env, emulator, capsys, tmp_path, case):
    from redraw.tools.samples import apigw_event

    if case == "not-an-event":
        event = {}
    elif case == "bad-http-body":
        event = apigw_event("this is not JSON")
    else:
        event = json.loads((EVENTS / "cos-put.json").read_text(encoding="utf-8"))
        emulator.inject("InvalidParameterValue")  # the caller's input: terminal, not raised
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    code, out, _ = run(capsys, "invoke", path)
    assert code == 1
    _, result = split_invoke(out)
    if case == "not-an-event":
        assert result["error"]["code"] == "InvalidEvent"
    elif case == "bad-http-body":
        assert result["statusCode"] == 400
    else:
        assert result["results"][0]["status"] == "failed"
    assert emulator.task_count == 0


def test_invoke_unreadable_event_is_a_usage_error(env, capsys, tmp_path):
    code, _, err = run(capsys, "invoke", tmp_path / "missing.json")
    assert code == 2
    assert "cannot read event" in one_error_line(err)


def test_invoke_without_configuration_uses_an_in_process_emulator(bare_env, capsys):
    code, out, err = run(capsys, "invoke", EVENTS / "cos-put.json")
    assert code == 0, err
    assert "in-process VOD emulator" in err
    _, result = split_invoke(out)
    assert result["results"][0]["status"] == "submitted"
    assert "VOD_ENDPOINT" not in os.environ and "TENCENTCLOUD_SECRETKEY" not in os.environ


def test_invoke_with_a_bad_configuration_exits_2_with_one_line_naming_the_variable(bare_env, capsys):
    bare_env.setenv("VOD_SUB_APP_ID", "abc")
    code, _, err = run(capsys, "invoke", EVENTS / "direct.json")
    assert code == 2
    [line] = [line for line in err.splitlines() if "configuration" in line]
    assert line.startswith("redraw: ") and "VOD_SUB_APP_ID" in line and "abc" not in line
    assert "Traceback" not in err


# --- generate-event -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, trigger", [("cos", events.COS), ("cos-delete", events.COS),
                                           ("url", events.URL), ("apigw", events.APIGW),
                                           ("ckafka", events.CKAFKA), ("direct", events.DIRECT)])
def test_generate_event_kinds(capsys, kind, trigger):
    code, out, err = run(capsys, "generate-event", kind, "--key", "uploads/My Clip 夏.mp4")
    assert code == 0, err
    event = json.loads(out)
    assert events.detect(event) == trigger
    encoded = "uploads/My%20Clip%20%E5%A4%8F.mp4"
    if trigger == events.COS:
        from redraw.sources.cos import object_key

        record = event["Records"][0]
        assert record["cos"]["cosObject"]["key"] == f"/1250000000/media/{encoded}"
        assert record["cos"]["cosObject"]["url"].endswith("/" + encoded)
        assert object_key(parse_record(record)) == "uploads/My Clip 夏.mp4"
        assert record["event"]["eventName"].startswith(
            "cos:ObjectRemove" if kind == "cos-delete" else "cos:ObjectCreated")
    else:
        body = (json.loads(event["body"]) if kind in ("apigw", "url") else
                json.loads(event["Records"][0]["Ckafka"]["msgBody"]) if kind == "ckafka" else event)
        assert body["FileInfo"] == {"Type": "Url", "Url": f"{BASE_URL[:-len('/uploads')]}/{encoded}"}


def test_generate_event_records_are_numbered_and_invoke_submits_them(env, emulator, capsys, tmp_path):
    code, out, _ = run(capsys, "generate-event", "cos", "--key", "in/clip.mp4", "--records", "3",
                       "--bucket", "videos-1250000001", "--region", "ap-shanghai", "--size", "1024")
    assert code == 0
    records = json.loads(out)["Records"]
    assert [r["cos"]["cosObject"]["key"] for r in records] == [
        f"/1250000001/videos/in/clip-00{i}.mp4" for i in (1, 2, 3)]
    assert {r["cos"]["cosObject"]["size"] for r in records} == {1024}
    assert records[0]["cos"]["cosObject"]["url"].startswith("http://videos-1250000001.cos.ap-shanghai.")
    path = tmp_path / "event.json"
    path.write_text(out, encoding="utf-8")
    code, out, _ = run(capsys, "invoke", path)
    assert code == 0
    assert [r["status"] for r in split_invoke(out)[1]["results"]] == ["submitted"] * 3
    assert emulator.task_count == 3


def test_generate_event_ckafka_and_url_run_through_invoke(env, emulator, capsys, tmp_path):
    code, out, _ = run(capsys, "generate-event", "ckafka", "--key", "in/clip.mp4", "--records", "3")
    assert code == 0
    event = json.loads(out)
    assert [r["Ckafka"]["offset"] for r in event["Records"]] == [36, 37, 38]
    path = tmp_path / "ckafka.json"
    path.write_text(out, encoding="utf-8")
    code, out, _ = run(capsys, "invoke", path)
    assert code == 0
    assert [r["status"] for r in split_invoke(out)[1]["results"]] == ["submitted"] * 3
    code, out, _ = run(capsys, "generate-event", "url", "--url", "https://example.com/a.mp4")
    assert code == 0 and "isBase64Encoded" not in json.loads(out) and "requestContext" not in json.loads(out)
    path.write_text(out, encoding="utf-8")
    code, out, _ = run(capsys, "invoke", path)
    assert code == 0 and split_invoke(out)[1]["statusCode"] == 200
    assert emulator.task_count == 4


def test_generate_event_base64_body_decodes(capsys):
    from redraw.sources.http import decode_body

    code, out, _ = run(capsys, "generate-event", "apigw", "--base64", "--url", "https://example.com/a.mp4")
    assert code == 0
    event = json.loads(out)
    assert event["isBase64Encoded"] == "true"
    body = json.loads(base64.b64decode(event["body"]))
    assert body == {"FileInfo": {"Type": "Url", "Url": "https://example.com/a.mp4"}}
    assert decode_body(event, 65536) == body


@pytest.mark.parametrize("argv, words", [
    (["cos", "--bucket", "media"], "--bucket"),
    (["cos", "--bucket", "Media_1250000000"], "--bucket"),
    (["cos", "--base64"], "--base64"),
    (["direct", "--records", "2"], "--records"),
    (["url", "--records", "2"], "--records"),
    (["url", "--base64"], "--base64"),
    (["ckafka", "--size", "5"], "--size"),
    (["cos", "--records", "0"], "--records"),
])
def test_generate_event_bad_options_exit_2_with_one_line(capsys, argv, words):
    code, out, err = run(capsys, "generate-event", *argv)
    assert code == 2
    assert out == ""
    assert words in one_error_line(err)


# --- emulator -----------------------------------------------------------------------------------

def test_emulator_command_serves_and_says_how_to_use_it(bare_env, capsys):
    proc = subprocess.Popen([sys.executable, "-m", "redraw.tools", "emulator", "--port", "0", "--fault-rate", "0"],
                            cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        first: list = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert first and first[0], "no line from the emulator command"
        line = first[0]
        words = dict(w.split("=", 1) for w in line.split() if "=" in w)
        assert words["VOD_ENDPOINT"].startswith("http://127.0.0.1:")
        assert words["TENCENTCLOUD_SECRETID"] == DEFAULT_SECRET_ID
        assert words["TENCENTCLOUD_SECRETKEY"] == DEFAULT_SECRET_KEY
        assert "test key" in line
        for name, value in words.items():   # point this process at it, as the line says
            if name.startswith(("VOD_", "TENCENTCLOUD_")):
                bare_env.setenv(name, value)
        code, _, err = run(capsys, "status", "1500000001-AigcVideoRedrawTask-unknown")
        assert code == 1
        assert "not found" in one_error_line(err)   # a signed DescribeTaskDetail was answered
        proc.terminate()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_emulator_rejects_unknown_faults(capsys):
    code, _, err = run(capsys, "emulator", "--fault", "no-such-fault")
    assert code == 2
    assert "unknown fault" in one_error_line(err)


def test_emulator_failure_and_abort_rates(capsys, monkeypatch):
    from redraw.tools import emulator as emulator_module

    seen = []
    monkeypatch.setattr(emulator_module, "serve", lambda emu, banner: seen.append(emu) or 0)
    code, _, _ = run(capsys, "emulator", "--port", "0", "--failure-rate", "0.25", "--abort-rate", "0.1")
    assert code == 0 and (seen[0].failure_rate, seen[0].abort_rate) == (0.25, 0.1)
    for bad in (["--failure-rate", "1.5"], ["--abort-rate", "-1"], ["--failure-rate", "0.6", "--abort-rate", "0.6"]):
        code, _, err = run(capsys, "emulator", "--port", "0", *bad)
        assert code == 2 and bad[0] in one_error_line(err), bad
    assert len(seen) == 1


# --- status -------------------------------------------------------------------------------------

def test_status_wait_reaches_finish(env, emulator, capsys):
    emulator.task_duration = 0.3
    task_id = create_task(f"{BASE_URL}/clip.mp4")
    code, out, err = run(capsys, "status", task_id, "--wait", "--interval", "0.05", "--timeout", "10")
    assert code == 0, err
    assert "FINISH" in out and f"{emulator.url}/aigc/{task_id}.mp4" in out
    assert "sign=" not in out and "?t=" not in out  # the output URL's signature is never shown
    assert "100% FINISH" in err.splitlines() and "\r" not in err   # not a terminal: plain lines


def test_status_wait_draws_a_bar_on_a_terminal(env, emulator, capsys, monkeypatch):
    emulator.task_duration = 0.3
    task_id = create_task(f"{BASE_URL}/clip.mp4")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm")
    code, _, err = run(capsys, "status", task_id, "--wait", "--interval", "0.05", "--timeout", "10")
    assert code == 0, err
    assert "━" in err and "100%" in err and "FINISH" in err   # rich's bar, not plain lines


def test_status_wait_on_an_aborted_task_exits_1(env, emulator, capsys):
    emulator.task_duration = 0.3
    task_id = create_task(f"{BASE_URL}/abort-me.mp4")
    code, out, _ = run(capsys, "status", task_id, "--wait", "--interval", "0.05", "--json")
    assert code == 1
    summary = json.loads(out)
    assert summary["Status"] == "ABORTED" and summary["ErrCode"] == 70000 and summary["Message"]


def test_status_of_a_failed_redraw_exits_1(env, emulator, capsys):
    task_id = create_task(f"{BASE_URL}/fail-me.mp4")
    end_tasks(emulator)
    code, out, _ = run(capsys, "status", task_id, "--json")
    summary = json.loads(out)
    assert summary["Status"] == "FINISH" and summary["ErrCode"] == 70000 and code == 1


def test_status_without_wait_shows_the_fields(env, emulator, capsys):
    emulator.task_duration = 60
    task_id = create_task(f"{BASE_URL}/clip.mp4")
    code, out, _ = run(capsys, "status", task_id)
    assert code == 0
    for label in ("Status", "Progress", "ErrCode", "Message", "Output", "SessionId", "SessionContext"):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert "WAITING" in out or "PROCESSING" in out


def test_status_wait_times_out(env, emulator, capsys):
    emulator.task_duration = 60
    task_id = create_task(f"{BASE_URL}/clip.mp4")
    code, _, err = run(capsys, "status", task_id, "--wait", "--interval", "0.05", "--timeout", "0.2")
    assert code == 1
    assert "timed out" in err.splitlines()[-1]


def test_status_of_an_unknown_task_exits_1(env, capsys):
    code, out, err = run(capsys, "status", f"{SUB_APP_ID}-AigcVideoRedrawTask-doesnotexist")
    assert code == 1
    assert out == ""
    assert "not found" in one_error_line(err)


def test_status_without_sub_app_id_names_the_variable(env, capsys):
    env.delenv("VOD_SUB_APP_ID")
    code, _, err = run(capsys, "status", "any-task")
    assert code == 2
    assert "VOD_SUB_APP_ID" in one_error_line(err)


# --- the real-API guard -------------------------------------------------------------------------

@pytest.fixture
def real_credentials(bare_env):
    bare_env.setenv("VOD_SUB_APP_ID", str(SUB_APP_ID))
    bare_env.setenv("TENCENTCLOUD_SECRETID", "AKIDreal")
    bare_env.setenv("TENCENTCLOUD_SECRETKEY", "real-key-1234")
    return bare_env


@pytest.mark.parametrize("command, endpoint", [
    ("status", None),   # invoke and submit use an in-process emulator when VOD_ENDPOINT is unset
    ("status", "vod.tencentcloudapi.com"),
    ("invoke", "https://vod.intl.tencentcloudapi.com"),
    ("invoke", "vod.tencentcloudapi.com"),
    ("submit", "https://vod.intl.tencentcloudapi.com"),
])
def test_real_api_is_refused_without_real_flag(real_credentials, no_network, capsys, tmp_path,
                                               command, endpoint):
    if endpoint:
        real_credentials.setenv("VOD_ENDPOINT", endpoint)
    argv = {"status": ["status", "some-task"],
            "invoke": ["invoke", EVENTS / "cos-put.json"],
            "submit": ["submit", EVENTS / "manifest.csv", "--out", tmp_path / "r.jsonl"]}[command]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "--real" in one_error_line(err)
    assert no_network == []
    assert not (tmp_path / "r.jsonl").exists()


def test_real_flag_lets_the_call_through(real_credentials, no_network, capsys):
    code, _, err = run(capsys, "status", "some-task", "--real")
    assert code == 1                       # the (blocked) network failed, not the guard
    assert "--real" not in err
    assert any(host == "vod.intl.tencentcloudapi.com" for _, host in no_network)


# --- submit -------------------------------------------------------------------------------------

def write_manifest(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def read_lines(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


MANIFEST = f"""url,style,class_id,priority
{BASE_URL}/a.mp4,anime,,
{BASE_URL}/b.mp4,,3,-2
ftp://example.com/c.mp4,,abc,
{BASE_URL}/a.mp4,anime,,
{BASE_URL}/d.mp4,,,
"""


def test_submit_writes_results_and_a_rerun_submits_nothing(env, emulator, capsys, tmp_path):
    path, out = write_manifest(tmp_path, MANIFEST), tmp_path / "results.jsonl"
    code, stdout, err = run(capsys, "submit", path, "--out", out, "--rps", "50")
    assert code == 1                                   # row 3 is invalid
    results = {r["row"]: r for r in read_lines(out)}
    assert sorted(results) == [1, 2, 3, 4, 5]
    assert [results[n]["status"] for n in (1, 2, 3, 4, 5)] == [
        "submitted", "submitted", "invalid", "skipped", "submitted"]
    assert "url" in results[3]["reason"] and "class_id" in results[3]["reason"]
    assert "row 3 (line 4)" in err and "class_id" in err
    assert results[4]["reason"] == "same request as row 1"
    tasks = emulator.tasks
    assert emulator.task_count == 3
    assert {results[n]["task_id"] for n in (1, 2, 5)} == set(tasks)
    sent = {t["params"]["FileInfo"]["Url"]: t["params"] for t in tasks.values()}
    assert sent[f"{BASE_URL}/a.mp4"]["TaskInfo"] == {"Style": "anime"}
    assert sent[f"{BASE_URL}/b.mp4"]["OutputConfig"] == {"ClassId": 3}
    assert sent[f"{BASE_URL}/b.mp4"]["TasksPriority"] == -2
    assert all(p["SubAppId"] == SUB_APP_ID and len(p["SessionId"]) <= 50 for p in sent.values())
    assert results[1]["session_id"].startswith("redraw-m-")
    assert "3 submitted" in stdout

    calls = len(emulator.calls)
    code, stdout, _ = run(capsys, "submit", path, "--out", out)
    assert code == 1
    assert len(emulator.calls) == calls                # nothing sent at all
    assert "4 already done" in stdout and "0 submitted" in stdout   # row 4 repeats row 1
    assert [r["status"] for r in read_lines(out)[5:]] == ["invalid"]   # only row 3 again


def test_submit_again_without_results_gives_duplicates(env, emulator, capsys, tmp_path):
    code, _, _ = run(capsys, "submit", EVENTS / "manifest.csv", "--out", tmp_path / "first.jsonl")
    assert code == 0
    assert emulator.task_count == 4
    code, _, _ = run(capsys, "submit", EVENTS / "manifest.csv", "--out", tmp_path / "second.jsonl")
    assert code == 0
    assert {r["status"] for r in read_lines(tmp_path / "second.jsonl")} == {"duplicate"}
    assert emulator.task_count == 4


def test_submit_failed_row_exits_1_and_is_retried_next_run(env, emulator, capsys, tmp_path):
    out = tmp_path / "r.jsonl"
    emulator.inject("InvalidParameter")
    code, _, err = run(capsys, "submit", EVENTS / "manifest.jsonl", "--out", out, "--concurrency", "1")
    assert code == 1
    assert "failed" in err
    assert sorted(r["status"] for r in read_lines(out)) == ["failed", "submitted", "submitted"]
    code, stdout, _ = run(capsys, "submit", EVENTS / "manifest.jsonl", "--out", out)
    assert code == 0
    assert "1 submitted" in stdout and "2 already done" in stdout
    assert emulator.task_count == 3


def test_submit_stops_sending_after_a_configuration_failure(env, emulator, capsys, tmp_path):
    out = tmp_path / "r.jsonl"
    emulator.inject("AuthFailure.SecretIdNotFound")
    code, _, _ = run(capsys, "submit", EVENTS / "manifest.csv", "--out", out, "--concurrency", "1")
    assert code == 1
    assert len(creates(emulator)) == 1
    lines = read_lines(out)
    assert [r["status"] for r in lines] == ["failed"] * 4
    assert sum("not sent" in r["reason"] for r in lines) == 3


def test_submit_results_of_another_endpoint_do_not_count(env, emulator, capsys, tmp_path):
    out = tmp_path / "r.jsonl"
    sid = manifest.read_manifest(str(EVENTS / "manifest.csv"))[0].session_id
    out.write_text(json.dumps({"row": 1, "status": "submitted", "session_id": sid,
                               "endpoint": "https://vod.intl.tencentcloudapi.com",
                               "sub_app_id": SUB_APP_ID}) + "\n{\"row\": 2, \"sta", encoding="utf-8")
    code, stdout, _ = run(capsys, "submit", EVENTS / "manifest.csv", "--out", out)
    assert code == 0
    assert "4 submitted" in stdout
    assert emulator.task_count == 4
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"row": 2, "sta'                # the torn line was ended, not extended
    assert [json.loads(line)["status"] for line in lines[2:]] == ["submitted"] * 4


def test_submit_to_stdout(env, emulator, capsys):
    code, out, err = run(capsys, "submit", EVENTS / "manifest.jsonl", "--out", "-")
    assert code == 0
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["submitted"] * 3
    assert "3 submitted" in err


def test_submit_without_configuration_uses_an_in_process_emulator(bare_env, capsys, tmp_path):
    code, out, err = run(capsys, "submit", EVENTS / "manifest.csv", "--out", tmp_path / "r.jsonl")
    assert code == 0, err
    assert "in-process VOD emulator" in err
    assert "4 submitted" in out


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.jsonl"])
def test_sample_manifests_are_valid_and_dry_run_sends_nothing(bare_env, no_network, capsys, tmp_path, name):
    code, out, err = run(capsys, "submit", EVENTS / name, "--dry-run", "--out", tmp_path / "none.jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert 3 <= len(lines) <= 5
    assert {line["status"] for line in lines} == {"would_submit"}
    assert no_network == []
    if name == "manifest.csv":
        assert any(line["request"].get("TaskInfo") == {"Style": "anime"} for line in lines)
        assert all(line["request"]["FileInfo"]["Url"].startswith(
            "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/") for line in lines)


@pytest.mark.parametrize("text, words", [
    ("link,style\nhttps://x/a.mp4,anime\n", "link"),
    ("style\nanime\n", "url or a file_id"),
    ("", "empty"),
])
def test_unusable_manifest_is_one_line_exit_2(env, capsys, tmp_path, text, words):
    code, _, err = run(capsys, "submit", write_manifest(tmp_path, text), "--out", tmp_path / "r.jsonl")
    assert code == 2
    assert words in one_error_line(err)


def test_missing_manifest_is_one_line_exit_2(env, capsys, tmp_path):
    code, _, err = run(capsys, "submit", tmp_path / "nope.csv")
    assert code == 2
    assert "nope.csv" in one_error_line(err)


# --- manifest parsing ---------------------------------------------------------------------------

def test_columns_and_api_names_give_the_same_session_id():
    simple = manifest.row_request({"url": f"{BASE_URL}/a.mp4", "style": "anime", "priority": "3"})
    api = manifest.row_request({"FileInfo": {"Type": "Url", "Url": f"{BASE_URL}/a.mp4"},
                                "TaskInfo": {"Style": "anime"}, "TasksPriority": 3})
    other = manifest.row_request({"url": f"{BASE_URL}/a.mp4", "style": "sketch"})
    assert simple[1] == [] and api[1] == []
    assert simple[0] == api[0]
    assert simple[0]["SessionId"] == api[0]["SessionId"] != other[0]["SessionId"]
    assert len(simple[0]["SessionId"]) == 50


def test_a_given_session_id_is_kept():
    request, problems = manifest.row_request({"file_id": "5285890781234567890", "session_id": "mine-1"})
    assert problems == []
    assert request["SessionId"] == "mine-1"
    assert request["FileInfo"] == {"Type": "File", "FileId": "5285890781234567890"}


@pytest.mark.parametrize("values, field", [
    ({"url": f"{BASE_URL}/a.mp4", "file_id": "1"}, "file_id"),
    ({"style": "anime"}, "url"),
    ({"url": f"{BASE_URL}/a.mp4", "storage_mode": "Forever"}, "storage_mode"),
    ({"url": f"{BASE_URL}/a.mp4", "expire_time": "tomorrow"}, "expire_time"),
    ({"url": f"{BASE_URL}/a.mp4", "priority": 11}, "priority"),
    ({"url": f"{BASE_URL}/a.mp4", "colour": "red"}, "colour"),
    ({"FileInfo": {"Type": "Url", "Url": f"{BASE_URL}/a.mp4"}, "SubAppId": 1}, "SubAppId"),
    ({"FileInfo": {"Type": "Url", "Url": f"{BASE_URL}/a.mp4"}, "style": "x"}, "style"),
    ({"FileInfo": {"Type": "File"}}, "FileInfo.FileId"),
])
def test_bad_rows_name_their_fields(values, field):
    request, problems = manifest.row_request(values)
    assert request is None
    assert field in [p["field"] for p in problems]


def test_jsonl_rows_keep_their_numbers():
    rows = manifest.parse_manifest(
        f'{{"url": "{BASE_URL}/a.mp4"}}\n\nnot json\n[1]\n{{"url": "{BASE_URL}/b.mp4"}}\n', "jsonl")
    assert [(r.number, r.line, r.valid) for r in rows] == [
        (1, 1, True), (2, 3, False), (3, 4, False), (4, 5, True)]
    assert "not valid JSON" in rows[1].reason()
