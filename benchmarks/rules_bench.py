#!/usr/bin/env python3
"""Upload rules on the warm path: what matching a rule and applying it cost per COS record.

    python benchmarks/rules_bench.py            # table on stdout and in benchmarks/rules-results.md
    python benchmarks/rules_bench.py --quick    # fewer repetitions, writes nothing

In one process, with the function's own code (no VOD call: the part a rule adds is planning):

- ``RuleSet.match`` alone, for 0, 10, 100 and 500 (the most allowed) rules, on a key the most
  specific rule matches, a key the last rule tried matches, and a key no rule matches;
- ``rules.applied`` (the match, the metadata headers, the media name, the settings picked);
- what ten rules add to a container's start: ``load_settings`` (validating the rules, compiling their
  validator) timed inside fresh processes, ten rules and none alternating (the wall-clock cold start
  is ``followup_bench.py --only cold --cold-variants today,rules``);
- ``cos.plan_record`` on a whole record (validation, key decoding, SessionId, the above), with
  no rules and with ten rules plus two metadata headers: the difference is what rules add per record.

Each figure: the median over repetitions of (a loop of N calls, timed with perf_counter) / N; the
two ``plan_record`` loops alternate, and what rules add is the median of the per-pair differences.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redraw import rules  # noqa: E402
from redraw.config import load_settings  # noqa: E402
from redraw.sources.cos import plan_record  # noqa: E402
from redraw.tools.samples import cos_record  # noqa: E402

TARGET_US = 50.0
ENV = {"VOD_SUB_APP_ID": "1", "TENCENTCLOUD_SECRETID": "id", "TENCENTCLOUD_SECRETKEY": "key"}


def rule_list(n: int) -> list:
    """n rules under uploads/: team folders, one with a suffix, a media name and an expiry, one skip."""
    out = [{"name": f"team-{i}", "prefix": f"uploads/team-{i:03d}/", "Style": f"style-{i}", "TasksPriority": i % 21 - 10}
           for i in range(max(0, n - 2))]
    if n >= 2:
        out += [{"name": "hd", "prefix": "uploads/team-000/hd/", "suffix": ".mp4", "MediaName": "{stem} (hd)",
                 "ExpireTime": "P30D"}, {"name": "drafts", "prefix": "uploads/drafts/", "skip": True}]
    return out[:n]


def per_call_us(fn, n: int, reps: int) -> float:
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(samples)


_CONFIG_TIMER = """
import sys, time
t0 = time.perf_counter()
from redraw.config import load_settings
t1 = time.perf_counter()
load_settings()
t2 = time.perf_counter()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3)
"""


def config_cost(runs: int, ten_rules: str) -> tuple:
    """Median ms of (import redraw.config, load_settings) in fresh processes: without rules, with ten."""
    out: dict = {"none": [], "ten": []}
    for _ in range(runs):
        for name in ("none", "ten"):
            env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
            env.pop("REDRAW_RULES", None)
            if name == "ten":
                env["REDRAW_RULES"] = ten_rules
            done = subprocess.run([sys.executable, "-c", _CONFIG_TIMER], env=env, capture_output=True, text=True,
                                  check=True)
            out[name].append(tuple(float(x) for x in done.stdout.split()))
    return tuple(statistics.median(v[i] for v in out[name]) for name in ("none", "ten") for i in (0, 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; writes nothing")
    parser.add_argument("--out", help="markdown file (default benchmarks/rules-results.md; '-': none)")
    args = parser.parse_args()
    n, reps = (2000, 5) if args.quick else (20000, 15)
    rows = []
    keys = {"most specific": "uploads/team-000/hd/夏天 clip.mp4", "least specific": "uploads/team-{last}/a.mp4",
            "no rule": "elsewhere/clip.mp4"}
    for count in (0, 10, 100, 500):
        settings = load_settings(ENV)
        if count:
            path = Path(ROOT / "benchmarks" / ".work")
            path.mkdir(parents=True, exist_ok=True)
            file = path / f"rules-{count}.json"
            file.write_text(json.dumps(rule_list(count)))
            settings = load_settings({**ENV, "REDRAW_RULES_FILE": str(file)})
        ruleset = settings.rules
        for what, key in keys.items():
            key = key.replace("{last}", f"{max(0, count - 3):03d}")
            rows.append((f"RuleSet.match, {count} rules, key: {what}",
                         per_call_us(lambda r=ruleset, k=key: r.match(k), n, reps)))
        meta = {"x-cos-meta-redraw-style": "%E6%B0%B4%E5%BD%A9", "x-cos-meta-redraw-priority": "3",
                "x-cos-request-id": "abc", "Content-Type": "video/mp4"}
        key = keys["most specific"]
        rows.append((f"rules.applied, {count} rules, two metadata headers",
                     per_call_us(lambda s=settings, k=key, m=meta: rules.applied(s, k, m), n, reps)))
    plain = load_settings(ENV)
    file = ROOT / "benchmarks" / ".work" / "rules-10.json"
    ten = load_settings({**ENV, "REDRAW_RULES_FILE": str(file)})
    bare = cos_record("uploads/team-000/hd/夏天 clip.mp4")
    with_meta = cos_record("uploads/team-000/hd/夏天 clip.mp4", meta={"x-cos-meta-redraw-style": "ink",
                                                                   "x-cos-meta-redraw-priority": "3"})
    pairs = [(per_call_us(lambda: plan_record(bare, plain), n // 4, 1),
              per_call_us(lambda: plan_record(with_meta, ten), n // 4, 1)) for _ in range(reps * 2)]
    base, ruled = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    rows.append(("cos.plan_record, whole record, no rules", base))
    rows.append(("cos.plan_record, whole record, ten rules + two metadata headers", ruled))
    added = statistics.median(b - a for a, b in pairs)  # interleaved pairs: load on the machine hits both
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from followup_bench import TEN_RULES  # the cold-start variant's rules

    imp0, load0, imp10, load10 = config_cost(5 if args.quick else 30, TEN_RULES)
    rows.append(("container start: import redraw.config, fresh process (no rules / ten rules)",
                 f"{imp0 * 1e3:.0f} / {imp10 * 1e3:.0f}"))
    rows.append(("container start: load_settings, fresh process (no rules / ten rules)",
                 f"{load0 * 1e3:.0f} / {load10 * 1e3:.0f}"))
    lines = ["# Upload rules: warm-path cost per record", "",
             f"- date: {time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())}",
             f"- run: `python benchmarks/rules_bench.py` ({'quick' if args.quick else 'full'}: loops of {n} calls, "
             f"median of {reps}; Python {sys.version.split()[0]}, {os.cpu_count()} cores)", "",
             "| measurement | µs per call |", "|---|---|"]
    lines += [f"| {name} | {us if isinstance(us, str) else f'{us:.2f}'} |" for name, us in rows]
    verdict = "met" if added < TARGET_US else "MISSED"
    lines += ["", f"What ten rules and two metadata headers add to a record: **{added:.2f} µs** "
                  f"(target < {TARGET_US:.0f} µs: {verdict}).",
              f"What ten rules add to a container's start (load_settings): **{load10 - load0:.2f} ms**."]
    report = "\n".join(lines)
    print(report)
    out = args.out or (None if args.quick else str(ROOT / "benchmarks" / "rules-results.md"))
    if out and out != "-":
        Path(out).write_text(report + "\n", encoding="utf-8")
    return 0 if added < TARGET_US else 1


if __name__ == "__main__":
    raise SystemExit(main())
