"""``redraw loop`` (``make loop``): the whole follow-up loop on this machine, in seconds.

It starts ``redraw serve --watch DIR --follow-up`` (in-process VOD emulator, a local COS serving DIR
as the bucket, a sweep every ``--sweep-every`` s), writes a real MP4 into ``DIR/uploads/``, and
reports each step as the function's own log lines show it: the task created by the COS trigger, the
sweep's checks, the one ``task.finished`` line, the redrawn video delivered into ``DIR/redrawn/``
with the receipt beside it, and the signed webhook arriving at ``redraw serve``'s webhook inbox.
Exits 0 when the loop closed, 1 when it did not within ``--timeout``. It names serve's web console
(``redraw.tools.console``); ``--stay`` keeps serving afterwards, until Ctrl-C, so that the console can
be opened on the task.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .common import ROOT

SAMPLE = Path(__file__).resolve().parent / "data" / "redrawn-sample.mp4"


class _Server:
    """``redraw serve`` in a child process; its stdout (JSON log lines) and stderr kept as they come."""

    def __init__(self, folder: Path, sweep_every: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_", "SCF_"))}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "redraw.tools", "serve", "--port", "0", "--instances", "2", "--no-reload",
             "--quiet", "--watch", str(folder), "--follow-up", "--sweep-every", f"{sweep_every:g}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            errors="replace")
        self.logs: List[dict] = []
        self.notes: List[str] = []
        self.cv = threading.Condition()
        threading.Thread(target=self._pump, args=(self.process.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, False), daemon=True).start()

    def _pump(self, stream: Any, is_log: bool) -> None:
        for line in stream:
            with self.cv:
                if is_log:
                    try:
                        self.logs.append(json.loads(line))
                    except ValueError:
                        self.notes.append(line.rstrip("\n"))
                else:
                    self.notes.append(line.rstrip("\n"))
                self.cv.notify_all()

    def wait(self, find: Callable[[], Any], until: float) -> Any:
        with self.cv:
            while True:
                found = find()
                if found:
                    return found
                if self.process.poll() is not None or time.monotonic() >= until:
                    return None
                self.cv.wait(0.2)

    def log(self, event: str, **fields: Any) -> Optional[dict]:
        for line in self.logs:
            if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                return line
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def run(folder: Optional[str], *, timeout: float = 60.0, sweep_every: float = 2.0, keep: bool = False,
        stay: bool = False, out: Callable[[str], None] = print) -> int:
    started = time.monotonic()
    until = started + timeout
    root = Path(folder).resolve() if folder else Path(tempfile.mkdtemp(prefix="redraw-loop-"))
    (root / "uploads").mkdir(parents=True, exist_ok=True)

    def step(label: str, text: str) -> None:
        out(f"  {time.monotonic() - started:5.1f} s  {label:<10} {text}")

    out("redraw loop: upload -> task -> sweep -> task.finished -> the redrawn video -> the webhook, on local emulators "
        "(nothing reaches Tencent Cloud)")
    server = _Server(root, sweep_every)
    try:
        ready = server.wait(lambda: next((n for n in server.notes if "follow-up on" in n), None), until)
        if not ready:
            return _fail(out, "the server did not start", server)
        step("serving", f"redraw serve --watch {root} --follow-up --sweep-every {sweep_every:g}")
        console = _console_url(server.notes)
        if console:
            step("console", f"{console} shows the task live ({'open until Ctrl-C' if stay else '--stay keeps it open'})")
        key = f"uploads/loop-{time.strftime('%H%M%S')}.mp4"
        tmp = root / ".loop-upload.tmp"
        shutil.copyfile(SAMPLE, tmp)
        os.replace(tmp, root / key)  # moved in complete, as an upload appears in a bucket
        step("upload", f"{key} ({(root / key).stat().st_size} bytes) into the bucket folder")
        record = server.wait(lambda: server.log("cos.record", key=key, outcome="submitted")
                             or server.log("cos.record", key=key), until)
        if not record or record.get("outcome") != "submitted":
            return _fail(out, f"the COS trigger did not create a task for {key}", server)
        task_id = record["task_id"]
        step("task", f"{task_id} (SessionId {record.get('session_id')}), recorded: {record.get('recorded')}")
        finished = server.wait(lambda: server.log("task.finished", task_id=task_id), until)
        if not finished:
            return _fail(out, f"no task.finished line for {task_id}", server)
        checks = sum(1 for n in server.notes if n.startswith("redraw: sweep:"))
        step("finished", f"task.finished: {finished['outcome']} after {finished.get('duration_s')} s of "
                         f"redrawing ({checks} sweeps so far)")
        delivered = finished.get("delivered_to") or ""
        target = root / delivered.split("/", 3)[3] if delivered.count("/") >= 3 else None
        if finished["outcome"] != "succeeded" or target is None or not target.is_file():
            return _fail(out, f"the redrawn video was not delivered ({delivered or 'no delivered_to'})", server)
        step("delivered", f"{target.relative_to(root)} ({target.stat().st_size} bytes), {delivered}")
        receipt = root / str(finished.get("receipt"))
        state = server.wait(lambda: _final_state(receipt), until)  # updated just after the line
        step("receipt", f"{receipt.relative_to(root)}: state {state!r}")
        told = server.wait(lambda: next((n for n in server.notes if n.startswith("webhook: ") and task_id in n),
                                        None), until)
        if not told or "NOT VERIFIED" in told:
            return _fail(out, f"the webhook inbox got no verified message for {task_id}", server)
        sent = server.log("webhook.sent", task_id=task_id) or {}
        step("webhook", f"{told[len('webhook: '):]} (Standard Webhooks, webhook-id {sent.get('webhook_id')}, "
                        f"attempt {sent.get('attempt')})")
        out(f"the loop closed in {time.monotonic() - started:.1f} s; the task.finished line:")
        out(json.dumps(finished, ensure_ascii=False))
        if stay and console:
            out(f"still serving: the console at {console} shows the task, before and after; Ctrl-C stops")
            try:
                while server.process.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        server.stop()
        if folder is None and not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            out(f"the bucket folder stays at {root}")


def _console_url(notes: List[str]) -> Optional[str]:
    """The console's URL from serve's banner lines (``redraw: console: http://...``)."""
    for note in notes:
        if note.startswith("redraw: console: "):
            return note.split("console: ", 1)[1].split(" ", 1)[0]
    return None


def _final_state(receipt: Path) -> Optional[str]:
    try:
        state = json.loads(receipt.read_text(encoding="utf-8")).get("state")
    except (OSError, ValueError):
        return None
    return state if state != "pending" else None


def _fail(out: Callable[[str], None], what: str, server: _Server) -> int:
    out(f"redraw loop: {what}; the server's last lines:")
    for line in server.notes[-10:]:
        out("  " + line)
    for entry in server.logs[-5:]:
        if entry.get("level") in ("warning", "error"):
            out("  " + json.dumps(_short(entry), ensure_ascii=False))
    return 1


def _short(line: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in line.items() if k not in ("timestamp", "function")}

