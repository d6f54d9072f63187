"""The COS emulator, driven by the real cos-python-sdk-v5 over loopback HTTP."""
from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import types
from pathlib import Path

import pytest
import requests

qcloud_cos = pytest.importorskip("qcloud_cos")
from qcloud_cos import CosConfig, CosS3Client, cos_auth  # noqa: E402
from qcloud_cos.cos_exception import CosClientError, CosServiceError  # noqa: E402

from redraw.tools import cos_emulator  # noqa: E402
from redraw.tools.cos_emulator import RANDOM_FAULTS, CosEmulator  # noqa: E402
from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "media-1250000000"
REGION = "ap-guangzhou"
HOST = f"{BUCKET}.cos.{REGION}.myqcloud.com"
SECRET_CANARY = "CANARY-cos-secret-key-4d3c2b1a"


@pytest.fixture(autouse=True)
def _quiet_sdk():
    """The SDK logs every failed request at ERROR (headers included at DEBUG): keep test output readable."""
    logger = logging.getLogger("qcloud_cos")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture
def emu(tmp_path):
    emulator = CosEmulator(root=tmp_path / "cos").start()
    emulator.add_bucket(BUCKET)
    try:
        yield emulator
    finally:
        emulator.stop()


def sdk(emulator: CosEmulator, secret_id: str = DEFAULT_SECRET_ID, secret_key: str = DEFAULT_SECRET_KEY,
        token: str | None = None) -> CosS3Client:
    """The SDK as the function configures it, pointed at the emulator; no retries (they sleep 1-3 s)."""
    config = CosConfig(IP="127.0.0.1", Port=emulator.port, Scheme="http", Region=REGION,
                       SecretId=secret_id, SecretKey=secret_key, Token=token)
    return CosS3Client(config, retry=0)


@pytest.fixture
def client(emu):
    return sdk(emu)


def service_error(call, *args, **kwargs) -> CosServiceError:
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value


def body_of(response) -> bytes:
    return response["Body"].get_raw_stream().read()


def signed_headers(client: CosS3Client, method: str, key: str, **headers: str) -> dict:
    """Headers for a hand-made request, signed by the SDK itself (get_auth)."""
    headers = {"Host": HOST, **headers}
    return {**headers, "Authorization": client.get_auth(Method=method, Bucket=BUCKET, Key=key, Headers=headers)}


# --------------------------------------------------------------------------- objects

def test_sdk_sends_the_bucket_domain_as_host_and_objects_are_plain_files(emu, client):
    client.put_object(Bucket=BUCKET, Key="uploads/a.mp4", Body=b"video bytes")
    assert emu.calls[-1]["host"] == HOST          # CosConfig(IP=, Port=) keeps the bucket in Host
    assert emu.calls[-1]["bucket"] == BUCKET and emu.calls[-1]["operation"] == "PutObject"
    assert (emu.buckets[BUCKET] / "uploads" / "a.mp4").read_bytes() == b"video bytes"


def test_put_get_head_delete_with_metadata(emu, client):
    data = b"0123456789" * 100
    put = client.put_object(Bucket=BUCKET, Key="uploads/clip one.mp4", Body=data, ContentType="video/mp4",
                            Metadata={"x-cos-meta-source": "camera-7", "x-cos-meta-name": "中文"})
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert put["ETag"] == etag and put["x-cos-request-id"]

    got = client.get_object(Bucket=BUCKET, Key="uploads/clip one.mp4")
    assert body_of(got) == data
    assert got["ETag"] == etag and got["Content-Type"] == "video/mp4" and got["Content-Length"] == str(len(data))
    assert got["x-cos-meta-source"] == "camera-7"
    assert "GMT" in got["Last-Modified"]

    head = client.head_object(Bucket=BUCKET, Key="uploads/clip one.mp4")
    assert head["Content-Length"] == str(len(data)) and head["ETag"] == etag
    assert head["x-cos-meta-source"] == "camera-7"
    assert emu.metadata(BUCKET, "uploads/clip one.mp4") == {
        "Content-Type": "video/mp4", "x-cos-meta-source": "camera-7", "x-cos-meta-name": "中文"}

    assert client.delete_object(Bucket=BUCKET, Key="uploads/clip one.mp4") is not None
    assert emu.calls[-1]["status"] == 204
    client.delete_object(Bucket=BUCKET, Key="uploads/clip one.mp4")   # idempotent
    assert emu.calls[-1]["status"] == 204
    assert not emu.exists(BUCKET, "uploads/clip one.mp4")
    err = service_error(client.get_object, Bucket=BUCKET, Key="uploads/clip one.mp4")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")
    err = service_error(client.head_object, Bucket=BUCKET, Key="uploads/clip one.mp4")
    assert err.get_status_code() == 404 and err.get_error_code() == "NoSuchResource"  # HEAD: no body


def test_range_get(emu, client):
    client.put_object(Bucket=BUCKET, Key="r.bin", Body=b"abcdefghij")
    part = client.get_object(Bucket=BUCKET, Key="r.bin", Range="bytes=2-5")
    assert body_of(part) == b"cdef" and part["Content-Range"] == "bytes 2-5/10"
    assert emu.calls[-1]["status"] == 206
    assert body_of(client.get_object(Bucket=BUCKET, Key="r.bin", Range="bytes=-3")) == b"hij"
    err = service_error(client.get_object, Bucket=BUCKET, Key="r.bin", Range="bytes=10-")
    assert (err.get_status_code(), err.get_error_code()) == (416, "InvalidRange")


def test_content_md5_is_checked(emu, client):
    client.put_object(Bucket=BUCKET, Key="ok.txt", Body=b"payload", EnableMD5=True)
    assert emu.read(BUCKET, "ok.txt") == b"payload"
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    err = service_error(client.put_object, Bucket=BUCKET, Key="bad.txt", Body=b"payload", ContentMD5=wrong)
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidDigest")
    assert not emu.exists(BUCKET, "bad.txt")
    assert list((emu.buckets[BUCKET] / ".cos" / "tmp").iterdir()) == []


def test_forbid_overwrite_refuses_an_existing_key(emu, client):
    forbid = {"x-cos-forbid-overwrite": "true"}
    client.put_object(Bucket=BUCKET, Key="once.mp4", Body=b"first", Metadata={**forbid, "x-cos-meta-v": "1"})
    err = service_error(client.put_object, Bucket=BUCKET, Key="once.mp4", Body=b"second",
                        Metadata={**forbid, "x-cos-meta-v": "2"})
    assert (err.get_status_code(), err.get_error_code()) == (409, "FileAlreadyExists")
    assert emu.read(BUCKET, "once.mp4") == b"first"
    assert emu.metadata(BUCKET, "once.mp4")["x-cos-meta-v"] == "1"
    client.put_object(Bucket=BUCKET, Key="once.mp4", Body=b"third")   # without the header: overwrites
    assert emu.read(BUCKET, "once.mp4") == b"third"


def test_racing_create_only_writers_exactly_one_wins(emu):
    clients = [sdk(emu) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    outcomes: dict = {}

    def write(i: int) -> None:
        barrier.wait()
        try:
            clients[i].put_object(Bucket=BUCKET, Key="race.bin", Body=f"writer {i}".encode() * 1000,
                                  Metadata={"x-cos-forbid-overwrite": "true"})
            outcomes[i] = "won"
        except CosServiceError as exc:
            outcomes[i] = exc.get_error_code()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    winners = [i for i, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1
    assert sorted(o for o in outcomes.values() if o != "won") == ["FileAlreadyExists"] * 7
    assert emu.read(BUCKET, "race.bin") == f"writer {winners[0]}".encode() * 1000


def test_object_is_invisible_until_its_body_has_arrived(emu, client):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    conn.putrequest("PUT", "/slow.bin", skip_host=True, skip_accept_encoding=True)
    for name, value in signed_headers(client, "PUT", "slow.bin").items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", "10")
    conn.endheaders()
    conn.send(b"12345")
    tmp = emu.buckets[BUCKET] / ".cos" / "tmp"
    deadline = time.monotonic() + 5
    while not (tmp.is_dir() and any(tmp.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tmp.is_dir() and any(tmp.iterdir()), "the upload never started"
    assert not emu.exists(BUCKET, "slow.bin")
    assert service_error(client.get_object, Bucket=BUCKET, Key="slow.bin").get_error_code() == "NoSuchKey"
    assert client.list_objects(Bucket=BUCKET).get("Contents", []) == []
    conn.send(b"67890")
    assert conn.getresponse().status == 200
    conn.close()
    assert emu.read(BUCKET, "slow.bin") == b"1234567890"


def test_large_bodies_are_streamed_not_held_in_memory(emu, client, tmp_path):
    size = 40 * 1024 * 1024
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        for i in range(size // (1024 * 1024)):
            f.write(bytes([i % 251]) * (1024 * 1024))
    tracemalloc.start()
    try:
        with open(source, "rb") as f:
            client.put_object(Bucket=BUCKET, Key="big.bin", Body=f)
        client.get_object(Bucket=BUCKET, Key="big.bin")["Body"].get_stream_to_file(str(tmp_path / "back.bin"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    assert peak < size // 4, f"peak {peak} bytes of Python memory for a {size}-byte object"


# --------------------------------------------------------------------------- listing

def test_list_prefix_marker_pagination_and_delimiter(emu, client):
    folder = emu.buckets[BUCKET]
    (folder / "many").mkdir()
    for i in range(1003):  # written by hand: more than one page of max-keys
        (folder / "many" / f"{i:05d}.txt").write_bytes(b"x")
    for key in ("a/1.mp4", "a/2.mp4", "a/sub/3.mp4", "b/4.mp4", "top.mp4"):
        client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())

    first = client.list_objects(Bucket=BUCKET, Prefix="many/")
    assert len(first["Contents"]) == 1000 and first["IsTruncated"] == "true"
    assert first["NextMarker"] == "many/00999.txt"
    rest = client.list_objects(Bucket=BUCKET, Prefix="many/", Marker=first["NextMarker"])
    assert [c["Key"] for c in rest["Contents"]] == ["many/01000.txt", "many/01001.txt", "many/01002.txt"]
    assert rest["IsTruncated"] == "false" and "NextMarker" not in rest

    keys, marker = [], ""
    while True:
        page = client.list_objects(Bucket=BUCKET, Prefix="a/", Marker=marker, MaxKeys=2)
        keys += [c["Key"] for c in page.get("Contents", [])]
        if page["IsTruncated"] != "true":
            break
        marker = page["NextMarker"]
    assert keys == ["a/1.mp4", "a/2.mp4", "a/sub/3.mp4"]

    grouped = client.list_objects(Bucket=BUCKET, Prefix="", Delimiter="/", MaxKeys=10)
    assert [c["Key"] for c in grouped["Contents"]] == ["top.mp4"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "b/", "many/"]

    entry = client.list_objects(Bucket=BUCKET, Prefix="top")["Contents"][0]
    assert entry["Size"] == "7" and entry["ETag"] == f'"{hashlib.md5(b"top.mp4").hexdigest()}"'
    assert entry["StorageClass"] == "STANDARD" and entry["LastModified"].endswith(".000Z")


def test_keys_with_spaces_and_unicode_survive_listing(emu, client):
    keys = ["dir/a b+c%d.mp4", "dir/视频.mp4"]
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"v")
    listed = client.list_objects(Bucket=BUCKET, Prefix="dir/")
    assert [c["Key"] for c in listed["Contents"]] == sorted(keys)
    assert body_of(client.get_object(Bucket=BUCKET, Key="dir/视频.mp4")) == b"v"


def test_hand_written_files_are_objects_and_dot_cos_is_never_listed(emu, client):
    folder = emu.buckets[BUCKET]
    (folder / "watch").mkdir()
    (folder / "watch" / "dropped.mp4").write_bytes(b"dropped by hand")
    upload = client.create_multipart_upload(Bucket=BUCKET, Key="pending.bin")  # fills .cos/uploads
    client.put_object(Bucket=BUCKET, Key="sdk.txt", Body=b"by sdk", Metadata={"x-cos-meta-k": "v"})
    assert (folder / ".cos").is_dir()

    listed = client.list_objects(Bucket=BUCKET)
    assert [c["Key"] for c in listed["Contents"]] == ["sdk.txt", "watch/dropped.mp4"]
    assert listed["Contents"][1]["ETag"] == f'"{hashlib.md5(b"dropped by hand").hexdigest()}"'
    got = client.get_object(Bucket=BUCKET, Key="watch/dropped.mp4")
    assert body_of(got) == b"dropped by hand" and got["Content-Type"] == "video/mp4"
    assert emu.keys(BUCKET) == ["sdk.txt", "watch/dropped.mp4"]

    # a file changed by hand is the hand's: its own MD5, no stale x-cos-meta-*
    (folder / "sdk.txt").write_bytes(b"edited by hand")
    head = client.head_object(Bucket=BUCKET, Key="sdk.txt")
    assert head["ETag"] == f'"{hashlib.md5(b"edited by hand").hexdigest()}"'
    assert "x-cos-meta-k" not in head

    for key in (".cos/meta/x", ".cosy/x"):
        err = service_error(client.put_object, Bucket=BUCKET, Key=key, Body=b"x")
        assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")
    client.abort_multipart_upload(Bucket=BUCKET, Key="pending.bin", UploadId=upload["UploadId"])


@pytest.mark.parametrize("key", ["a//b.mp4", "a/../b.mp4", "../escape.mp4", "a/./b.mp4", "a\x00b.mp4"])
def test_keys_that_cannot_be_files_are_refused(emu, client, key):
    err = service_error(client.put_object, Bucket=BUCKET, Key=key, Body=b"x")
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")
    assert "cannot be a file name" in err.get_error_msg() or "NUL" in err.get_error_msg()
    assert emu.keys(BUCKET) == []
    assert not (emu.root / "escape.mp4").exists() and not (emu.buckets[BUCKET] / "b.mp4").exists()


def test_key_under_an_existing_object_is_refused_with_a_reason(emu, client):
    client.put_object(Bucket=BUCKET, Key="clip", Body=b"file")
    err = service_error(client.put_object, Bucket=BUCKET, Key="clip/inner.mp4", Body=b"x")
    assert err.get_error_code() == "InvalidArgument" and "is an object (a file)" in err.get_error_msg()
    assert emu.read(BUCKET, "clip") == b"file"


def test_folder_markers(emu, client):
    client.put_object(Bucket=BUCKET, Key="inbox/", Body=b"")
    assert (emu.buckets[BUCKET] / "inbox").is_dir()
    assert client.head_object(Bucket=BUCKET, Key="inbox/")["Content-Length"] == "0"
    assert [c["Key"] for c in client.list_objects(Bucket=BUCKET)["Contents"]] == ["inbox/"]
    err = service_error(client.put_object, Bucket=BUCKET, Key="other/", Body=b"not empty")
    assert err.get_error_code() == "InvalidArgument"
    client.delete_object(Bucket=BUCKET, Key="inbox/")
    assert client.list_objects(Bucket=BUCKET).get("Contents", []) == []


def test_unknown_bucket_is_404(emu, client):
    err = service_error(client.put_object, Bucket="nothere-1250000000", Key="a.mp4", Body=b"x")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchBucket")
    assert not (emu.root / "nothere-1250000000").exists()


def test_auto_buckets_make_the_folder_on_first_use(emu, client):
    emu.auto_buckets = True
    client.put_object(Bucket="fresh-1250000000", Key="k.txt", Body=b"hi")
    assert (emu.root / "fresh-1250000000" / "k.txt").read_bytes() == b"hi"
    bad = sdk(emu, secret_key="wrong")
    with pytest.raises(CosServiceError):
        bad.put_object(Bucket="other-1250000000", Key="k.txt", Body=b"hi")
    assert not (emu.root / "other-1250000000").exists()   # unauthenticated requests make nothing


def test_unimplemented_operations_say_so(emu, client):
    client.put_object(Bucket=BUCKET, Key="src.mp4", Body=b"x")
    err = service_error(client.copy_object, Bucket=BUCKET, Key="dst.mp4",
                        CopySource={"Bucket": BUCKET, "Key": "src.mp4", "Region": REGION})
    assert (err.get_status_code(), err.get_error_code()) == (501, "NotImplemented")
    assert "PUT Object - Copy" in err.get_error_msg()
    assert not emu.exists(BUCKET, "dst.mp4")
    err = service_error(client.get_bucket_acl, Bucket=BUCKET)
    assert err.get_error_code() == "NotImplemented" and "acl" in err.get_error_msg()


# --------------------------------------------------------------------------- multipart

def upload_parts(client, key: str, parts: list, **headers) -> tuple:
    upload_id = client.create_multipart_upload(Bucket=BUCKET, Key=key, **headers)["UploadId"]
    listed = [{"PartNumber": n, "ETag": client.upload_part(Bucket=BUCKET, Key=key, Body=data, PartNumber=n,
                                                           UploadId=upload_id)["ETag"]}
              for n, data in enumerate(parts, 1)]
    return upload_id, listed


def test_multipart_upload_appears_only_at_complete(emu, client):
    emu.min_part_size = 4
    parts = [b"aaaa", b"bbbbb", b"cc"]
    upload_id, listed = upload_parts(client, "mp/video.mp4", parts, ContentType="video/mp4",
                                     Metadata={"x-cos-meta-origin": "multipart"})
    assert not emu.exists(BUCKET, "mp/video.mp4")
    assert [u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET)["Upload"]] == ["mp/video.mp4"]
    assert [p["Size"] for p in client.list_parts(Bucket=BUCKET, Key="mp/video.mp4", UploadId=upload_id)["Part"]] \
        == ["4", "5", "2"]
    done = client.complete_multipart_upload(Bucket=BUCKET, Key="mp/video.mp4", UploadId=upload_id,
                                            MultipartUpload={"Part": listed})
    assert done["ETag"].strip('"').endswith("-3")
    assert emu.read(BUCKET, "mp/video.mp4") == b"".join(parts)
    assert emu.metadata(BUCKET, "mp/video.mp4") == {"Content-Type": "video/mp4", "x-cos-meta-origin": "multipart"}
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Upload", []) == []
    assert list((emu.buckets[BUCKET] / ".cos" / "uploads").iterdir()) == []


def test_multipart_checks_parts(emu, client):
    emu.min_part_size = 10
    upload_id, listed = upload_parts(client, "p.bin", [b"short", b"last"])
    complete = client.complete_multipart_upload
    err = service_error(complete, Bucket=BUCKET, Key="p.bin", UploadId=upload_id, MultipartUpload={"Part": listed})
    assert (err.get_status_code(), err.get_error_code()) == (400, "EntityTooSmall")
    emu.min_part_size = 1
    wrong = [listed[0], {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}]
    assert service_error(complete, Bucket=BUCKET, Key="p.bin", UploadId=upload_id,
                         MultipartUpload={"Part": wrong}).get_error_code() == "InvalidPart"
    assert service_error(complete, Bucket=BUCKET, Key="p.bin", UploadId=upload_id,
                         MultipartUpload={"Part": listed[::-1]}).get_error_code() == "InvalidPartOrder"
    assert service_error(complete, Bucket=BUCKET, Key="p.bin", UploadId="0" * 40,
                         MultipartUpload={"Part": listed}).get_error_code() == "NoSuchUpload"
    assert not emu.exists(BUCKET, "p.bin")
    complete(Bucket=BUCKET, Key="p.bin", UploadId=upload_id, MultipartUpload={"Part": listed})
    assert emu.read(BUCKET, "p.bin") == b"shortlast"


@pytest.mark.parametrize("where", ["complete", "initiate"])
def test_multipart_forbid_overwrite(emu, client, where):
    emu.min_part_size = 1
    client.put_object(Bucket=BUCKET, Key="taken.mp4", Body=b"original")
    forbid = {"Metadata": {"x-cos-forbid-overwrite": "true"}}
    upload_id, listed = upload_parts(client, "taken.mp4", [b"new", b"data"], **(forbid if where == "initiate" else {}))
    err = service_error(client.complete_multipart_upload, Bucket=BUCKET, Key="taken.mp4", UploadId=upload_id,
                        MultipartUpload={"Part": listed}, **(forbid if where == "complete" else {}))
    assert (err.get_status_code(), err.get_error_code()) == (409, "FileAlreadyExists")
    assert emu.read(BUCKET, "taken.mp4") == b"original"
    assert emu.keys(BUCKET) == ["taken.mp4"]
    client.abort_multipart_upload(Bucket=BUCKET, Key="taken.mp4", UploadId=upload_id)


def test_abort_leaves_nothing(emu, client):
    upload_id, _ = upload_parts(client, "gone.bin", [b"part one"])
    client.abort_multipart_upload(Bucket=BUCKET, Key="gone.bin", UploadId=upload_id)
    assert emu.calls[-1]["status"] == 204
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Upload", []) == []
    assert list((emu.buckets[BUCKET] / ".cos" / "uploads").iterdir()) == []
    assert emu.keys(BUCKET) == [] and not emu.exists(BUCKET, "gone.bin")
    err = service_error(client.abort_multipart_upload, Bucket=BUCKET, Key="gone.bin", UploadId=upload_id)
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchUpload")


def test_sdk_high_level_upload_and_download(emu, client, tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 12345))
    client.upload_file(Bucket=BUCKET, Key="hl/clip.mp4", LocalFilePath=str(source), PartSize=1, MAXThread=3)
    assert emu.read(BUCKET, "hl/clip.mp4") == source.read_bytes()
    assert emu.metadata(BUCKET, "hl/clip.mp4")["Content-Type"] == "video/mp4"
    client.download_file(Bucket=BUCKET, Key="hl/clip.mp4", DestFilePath=str(tmp_path / "back.mp4"), PartSize=1)
    assert (tmp_path / "back.mp4").read_bytes() == source.read_bytes()


# --------------------------------------------------------------------------- signatures

def test_wrong_secret_key_is_signature_does_not_match(emu):
    bad = sdk(emu, secret_key="not-the-key")
    err = service_error(bad.put_object, Bucket=BUCKET, Key="x.txt", Body=b"x")
    assert (err.get_status_code(), err.get_error_code()) == (403, "SignatureDoesNotMatch")
    assert not emu.exists(BUCKET, "x.txt")


def test_unknown_secret_id_is_invalid_access_key_id(emu):
    err = service_error(sdk(emu, secret_id="AKIDsomeoneelse").list_objects, Bucket=BUCKET)
    assert (err.get_status_code(), err.get_error_code()) == (403, "InvalidAccessKeyId")


def test_unsigned_request_is_access_denied(emu):
    res = requests.get(f"{emu.url}/a.txt", headers={"Host": HOST})
    assert res.status_code == 403 and "<Code>AccessDenied</Code>" in res.text
    assert res.headers["x-cos-request-id"] and res.headers["Content-Type"] == "application/xml"


def test_signed_header_values_must_be_the_ones_sent(emu, client):
    headers = signed_headers(client, "PUT", "meta.txt", **{"x-cos-meta-owner": "alice"})
    assert requests.put(f"{emu.url}/meta.txt", data=b"x", headers=headers).status_code == 200
    tampered = {**headers, "x-cos-meta-owner": "mallory"}
    res = requests.put(f"{emu.url}/meta.txt", data=b"y", headers=tampered)
    assert res.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in res.text
    other_key = requests.put(f"{emu.url}/other.txt", data=b"y", headers=headers)
    assert other_key.status_code == 403
    assert emu.read(BUCKET, "meta.txt") == b"x" and emu.metadata(BUCKET, "meta.txt")["x-cos-meta-owner"] == "alice"


@pytest.mark.parametrize("offset, code", [(-20000, "AccessDenied"), (+2000, "RequestTimeTooSkewed")])
def test_signature_time_window(emu, client, monkeypatch, offset, code):
    real = time.time
    monkeypatch.setattr(cos_auth, "time", types.SimpleNamespace(time=lambda: real() + offset))
    err = service_error(client.list_objects, Bucket=BUCKET)
    assert (err.get_status_code(), err.get_error_code()) == (403, code)
    if code == "AccessDenied":
        assert err.get_error_msg() == "Request has expired"


def test_token_is_required_when_set(emu):
    emu.token = "session-token-1"
    for token in (None, "session-token-2"):
        err = service_error(sdk(emu, token=token).put_object, Bucket=BUCKET, Key="t.txt", Body=b"x")
        assert (err.get_status_code(), err.get_error_code()) == (403, "InvalidToken")
    assert not emu.exists(BUCKET, "t.txt")
    sdk(emu, token="session-token-1").put_object(Bucket=BUCKET, Key="t.txt", Body=b"x")
    assert emu.read(BUCKET, "t.txt") == b"x"


def test_presigned_get_url(emu, client):
    client.put_object(Bucket=BUCKET, Key="share/clip 1.mp4", Body=b"shared bytes")
    url = client.get_presigned_url(Bucket=BUCKET, Key="share/clip 1.mp4", Method="GET", Expired=60)
    assert "q-signature=" in url and url.startswith(emu.url)
    res = requests.get(url)
    assert res.status_code == 200 and res.content == b"shared bytes"
    assert emu.calls[-1]["query"] == {}          # the signature is not recorded
    assert requests.get(url.replace("clip%201", "clip%202")).status_code == 403

    expired = client.get_presigned_url(Bucket=BUCKET, Key="share/clip 1.mp4", Method="GET", Expired=-1)
    res = requests.get(expired)
    assert res.status_code == 403 and "Request has expired" in res.text

    emu.token = "tok"
    assert requests.get(url).status_code == 403
    with_token = client.get_presigned_url(Bucket=BUCKET, Key="share/clip 1.mp4", Method="GET",
                                          Params={"x-cos-security-token": "tok"})
    assert requests.get(with_token).content == b"shared bytes"
    emu.token = None

    emu.add_bucket("second-1250000000")   # an IP names no bucket: with two, a presigned URL is ambiguous
    res = requests.get(url)
    assert res.status_code == 404 and "<Code>NoSuchBucket</Code>" in res.text


# --------------------------------------------------------------------------- faults

def test_error_faults_change_nothing(emu, client):
    for fault, status, code in (("http500", 500, "InternalError"), ("http503", 503, "SlowDown"),
                                ("AccessDenied", 403, "AccessDenied")):
        emu.inject(fault)
        err = service_error(client.put_object, Bucket=BUCKET, Key="f.txt", Body=b"x")
        assert (err.get_status_code(), err.get_error_code()) == (status, code)
        assert not emu.exists(BUCKET, "f.txt")
        assert emu.calls[-1]["fault"] == fault
    client.put_object(Bucket=BUCKET, Key="f.txt", Body=b"x")   # each fault is used once
    assert emu.pending_faults == []


def test_drop_and_drop_after_write(emu, client):
    emu.inject("drop", method="PUT")
    with pytest.raises(CosClientError):
        client.put_object(Bucket=BUCKET, Key="d.txt", Body=b"dropped")
    assert not emu.exists(BUCKET, "d.txt")
    emu.inject("drop_after_write", method="PUT")
    with pytest.raises(CosClientError):
        client.put_object(Bucket=BUCKET, Key="d.txt", Body=b"written")
    assert emu.read(BUCKET, "d.txt") == b"written"    # the write happened; only the answer was lost
    assert [c["status"] for c in emu.calls[-2:]] == [None, None]


def test_drop_after_write_on_complete(emu, client):
    emu.min_part_size = 1
    upload_id, listed = upload_parts(client, "c.bin", [b"12", b"34"])
    emu.inject("drop_after_write", method="POST")
    with pytest.raises(CosClientError):
        client.complete_multipart_upload(Bucket=BUCKET, Key="c.bin", UploadId=upload_id,
                                         MultipartUpload={"Part": listed})
    assert emu.read(BUCKET, "c.bin") == b"1234"


def test_cut_answers_half_the_body(emu, client, tmp_path):
    client.put_object(Bucket=BUCKET, Key="cut.bin", Body=b"z" * 10000)
    emu.inject("cut", method="GET")
    response = client.get_object(Bucket=BUCKET, Key="cut.bin")
    assert response["Content-Length"] == "10000"
    with pytest.raises(Exception, match="IncompleteRead|Connection broken|download failed"):
        response["Body"].get_stream_to_file(str(tmp_path / "out.bin"))
    assert body_of(client.get_object(Bucket=BUCKET, Key="cut.bin")) == b"z" * 10000


def test_slow_and_latency(emu, client):
    emu.inject("slow:0.3")
    started = time.monotonic()
    client.list_objects(Bucket=BUCKET)
    assert time.monotonic() - started >= 0.3
    emu.latency = 0.2
    started = time.monotonic()
    client.list_objects(Bucket=BUCKET)
    assert time.monotonic() - started >= 0.2


def test_faults_match_method_and_key_prefix(emu, client):
    emu.inject("http500", method="PUT", key_prefix="b/")
    client.put_object(Bucket=BUCKET, Key="a/x.txt", Body=b"x")            # other prefix: untouched
    client.get_object(Bucket=BUCKET, Key="a/x.txt")                       # other method: untouched
    assert emu.pending_faults == ["http500"]
    err = service_error(client.put_object, Bucket=BUCKET, Key="b/x.txt", Body=b"x")
    assert err.get_status_code() == 500 and not emu.exists(BUCKET, "b/x.txt")
    emu.inject("http500")
    emu.clear_faults()
    client.put_object(Bucket=BUCKET, Key="b/x.txt", Body=b"x")
    assert emu.exists(BUCKET, "b/x.txt")
    with pytest.raises(ValueError):
        emu.inject("explode")


def test_random_faults_follow_the_seed(tmp_path):
    def faults_seen(seed: int) -> list:
        with CosEmulator(root=tmp_path / f"r{seed}", fault_rate=1.0, fault_seed=seed) as emulator:
            emulator.add_bucket(BUCKET)
            emulator.inject()  # nothing queued: faults are drawn
            client = sdk(emulator)
            for _ in range(6):
                try:
                    client.get_object(Bucket=BUCKET, Key="missing")["Body"].get_raw_stream().read()
                except Exception:  # noqa: BLE001 - every kind of failure is expected here
                    pass
            return [c["fault"] for c in emulator.calls]

    first = faults_seen(7)
    assert first == faults_seen(7) and len(first) == 6
    assert set(first) <= set(RANDOM_FAULTS)


def test_calls_and_reset(emu, client):
    client.put_object(Bucket=BUCKET, Key="k.txt", Body=b"x")
    client.list_objects(Bucket=BUCKET, Prefix="k")
    call = emu.calls[-1]
    assert {k: call[k] for k in ("method", "bucket", "key", "status", "fault")} == {
        "method": "GET", "bucket": BUCKET, "key": "", "status": 200, "fault": None}
    assert call["query"]["prefix"] == "k" and not any(k.startswith("q-") for k in call["query"])
    emu.inject("drop")
    emu.reset()
    assert emu.calls == [] and emu.pending_faults == []
    assert emu.read(BUCKET, "k.txt") == b"x"      # objects stay


# --------------------------------------------------------------------------- the command line

def test_repr_and_banner_never_show_a_private_key(tmp_path):
    emulator = CosEmulator(root=tmp_path, secret_key=SECRET_CANARY)
    assert SECRET_CANARY not in repr(emulator)
    env = {**os.environ, "VOD_EMULATOR_SECRET_KEY": SECRET_CANARY, "PYTHONPATH": str(ROOT)}
    watched = tmp_path / "watched"
    proc = subprocess.Popen(
        [sys.executable, "-m", "redraw.tools.cos_emulator", "--root", str(tmp_path / "root"), "--port", "0",
         "--bucket", f"{BUCKET}={watched}", "--bucket", "other-1250000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
    try:
        banner = proc.stdout.readline() if proc.stdout else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "COS emulator on http://127.0.0.1:" in banner and DEFAULT_SECRET_ID in banner
    assert f"{BUCKET} -> {watched}" in banner and "other-1250000000 -> " in banner
    assert SECRET_CANARY not in banner + out + err and watched.is_dir()


def test_port_in_use_is_one_line_and_exit_2(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert cos_emulator.main(["--root", str(tmp_path), "--port", str(port), "--bucket", BUCKET]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err
