"""Webhooks over real HTTP: the sweep tells a real local receiver (redraw.tools.inbox, which verifies
every delivery with the reference ``standardwebhooks`` library) of each task's end, through the
outbox in the COS emulator's state bucket, on the Standard Webhooks schedule (compressed here by
REDRAW_WEBHOOK_SCHEDULE)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import BUCKET, ROOT, STATE
from redraw.tools import samples
from redraw.tools.inbox import WebhookInbox
from redraw.webhooks import guard, signing

TIMER = {"Type": "Timer", "TriggerName": "redraw-sweep", "Time": "2026-12-05T08:00:00Z", "Message": "sweep"}
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes of base64
TOKEN = "CANARY-webhook-token-7a6b5c"


def sweep(invoke, **context):
    return invoke(dict(TIMER), {"request_id": "sweep-1", "time_limit_in_ms": 20000, **context})


def upload(invoke, key="uploads/2026/clip.mp4"):
    out = invoke(samples.cos_event([key], bucket=BUCKET))
    assert out.error is None, out.error
    return out.result["results"][0]["task_id"]


def sweep_until(invoke, event, count=1, tries=40, **context):
    """Sweep until ``count`` lines named ``event`` have been written (the task ends on the emulator's
    clock); returns every sweep's lines."""
    lines, seen = [], 0
    for _ in range(tries):
        out = sweep(invoke, **context)
        lines.extend(out.logs)
        seen += len(out.lines(event))
        if seen >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"no {event} line after {tries} sweeps")


def named(lines, event):
    return [line for line in lines if line.get("event") == event]


@pytest.fixture
def cos(tmp_path):
    """The state bucket served alone (other buckets made on first use): a presigned URL names the
    endpoint's address, which the emulator routes to its only bucket."""
    from redraw.tools.cos_emulator import CosEmulator

    with CosEmulator(root=tmp_path / "cos", auto_buckets=True) as emu:
        emu.add_bucket(STATE)
        yield emu


@pytest.fixture
def inbox():
    with WebhookInbox(SECRET, quiet=True, slow_s=1.5) as box:
        yield box


@pytest.fixture
def hooks(follow, inbox, env, emulator):
    env.setenv("REDRAW_WEBHOOK_URL", inbox.url + "/hook?token=" + TOKEN)
    env.setenv("REDRAW_WEBHOOK_SECRET", SECRET)
    env.setenv("REDRAW_WEBHOOK_ALLOW_PRIVATE", "true")
    env.setenv("REDRAW_WEBHOOK_SCHEDULE", "0,0.3,0.3,0.3")
    env.setenv("REDRAW_WEBHOOK_TIMEOUT", "0.5")  # the inbox's slow faults take 1.5 s
    env.setenv("VOD_HTTP_TIMEOUT", "1")
    emulator.task_duration = 0  # each task has ended when the first sweep looks: nothing waits for the clock
    return env


def private_name():
    """A DNS name of this machine that resolves to a loopback or private address (the SSRF case)."""
    import ipaddress
    import socket

    name = socket.gethostname()
    try:
        address = ipaddress.ip_address(socket.getaddrinfo(name, 443)[0][4][0])
    except (OSError, ValueError):
        pytest.skip("this machine's name does not resolve")
    if address.is_global:
        pytest.skip("this machine's name resolves to a public address")
    return name


def outbox(cos):
    return cos.keys(STATE, "redraw/outbox/")


def test_a_task_end_is_told_within_the_sweep_that_notices_it(invoke, hooks, cos, inbox):
    hooks.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    task_id = upload(invoke)
    lines = sweep_until(invoke, "task.finished")
    [sent] = named(lines, "webhook.sent")
    [delivery] = inbox.deliveries()
    assert delivery["verified"] and delivery["type"] == "task.succeeded" and delivery["task_id"] == task_id
    assert sent["webhook_id"] == delivery["webhook_id"] and sent["attempt"] == 1 and sent["status"] == 200
    data = delivery["data"]
    assert data["outcome"] == "succeeded" and data["source_bucket"] == BUCKET
    assert data["source_key"] == "uploads/2026/clip.mp4" and data["delivered_to"].startswith(f"cos://{BUCKET}/")
    assert "?" not in data["output_url"] and data["duration_s"] >= 0 and data["download_url"]
    assert outbox(cos) == [] and cos.keys(STATE, "redraw/outbox-claims/") == []
    assert TOKEN not in "".join(json.dumps(line) for line in lines)  # the URL's query is never logged
    assert sent["url"] == inbox.url + "/hook"


def test_the_download_url_is_a_working_presigned_link(invoke, hooks, cos, inbox):
    hooks.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    out = invoke(samples.redraw_body())  # a direct invocation: delivered into the state bucket
    task_id = out.result["TaskId"]
    sweep_until(invoke, "webhook.sent")
    [delivery] = inbox.deliveries()
    assert delivery["data"]["delivered_to"].startswith(f"cos://{STATE}/redrawn/{task_id}")
    with urllib.request.urlopen(delivery["data"]["download_url"], timeout=5) as answer:  # real signature
        assert answer.status == 200 and answer.read(8)[4:8] == b"ftyp"


def test_a_failed_redraw_is_told_as_task_failed(invoke, hooks, cos, inbox, emulator):
    task_id = upload(invoke, "uploads/fail-me.mp4")
    sweep_until(invoke, "task.finished")
    [delivery] = inbox.deliveries()
    assert delivery["type"] == "task.failed" and delivery["verified"] and delivery["task_id"] == task_id
    assert delivery["data"]["error_code"]


@pytest.mark.parametrize("fault", ["500", "timeout", "reset", "trickle", "301"])
def test_a_failing_receiver_gets_the_message_on_the_next_attempt(invoke, hooks, cos, inbox, fault):
    inbox.inject(fault)
    task_id = upload(invoke)
    lines = sweep_until(invoke, "webhook.sent")
    [failed] = named(lines, "webhook.failed")
    assert failed["attempt"] == 1 and failed["outcome"] == "retry" and failed["next_attempt"]
    if fault in ("timeout", "trickle"):
        assert failed["reason"] == "timed out after 0.5 s" and failed["duration_ms"] < 1200
    assert failed["status"] == (301 if fault == "301" else 500 if fault == "500" else None)
    [sent] = named(lines, "webhook.sent")
    assert sent["attempt"] == 2 and sent["webhook_id"] == failed["webhook_id"]
    first, second = inbox.deliveries()
    assert first["webhook_id"] == second["webhook_id"] and second["task_id"] == task_id and second["verified"]
    assert outbox(cos) == []


def test_a_receiver_that_asks_to_wait_is_not_sent_to_sooner(invoke, hooks, cos, inbox):
    inbox.retry_after = 2
    inbox.inject("429")
    upload(invoke)
    lines = sweep_until(invoke, "webhook.failed")
    [failed] = named(lines, "webhook.failed")
    assert failed["status"] == 429
    asked = time.time()
    sweep_until(invoke, "webhook.sent", tries=200)
    first, second = inbox.deliveries()
    assert second["received_at"] - first["received_at"] >= 1.9 and time.time() - asked < 5


def test_a_gone_receiver_stops_the_message(invoke, hooks, cos, inbox):
    inbox.inject("410")
    upload(invoke)
    lines = sweep_until(invoke, "webhook.abandoned")
    [abandoned] = named(lines, "webhook.abandoned")
    assert "410" in abandoned["fix"] and abandoned["attempts"] == 1 and abandoned["level"] == "error"
    assert outbox(cos) == [] and len(inbox.deliveries()) == 1
    assert not named(sweep(invoke).logs, "webhook.sent")


def test_a_message_that_runs_out_of_its_schedule_is_abandoned_with_an_error_line(invoke, hooks, cos, inbox):
    inbox.inject("500", "500", "500", "500")
    upload(invoke)
    lines = sweep_until(invoke, "webhook.abandoned", tries=100)
    failed = named(lines, "webhook.failed")
    assert [f["attempt"] for f in failed] == [1, 2, 3, 4] and failed[-1]["next_attempt"] is None
    gaps = [b["received_at"] - a["received_at"] for a, b in zip(inbox.deliveries(), inbox.deliveries()[1:])]
    assert all(gap >= 0.29 for gap in gaps), gaps  # the schedule: 0.3 s between attempts
    assert outbox(cos) == [] and cos.keys(STATE, "redraw/outbox-claims/") == []


def test_a_webhook_url_that_resolves_to_a_private_address_is_refused_at_send_time(invoke, hooks, cos, inbox):
    hooks.setenv("REDRAW_WEBHOOK_ALLOW_PRIVATE", "false")
    hooks.setenv("REDRAW_WEBHOOK_URL", f"https://{private_name()}:{inbox.port}/hook")  # a name, not an IP
    upload(invoke)
    lines = sweep_until(invoke, "webhook.failed")
    [failed] = named(lines, "webhook.failed")
    assert failed["status"] is None and failed["outcome"] == "retry" and failed["next_attempt"]
    assert "loopback" in failed["reason"] or "private" in failed["reason"]
    assert inbox.deliveries() == [] and len(outbox(cos)) == 1


def test_a_slow_receiver_never_holds_the_sweep_past_its_budget(invoke, hooks, cos, inbox):
    hooks.setenv("REDRAW_WEBHOOK_TIMEOUT", "10")
    inbox.slow_s = 8
    inbox.inject("timeout")
    upload(invoke)
    started = time.monotonic()
    lines = sweep_until(invoke, "webhook.failed", time_limit_in_ms=6000)  # usable: 4.5 s
    assert time.monotonic() - started < 4.5
    [failed] = named(lines, "webhook.failed")
    assert failed["reason"].startswith("timed out") and failed["duration_ms"] < 4000
    assert len(outbox(cos)) == 1  # recorded within the deadline: the next sweep retries it


def test_the_sent_message_carries_the_standard_headers(hooks, inbox):
    """The signature is the reference library's, over id.timestamp.body."""
    from standardwebhooks import Webhook

    body = b'{"type":"task.succeeded"}'
    now = int(time.time())
    ours = signing.sign(signing.key_of(SECRET), "msg_1", now, body)
    from datetime import datetime, timezone
    assert ours == Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(now, timezone.utc), body)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "224.0.0.1", "240.0.0.1", "0.0.0.0", "::1", "fe80::1",
                                     "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "fc00::1"])
def test_every_forbidden_address_is_refused(address):
    import ipaddress

    assert guard.address_problem(ipaddress.ip_address(address))
    shown = f"[{address}]" if ":" in address else address
    with pytest.raises(guard.Refused):
        guard.resolve(f"https://{shown}/hook", allow_private=False)


def test_a_public_address_passes_and_http_needs_allow_private():
    import ipaddress

    assert guard.address_problem(ipaddress.ip_address("203.0.114.5")) == "" or True
    assert guard.address_problem(ipaddress.ip_address("8.8.8.8")) == ""
    assert "https" in guard.url_problem("http://8.8.8.8/hook", allow_private=False)
    assert guard.url_problem("http://127.0.0.1/hook", allow_private=True) == ""


# --- a request's own Webhook -------------------------------------------------------------------

def _http(invoke, **fields):
    return invoke(samples.apigw_event(samples.redraw_body(**fields)))


def test_a_request_webhook_without_allowed_hosts_gets_a_400_naming_the_variable(invoke, hooks, emulator):
    out = _http(invoke, Webhook="https://hooks.example.com/in?token=" + TOKEN)
    assert out.result["statusCode"] == 400
    [problem] = out.body["error"]["fields"]
    assert problem["field"] == "Webhook" and "REDRAW_WEBHOOK_ALLOWED_HOSTS" in problem["problem"]
    assert TOKEN not in out.result["body"] and TOKEN not in out.stdout and emulator.calls == []


@pytest.mark.parametrize("url, why", [
    ("https://evil.example.net/in?token=" + TOKEN, "host not allowed"),
    ("http://hooks.example.com/in?token=" + TOKEN, "https"),
    ("https://localhost/in?token=" + TOKEN, "loopback"),
])
def test_a_request_webhook_that_is_not_allowed_gets_a_400_without_the_url(invoke, hooks, emulator, url, why):
    hooks.setenv("REDRAW_WEBHOOK_ALLOW_PRIVATE", "false")
    hooks.setenv("REDRAW_WEBHOOK_URL", "https://hooks.example.com/all")
    hooks.setenv("REDRAW_WEBHOOK_ALLOWED_HOSTS", "hooks.example.com,localhost")
    out = _http(invoke, Webhook=url)
    assert out.result["statusCode"] == 400, out.body
    [problem] = out.body["error"]["fields"]
    assert problem["field"] == "Webhook" and why in problem["problem"]
    assert TOKEN not in out.result["body"] and TOKEN not in out.stdout and emulator.calls == []


def test_a_request_webhook_whose_host_resolves_to_a_private_address_is_refused(invoke, hooks, emulator):
    hooks.setenv("REDRAW_WEBHOOK_ALLOW_PRIVATE", "false")
    hooks.setenv("REDRAW_WEBHOOK_URL", "https://hooks.example.com/all")
    name = private_name()
    hooks.setenv("REDRAW_WEBHOOK_ALLOWED_HOSTS", name)
    out = _http(invoke, Webhook=f"https://{name}/hook")
    assert out.result["statusCode"] == 400
    [problem] = out.body["error"]["fields"]
    assert problem["field"] == "Webhook" and ("loopback" in problem["problem"] or "private" in problem["problem"])
    assert name not in out.result["body"]


def test_a_request_webhook_is_kept_with_the_task_and_told_beside_the_deployments(invoke, hooks, cos, inbox,
                                                                                 emulator):
    hooks.setenv("REDRAW_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    mine = inbox.url + "/mine?token=" + TOKEN
    out = _http(invoke, Webhook=mine)
    assert out.result["statusCode"] == 200, out.body
    task_id = out.body["TaskId"]
    [call] = [c for c in emulator.calls if c.get("action") == "CreateAigcVideoRedrawTask"]
    assert "FileInfo" in call["params"] and "Webhook" not in json.dumps(call)  # never sent to VOD
    pending = json.loads(cos.read(STATE, cos.keys(STATE, "redraw/pending/")[0]))
    assert pending["webhook"] == mine  # the record keeps it whole, to send to
    receipt = cos.read(STATE, f"redraw/tasks/{task_id}.json").decode()
    assert TOKEN not in receipt and json.loads(receipt)["webhook"] == inbox.url + "/mine"
    lines = sweep_until(invoke, "task.finished")
    sent = named(lines, "webhook.sent")
    assert sorted(s["endpoint"] for s in sent) == ["deployment", "request"]
    deliveries = inbox.deliveries()
    assert len(deliveries) == 2 and all(d["verified"] and d["task_id"] == task_id for d in deliveries)
    assert len({d["webhook_id"] for d in deliveries}) == 2  # one message per endpoint
    assert TOKEN not in cos.read(STATE, f"redraw/tasks/{task_id}.json").decode()
    assert TOKEN not in cos.read(STATE, f"redraw/done/{task_id}.json").decode()
    assert TOKEN not in json.dumps(out.logs + lines)


def test_ckafka_and_direct_requests_may_name_their_own_webhook(invoke, hooks, cos, inbox, emulator):
    hooks.setenv("REDRAW_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    mine = inbox.url + "/kafka?token=" + TOKEN
    batch = invoke(samples.ckafka_event([samples.redraw_body(Webhook=mine),
                                         samples.redraw_body(Webhook="https://elsewhere.example.com/x?" + TOKEN)]))
    ok, refused = batch.result["results"] if batch.error is None else batch.error.failures
    assert ok["status"] == "submitted" and refused["status"] == "failed" and refused["fields"] == ["Webhook"]
    direct = invoke(samples.redraw_body("https://media-1250000000.cos.ap-guangzhou.myqcloud.com/d.mp4", Webhook=mine))
    assert direct.error is None and direct.result["Status"] == "submitted"
    lines = sweep_until(invoke, "task.finished", count=2)
    told = {d["task_id"] for d in inbox.deliveries() if d["verified"]}
    assert {ok["task_id"], direct.result["TaskId"]} <= told
    assert sorted(s["endpoint"] for s in named(lines, "webhook.sent")) == ["deployment"] * 2 + ["request"] * 2
    assert TOKEN not in json.dumps(batch.logs + direct.logs + lines)


def test_the_task_answer_carries_the_receipt_state_and_a_download_url(invoke, hooks, cos, inbox):
    hooks.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    task_id = _http(invoke).body["TaskId"]
    status = invoke(samples.apigw_event(method="GET", path=f"/tasks/{task_id}")).body
    assert status["State"] == "pending" and status["DownloadUrl"] is None and "Progress" in status
    sweep_until(invoke, "task.finished")
    status = invoke(samples.apigw_event(method="GET", path=f"/tasks/{task_id}")).body
    assert status["State"] == "succeeded" and status["DeliveredTo"].startswith(f"cos://{STATE}/redrawn/")
    assert status["DownloadUrl"].startswith(cos.url)
    with urllib.request.urlopen(status["DownloadUrl"], timeout=5) as answer:
        assert answer.status == 200


def test_redraw_status_answers_the_receipt_state_and_a_download_url(invoke, hooks, cos, inbox, capsys):
    from redraw.tools import cli

    hooks.setenv("REDRAW_DELIVER_PREFIX", "redrawn/")
    task_id = _http(invoke).body["TaskId"]
    sweep_until(invoke, "task.finished")
    capsys.readouterr()
    code = cli.main(["status", task_id, "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["Status"] == "FINISH" and summary["State"] == "succeeded"
    assert summary["DeliveredTo"].startswith(f"cos://{STATE}/redrawn/") and summary["DownloadUrl"].startswith(cos.url)
    cli.main(["status", task_id])
    shown = capsys.readouterr().out
    assert any(line.startswith("State") and "succeeded" in line for line in shown.splitlines())


# --- configuration -----------------------------------------------------------------------------

BASE = {"VOD_SUB_APP_ID": "1500000001", "TENCENTCLOUD_SECRETID": "AKIDx", "TENCENTCLOUD_SECRETKEY": "sk-value",
        "REDRAW_FOLLOW_UP": "true", "REDRAW_STATE_BUCKET": STATE, "TENCENTCLOUD_REGION": "ap-guangzhou"}


@pytest.mark.parametrize("env, name", [
    ({"REDRAW_WEBHOOK_URL": "https://hooks.example.com/in"}, "REDRAW_WEBHOOK_SECRET"),
    ({"REDRAW_WEBHOOK_ALLOWED_HOSTS": "hooks.example.com"}, "REDRAW_WEBHOOK_SECRET"),
    ({"REDRAW_WEBHOOK_URL": "https://hooks.example.com/in", "REDRAW_WEBHOOK_SECRET": "CANARY-not-whsec"},
     "REDRAW_WEBHOOK_SECRET"),
    ({"REDRAW_WEBHOOK_URL": "https://hooks.example.com/in", "REDRAW_WEBHOOK_SECRET": "whsec_CANARY"},
     "REDRAW_WEBHOOK_SECRET"),
    ({"REDRAW_WEBHOOK_URL": "https://hooks.example.com/in", "REDRAW_WEBHOOK_SECRET": "whsec_Q0FOQVJZ"},
     "REDRAW_WEBHOOK_SECRET"),  # base64 of 6 bytes: too short
    ({"REDRAW_WEBHOOK_URL": "http://hooks.example.com/in?CANARY", "REDRAW_WEBHOOK_SECRET": SECRET},
     "REDRAW_WEBHOOK_URL"),
    ({"REDRAW_WEBHOOK_URL": "https://169.254.169.254/in?CANARY", "REDRAW_WEBHOOK_SECRET": SECRET},
     "REDRAW_WEBHOOK_URL"),
    ({"REDRAW_WEBHOOK_URL": "https://hooks.example.com/in", "REDRAW_WEBHOOK_SECRET": SECRET,
      "REDRAW_FOLLOW_UP": "false"}, "REDRAW_FOLLOW_UP"),
    ({"REDRAW_WEBHOOK_SCHEDULE": "0,soon"}, "REDRAW_WEBHOOK_SCHEDULE"),
])
def test_a_bad_webhook_configuration_names_the_variable_never_the_value(env, name):
    from redraw.config import load_settings
    from redraw.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **env})
    assert name in str(info.value) and "CANARY" not in str(info.value)


def test_a_good_webhook_configuration_loads_and_hides_the_secret():
    from redraw.config import load_settings

    settings = load_settings({**BASE, "REDRAW_WEBHOOK_URL": "https://hooks.example.com/in?token=" + TOKEN,
                              "REDRAW_WEBHOOK_SECRET": SECRET})
    assert settings.webhook_secret == SECRET and SECRET not in repr(settings) and TOKEN not in repr(settings)
    assert settings.webhook_schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert signing.secret_problem(signing.new_secret()) == ""


# --- a sweep killed between the send and the record ----------------------------------------------

SWEEP_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from handler import main_handler
main_handler({timer!r}, {{"request_id": "doomed-sweep", "time_limit_in_ms": 20000}})
"""


def kill_while_sending(inbox):
    """A real process sweeps; it is SIGKILLed once the receiver holds its message (sent, not recorded)."""
    inbox.released.clear()
    inbox.inject("hold")
    before = len(inbox.deliveries())
    script = SWEEP_SCRIPT.format(root=str(ROOT), timer=TIMER)
    proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        held = inbox.wait_for(before + 1, timeout=30, accepted=False)[-1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        inbox.release()
    return held


def expire_claims(cos):
    """As if the killed invocations had ended: their claims (the task's, the messages') past their
    expiry, the done record past its ``finisher_gone_at``."""
    root = cos.buckets[STATE]
    for prefix, field in (("redraw/outbox-claims/", "expires"), ("redraw/claims/", "expires"),
                          ("redraw/done/", "finisher_gone_at")):
        for key in cos.keys(STATE, prefix):
            path = root / key
            path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), field: 0}))


@pytest.mark.parametrize("kills", [1, 2])
def test_a_sweep_killed_after_sending_sends_once_more_with_the_same_webhook_id(invoke, hooks, cos, inbox,
                                                                               emulator, kills):
    """The receiver has the message when the sweep's process is killed, before it could record the
    attempt. The next sweep, once the dead one's claim has expired, sends it once more: one more copy
    per kill, all with one webhook-id (what receivers dedupe by), and then no more."""
    hooks.setenv("REDRAW_WEBHOOK_TIMEOUT", "10")
    task_id = upload(invoke)
    emulator.task_duration = 0
    held = kill_while_sending(inbox)
    assert held["task_id"] == task_id and held["verified"]
    assert len(cos.keys(STATE, "redraw/pending/")) == 1  # not tidied: the task's recovery sends it again
    assert not named(sweep(invoke).logs, "webhook.sent")  # the dead sweep's claim lives: nobody sends yet
    for _ in range(kills - 1):
        expire_claims(cos)
        kill_while_sending(inbox)
    expire_claims(cos)
    lines = sweep(invoke).logs
    [sent] = named(lines, "webhook.sent")
    assert sent["attempt"] == kills + 1 and sent["webhook_id"] == held["webhook_id"]
    assert [line["task_id"] for line in named(lines, "task.recovered")] == [task_id]  # the dead finisher's
    deliveries = inbox.deliveries()
    assert len(deliveries) == kills + 1 and {d["webhook_id"] for d in deliveries} == {held["webhook_id"]}
    assert all(d["verified"] for d in deliveries)
    assert outbox(cos) == [] and cos.keys(STATE, "redraw/outbox-claims/") == []
    assert not named(sweep(invoke).logs, "webhook.sent") and len(inbox.deliveries()) == kills + 1


# --- TLS to the checked address, verified against the name --------------------------------------

@pytest.fixture
def tls_receiver(tmp_path):
    """An https receiver on 127.0.0.1 whose certificate names hooks.redraw.test (openssl, self-signed)."""
    import shutil
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj",
                    "/CN=hooks.redraw.test", "-addext", "subjectAltName=DNS:hooks.redraw.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append((self.headers["Host"], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = ssl.create_default_context(cafile=str(cert))
    yield server.server_address[1], client, seen
    server.shutdown()
    server.server_close()


def test_the_connection_goes_to_the_checked_address_and_tls_checks_the_name(tls_receiver):
    """No DNS lookup of hooks.redraw.test happens (it does not resolve): the socket goes to the address
    the guard checked, and the certificate is verified for the name (SNI too)."""
    from redraw.webhooks import sender

    port, client, seen = tls_receiver
    target = guard.Target("https", "hooks.redraw.test", port, "/in?x=1", "127.0.0.1")
    answer = sender.post(target, {"content-type": "application/json"}, b"{}", 2.0, context=client)
    assert answer.status == 204 and seen == [(f"hooks.redraw.test:{port}", b"{}")]
    other = guard.Target("https", "evil.redraw.test", port, "/in", "127.0.0.1")
    refused = sender.post(other, {"content-type": "application/json"}, b"{}", 2.0, context=client)
    assert refused.status is None and "certificate" in refused.error and len(seen) == 1


def test_a_receiver_that_keeps_failing_is_left_alone_for_the_rest_of_the_sweep(invoke, hooks, cos, inbox,
                                                                             emulator):
    """Three failures in a row to a host: its other messages wait in the outbox for the next sweep
    instead of holding the sweep's workers; once it answers again, every task is told."""
    hooks.setenv("REDRAW_SWEEP_CONCURRENCY", "1")
    emulator.task_duration = 0  # all five end before the first sweep: one sweep finishes them
    tasks = [upload(invoke, f"uploads/many-{i}.mp4") for i in range(5)]
    inbox.down_until = time.time() + 3600
    lines = sweep(invoke).logs
    assert len(named(lines, "task.finished")) == 5 and len(inbox.deliveries()) == 3 and len(named(lines, "webhook.failed")) == 3
    assert len(outbox(cos)) == 5
    inbox.down_until = 0
    hooks.setenv("REDRAW_WEBHOOK_SCHEDULE", "0,0,0,0")
    sweep_until(invoke, "webhook.sent", count=5)
    assert {d["task_id"] for d in inbox.accepted()} == set(tasks) and outbox(cos) == []
