"""``redraw serve``: the function behind a real HTTP server on a free port, talked to over real HTTP.

Most tests share one server (module scope) pointed at the test emulator; a few start their own
(port in use, Ctrl-C, reload and a function that misbehaves, from a copy of the checkout)."""
from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from redraw.tools import serve
from redraw.tools.samples import url_event
from serving import Served, clean_env, emulator_without_limit, function_env, wait_for

URL = "https://media-1250000000.cos.ap-guangzhou.myqcloud.com/uploads/clip.mp4"
BODY = {"FileInfo": {"Type": "Url", "Url": URL}}


@pytest.fixture(scope="module")
def vod():
    emu = emulator_without_limit()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def server(vod):
    # two warm instances (not 4): each worker of `make test` that runs these tests starts its own server
    with Served("--endpoint", vod.url, "--no-reload", "--instances", "2", env=function_env()) as running:
        yield running


def _json(raw: bytes) -> dict:
    return json.loads(raw.decode("utf-8"))


# --- what it answers ---------------------------------------------------------------------------

def test_post_creates_a_task_and_get_reports_it(server, vod):
    status, headers, raw = server.request("POST", "/redraw", BODY, {"Content-Type": "application/json"})
    assert status == 200, raw
    assert headers["content-type"].startswith("application/json")
    body = _json(raw)
    assert set(body) == {"TaskId", "RequestId", "SessionId"} and body["TaskId"] in vod.tasks

    status, _, raw = server.request("GET", f"/tasks/{body['TaskId']}")
    assert status == 200
    report = _json(raw)
    assert report["TaskId"] == body["TaskId"] and report["SessionId"] == body["SessionId"]
    assert report["Status"] in ("WAITING", "PROCESSING", "FINISH")

    lines = wait_for(lambda: [line for line in server.logs() if line.get("task_id") == body["TaskId"]
                              and line["event"] in ("api.request", "api.status")] or None)
    assert {line["trigger"] for line in lines} == {"url"}
    assert wait_for(lambda: len([line for line in server.logs() if line.get("task_id") == body["TaskId"]]) == 2)
    # the server's lines: stderr, written once the answer has left
    assert wait_for(lambda: any("POST /redraw -> 200" in line for line in server.errors()))


def _as_the_function_answers(invoke, event: dict):
    """The function's own answer to the event the server builds, in-process."""
    result = invoke(event).result
    return result["statusCode"], result["headers"], json.loads(result["body"])


@pytest.mark.parametrize("method, path, body, headers", [
    ("POST", "/redraw", "{not json", {"Content-Type": "application/json"}),
    ("POST", "/redraw", "", {}),
    ("POST", "/redraw", b"\xff\xfe not utf-8", {"Content-Type": "application/octet-stream"}),
    ("POST", "/redraw", json.dumps({**BODY, "ExtInfo": "x" * 5000}), {}),   # over REDRAW_MAX_BODY_BYTES
    ("PUT", "/redraw", json.dumps(BODY), {}),
    ("DELETE", "/tasks/abc", None, {}),
    ("GET", "/nowhere?x=1", None, {"X-Odd-Header": "Ünïcode", "ACCEPT": "*/*"}),
    ("PATCH", "/", "{}", {}),
    ("GET", "/tasks/%3Cscript%3E", None, {}),
])
def test_malformed_requests_get_the_function_s_own_answer(server, invoke, env, emulator, method, path, body,
                                                          headers):
    env.setenv("REDRAW_MAX_BODY_BYTES", "4096")  # as the server's
    status, got_headers, raw = server.request(method, path, body, headers)
    data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    sent = [(name, value) for name, value in headers.items()]
    expected_status, expected_headers, expected_body = _as_the_function_answers(
        invoke, serve.url_event(method, path, sent, data, "127.0.0.1"))
    assert status == expected_status, raw
    assert _json(raw) == expected_body
    for name, value in expected_headers.items():
        assert got_headers[name.lower()] == value
    if status == 405:
        assert got_headers["allow"] in ("GET", "POST")


def test_head_gets_the_status_and_headers_without_a_body(server):
    status, headers, raw = server.request("HEAD", "/redraw")
    assert status == 405 and raw == b"" and int(headers["content-length"]) > 0


def test_a_body_over_scf_s_6_mb_is_refused_by_the_platform_without_the_function(server):
    before = len(server.logs())
    status, headers, raw = server.request("POST", "/redraw", b"x" * (serve.MAX_EVENT_BYTES + 1))
    assert status == 413 and _json(raw)["error"]["code"] == "RequestEntityTooLarge"
    assert len(server.logs()) == before  # no invocation
    assert server.request("POST", "/redraw", "{}")[0] == 400  # and the server goes on


def test_a_malformed_request_line_is_a_400_and_the_server_keeps_serving(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 400") or answer.startswith("HTTP/1.0 400"), answer
    assert "Traceback" not in answer
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /redraw HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    assert server.request("GET", "/tasks/abc")[0] == 404


def test_chunked_and_keep_alive_requests(server, vod):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for _ in range(3):  # one connection, three requests
            connection.request("POST", "/redraw", body=iter([json.dumps(BODY).encode()]),
                               headers={"Content-Type": "application/json"}, encode_chunked=True)
            answer = connection.getresponse()
            assert answer.status == 200 and _json(answer.read())["TaskId"] in vod.tasks
    finally:
        connection.close()


def test_fifty_concurrent_requests_are_all_answered(server, vod):
    before = vod.task_count

    def post(i: int) -> int:
        return server.request("POST", "/redraw", {**BODY, "SessionId": f"burst-{i}-{time.time_ns()}"},
                              timeout=60)[0]

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(post, range(50)))
    assert statuses == [200] * 50
    assert vod.task_count - before == 50


def test_stdout_holds_only_the_function_s_json_log_lines(server):
    server.request("POST", "/redraw", BODY)
    lines = server.logs()  # raises if a line is not JSON
    assert lines and all("event" in line and "request_id" in line for line in lines)
    assert not any(line.startswith("redraw:") for line in server.out)


# --- the event and the answer, as the platform makes them ---------------------------------------

def test_the_event_is_the_function_url_event():
    event = serve.url_event("POST", "/redraw/x?a=1&b=x%20y&a=2&flag",
                            [("Content-Type", "application/json"), ("X-Many", "1"), ("x-many", "2"),
                             ("X-Scf-Remote-Addr", "6.6.6.6")], b'{"k": "v"}', "127.0.0.9")
    assert event == {"body": '{"k": "v"}', "headers": {"content-type": "application/json", "x-many": "1,2",
                                                       "x-scf-remote-addr": "127.0.0.9"},
                     "httpMethod": "POST", "path": "/redraw/x",
                     "queryString": {"a": ["1", "2"], "b": "x y", "flag": True}}
    sample = url_event(BODY)
    assert set(event) == set(sample)  # the same fields as the sample function URL event
    binary = serve.url_event("POST", "/", [], b"\x00\xff", "::1")
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == b"\x00\xff"


@pytest.mark.parametrize("answer, status, body", [
    ({"ok": True, "result": {"statusCode": 201, "headers": {"X-A": "1"}, "body": "hi"}}, 201, b"hi"),
    ({"ok": True, "result": {"statusCode": 200, "isBase64Encoded": "true", "body": "AP8="}}, 200, b"\x00\xff"),
    ({"ok": True, "result": {"statusCode": 200, "body": {"a": 1}}}, 200, b'{"a": 1}'),
    ({"ok": True, "result": {"results": []}}, 200, b'{"results": []}'),
    ({"ok": True, "result": None}, 200, b"null"),
    ({"ok": True, "result": {"statusCode": 99}}, 502, None),
    ({"ok": True, "result": {"statusCode": "x"}}, 502, None),
    ({"ok": True, "result": {"statusCode": 200, "headers": []}}, 502, None),
    ({"ok": False, "error": "RetryableFailuresError", "message": "secret? never sent"}, 502, None),
    ({"timeout": True}, 504, None),
    ({"died": True}, 502, None),
])
def test_the_answer_becomes_the_http_response(answer, status, body):
    got_status, headers, payload = serve.http_answer(answer)
    assert got_status == status
    if body is not None:
        assert payload == body
    else:
        error = json.loads(payload)["error"]
        assert error["code"] and "Traceback" not in payload.decode() and "secret" not in payload.decode()
    assert all("\n" not in name + value for name, value in headers)


def test_header_injection_and_framing_headers_from_the_function_are_dropped():
    _, headers, _ = serve.http_answer({"ok": True, "result": {"statusCode": 200, "headers": {
        "X-Bad": "a\r\nSet-Cookie: x", "Content-Length": "999", "Connection": "close", "X-List": ["1", "2"]}}})
    assert headers == [("X-List", "1"), ("X-List", "2")]


# --- the command --------------------------------------------------------------------------------

def test_serve_help_has_an_example_and_is_listed():
    done = subprocess.run([sys.executable, "-m", "redraw.tools", "--help"], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert "serve" in done.stdout
    done = subprocess.run([sys.executable, "-m", "redraw.tools", "serve", "--help"], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "example" in done.stdout and "--watch" in done.stdout


def test_the_default_timeout_is_serverless_yml_s():
    from redraw.tools.cli import SERVE_TIMEOUT_S

    assert yaml.safe_load((ROOT / "serverless.yml").read_text())["inputs"]["timeout"] == SERVE_TIMEOUT_S


def test_a_port_in_use_exits_2_with_one_line(server):
    done = subprocess.run([sys.executable, "-m", "redraw.tools", "serve", "--port", str(server.port)], cwd=ROOT,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("redraw: cannot listen") and "in use" in lines[0], done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("argv", [["--instances", "0"], ["--timeout", "901"], ["--port", "70000"],
                                  ["--prefix", "x/"], ["--watch", "/no/such/folder"]])
def test_bad_options_exit_2_with_one_line(argv):
    done = subprocess.run([sys.executable, "-m", "redraw.tools", "serve", *argv], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_real_api_is_refused_without_real(tmp_path):
    env = clean_env(VOD_ENDPOINT="vod.tencentcloudapi.com", VOD_SUB_APP_ID="1")
    done = subprocess.run([sys.executable, "-m", "redraw.tools", "serve", "--port", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "refusing to call the real" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_it_cleanly(sig):
    running = Served("--no-reload", "--instances", "2")  # the in-process emulator: no VOD_ENDPOINT
    assert running.request("POST", "/redraw", BODY)[0] == 200
    assert "in-process VOD emulator" in running.errors()[1]
    assert running.stop(sig) == 0
    assert running.errors()[-1] == "redraw: stopped"
    assert not any("Traceback" in line for line in running.errors())


# --- from a copy of the checkout: reload, and a function that misbehaves -------------------------

def _copy_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "redraw", root / "redraw", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "handler.py", root / "handler.py")
    return root


MISBEHAVING = '''
import time
from redraw.app import handle

VERSION = 1


def main_handler(event, context):
    path = event.get("path") if isinstance(event, dict) else None
    if path == "/hang":
        time.sleep(30)
    if path == "/slow":
        open(__file__ + ".slow-started", "w").close()
        time.sleep(1.5)
        return {"version": VERSION}
    if path == "/raise":
        raise RuntimeError("token=CANARY must never reach the caller")
    if path == "/plain":
        return {"hello": "world"}
    answer = handle(event, context)
    return answer
'''


@pytest.mark.slow
def test_reload_and_a_function_that_misbehaves(tmp_path, vod):
    root = _copy_checkout(tmp_path)
    (root / "handler.py").write_text(MISBEHAVING)
    # --timeout 4: a hung request ends soon, and a first real one (imports, VOD) fits beside a busy machine
    with Served("--endpoint", vod.url, "--instances", "2", "--timeout", "4",
                env=function_env(root), cwd=root) as running:
        # a function that raises, returns something else, or hangs: answered as the platform does
        status, _, raw = running.request("GET", "/raise")
        assert status == 502 and _json(raw)["error"]["code"] == "FunctionError" and b"CANARY" not in raw
        assert running.request("GET", "/plain")[:3:2] == (200, b'{"hello": "world"}')
        started = time.monotonic()
        status, _, raw = running.request("GET", "/hang")
        assert status == 504 and time.monotonic() - started < 10
        assert running.request("POST", "/redraw", BODY)[0] == 200  # the hung instance was replaced

        # a change to the function: new instances serve the next requests; one in flight finishes on the old
        in_flight: list = []
        thread = threading.Thread(target=lambda: in_flight.append(running.request("GET", "/slow")))
        thread.start()
        wait_for(lambda: (root / "handler.py.slow-started").exists(), 10, "the request inside an instance")
        source = (root / "handler.py").read_text()
        (root / "handler.py").write_text(source.replace("VERSION = 1", "VERSION = 2").replace(
            "return answer", 'answer["headers"]["X-Reloaded"] = "1"\n    return answer'))
        wait_for(lambda: running.request("POST", "/redraw", BODY)[1].get("x-reloaded") == "1", 30, "the reload")
        # said once the new instances serve (the line may follow their first answer)
        wait_for(lambda: any("code changed (handler.py)" in line for line in running.errors()), 10, "the reload's line")
        thread.join(30)
        assert in_flight and in_flight[0][0] == 200 and _json(in_flight[0][2]) == {"version": 1}
        assert _json(running.request("GET", "/slow")[2]) == {"version": 2}

        # a change that does not import: the previous code keeps serving
        (root / "redraw" / "app.py").write_text((root / "redraw" / "app.py").read_text() + "\nthis is not python\n")
        wait_for(lambda: any("does not start" in line for line in running.errors()), 30, "the failed reload")
        status, headers, _ = running.request("POST", "/redraw", BODY)
        assert status == 200 and headers.get("x-reloaded") == "1"
