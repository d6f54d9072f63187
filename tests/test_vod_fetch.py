"""The VOD emulator reads each task's input as VOD does (FileInfo.Url, from the local COS emulator with
its signature checks) and serves a redrawn output made from it: a wrong input URL fails the task."""
from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from qcloud_cos import CosConfig, CosS3Client
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from conftest import BUCKET, STATE, end_tasks
from media import assert_browser_playable, assert_redrawn, ffmpeg_or_skip, make_clip
from redraw.tools import samples
from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator, sample_mp4
from redraw.tools.vod_input import InputRoutes, resolve
from redraw.tools.vod_processing import INPUT_ERR_CODE, INPUT_ERR_CODE_EXT

HOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"
TIMER = {"Type": "Timer", "TriggerName": "redraw-sweep", "Time": "2026-12-05T08:00:00Z", "Message": "sweep"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 1 s 160x120 clip with audio: the person's own video (not the emulator's 64x64 sample)."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", ffmpeg_or_skip())


@pytest.fixture
def vod(cos):
    with VodEmulator(task_duration=0.05, input_routes=InputRoutes().add_cos(cos)) as emu:
        yield emu


def put(cos, key: str, data: bytes) -> None:
    path = Path(cos.buckets[BUCKET]) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def presign(key: str, *, secret_key: str = DEFAULT_SECRET_KEY, expires: int = 300) -> str:
    """A GET URL of the bucket's object, presigned as the function presigns it (virtual-host style, https)."""
    client = CosS3Client(CosConfig(Domain=HOST, Scheme="https", SecretId=DEFAULT_SECRET_ID, SecretKey=secret_key,
                                   Region="ap-guangzhou"))
    return client.get_presigned_url(Bucket=BUCKET, Key=key, Method="GET", Expired=expires)


def create(vod, url: str) -> str:
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=vod.endpoint, protocol="http", reqTimeout=5))
    client = CommonClient("vod", "2018-07-17", Credential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY), "ap-guangzhou",
                          profile)
    return client.call_json("CreateAigcVideoRedrawTask", {"SubAppId": 221073,
                                                          "FileInfo": {"Type": "Url", "Url": url}})["Response"]["TaskId"]


def ended(vod, task_id: str, timeout: float = 30.0) -> dict:
    """The task's DescribeTaskDetail once it has ended (its work done, its duration passed)."""
    task = vod.tasks[task_id]
    assert task["work"].wait(timeout), "the input was not read in time"
    until = time.monotonic() + timeout
    while True:
        detail = vod.task_detail(task)
        if detail["Status"] in ("FINISH", "ABORTED") or time.monotonic() > until:
            return detail
        time.sleep(0.01)


def get(url: str, headers=None):
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=10)
    try:
        conn.request("GET", f"{split.path}?{split.query}", headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def gets(cos, key: str) -> list:
    return [c for c in cos.calls if c["method"] == "GET" and c["key"] == key]


def assert_unreadable(detail: dict, *why: str) -> None:
    task = detail["AigcVideoRedrawTask"]
    assert detail["Status"] == "FINISH" and detail["FinishTime"]
    assert (task["Status"], task["ErrCode"], task["ErrCodeExt"]) == ("FINISH", INPUT_ERR_CODE, INPUT_ERR_CODE_EXT)
    assert task["Output"] is None and task["Progress"] == 100
    assert task["Message"].startswith("The source file could not be downloaded")
    for word in why:
        assert word in task["Message"], task["Message"]
    assert "q-signature" not in task["Message"] and "q-sign" not in task["Message"]


# --- a good URL --------------------------------------------------------------------------------

def test_a_presigned_url_of_the_local_bucket_is_fetched_and_its_redrawn_video_served(vod, cos, clip, tmp_path):
    put(cos, "uploads/mine.mp4", clip.read_bytes())
    task_id = create(vod, presign("uploads/mine.mp4"))
    detail = ended(vod, task_id)
    task = detail["AigcVideoRedrawTask"]
    assert (detail["Status"], task["ErrCode"]) == ("FINISH", 0)
    [fetch] = gets(cos, "uploads/mine.mp4")
    assert fetch["status"] == 200 and fetch["host"] == HOST  # the URL's own Host, the signature checked
    status, headers, body = get(task["Output"]["FileInfo"]["FileUrl"])
    assert status == 200 and headers["content-type"] == "video/mp4" and int(headers["content-length"]) == len(body)
    out = tmp_path / "out.mp4"
    out.write_bytes(body)
    assert_redrawn(out, clip, ffmpeg_or_skip())
    status, headers, part = get(task["Output"]["FileInfo"]["FileUrl"], {"Range": "bytes=100-199"})
    assert status == 206 and part == body[100:200] and headers["content-range"] == f"bytes 100-199/{len(body)}"


def test_the_task_stays_processing_while_its_input_is_read(vod, cos, clip):
    put(cos, "uploads/slow.mp4", clip.read_bytes())
    cos.inject("slow:0.5", method="GET")
    task_id = create(vod, presign("uploads/slow.mp4"))
    task = vod.tasks[task_id]
    vod.age_task(task_id, 60)  # long past the task's duration: only the slow read keeps it going
    assert task["work"].pending
    detail = vod.task_detail(task)
    assert detail["Status"] == "PROCESSING" and detail["FinishTime"] == "" and detail["AigcVideoRedrawTask"]["Output"] is None
    assert detail["AigcVideoRedrawTask"]["Progress"] == 99
    assert ended(vod, task_id)["AigcVideoRedrawTask"]["ErrCode"] == 0


# --- inputs that cannot be read ---------------------------------------------------------------------

def test_a_missing_object_ends_the_task_finish_with_an_error_and_no_output(vod, cos):
    task_id = create(vod, presign("uploads/never-uploaded.mp4"))
    assert_unreadable(ended(vod, task_id), "HTTP 404", "NoSuchKey")
    assert get(vod.output_url(task_id))[0] == 404
    assert [c["status"] for c in gets(cos, "uploads/never-uploaded.mp4")] == [404]


def _tampered(url: str) -> str:
    head, _, signature = url.rpartition("q-signature=")
    return head + "q-signature=" + ("0" if signature[0] != "0" else "1") + signature[1:]


@pytest.mark.parametrize("make_url, code", [
    (_tampered, "SignatureDoesNotMatch"),
    (lambda url: url.split("?", 1)[0], "AccessDenied"),  # a private bucket without REDRAW_PRESIGN_URLS
    (None, "SignatureDoesNotMatch"),                       # signed with another key
    ("expired", "AccessDenied"),
], ids=["tampered", "unsigned", "other-key", "expired"])
def test_a_url_cos_would_refuse_fails_the_task(vod, cos, make_url, code):
    put(cos, "uploads/there.mp4", sample_mp4())
    if make_url is None:
        url = presign("uploads/there.mp4", secret_key="not-the-bucket-owners-key")
    elif make_url == "expired":
        url = presign("uploads/there.mp4", expires=-60)
    else:
        url = make_url(presign("uploads/there.mp4"))
    detail = ended(vod, create(vod, url))
    assert_unreadable(detail, "HTTP 403", code)
    assert [c["code"] for c in gets(cos, "uploads/there.mp4")] == [code]


def test_a_refused_connection_fails_the_task(vod):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert_unreadable(ended(vod, create(vod, f"http://127.0.0.1:{port}/in.mp4")), "connection refused")


# --- keys and how they are encoded -----------------------------------------------------------------

UNICODE_KEY = "uploads/视频 été #1.mp4"


def test_a_unicode_key_presigned_by_the_sdk_is_read(vod, cos, clip):
    put(cos, UNICODE_KEY, clip.read_bytes())
    detail = ended(vod, create(vod, presign(UNICODE_KEY)))
    assert detail["AigcVideoRedrawTask"]["ErrCode"] == 0
    assert [c["status"] for c in gets(cos, UNICODE_KEY)] == [200]


def test_a_unicode_url_pasted_unencoded_is_sent_percent_encoded_as_utf8(vod, cos, clip):
    key = "uploads/视频 été.mp4"
    put(cos, key, clip.read_bytes())
    url = presign(key)
    path = urlsplit(url).path
    pasted = url.replace(path, unquote(path), 1)  # raw characters and a space, as a person pastes it
    assert "视频 été" in pasted
    detail = ended(vod, create(vod, pasted))
    assert detail["AigcVideoRedrawTask"]["ErrCode"] == 0
    assert [c["status"] for c in gets(cos, key)] == [200]


def test_a_key_encoded_twice_names_another_object_and_fails_the_task(vod, cos):
    put(cos, UNICODE_KEY, sample_mp4())
    url = presign(UNICODE_KEY)
    path = urlsplit(url).path
    twice = url.replace(path, quote(path, safe="/"), 1)  # %E8 -> %25E8: a wrongly encoded object key
    # the path names another key, so it no longer matches the signature
    assert_unreadable(ended(vod, create(vod, twice)), "HTTP 403", "SignatureDoesNotMatch")


def test_a_key_encoded_twice_before_signing_is_a_missing_object(vod, cos):
    put(cos, UNICODE_KEY, sample_mp4())
    assert_unreadable(ended(vod, create(vod, presign(quote(UNICODE_KEY)))), "HTTP 404", "NoSuchKey")


# --- what is fetched, by mode ---------------------------------------------------------------------

def test_which_urls_are_fetched_in_each_mode(cos):
    routes = InputRoutes().add_cos(cos)
    local = resolve(f"https://{HOST}/a.mp4?x=1", "local", routes)
    assert local is not None and local.address == ("127.0.0.1", cos.port) and local.host_header == HOST
    assert local.request_target == "/a.mp4?x=1" and not local.tls
    assert resolve("https://example.com/in.mp4", "local", routes) is None  # no network: taken as read
    assert resolve("https://other-1250000000.cos.ap-guangzhou.myqcloud.com/a.mp4", "local", routes) is None
    assert resolve("http://127.0.0.1:9/a.mp4", "local", routes).address == ("127.0.0.1", 9)
    assert resolve("https://example.com/in.mp4", "all", routes).address == ("example.com", 443)
    assert resolve(f"https://{HOST}/a.mp4", "off", routes) is None
    with pytest.raises(ValueError):
        VodEmulator(fetch_inputs="sometimes")
    with pytest.raises(ValueError):
        VodEmulator().fetch_inputs = "sometimes"


def test_off_fetches_nothing_and_serves_the_sample(vod, cos):
    vod.fetch_inputs = "off"
    detail = ended(vod, create(vod, presign("uploads/not-there.mp4")))
    assert detail["AigcVideoRedrawTask"]["ErrCode"] == 0
    assert get(detail["AigcVideoRedrawTask"]["Output"]["FileInfo"]["FileUrl"])[2] == sample_mp4()
    assert not gets(cos, "uploads/not-there.mp4")


def test_without_ffmpeg_the_fetched_input_gives_the_sample_clip(cos, clip):
    put(cos, "uploads/mine.mp4", clip.read_bytes())
    with VodEmulator(task_duration=0.05, ffmpeg="", input_routes=InputRoutes().add_cos(cos)) as vod:
        detail = ended(vod, create(vod, presign("uploads/mine.mp4")))
        assert get(detail["AigcVideoRedrawTask"]["Output"]["FileInfo"]["FileUrl"])[2] == sample_mp4()
    assert [c["status"] for c in gets(cos, "uploads/mine.mp4")] == [200]


def test_an_input_that_is_not_a_video_still_finishes_with_the_sample(vod, cos):
    put(cos, "uploads/text.mp4", b"not a video at all")
    task_id = create(vod, presign("uploads/text.mp4"))
    detail = ended(vod, task_id)
    assert detail["AigcVideoRedrawTask"]["ErrCode"] == 0
    assert "not redrawn" in vod.tasks[task_id]["work"].note
    assert get(detail["AigcVideoRedrawTask"]["Output"]["FileInfo"]["FileUrl"])[2] == sample_mp4()


def test_output_bytes_keeps_the_sized_sample_output(vod, cos, clip):
    put(cos, "uploads/mine.mp4", clip.read_bytes())
    vod.output_bytes = 300_000
    detail = ended(vod, create(vod, presign("uploads/mine.mp4")))
    body = get(detail["AigcVideoRedrawTask"]["Output"]["FileInfo"]["FileUrl"])[2]
    assert len(body) == 300_000 and body.startswith(sample_mp4())


def test_stopping_removes_the_made_outputs(cos, clip):
    put(cos, "uploads/mine.mp4", clip.read_bytes())
    vod = VodEmulator(task_duration=0.05, input_routes=InputRoutes().add_cos(cos)).start()
    task_id = create(vod, presign("uploads/mine.mp4"))
    ended(vod, task_id)
    made = vod.tasks[task_id]["work"].output
    assert made is not None and made.is_file()
    vod.stop()
    assert not made.exists() and not made.parent.exists()


# --- through the function: the COS trigger, the sweep, delivery ------------------------------------------

def _sweep_until_finished(invoke, emulator, task_id):
    emulator.tasks[task_id]["work"].wait(30)
    end_tasks(emulator)  # the follow fixture's tasks run until ended
    until = time.monotonic() + 30
    while time.monotonic() < until:
        out = invoke(dict(TIMER), {"request_id": "sweep-1", "time_limit_in_ms": 20000})
        lines = out.lines("task.finished")
        if lines:
            return lines[0], out
        time.sleep(0.05)
    raise AssertionError("no task.finished line")


def test_an_upload_is_read_by_vod_through_its_presigned_url_and_redrawn(invoke, fetching, cos, emulator, clip,
                                                                       tmp_path):
    fetching.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    key = "uploads/été.mp4"
    put(cos, key, clip.read_bytes())
    [result] = invoke(samples.cos_event([key], bucket=BUCKET)).result["results"]
    assert result["status"] == "submitted"
    line, _ = _sweep_until_finished(invoke, emulator, result["task_id"])
    assert line["outcome"] == "succeeded"
    assert [c["status"] for c in gets(cos, key)] == [200]
    out = tmp_path / "delivered.mp4"
    out.write_bytes(cos.read(BUCKET, f"redrawn/{key}"))
    assert_redrawn(out, clip, ffmpeg_or_skip())
    assert_browser_playable(out, ffmpeg_or_skip())


def test_a_private_bucket_without_presigned_urls_fails_the_task_it_submitted(invoke, fetching, cos, emulator):
    fetching.setenv("REDRAW_PRESIGN_URLS", "false")
    put(cos, "uploads/a.mp4", sample_mp4())
    [result] = invoke(samples.cos_event(["uploads/a.mp4"], bucket=BUCKET)).result["results"]
    line, out = _sweep_until_finished(invoke, emulator, result["task_id"])
    assert line["outcome"] == "failed" and line["error_code"] == INPUT_ERR_CODE_EXT
    receipt = json.loads(cos.read(STATE, f"redraw/uploads/{BUCKET}/uploads/a.mp4.json"))
    assert receipt["state"] == "failed"
    assert "q-signature" not in out.stdout
