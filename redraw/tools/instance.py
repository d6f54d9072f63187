"""A simulated warm SCF instance: a separate process that imports ``handler`` once and
handles one event at a time (tests and ``benchmarks/scale.py``; not shipped).

Parent side: ``Instance(env, log_path)`` starts ``python -m redraw.tools.instance``;
``invoke(event, context)`` sends one event and waits for the answer
``{"ok": bool, "error": str|None, "result": ...}``. The child writes the function's
JSON log lines to ``log_path``; the protocol runs over its own stdin/stdout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

ROOT = Path(__file__).resolve().parents[2]


class Instance:
    def __init__(self, env: Dict[str, str], log_path: Path, python: str = sys.executable) -> None:
        self.log_path = log_path
        child_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_", "SCF_"))
                     and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        child_env.update(env)
        child_env["PYTHONPATH"] = str(ROOT) + os.pathsep + child_env.get("PYTHONPATH", "")
        self.process = subprocess.Popen([python, "-m", "redraw.tools.instance", str(log_path)], cwd=ROOT,
                                        env=child_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)

    def ready(self) -> None:
        """Wait until the child has imported the handler (a warm instance)."""
        line = self.process.stdout.readline() if self.process.stdout else ""
        if json.loads(line or "{}").get("ready") is not True:
            raise RuntimeError(f"instance did not start: {line!r}")

    def invoke(self, event: Any, context: Dict[str, Any]) -> Dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"event": event, "context": context}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("instance died")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                if self.process.stdin:
                    self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=5)


def _child(log_path: str) -> int:
    protocol = sys.stdout
    with open(log_path, "a", encoding="utf-8", buffering=1) as log:
        sys.stdout = log  # the function's JSON lines
        import handler
        protocol.write(json.dumps({"ready": True}) + "\n")
        protocol.flush()
        for line in sys.stdin:
            request = json.loads(line)
            answer: Dict[str, Optional[Any]] = {"ok": True, "error": None, "result": None}
            try:
                answer["result"] = handler.main_handler(request["event"], request["context"])
            except Exception as exc:  # noqa: BLE001 - SCF sees any exception as a failed invocation
                answer.update(ok=False, error=type(exc).__name__)
            protocol.write(json.dumps(answer, default=str) + "\n")
            protocol.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1]))
