#!/usr/bin/env python3
"""Webhook soak: every task's end reaches a failing receiver at least once, verified, duplicates only
with the same ``webhook-id``, with sweeps killed, some right after sending a message.

    python benchmarks/webhook_soak.py            # 1,000 uploads; writes benchmarks/webhook-soak-results.md
    python benchmarks/webhook_soak.py --smoke    # 10 uploads, a few seconds; writes nothing

The follow-up soak (benchmarks/followup_soak.py: instance processes, SCF's async queue and retries,
overlapping timer sweeps, SIGKILLs, faulty COS and VOD) with webhooks on: ``REDRAW_WEBHOOK_URL`` points
at a ``redraw.tools.inbox.WebhookInbox`` that verifies each delivery with the reference
``standardwebhooks`` library and

- fails ``--fail-rate`` of the requests (answers 500, never answers: a timeout, or resets the connection);
- is down (503 to everything) for ``--down`` seconds in the middle of the run;
- and, ``--kill-after-send`` of the time, has the sweep that sent a message SIGKILLed before the
  answer reaches it (sent, not recorded: the case that makes a second copy).

Time is compressed by ``--compress`` (default 30): the Standard Webhooks schedule (0 s, 5 s, 5 min,
30 min, 2 h, ...) becomes 0, 0.17 s, 10 s, 60 s, 4 min, ...; the timer ticks every 2 s (1 min / 30); the
receiver is down for 4 s (2 min / 30). Timeouts are not compressed by the same factor (an attempt may
take 1 s here, 10 s deployed).

Counted from the receiver (every request it got, verified or not, and what it answered) and the
instances' log files: tasks whose end was accepted by the receiver at least once (target: all),
copies accepted more than once (counted; each such pair must share its webhook-id), deliveries that
did not verify (0), ``webhook.abandoned`` lines (0), messages left in the outbox (0).
"""
from __future__ import annotations

import collections
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _support as S  # noqa: E402
import followup_soak as F  # noqa: E402
from _support import BENCH  # noqa: E402

from redraw.config import DEFAULT_WEBHOOK_SCHEDULE  # noqa: E402
from redraw.tools.inbox import WebhookInbox  # noqa: E402
from redraw.webhooks.signing import new_secret  # noqa: E402

OUTBOX = F.STATE + "outbox/"


class WebhookSoak(F.Soak):
    def __init__(self, args: Any, workdir: Path) -> None:
        super().__init__(args, workdir)
        self.inbox = WebhookInbox(new_secret(), quiet=True, fault_rate=args.fail_rate,
                                  faults=("500", "timeout", "reset"), fault_seed=args.seed,
                                  slow_s=args.webhook_timeout * 2)
        self.kill_rng = random.Random(f"{args.seed}:webhook-kill")
        self.sent_kills = 0

    def extra_env(self) -> Dict[str, str]:
        schedule = ",".join(f"{d / self.args.compress:g}" for d in DEFAULT_WEBHOOK_SCHEDULE)
        return {"REDRAW_WEBHOOK_URL": f"{self.inbox.url}/hook?token=soak-token",
                "REDRAW_WEBHOOK_SECRET": self.inbox.secret, "REDRAW_WEBHOOK_ALLOW_PRIVATE": "true",
                "REDRAW_WEBHOOK_SCHEDULE": schedule, "REDRAW_WEBHOOK_TIMEOUT": f"{self.args.webhook_timeout:g}"}

    def open_work(self) -> List[str]:
        return super().open_work() + self.cos.keys(F.BUCKET, OUTBOX)

    def run(self) -> Dict[str, Any]:
        self.inbox.on_delivery = self.maybe_kill_sender
        with self.inbox:
            threading.Thread(target=self.outage, daemon=True).start()
            return super().run()

    def outage(self) -> None:
        """Down for ``--down`` seconds once half the uploads have been sent."""
        half = self.args.uploads / self.args.rate / 2
        if not self.stop.wait(half):
            self.inbox.down_until = time.time() + self.args.down
            self.down_at = time.time()

    def maybe_kill_sender(self, delivery: dict) -> None:
        """Before the receiver answers: SIGKILL the sweep that is sending this message (its claim names
        it), so that it never records the attempt."""
        if self.sent_kills >= self.args.max_send_kills or self.kill_rng.random() >= self.args.kill_after_send:
            return
        state = self.cos.buckets[F.BUCKET] / F.STATE
        task_id = delivery.get("task_id") or ""
        claims = []
        for folder in (state / "outbox-claims" / f"{task_id}.deployment", state / "claims" / task_id):
            try:  # a later attempt's sender holds its claim; a first attempt's, the task's (its finisher)
                claims = sorted(folder.iterdir())
            except OSError:
                continue
            if claims:
                break
        try:
            holder = json.loads(claims[-1].read_text(encoding="utf-8")).get("request_id")
        except (IndexError, OSError, ValueError):
            return
        for slot in self.slots:
            busy = slot.busy
            if busy and busy[1] == holder and self.kill(slot, holder, "after sending a webhook"):
                self.sent_kills += 1
                return

    def account(self, plans: List[List[str]], logs: List[Path], vod: Any, cos: Any, wall: float,
                timed_out: bool) -> Dict[str, Any]:
        result = super().account(plans, logs, vod, cos, wall, timed_out)
        lines = [json.loads(raw) for path in logs
                 for raw in path.read_text(encoding="utf-8", errors="replace").splitlines() if raw.startswith("{")]
        # the tasks the follow-up finished (their done records): each must be told; a task VOD created
        # whose answer was lost (task.unrecorded, no TaskId) is never followed, so never told
        done = F.STATE + "done/"
        tasks = [key[len(done):-len(".json")] for key in cos.keys(F.BUCKET, done)]
        deliveries = self.inbox.deliveries()
        accepted = collections.defaultdict(list)
        for d in deliveries:
            if d["answered"] == "200" and d["verified"]:
                accepted[d["task_id"]].append(d["webhook_id"])
        events = collections.Counter(line.get("event") for line in lines
                                     if str(line.get("event", "")).startswith("webhook."))
        attempts = collections.Counter(line.get("attempt") for line in lines if line.get("event") == "webhook.sent")
        result["webhook"] = {
            "tasks": len(tasks), "told": sum(1 for t in tasks if accepted.get(t)),
            "missed": [t for t in tasks if not accepted.get(t)],
            "duplicates": sum(len(ids) - 1 for ids in accepted.values() if len(ids) > 1),
            "duplicate_tasks": sum(1 for ids in accepted.values() if len(ids) > 1),
            "duplicates_other_id": [t for t, ids in accepted.items() if len(set(ids)) > 1],
            "requests": len(deliveries), "answered": collections.Counter(d["answered"] for d in deliveries),
            "unverified": [d["error"] for d in deliveries if not d["verified"] and d["complete"]],
            "cut_in_transit": sum(1 for d in deliveries if not d["complete"]),
            "events": events, "sent_on_attempt": attempts, "abandoned": events.get("webhook.abandoned", 0),
            "outbox_left": len(cos.keys(F.BUCKET, OUTBOX)),
            "claims_left": len(cos.keys(F.BUCKET, F.STATE + "outbox-claims/")),
            "kills_after_send": self.sent_kills,
            "leaked": sum(1 for path in logs if "soak-token" in path.read_text(encoding="utf-8", errors="replace")),
            "delay": _delays(lines, deliveries),
        }
        return result


def _delays(lines: List[dict], deliveries: List[dict]) -> Dict[str, float]:
    """Seconds from each task.finished line to its first accepted delivery (median, p95, max)."""
    from datetime import datetime

    ended = {}
    for line in lines:
        if line.get("event") in ("task.finished", "task.recovered") and line.get("task_id") not in ended:
            ended[line["task_id"]] = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
    first: Dict[str, float] = {}
    for d in deliveries:
        if d["answered"] == "200" and d["task_id"] in ended and d["task_id"] not in first:
            first[d["task_id"]] = d["received_at"] - ended[d["task_id"]]
    values = sorted(first.values()) or [0.0]
    return {"median": S.median(values), "p95": S.percentile(values, 0.95), "p99": S.percentile(values, 0.99),
            "max": values[-1]}


def webhook_problems(r: Dict[str, Any]) -> List[str]:
    w = r["webhook"]
    out = []
    for name, what in (("missed", "tasks whose end never reached the receiver"),
                       ("duplicates_other_id", "tasks told twice under different webhook-ids")):
        if w[name]:
            out.append(f"{len(w[name])} {what}, e.g. {w[name][:3]}")
    if w["unverified"]:
        out.append(f"{len(w['unverified'])} whole deliveries that did not verify: {w['unverified'][:3]}")
    for name, what in (("abandoned", "webhook.abandoned lines"),
                       ("outbox_left", "messages left in the outbox"), ("leaked", "logs showing the URL's query")):
        if w[name]:
            out.append(f"{w[name]} {what}")
    return out


def render(r: Dict[str, Any]) -> str:
    w, p = r["webhook"], r["params"]

    def fmt(counter: Dict[Any, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))) or "none"
    rows = [
        ["tasks whose end reached the receiver (accepted, verified), of those the follow-up finished",
         f"{w['told']} of {w['tasks']}", str(w["tasks"]), not w["missed"]],
        ["tasks missed", str(len(w["missed"])), "0", not w["missed"]],
        ["duplicate copies accepted (tasks)", f"{w['duplicates']} ({w['duplicate_tasks']})", "counted", ""],
        ["duplicates under another webhook-id", str(len(w["duplicates_other_id"])), "0", not w["duplicates_other_id"]],
        ["whole deliveries that did not verify (standardwebhooks)", str(len(w["unverified"])), "0",
         not w["unverified"]],
        ["requests cut short in transit (their sender killed mid-request)", str(w["cut_in_transit"]), "", ""],
        ["`webhook.abandoned` lines", str(w["abandoned"]), "0", not w["abandoned"]],
        ["messages left in the outbox (claims left)", f"{w['outbox_left']} ({w['claims_left']})", "0",
         not w["outbox_left"]],
        ["log files showing the URL's query", str(w["leaked"]), "0", not w["leaked"]],
        ["requests the receiver got (by answer)", f"{w['requests']} ({fmt(w['answered'])})", "", ""],
        ["`webhook.*` lines", fmt(w["events"]), "", ""],
        ["`webhook.sent` by attempt", fmt(w["sent_on_attempt"]), "", ""],
        ["sweeps killed after sending, before recording", str(w["kills_after_send"]), "", ""],
        ["task end noticed → first accepted delivery (median / p95 / p99 / max), compressed time",
         f"{w['delay']['median']:.2f} s / {w['delay']['p95']:.2f} s / {w['delay']['p99']:.2f} s / "
         f"{w['delay']['max']:.1f} s", "", ""],
    ]
    table = S.markdown_table(["what", "value", "target", "result"],
                             [[a, b, c or "—", "info" if d == "" else ("PASS" if d else "FAIL")] for a, b, c, d in rows])
    schedule = ", ".join(f"{d / p['compress']:g}" for d in DEFAULT_WEBHOOK_SCHEDULE)
    head = ["# redraw webhook soak", "",
            f"- receiver: fails {p['fail_rate']:.0%} of requests (500, no answer, connection reset), down "
            f"{p['down']:g} s mid-run; sweeps killed after sending a message {p['kill_after_send']:.0%} of the time "
            f"(at most {p['max_send_kills']})",
            f"- time compressed {p['compress']:g}x: schedule {schedule} s; attempt timeout "
            f"{p['webhook_timeout']:g} s", ""]
    return "\n".join(head) + "\n" + table + "\n\n" + F.render(r)


def main(argv: Optional[List[str]] = None) -> int:
    parser = F.parser_for(__doc__.split("\n\n")[0])
    parser.set_defaults(out=str(BENCH / "webhook-soak-results.md"), seed=20)
    parser.add_argument("--fail-rate", type=float, default=0.2)
    parser.add_argument("--down", type=float, default=4.0, help="seconds the receiver is down mid-run")
    parser.add_argument("--compress", type=float, default=30.0, help="time compression of the schedule")
    parser.add_argument("--webhook-timeout", type=float, default=1.0, help="REDRAW_WEBHOOK_TIMEOUT")
    parser.add_argument("--kill-after-send", type=float, default=0.05)
    parser.add_argument("--max-send-kills", type=int, default=20)
    args = parser.parse_args(argv)
    if args.smoke:
        args.uploads, args.instances, args.out = min(args.uploads, 10), 2, "-"
        args.rate, args.sweep_every, args.kill_every, args.time_limit = 50.0, 0.3, 0.0, 5.0
        args.cos_fault_rate = args.vod_fault_rate = args.output_fault_rate = 0.0
        args.durations, args.timeout, args.http_timeout = (0.1, 0.3), 25.0, 1.0
        args.compress, args.down, args.webhook_timeout = 300.0, 0.5, 0.5
        args.kill_after_send, args.max_send_kills = 0.3, 1
    result = F.run_soak(WebhookSoak, args, "webhook-soak", render)
    found = webhook_problems(result) + F.problems(result, killed_window_ok=True)
    for problem in found:
        print(f"[webhook-soak] PROBLEM: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
