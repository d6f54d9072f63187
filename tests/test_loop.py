"""The follow-up's loop on this machine: ``redraw serve --watch DIR --follow-up`` (a real COS emulator
serving the folder, the sweep on a timer) and ``redraw loop`` (``make loop``), run as a user runs them."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from media import assert_redrawn, ffmpeg_or_skip
from redraw.tools.emulator import sample_mp4
from serving import Served, clean_env, wait_for

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--watch needs Linux (inotify)"),
              pytest.mark.slow]  # subprocesses: scheduled first (conftest)


def test_make_loop_closes_the_loop_and_says_each_step(tmp_path):
    folder = tmp_path / "bucket"
    out = subprocess.run([sys.executable, "-m", "redraw.tools", "loop", "--dir", str(folder)], cwd=ROOT,
                         env=clean_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    for step in ("upload", "task", "finished", "delivered", "receipt", "webhook", "verified", "the loop closed in"):
        assert step in text, text
    assert re.search(r"console +http://127\.0\.0\.1:\d+/ shows the task live", text), text  # the web console's URL
    line = json.loads(text.strip().splitlines()[-2])  # the task.finished line, then where the folder stays
    assert line["event"] == "task.finished" and line["outcome"] == "succeeded"
    [upload] = (folder / "uploads").iterdir()
    delivered = folder / "redrawn" / "uploads" / upload.name
    # VOD read the upload through its presigned URL and redrew it; the output came back through COS
    assert_redrawn(delivered, upload, ffmpeg_or_skip())
    receipt = json.loads((folder / "redraw" / "uploads" / "media-1250000000" / "uploads"
                          / f"{upload.name}.json").read_text(encoding="utf-8"))
    assert receipt["state"] == "succeeded" and receipt["delivered_to"] == line["delivered_to"]
    assert "sign=" not in json.dumps(receipt)


def test_serve_follow_up_finishes_each_upload_once_and_never_fires_for_its_own_objects(tmp_path):
    folder = tmp_path / "bucket"
    (folder / "uploads").mkdir(parents=True)
    with Served("--no-reload", "--watch", str(folder), "--follow-up", "--sweep-every", "1",
                env=clean_env()) as server:
        wait_for(lambda: any("follow-up on" in line for line in server.errors()), 30, "the follow-up line")
        for name in ("a.mp4", "b.mp4"):
            (folder / "uploads" / name).write_bytes(b"\x00\x00\x00\x18ftypmp42" + name.encode())
        wait_for(lambda: len([x for x in server.logs() if x.get("event") == "task.finished"]) >= 2, 60,
                 "two task.finished lines")
        time.sleep(2.5)  # two more sweeps: nothing is finished twice
        finished = [x for x in server.logs() if x.get("event") == "task.finished"]
        records = [x for x in server.logs() if x.get("event") == "cos.record"]
        notes = server.errors()
    assert sorted(x["source_key"] for x in finished) == ["uploads/a.mp4", "uploads/b.mp4"]
    assert all(x["delivered_to"] == f"cos://media-1250000000/redrawn/{x['source_key']}" for x in finished)
    assert sorted(x["key"] for x in records) == ["uploads/a.mp4", "uploads/b.mp4"]  # deliveries fired nothing
    assert all(x["recorded"] is True for x in records)
    assert any(line.startswith("redraw: sweep: ") and "succeeded" in line for line in notes)
    assert not [line for line in notes if "outside the trigger's filter" in line]  # its own records: no noise
    assert (folder / "redrawn" / "uploads" / "a.mp4").read_bytes() == sample_mp4()


def test_follow_up_without_a_folder_is_refused_with_the_reason(tmp_path):
    out = subprocess.run([sys.executable, "-m", "redraw.tools", "serve", "--port", "0", "--follow-up"], cwd=ROOT,
                         env=clean_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--follow-up needs --watch DIR" in out.stderr


def test_the_timer_event_sample_is_the_platforms_shape():
    out = subprocess.run([sys.executable, "-m", "redraw.tools", "generate-event", "timer"], cwd=ROOT,
                         env=clean_env(), capture_output=True, text=True, timeout=60)
    event = json.loads(out.stdout)
    assert set(event) == {"Type", "TriggerName", "Time", "Message"} and event["Type"] == "Timer"
    assert event["Message"] == "sweep" and event["Time"].endswith("Z")
    shipped = json.loads((ROOT / "events" / "timer-sweep.json").read_text(encoding="utf-8"))
    assert set(shipped) == set(event) and shipped["Message"] == "sweep"


def test_redraw_follow_up_in_the_environment_turns_it_on_with_a_state_bucket_of_its_own(tmp_path):
    folder = tmp_path / "bucket"
    (folder / "uploads").mkdir(parents=True)
    env = clean_env(REDRAW_FOLLOW_UP="true", REDRAW_STATE_BUCKET="redraw-state-1250000000")
    with Served("--no-reload", "--watch", str(folder), "--sweep-every", "1", env=env) as server:
        wait_for(lambda: any("follow-up on" in line for line in server.errors()), 30, "the follow-up line")
        (folder / "uploads" / "c.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42c")
        [line] = wait_for(lambda: [x for x in server.logs() if x.get("event") == "task.finished"], 60,
                          "the task.finished line")
    state = folder / ".cos" / "buckets" / "redraw-state-1250000000"
    receipt = json.loads((state / "redraw" / "uploads" / "media-1250000000" / "uploads" / "c.mp4.json")
                         .read_text(encoding="utf-8"))
    assert receipt["task_id"] == line["task_id"]
    assert (folder / "redrawn" / "uploads" / "c.mp4").read_bytes() == sample_mp4()  # beside the upload
    assert not (folder / "redraw").exists()  # the state went to the other bucket
