"""``redraw serve --watch DIR``: real files written into a watched folder fire the COS events the
bucket's trigger would send, handled by the server's warm instances (their cos.record log lines)."""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from conftest import ROOT
from redraw.sources.cos import parse_record
from redraw.tools import watch
from serving import START_TIMEOUT, Served, emulator_without_limit, free_port, function_env, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--watch needs Linux (inotify)")


@pytest.fixture(scope="module")
def vod():
    emu = emulator_without_limit()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def bucket(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bucket")
    (folder / "uploads").mkdir()
    return folder


@pytest.fixture(scope="module")
def watched(vod, bucket):
    # the prefix comes from serverless.yml (cwd is the checkout); --suffix narrows it to .mp4 here
    # two warm instances (not 4): each worker of `make test` that runs these tests starts its own server
    with Served("--endpoint", vod.url, "--no-reload", "--instances", "2", "--watch", str(bucket), "--suffix", ".mp4",
                env=function_env()) as running:
        wait_for(lambda: any("prefix 'uploads/' suffix '.mp4'" in line for line in running.errors()))
        yield running


def one_record(server: Served, key: str, timeout: float = 10.0) -> dict:
    [line] = wait_for(lambda: server.records(key), timeout, f"the cos.record of {key}")
    return line


def settle(server: Served, bucket: Path, name: str) -> None:
    """Events already reported are all handled: a marker file written afterwards has fired too."""
    marker = bucket / "uploads" / f"marker-{name}-{time.time_ns()}.mp4"
    marker.write_bytes(b"marker")
    one_record(server, f"uploads/{marker.name}")
    time.sleep(0.3)


def test_a_written_file_fires_one_upload_event(watched, bucket, vod):
    path = bucket / "uploads" / "My Clip 夏.mp4"
    with open(path, "wb") as handle:
        handle.write(b"\x00" * 4096)
    line = one_record(watched, "uploads/My Clip 夏.mp4")
    assert line["outcome"] == "submitted" and line["task_id"] in vod.tasks
    assert line["url"] == "http://media-1250000000.cos.ap-guangzhou.myqcloud.com/uploads/" + quote("My Clip 夏.mp4")
    settle(watched, bucket, "once")
    assert len(watched.records("uploads/My Clip 夏.mp4")) == 1
    assert wait_for(lambda: any("cos:ObjectCreated:Put uploads/My Clip 夏.mp4: submitted" in line
                                for line in watched.errors()))  # said once the invocation has returned


def test_a_file_closed_right_after_the_first_answer_fires(vod, tmp_path):
    """The port answers only once the folder is watched: a file closed as soon as the first request is
    answered (the banner not awaited) fires its event."""
    bucket = tmp_path / "bucket"
    (bucket / "uploads").mkdir(parents=True)
    with Served("--endpoint", vod.url, "--watch", str(bucket), "--suffix", ".mp4", env=function_env(),
                port=free_port(), banner=False) as server:
        def answered() -> bool:
            assert server.process.poll() is None, "\n".join(server.errors())
            try:
                return server.request("GET", "/tasks/none", timeout=5)[0] > 0
            except OSError:  # not listening yet
                return False
        wait_for(answered, START_TIMEOUT, "the first answer")
        (bucket / "uploads" / "first.mp4").write_bytes(b"\x00" * 1024)
        one_record(server, "uploads/first.mp4")


def test_a_file_written_slowly_fires_once_after_it_is_closed(watched, bucket):
    path = bucket / "uploads" / "slow.mp4"
    with open(path, "wb") as handle:
        for _ in range(4):
            handle.write(b"x" * 100_000)
            handle.flush()
            os.fsync(handle.fileno())
            time.sleep(0.25)
        settle(watched, bucket, "open")  # while it is open: nothing
        assert watched.records("uploads/slow.mp4") == []
    one_record(watched, "uploads/slow.mp4")
    settle(watched, bucket, "closed")
    assert len(watched.records("uploads/slow.mp4")) == 1


def test_renamed_into_place_and_moved_in_from_outside_fire(watched, bucket, tmp_path):
    partial = bucket / "uploads" / ".renamed.mp4.part"   # hidden while it is written
    partial.write_bytes(b"r" * 1000)
    os.rename(partial, bucket / "uploads" / "renamed.mp4")
    assert one_record(watched, "uploads/renamed.mp4")["outcome"] == "submitted"

    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"o" * 1000)
    os.rename(outside, bucket / "uploads" / "moved-in.mp4")
    assert one_record(watched, "uploads/moved-in.mp4")["outcome"] == "submitted"
    settle(watched, bucket, "moves")
    assert watched.records(".renamed.mp4.part") == [] and len(watched.records("uploads/renamed.mp4")) == 1


def test_a_folder_copied_in_fires_each_file_once(watched, bucket):
    batch = bucket / "uploads" / "batch"
    batch.mkdir()
    for i in range(3):  # written right after the folder appears, as cp -r does
        (batch / f"clip-{i}.mp4").write_bytes(b"b" * 500)
    for i in range(3):
        one_record(watched, f"uploads/batch/clip-{i}.mp4")
    settle(watched, bucket, "batch")
    assert all(len(watched.records(f"uploads/batch/clip-{i}.mp4")) == 1 for i in range(3))


def test_a_deleted_file_fires_object_remove(watched, bucket):
    path = bucket / "uploads" / "gone.mp4"
    path.write_bytes(b"g")
    one_record(watched, "uploads/gone.mp4")
    path.unlink()
    lines = wait_for(lambda: len(watched.records("uploads/gone.mp4")) == 2 and watched.records("uploads/gone.mp4"))
    assert lines[1]["outcome"] == "skipped" and "removed" in lines[1]["reason"]


def test_files_outside_the_filter_or_hidden_fire_nothing(watched, bucket):
    (bucket / "uploads" / "notes.txt").write_text("not a video")      # suffix
    (bucket / "elsewhere.mp4").write_bytes(b"e")                       # prefix
    (bucket / ".cos").mkdir(exist_ok=True)
    (bucket / ".cos" / "state.mp4").write_bytes(b"s")                  # hidden folder
    (bucket / "uploads" / ".hidden.mp4").write_bytes(b"h")             # hidden file
    settle(watched, bucket, "filtered")
    keys = {line["key"] for line in watched.records()}
    assert not keys & {"uploads/notes.txt", "elsewhere.mp4", ".cos/state.mp4", "uploads/.hidden.mp4"}
    assert any("uploads/notes.txt is outside the trigger's filter" in line for line in watched.errors())


def test_unreadable_files_and_names_that_are_not_utf8_are_one_line_each_and_watching_goes_on(watched, bucket,
                                                                                               tmp_path):
    # a file that cannot be read: a link to nothing renamed into place (works as root too)
    link = tmp_path / "dangling.mp4"
    os.symlink(tmp_path / "missing", link)
    os.rename(link, bucket / "uploads" / "dangling.mp4")
    wait_for(lambda: any("cannot read uploads/dangling.mp4" in line for line in watched.errors()), 10,
             "the unreadable file's line")
    if os.geteuid() != 0:  # root reads anything: the link above covers it
        locked = bucket / "uploads" / "locked.mp4"
        locked.write_bytes(b"l")
        locked.chmod(0)
        os.rename(locked, bucket / "uploads" / "locked2.mp4")
        wait_for(lambda: any("cannot read uploads/locked2.mp4" in line for line in watched.errors()), 10)
    # a name that is not UTF-8
    with open(os.path.join(os.fsencode(bucket / "uploads"), b"bad-\xff.mp4"), "wb") as handle:
        handle.write(b"x")
    wait_for(lambda: any("not valid UTF-8" in line and "bad-\\xff.mp4" in line for line in watched.errors()), 10,
             "the bad name's line")
    settle(watched, bucket, "after-bad")  # still watching
    assert watched.process.poll() is None
    assert not any("Traceback" in line for line in watched.errors())


# --- the event itself --------------------------------------------------------------------------

def test_the_upload_event_has_the_cos_shape(tmp_path):
    path = tmp_path / "a b#+.mp4"
    path.write_bytes(b"hello")
    event = watch.put_event(str(path), "uploads/a b#+.mp4", bucket="media-1250000000", region="ap-shanghai")
    [record] = event["Records"]
    obj = record["cos"]["cosObject"]
    assert obj["key"] == "/1250000000/media/uploads/" + quote("a b#+.mp4", safe="-_.~")
    assert obj["url"] == "http://media-1250000000.cos.ap-shanghai.myqcloud.com/uploads/a%20b%23%2B.mp4"
    assert obj["size"] == 5 and obj["meta"]["ETag"] == f'"{hashlib.md5(b"hello").hexdigest()}"'
    assert obj["meta"]["x-cos-request-id"] and obj["meta"]["Content-Type"] == "video/mp4"
    assert record["cos"]["cosBucket"] == {"region": "sh", "name": "media", "appid": "1250000000"}
    assert record["event"]["eventName"] == "cos:ObjectCreated:Put"
    assert abs(record["event"]["eventTime"] - time.time()) < 5
    assert parse_record(record).cos.cosObject.size == 5  # the function's own model accepts it
    delete = watch.delete_event("uploads/x.mp4", bucket="media-1250000000", region="ap-guangzhou")
    assert delete["Records"][0]["event"]["eventName"] == "cos:ObjectRemove:Delete"


def test_the_default_filter_is_serverless_yml_s(tmp_path, monkeypatch):
    sls = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))
    [cos] = [e["cos"]["parameters"] for e in sls["inputs"]["events"] if "cos" in e]
    assert (watch.DEFAULT_PREFIX, watch.DEFAULT_SUFFIX) == (cos["filter"]["prefix"], cos["filter"]["suffix"] or "")
    assert watch.trigger_filter(str(ROOT / "serverless.yml"))[:2] == (watch.DEFAULT_PREFIX, watch.DEFAULT_SUFFIX)
    assert watch.trigger_filter(str(tmp_path / "none.yml")) == (watch.DEFAULT_PREFIX, watch.DEFAULT_SUFFIX, "defaults")
    other = tmp_path / "serverless.yml"
    other.write_text("inputs:\n  events:\n    - cos:\n        parameters:\n          filter:\n"
                     "            prefix: ${env:PFX}\n            suffix: .mov\n")
    monkeypatch.setenv("PFX", "in/")
    assert watch.trigger_filter(str(other))[:2] == ("in/", ".mov")
