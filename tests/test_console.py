"""The console's server over real HTTP (no browser: tests/test_console_browser.py drives the page), its
task board built from the function's log lines, and ``redraw serve``'s console options."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from redraw.tools.console import Console, looks_like_video
from redraw.tools.taskboard import TaskBoard
from serving import Served, clean_env, wait_for

SAMPLE = ROOT / "redraw" / "tools" / "data" / "redrawn-sample.mp4"
TASK = "1500000001-AigcVideoRedrawTask-0123456789abcdef0123456789abcdef"


def _line(event: str, **fields):
    return {"event": event, "level": "info", "timestamp": "2026-12-07T10:00:00Z", **fields}


# --- the board ---------------------------------------------------------------------------------

def test_a_task_row_follows_the_function_lines_from_upload_to_succeeded():
    board = TaskBoard(bucket="media-1250000000")
    upload = board.note_upload("uploads/a.mp4", 2270)
    assert [r["state"] for r in board.rows()] == ["uploaded"]
    board.feed(_line("vod.retry", request_id="r1", outcome="retry"))       # before its cos.record: kept for it
    board.feed(_line("cos.record", outcome="submitted", key="uploads/a.mp4", task_id=TASK, request_id="r1"))
    [row] = board.rows()
    assert (row["id"], row["state"], row["key"], row["was"], row["lines"]) == (TASK, "pending", "uploads/a.mp4", upload, 2)
    board.feed(_line("task.finished", outcome="succeeded", task_id=TASK, duration_s=2.0, request_id="r2",
                     delivered_to="cos://media-1250000000/redrawn/uploads/a.mp4", source_key="uploads/a.mp4"))
    [row] = board.rows()
    assert (row["state"], row["output"], row["duration_s"]) == ("succeeded", "redrawn/uploads/a.mp4", 2.0)
    assert [x["event"] for x in board.lines(TASK)] == ["vod.retry", "cos.record", "task.finished"]


def test_rows_say_why_no_task_was_made_and_when_a_task_failed_or_was_lost():
    board = TaskBoard()
    board.feed(_line("cos.record", outcome="skipped", key="uploads/notes.txt", request_id="r1",
                     reason="not a video: suffix is not one of REDRAW_VIDEO_SUFFIXES"))
    board.feed(_line("cos.record", outcome="submitted", key="uploads/b.mp4", task_id="T-failed", request_id="r2"))
    board.feed(_line("task.finished", outcome="failed", task_id="T-failed", error_code=70000, message="it failed"))
    board.feed(_line("task.lost", outcome="lost", task_id="T-lost", error_code="TaskNotFound", source_key="uploads/c.mp4"))
    rows = {r["key"]: r for r in board.rows()}
    assert rows["uploads/notes.txt"]["state"] == "no task" and "not a video" in rows["uploads/notes.txt"]["reason"]
    assert (rows["uploads/b.mp4"]["state"], rows["uploads/b.mp4"]["error_code"]) == ("failed", 70000)
    assert rows["uploads/c.mp4"]["state"] == "lost"


def test_the_board_is_bounded_and_shows_no_secret():
    board = TaskBoard(max_tasks=3, max_lines=2)
    for n in range(5):
        board.feed(_line("cos.record", outcome="submitted", key=f"uploads/{n}.mp4", task_id=f"T{n}", request_id=f"r{n}",
                         url=f"https://b.cos.myqcloud.com/uploads/{n}.mp4?q-signature=abcdef0123&sign=xyz"))
        for _ in range(4):
            board.feed(_line("task.check_failed", task_id=f"T{n}", outcome="retry"))
    assert [r["id"] for r in board.rows()] == ["T4", "T3", "T2"] and board.lines("T0") is None
    assert len(board.lines("T4")) == 2
    board2 = TaskBoard()
    board2.feed(_line("cos.record", outcome="submitted", key="k.mp4", task_id="T", url="https://x/k.mp4?q-signature=abc123",
                      authorization="q-sign-algorithm=sha1&q-signature=abc123"))
    assert "abc123" not in json.dumps(board2.lines("T"))


def test_content_sniffing_knows_video_containers():
    assert looks_like_video(SAMPLE.read_bytes()[:512])
    assert looks_like_video(b"\x1a\x45\xdf\xa3" + b"\0" * 20)                 # WebM / Matroska
    assert looks_like_video(b"RIFF\0\0\0\0AVI LIST")
    assert not looks_like_video(b"<html><body>hello</body></html>")
    assert not looks_like_video(b"")


# --- the server --------------------------------------------------------------------------------

@pytest.fixture
def console(tmp_path):
    written = []
    with Console(TaskBoard(), folder=str(tmp_path), metadata=lambda path, meta: written.append((path, meta)),
                 fire_timeout_s=0.05) as running:
        running.written = written
        yield running


def _request(console, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", console.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"X-Redraw-Console": "1", **(headers or {})})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_the_page_and_its_files_come_from_the_package_with_a_strict_policy(console):
    status, headers, body = _request(console, "GET", "/")
    assert status == 200 and b'src="/console.js"' in body and b"http" not in body.split(b"<body>")[0]
    assert "default-src 'none'" in headers["content-security-policy"]
    for path, kind in (("/console.js", "text/javascript"), ("/console.css", "text/css")):
        status, headers, body = _request(console, "GET", path)
        assert status == 200 and headers["content-type"].startswith(kind) and body
        assert b"//cdn" not in body and b"https://" not in body


def test_an_upload_lands_in_the_folder_under_the_prefix_with_its_metadata(console, tmp_path):
    status, _, body = _request(console, "POST", "/api/upload?name=clip%20one.mp4", SAMPLE.read_bytes(),
                               {"x-cos-meta-style": "comic"})
    assert status == 201, body
    assert json.loads(body)["key"] == "uploads/clip one.mp4"
    assert json.loads(body)["fired"] is False   # no watcher here: no cos.record line came
    assert (tmp_path / "uploads" / "clip one.mp4").read_bytes() == SAMPLE.read_bytes()
    assert console.written == [(str(tmp_path / "uploads" / "clip one.mp4"), {"x-cos-meta-style": "comic"})]
    assert [r["state"] for r in console.board.rows()] == ["uploaded"]


@pytest.mark.parametrize("name, body, headers, status, code", [
    ("notes.mp4", b"plain text, not a video", {}, 415, "NotAVideo"),
    ("notes.txt", b"plain text", {}, 415, "NotAVideo"),
    ("../escape.mp4", b"x", {}, 400, "NameInvalid"),
    (".hidden.mp4", b"x", {}, 400, "NameInvalid"),
    ("", b"x", {}, 400, "NameMissing"),
    ("big.mp4", None, {"Content-Length": str(2 * 1024 ** 3)}, 413, "TooLarge"),
    ("clip.mp4", b"x", {"X-Redraw-Console": "0"}, 403, "NotFromTheConsole"),
    ("clip.mp4", b"x", {"Host": "attacker.example:80"}, 421, "WrongHost"),
    ("clip.mp4", SAMPLE.read_bytes(), {"x-cos-meta-Bad_Name": "x"}, 400, "MetadataInvalid"),
    ("clip.mp4", SAMPLE.read_bytes(), {"x-cos-meta-long": "x" * 2100}, 400, "MetadataTooLarge"),
])
def test_bad_uploads_are_refused_with_the_reason_and_nothing_is_written(console, tmp_path, name, body, headers,
                                                                        status, code):
    answer_status, _, answer = _request(console, "POST", f"/api/upload?name={name}", body, headers)
    assert (answer_status, json.loads(answer)["error"]["code"]) == (status, code)
    assert not (tmp_path / "uploads").exists() and not list((tmp_path / ".console-uploads").glob("*"))
    assert console.board.rows() == []


def test_metadata_without_the_rules_hook_is_refused(tmp_path):
    with Console(TaskBoard(), folder=str(tmp_path), fire_timeout_s=0.05) as console:
        status, _, body = _request(console, "POST", "/api/upload?name=a.mp4", SAMPLE.read_bytes(), {"x-cos-meta-a": "b"})
    assert (status, json.loads(body)["error"]["code"]) == (400, "MetadataUnsupported")


def test_files_are_served_with_ranges_and_never_hidden_or_outside_ones(console, tmp_path):
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.mp4").write_bytes(SAMPLE.read_bytes())
    (tmp_path / ".cos").mkdir()
    (tmp_path / ".cos" / "secret.json").write_text("{}")
    status, headers, body = _request(console, "GET", "/files/uploads/a.mp4")
    assert (status, headers["content-type"], headers["accept-ranges"], body) == (200, "video/mp4", "bytes",
                                                                                 SAMPLE.read_bytes())
    status, headers, body = _request(console, "GET", "/files/uploads/a.mp4", headers={"Range": "bytes=10-19"})
    assert (status, headers["content-range"], body) == (206, f"bytes 10-19/{len(SAMPLE.read_bytes())}",
                                                        SAMPLE.read_bytes()[10:20])
    assert _request(console, "GET", "/files/uploads/a.mp4", headers={"Range": "bytes=999999-"})[0] == 416
    for path in ("/files/.cos/secret.json", "/files/../etc/passwd", "/files/uploads/%2e%2e/%2e%2e/etc/passwd",
                 "/files/uploads/missing.mp4"):
        assert _request(console, "GET", path)[0] == 404, path


def test_events_stream_a_new_state_when_a_row_changes(console):
    connection = http.client.HTTPConnection("127.0.0.1", console.port, timeout=10)
    connection.request("GET", "/api/events")
    answer = connection.getresponse()
    assert answer.getheader("Content-Type").startswith("text/event-stream")

    def next_state():
        while True:
            line = answer.fp.readline()
            if line.startswith(b"data: "):
                return json.loads(line[6:])

    assert next_state()["tasks"] == []
    console.board.feed(_line("cos.record", outcome="submitted", key="uploads/a.mp4", task_id=TASK, request_id="r"))
    assert [t["state"] for t in next_state()["tasks"]] == ["pending"]
    connection.close()


# --- redraw serve --------------------------------------------------------------------------------

def _receipt(task_id: str, key: str, state: str, created: int, **extra) -> dict:
    return {"version": 1, "state": state, "task_id": task_id, "created": created, "created_at": "2026-12-07T09:00:00Z",
            "source": {"bucket": "media-1250000000", "key": key, "region": "ap-guangzhou"}, **extra}


def test_serve_names_the_console_shows_earlier_tasks_from_their_receipts_and_a_port_in_use_exits_2(tmp_path):
    (tmp_path / "uploads").mkdir()
    receipts = tmp_path / "redraw" / "uploads" / "media-1250000000" / "uploads"
    receipts.mkdir(parents=True)
    (receipts / "old.mp4.json").write_text(json.dumps(_receipt(
        "T-old", "uploads/old.mp4", "succeeded", 1796630000, finished_at="2026-12-07T09:00:05Z", duration_s=5.0,
        delivered_to="cos://media-1250000000/redrawn/uploads/old.mp4", message="SUCCESS")))
    (receipts / "bad.mp4.json").write_text(json.dumps(_receipt(
        "T-bad", "uploads/bad.mp4", "failed", 1796630001, error_code=70000, message="it failed")))
    (receipts / "broken.mp4.json").write_text("{not json")
    with Served("--no-reload", "--instances", "1", "--watch", str(tmp_path), "--follow-up", env=clean_env()) as server:
        line = wait_for(lambda: next((x for x in server.errors() if "console: http://127.0.0.1:" in x), None), 30)
        port = int(line.split("console: http://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert server.errors()[0].startswith("redraw: serving the function on")  # still the first line
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/state")
        rows = json.loads(connection.getresponse().read())["tasks"]
        connection.close()
        assert [(r["id"], r["state"], r["key"], r.get("output"), r.get("error_code")) for r in rows] == [
            ("T-bad", "failed", "uploads/bad.mp4", None, 70000),
            ("T-old", "succeeded", "uploads/old.mp4", "redrawn/uploads/old.mp4", None)]
        taken = subprocess.run([sys.executable, "-m", "redraw.tools", "serve", "--port", "0", "--console-port",
                                str(port), "--no-reload"], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                               timeout=60)
    assert taken.returncode == 2
    assert taken.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port} for the console: the port is in use" in taken.stderr


def test_no_console_starts_none(tmp_path):
    with Served("--no-reload", "--instances", "1", "--no-console", env=clean_env()) as server:
        wait_for(lambda: any("warm instances" in x for x in server.errors()), 30)
        assert not any("console:" in x for x in server.errors())


def test_the_console_listens_on_loopback_by_default():
    from redraw.tools.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.console_port is None
    from redraw.tools.console import console_port

    assert console_port(args) == 9001
    assert console_port(build_parser().parse_args(["serve", "--port", "0"])) == 0   # side by side: no collision
    assert console_port(build_parser().parse_args(["serve", "--no-console"])) is None


def test_without_a_browser_the_browser_tests_say_how_to_install_it_and_ci_fails_instead(monkeypatch):
    import browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"/nonexistent/chromium not found; install it with: "
                                                    r"apt-get install -y chromium chromium-driver"):
        browser.require_browser()
    monkeypatch.setenv("CI_REQUIRE_BROWSER", "1")   # .ci/run sets it
    with pytest.raises(pytest.fail.Exception, match="cannot run"):
        browser.require_browser()
    assert "CI_REQUIRE_BROWSER=1" in (ROOT / ".ci" / "run").read_text()


def test_a_pending_task_from_a_receipt_is_finished_by_the_lines_of_this_run(tmp_path):
    from redraw.tools.taskboard import load_receipts

    folder = tmp_path / "redraw" / "tasks"
    folder.mkdir(parents=True)
    (folder / "T-1.json").write_text(json.dumps(_receipt("T-1", "", "pending", 1796630000) | {"source": {}}))
    board = TaskBoard(bucket="media-1250000000")
    assert board.seed(load_receipts(str(tmp_path), "redraw/")) == 1
    assert board.seed(load_receipts(str(tmp_path), "redraw/")) == 0          # a task already shown stays as it is
    board.feed(_line("task.finished", outcome="succeeded", task_id="T-1", request_id="r",
                     delivered_to="cos://media-1250000000/redrawn/T-1.mp4"))
    [row] = board.rows()
    assert (row["state"], row["output"], row["from_receipt"], row["lines"]) == ("succeeded", "redrawn/T-1.mp4", True, 1)


def test_the_metadata_sidecar_is_what_the_watcher_reads_and_a_plain_upload_removes_it(tmp_path):
    from redraw.tools.console import write_sidecar
    from redraw.tools.watch import sidecar_meta

    video = tmp_path / "uploads" / "a.mp4"
    write_sidecar(str(video), {"x-cos-meta-redraw-style": "watercolor"})
    assert sidecar_meta(str(video)) == {"x-cos-meta-redraw-style": "watercolor"}
    assert [p.name for p in video.parent.iterdir()] == ["a.mp4.meta.json"]   # nothing staged is left
    write_sidecar(str(video), {})                  # the same name again without metadata: none, as on COS
    assert sidecar_meta(str(video)) == {} and list(video.parent.iterdir()) == []


def test_the_relay_passes_every_line_on_even_when_the_console_fails_on_one(capfd):
    """The instances' lines reach serve's stdout unchanged with a console, and a fault in the console's board
    never stops the relay (an instance would block on a full pipe)."""
    from redraw.tools import serve

    seen = []

    def fragile(line):
        seen.append(line["event"])
        raise RuntimeError("the console's own fault")

    pool = serve.Pool(1, serve.worker_env({"VOD_SUB_APP_ID": "1500000001"}), 10_000)
    pool.on_line = fragile
    try:
        pool.start()
        answers = [pool.invoke({"unknown": "event"}, serve.common.invocation_context(10_000)) for _ in range(3)]
    finally:
        pool.close()
    assert [a.get("error") for a in answers] == ["UnsupportedTriggerError"] * 3   # the function answered each
    wait_for(lambda: len(seen) == 3, 10, "the relay to pass on the three lines")   # it writes each before on_line
    out = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [line["event"] for line in out] == seen == ["event.rejected"] * 3
