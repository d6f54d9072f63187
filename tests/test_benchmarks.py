"""The benchmarks run (at tiny sizes); their figures live in the README, not in assertions here."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_benchmark_smoke_run():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_"))}
    out = subprocess.run([sys.executable, "benchmarks/bench.py", "--smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for row in ("cold start", "warm overhead", "connections", "burst", "soak"):
        assert row in out.stdout.lower(), row
