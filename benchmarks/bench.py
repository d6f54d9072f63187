#!/usr/bin/env python3
"""redraw benchmarks: cold start, warm overhead, connection reuse, burst throughput, package size.

    python benchmarks/bench.py            # full run (what `make bench` runs), writes benchmarks/results.md
    python benchmarks/bench.py --quick    # fewer repetitions
    python benchmarks/bench.py --smoke    # everything at tiny sizes, < 30 s, offline; writes nothing

Everything talks to ``redraw.tools.emulator.VodEmulator`` on 127.0.0.1 inside this process.

Cold start
    A fresh ``python -B -S`` process (no site, no bytecode writes) with PYTHONPATH
    pointing at a read-only copy of the code + its dependencies, as SCF runs it:
    it imports the handler module and handles one COS upload event. Wall time of
    the whole process and its peak RSS (``os.wait4`` rusage), median of N
    interleaved runs (order rotated every round, one discarded warm-up round).
    Variants: the project from source (``pip install --target`` of
    requirements.txt, no .pyc), the project from ``dist/redraw-scf-local.zip``
    (what ``make package-local`` builds: bytecode, unchecked-hash), and the two naive
    baselines (``naive_plain_handler.py``, the bar; ``naive_handler.py``, with models;
    + ``tencentcloud-sdk-python-vod``) from source and with ``compileall
    --invalidation-mode unchecked-hash``. When ``dist/redraw-scf.zip`` and a Python 3.10
    are available, the SCF package is started under 3.10 against the plain baseline
    built from SCF's 3.10 wheels, from source and with 3.10 bytecode.
    ``pip install --target`` trees are cached under benchmarks/.work/.

Warm overhead
    In-process: ``main_handler`` on a one-record COS event (a distinct upload each
    time) vs a bare signed ``CommonClient.call_json`` of the same request on a
    keep-alive client, interleaved, median. Emulator: latency 0, no rate limit;
    the function runs with VOD_MAX_RPS=1000 and VOD_PACING=fixed (far above the
    calls made) so its pacing never waits: the row measures the handler's own
    overhead (adaptive pacing would start a new container at 3/s). Log lines are formatted as usual and written to /dev/null.

Connections: N warm invocations in one container → TCP connections the emulator accepted.

Burst: a 100-record COS event, default configuration (VOD_MAX_RPS=20,
VOD_MAX_CONCURRENCY=10), emulator latency 0.2 s and 20 requests/s; records/s end
to end, RequestLimitExceeded left in the results, and the emulator's rejections.
Measured in a warm container (its pacer learned the rate from a 50-record event
before it), and, for information, in a new one (adaptive slow start from 3/s).
The naive baseline's sequential loop gets the same records for comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _support as S  # noqa: E402
from _support import BENCH, ROOT, WORK  # noqa: E402

from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator  # noqa: E402
from redraw.tools.samples import cos_event  # noqa: E402

MODES: Dict[str, Dict[str, Any]] = {
    "full": dict(cold_runs=7, warmup_round=True, warm_iters=200, warm_warmup=30, conn_calls=20,
                 burst_records=100, learn_records=50, naive_records=100, scf310=True),
    "quick": dict(cold_runs=3, warmup_round=True, warm_iters=100, warm_warmup=20, conn_calls=20,
                  burst_records=100, learn_records=50, naive_records=30, scf310=True),
    "smoke": dict(cold_runs=1, warmup_round=False, warm_iters=20, warm_warmup=5, conn_calls=5,
                  burst_records=12, learn_records=12, naive_records=5, scf310=False),
}
CONTEXT = {"request_id": "bench", "function_name": "redraw-bench", "function_version": "$LATEST",
           "namespace": "default", "memory_limit_in_mb": 64, "time_limit_in_ms": 60000}
BURST_LATENCY, BURST_RPS = 0.2, 20


class BenchError(RuntimeError):
    """A benchmark could not run correctly (as opposed to missing a target)."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- cold start ----------------------------------------------------------------------------------

_RUNNER = r"""
import json, sys
event_path, module, out_path = sys.argv[1:4]
with open(event_path) as f:
    event = json.load(f)
handler = __import__(module)
result = handler.main_handler(event, {"request_id": "cold-start", "function_name": "redraw-bench",
                                      "time_limit_in_ms": 30000, "memory_limit_in_mb": 64})
with open(out_path, "w") as f:
    json.dump(result, f, default=str)
"""


@dataclass
class Variant:
    key: str
    label: str
    module: str
    python: str
    path: Path
    project: bool
    times: List[float] = field(default_factory=list)
    cpu: List[float] = field(default_factory=list)
    rss: List[float] = field(default_factory=list)

    def ok(self, result: Any) -> bool:
        if self.project:
            return isinstance(result, dict) and result["results"][0]["status"] == "submitted"
        return isinstance(result, list) and bool(result and result[0].get("TaskId"))


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))


def _add_code(dst: Path, module: str) -> None:
    if module == "handler":
        shutil.copyfile(ROOT / "handler.py", dst / "handler.py")
        shutil.copytree(ROOT / "redraw", dst / "redraw",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tools"))
    else:
        shutil.copyfile(BENCH / f"{module}.py", dst / f"{module}.py")


#: The two naive baselines: (module, label). The plain one has no pydantic models: the harder bar.
BASELINES = (("naive_plain_handler", "plain naive"), ("naive_handler", "naive with models"))


def _compiled(python: str, deps: Path) -> Path:
    """``deps`` compiled once by ``python`` (compileall, unchecked-hash), cached beside it."""
    tag = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    compiled = WORK / f"bytecode-{tag}-{deps.name}"
    if not (compiled / ".complete").exists():
        log(f"compiling {deps.name} with {tag} (compileall, unchecked-hash)")
        shutil.rmtree(compiled, ignore_errors=True)
        _copy_tree(deps, compiled)
        proc = subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                               "unchecked-hash", str(compiled)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError("compileall failed on the baseline's dependencies:\n" + proc.stdout[-2000:])
        (compiled / ".complete").write_text("ok\n")
    return compiled


def _baseline_variants(tag: str, label: str, python: str, deps: Path, tmp: Path) -> List[Variant]:
    """Each naive baseline from source and with its own bytecode, on ``python``."""
    compiled = _compiled(python, deps)
    out = []
    for module, name in BASELINES:
        key = "plain" if module == "naive_plain_handler" else "naive"
        src = Variant(f"{key}{tag}-source", f"{name}{label}, source only", module, python,
                      tmp / f"{key}{tag}-source", False)
        byte = Variant(f"{key}{tag}-bytecode", f"{name}{label}, bytecode", module, python,
                       tmp / f"{key}{tag}-bytecode", False)
        _copy_tree(deps, src.path)
        _add_code(src.path, module)
        _copy_tree(compiled, byte.path)
        _add_code(byte.path, module)
        code = ("import py_compile, sys; py_compile.compile(sys.argv[1], cfile=__import__('importlib.util')"
                ".util.cache_from_source(sys.argv[1]), doraise=True, "
                "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)")
        subprocess.run([python, "-c", code, str(byte.path / f"{module}.py")], check=True)
        out += [src, byte]
    return out


def _read_only(path: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)


def _writable(path: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


def _pycache_dirs(path: Path) -> List[Path]:
    return [p for p in path.rglob("__pycache__") if p.is_dir()]


def _fresh(zip_path: Path) -> bool:
    """The zip exists and is newer than every file it is built from."""
    if not zip_path.exists():
        return False
    built = zip_path.stat().st_mtime
    sources = [ROOT / "handler.py", ROOT / "requirements.txt", ROOT / "scripts" / "package.py",
               *(ROOT / "redraw").rglob("*.py")]
    return all(p.stat().st_mtime <= built for p in sources if p.exists())


def _dev_requirement(name: str) -> str:
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.lower().startswith(name):
            return line
    return name


def prepare_variants(mode: str, tmp: Path, cfg: dict) -> List[Variant]:
    pk = S.load_packager()
    vod = _dev_requirement("tencentcloud-sdk-python-vod")
    smoke = mode == "smoke"

    def deps(extra: List[str]) -> Path:
        cached = pk.deps_path(WORK, False, extra, from_env=False)
        if (cached / ".complete").exists() or not smoke:
            return pk.install_deps(WORK, False, extra)
        return pk.install_deps(WORK, False, extra, from_env=True)  # smoke: offline copy of the venv

    log("dependency trees (pip install --target, cached in benchmarks/.work/)")
    project_deps, baseline_deps = deps([]), deps([vod])
    for tree in (project_deps, baseline_deps):
        if _pycache_dirs(tree):
            raise BenchError(f"{tree} holds __pycache__: the source-only variants must have no bytecode")

    # The project's package for this interpreter.
    local_zip = ROOT / "dist" / "redraw-scf-local.zip"
    if not _fresh(local_zip):
        cmd = [sys.executable, str(ROOT / "scripts" / "package.py"), "--target", "local"]
        if smoke:
            local_zip = WORK / "redraw-scf-local-smoke.zip"
            cmd += ["--output", str(local_zip), "--build-dir", str(WORK / "build"), "--no-verify"]
            if not (pk.deps_path(WORK / "build" / "cache", False) / ".complete").exists():
                cmd.append("--deps-from-env")
        log("building " + str(local_zip.relative_to(ROOT)) + " (missing or older than the sources)")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError("package.py failed:\n" + proc.stdout + proc.stderr)

    python = sys.executable
    variants = [
        Variant("project-source", "project, source only", "handler", python, tmp / "project-source", True),
        Variant("project-package", f"project, package ({local_zip.name})", "handler", python,
                tmp / "project-package", True),
    ]
    _copy_tree(project_deps, variants[0].path)
    _add_code(variants[0].path, "handler")
    with zipfile.ZipFile(local_zip) as zf:
        zf.extractall(variants[1].path)
    variants += _baseline_variants("", "", python, baseline_deps, tmp)

    scf_zip = ROOT / "dist" / "redraw-scf.zip"
    if cfg["scf310"] and _fresh(scf_zip):
        py310 = pk.find_python(pk.SCF_PYTHON)
        has_pyc = any(n.endswith(".cpython-310.pyc") for n in zipfile.ZipFile(scf_zip).namelist())
        if py310 and has_pyc:
            v = Variant("project-scf310", "project, dist/redraw-scf.zip on CPython 3.10", "handler",
                        py310, tmp / "project-scf310", True)
            with zipfile.ZipFile(scf_zip) as zf:
                zf.extractall(v.path)
            variants.append(v)
            log("the plain naive baseline for CPython 3.10 (SCF wheels)")
            scf_deps = pk.install_deps(WORK, True, [vod])
            variants += [b for b in _baseline_variants("310", " on CPython 3.10", py310, scf_deps, tmp)
                         if b.key.startswith("plain")]
        else:
            log("dist/redraw-scf.zip on CPython 3.10: skipped (" +
                ("no Python 3.10 found" if not py310 else "the zip has no 3.10 bytecode") + ")")
    elif cfg["scf310"]:
        log("dist/redraw-scf.zip on CPython 3.10: skipped (missing or older than the sources; "
            "`make package` builds it)")
    for v in variants:
        if not v.key.endswith(("package", "bytecode", "scf310")) and _pycache_dirs(v.path):
            raise BenchError(f"{v.key}: bytecode found in a source-only variant")
        _read_only(v.path)
    return variants


def cold_run(v: Variant, emu: VodEmulator, scratch: Path, n: int) -> None:
    event_path = scratch / f"event-{v.key}-{n}.json"
    out_path = scratch / f"result-{v.key}-{n}.json"
    log_path = scratch / f"log-{v.key}-{n}.txt"
    event_path.write_text(json.dumps(cos_event([f"uploads/cold/{v.key}-{n}.mp4"])))
    env = S.function_env(emu.url)
    env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), PYTHONPATH=str(v.path), LANG="C.UTF-8")
    before = emu.task_count
    empty = scratch / "cwd"
    empty.mkdir(exist_ok=True)
    with open(log_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([v.python, "-B", "-S", "-c", _RUNNER, str(event_path), v.module,
                                 str(out_path)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=str(empty), close_fds=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not out_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchError(f"cold start {v.key} exited {proc.returncode}:\n{tail}")
    result = json.loads(out_path.read_text())
    if not v.ok(result) or emu.task_count != before + 1:
        raise BenchError(f"cold start {v.key}: no task created: {str(result)[:500]}")
    v.times.append(wall)
    v.cpu.append(usage.ru_utime + usage.ru_stime)
    v.rss.append(usage.ru_maxrss / 1024.0)  # KiB → MiB


def cold_start(cfg: dict, mode: str) -> List[Variant]:
    tmp = Path(tempfile.mkdtemp(prefix="redraw-bench-"))
    try:
        variants = prepare_variants(mode, tmp / "code", cfg)
        scratch = tmp / "scratch"
        scratch.mkdir()
        with VodEmulator(rps=None) as emu:
            if cfg["warmup_round"]:
                log("cold start: warm-up round (page cache), discarded")
                for v in variants:
                    cold_run(v, emu, scratch, -1)
                    v.times.clear()
                    v.cpu.clear()
                    v.rss.clear()
            for n in range(cfg["cold_runs"]):
                order = variants[n % len(variants):] + variants[:n % len(variants)]
                for v in order:
                    cold_run(v, emu, scratch, n)
                log(f"cold start round {n + 1}/{cfg['cold_runs']}: " + ", ".join(
                    f"{v.key} {v.times[-1]:.3f}s/{v.rss[-1]:.0f}MB" for v in variants))
        for v in variants:
            if _pycache_dirs(v.path) and not v.key.endswith(("package", "bytecode", "scf310")):
                raise BenchError(f"{v.key}: a __pycache__ appeared in the read-only code directory")
        return variants
    finally:
        _writable(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


# --- in-process measurements ---------------------------------------------------------------------

def warm_overhead(cfg: dict) -> dict:
    import handler
    from tencentcloud.common.common_client import CommonClient
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    total = cfg["warm_warmup"] + cfg["warm_iters"]
    with VodEmulator(rps=None, latency=0.0) as emu:
        S.apply_env(S.function_env(emu.url, VOD_MAX_RPS="1000", VOD_PACING="fixed"))
        S.reset_container()
        events = [cos_event([f"uploads/warm/clip-{i}.mp4"], request_id=f"warm-{i}") for i in range(total)]
        with S.quiet_stdout():
            handler.main_handler(cos_event(["uploads/warm/template.mp4"]), CONTEXT)
        template = emu.calls[-1]["params"]
        http = HttpProfile(endpoint=emu.endpoint, protocol="http", reqTimeout=5, keepAlive=True)
        client = CommonClient("vod", "2018-07-17", Credential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY),
                              "ap-guangzhou", ClientProfile(httpProfile=http, language="en-US"))
        handler_ns: List[int] = []
        bare_ns: List[int] = []
        params = [dict(template, SessionId=f"bare-{i}") for i in range(total)]

        def run_handler(i: int) -> int:
            t0 = time.perf_counter_ns()
            result = handler.main_handler(events[i], CONTEXT)
            elapsed = time.perf_counter_ns() - t0
            if result["results"][0]["status"] != "submitted":
                raise BenchError(f"warm: handler did not submit: {result}")
            return elapsed

        def run_bare(i: int) -> int:
            t0 = time.perf_counter_ns()
            body = client.call_json("CreateAigcVideoRedrawTask", params[i])
            elapsed = time.perf_counter_ns() - t0
            if "TaskId" not in body.get("Response", {}):
                raise BenchError(f"warm: bare call failed: {body}")
            return elapsed

        with S.quiet_stdout():
            for i in range(total):
                if i % 2:
                    h, b = run_handler(i), run_bare(i)
                else:
                    b, h = run_bare(i), run_handler(i)
                if i >= cfg["warm_warmup"]:
                    handler_ns.append(h)
                    bare_ns.append(b)
        limiter_calls = total + 1
    h_med, b_med = S.median(handler_ns) / 1e3, S.median(bare_ns) / 1e3
    return {"handler_us": h_med, "bare_us": b_med, "ratio": h_med / b_med,
            "handler_p90_us": S.percentile(handler_ns, 0.9) / 1e3,
            "bare_p90_us": S.percentile(bare_ns, 0.9) / 1e3, "iters": cfg["warm_iters"],
            "limiter_calls": limiter_calls}


def connections(cfg: dict) -> dict:
    import handler

    n = cfg["conn_calls"]
    with VodEmulator(rps=None) as emu:
        S.apply_env(S.function_env(emu.url))
        S.reset_container()
        with S.quiet_stdout():
            for i in range(n):
                result = handler.main_handler(cos_event([f"uploads/conn/clip-{i}.mp4"]), CONTEXT)
                if result["results"][0]["status"] != "submitted":
                    raise BenchError(f"connections: not submitted: {result}")
        return {"invocations": n, "connections": emu.connections}


def _summarise_records(lines: List[dict], message: str) -> dict:
    records = [line for line in lines if line.get("event") == message]
    statuses: Dict[str, int] = {}
    for line in records:
        statuses[line.get("outcome")] = statuses.get(line.get("outcome"), 0) + 1
    return {"records": records, "statuses": statuses}


def burst(cfg: dict, warm: bool) -> dict:
    """One n-record event; ``warm``: into a container whose pacer has learned the rate (an earlier
    event of ``learn_records`` records, then a pause), else into a new container (adaptive pacing's slow start)."""
    import handler
    from redraw.errors import RetryableFailuresError

    n = cfg["burst_records"]
    with VodEmulator(rps=BURST_RPS, latency=BURST_LATENCY) as emu:
        S.apply_env(S.function_env(emu.url))  # defaults: VOD_MAX_RPS=20, VOD_MAX_CONCURRENCY=10
        S.reset_container()
        if warm:
            with S.quiet_stdout():
                handler.main_handler(cos_event([f"uploads/warm/clip-{i:03d}.mp4"
                                                for i in range(cfg["learn_records"])]), CONTEXT)
            time.sleep(1.5)  # the account's last second is free again
            emu.rate_limit_hits = 0
        tasks_before = emu.task_count
        event = cos_event([f"uploads/burst/clip-{i:03d}.mp4" for i in range(n)])
        capture = S.LogCapture()
        saved, sys.stdout = sys.stdout, capture
        raised = None
        try:
            started = time.perf_counter()
            try:
                handler.main_handler(event, CONTEXT)
            except RetryableFailuresError as exc:
                raised = exc
            elapsed = time.perf_counter() - started
        finally:
            sys.stdout = saved
        summary = _summarise_records(capture.lines(), "cos.record")
        left = sum(1 for r in summary["records"]
                   if r.get("outcome") == "failed" and str(r.get("error_code", "")).startswith("RequestLimitExceeded"))
        retried = sum(1 for r in summary["records"] for code in r.get("retried_after", [])
                      if str(code).startswith("RequestLimitExceeded"))
        return {"records": n, "elapsed": elapsed, "rate": n / elapsed, "statuses": summary["statuses"],
                "rle_left": left, "rle_retried": retried, "rate_limit_hits": emu.rate_limit_hits,
                "tasks": emu.task_count - tasks_before, "raised": raised is not None}


def naive_runs(cfg: dict) -> dict:
    """The baseline, in this process (imported last: it configures structlog globally)."""
    import naive_handler

    out: Dict[str, Any] = {}
    n = cfg["naive_records"]
    with VodEmulator(rps=BURST_RPS, latency=BURST_LATENCY) as emu:
        S.apply_env(S.function_env(emu.url))
        event = cos_event([f"uploads/naive/clip-{i:03d}.mp4" for i in range(n)])
        with S.quiet_stdout():
            started = time.perf_counter()
            results = naive_handler.main_handler(event, CONTEXT)
            elapsed = time.perf_counter() - started
        out.update(naive_records=n, naive_elapsed=elapsed, naive_rate=n / elapsed,
                   naive_rle=sum(1 for r in results if str(r.get("error", "")).startswith("RequestLimit")),
                   naive_tasks=emu.task_count)
    with VodEmulator(rps=None) as emu:
        S.apply_env(S.function_env(emu.url))
        with S.quiet_stdout():
            for i in range(cfg["conn_calls"]):
                naive_handler.main_handler(cos_event([f"uploads/naive-conn/{i}.mp4"]), CONTEXT)
        out["naive_connections"] = emu.connections
    return out


# --- report --------------------------------------------------------------------------------------

def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.2f} MB"


def build_report(mode: str, cfg: dict, variants: List[Variant], warm: Optional[dict], conn: Optional[dict],
                 bur: Optional[dict], naive: Optional[dict], soak: Optional[dict] = None) -> tuple:
    rows: List[List[str]] = []
    fails: List[str] = []

    def row(metric: str, value: str, target: str = "", ok: Optional[bool] = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        if ok is False:
            fails.append(metric)
        rows.append([metric, value, target or "—", verdict or "info"])

    by = {v.key: v for v in variants}
    for v in variants:
        row(f"cold start: {v.label}",
            f"{S.median(v.times):.3f} s (min {min(v.times):.3f}, max {max(v.times):.3f}; "
            f"CPU {S.median(v.cpu):.3f} s); peak RSS {S.median(v.rss):.1f} MB")
    t = {k: S.median(v.times) for k, v in by.items()}
    cpu = {k: S.median(v.cpu) for k, v in by.items()}

    def ratio(a: str, b: str, target: Optional[float], what: str) -> None:
        if a in t and b in t:
            r = t[a] / t[b]
            row(f"cold start ratio: {what}", f"{r:.3f} (CPU time {cpu[a] / cpu[b]:.3f})",
                f"≤ {target:.2f}" if target else "", None if target is None else r <= target)

    ratio("project-package", "plain-bytecode", 1.0, "project package / plain naive bytecode")
    ratio("project-package", "plain-source", 0.25, "project package / plain naive source")
    ratio("project-source", "plain-source", 0.45, "project source / plain naive source")
    ratio("project-scf310", "plain310-bytecode", 1.0, "SCF zip / plain naive bytecode, CPython 3.10")
    ratio("project-scf310", "plain310-source", 0.25, "SCF zip / plain naive source, CPython 3.10")
    ratio("project-package", "naive-bytecode", None, "project package / naive with models bytecode")
    ratio("project-source", "naive-source", None, "project source / naive with models source")
    for key in ("project-source", "project-package", "project-scf310"):
        if key in by:
            rss = S.median(by[key].rss)
            row(f"peak RSS: {by[key].label}", f"{rss:.1f} MB", "≤ 40 MB", rss <= 40)
    for key in ("plain-bytecode", "naive-bytecode", "plain310-bytecode"):
        if key in by:
            row(f"peak RSS: {by[key].label}", f"{S.median(by[key].rss):.1f} MB")
    if warm is not None and conn is not None and bur is not None and naive is not None:
        row("warm: main_handler, 1-record COS event (median)",
            f"{warm['handler_us']:.0f} µs (p90 {warm['handler_p90_us']:.0f})")
        row("warm: bare CommonClient.call_json, same request (median)",
            f"{warm['bare_us']:.0f} µs (p90 {warm['bare_p90_us']:.0f})")
        row("warm overhead: main_handler / bare call", f"{warm['ratio']:.2f}×", "≤ 1.5×", warm["ratio"] <= 1.5)
        row(f"connections for {conn['invocations']} warm invocations", str(conn["connections"]), "1",
            conn["connections"] == 1)
        row(f"connections for {cfg['conn_calls']} invocations, baseline (new client per invocation)",
            str(naive["naive_connections"]))
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(bur["statuses"].items()))
        row(f"burst: {bur['records']}-record event into a warm container, records/s end to end",
            f"{bur['rate']:.1f}/s ({bur['elapsed']:.2f} s; {statuses})", "≥ 19/s", bur["rate"] >= 19)
        row("burst: RequestLimitExceeded left in the results", str(bur["rle_left"]), "0", bur["rle_left"] == 0)
        row("burst: emulator rate-limit rejections (RequestLimitExceeded sent)",
            f"{bur['rate_limit_hits']} (retried inside the handler: {bur['rle_retried']})")
        new = bur["new"]
        row("burst: the same event into a new container (adaptive slow start from 3/s)",
            f"{new['rate']:.1f}/s ({new['elapsed']:.2f} s; RequestLimitExceeded sent {new['rate_limit_hits']})")
        row(f"burst: baseline sequential loop, {naive['naive_records']} records",
            f"{naive['naive_rate']:.1f}/s ({naive['naive_elapsed']:.2f} s, RequestLimitExceeded {naive['naive_rle']})")
        for name, target in (("redraw-scf.zip", True), ("redraw-scf-local.zip", False)):
            path = ROOT / "dist" / name
            if path.exists():
                size = path.stat().st_size
                stale = "" if _fresh(path) else " (older than the sources: rebuild)"
                if target:
                    row(f"package size: dist/{name}", _mb(size) + stale, "< 10 MB", size < 10 * 1024 * 1024)
                else:
                    row(f"package size: dist/{name}", _mb(size) + stale)
            elif target:
                row(f"package size: dist/{name}", "not built (run `make package`)")

    if soak is not None:
        lost, twice = len(soak["lost"]), len(soak["twice_url"]) + len(soak["twice_session"])
        row(f"soak (tiny): {soak['records']} records, fault rate {soak['params']['fault_rate']}, "
            f"VOD_MAX_ATTEMPTS=1, {soak['redeliveries']} redeliveries",
            f"lost {lost}, created twice {twice}, statuses "
            + ", ".join(f"{k} {v}" for k, v in sorted(soak["statuses"].items())),
            "0 lost, 0 twice", lost == 0 and twice == 0)
    header = [f"# redraw benchmarks ({mode})", "", *S.machine_lines(), ""]
    table = S.markdown_table(["metric", "value", "target", "result"], rows)
    notes = [
        "",
        "Notes:",
        f"- Cold start: median of {cfg['cold_runs']} interleaved runs per variant (rotated order"
        f"{', one warm-up round discarded' if cfg['warmup_round'] else ''}); each run is a fresh "
        "`python -B -S` process whose PYTHONPATH is a read-only copy of code + dependencies, handling one "
        "COS upload event against the emulator in the benchmark process. Wall time covers the whole "
        "process (interpreter start to exit); peak RSS is the child's ru_maxrss (os.wait4).",
        "- Source-only variants: `pip install --no-compile --target` of requirements.txt "
        "(+ tencentcloud-sdk-python-vod for the baselines), no .pyc anywhere. Package: the zip from "
        "`make package-local` (bytecode compiled with --invalidation-mode unchecked-hash). Baseline "
        "bytecode: the same tree through `compileall --invalidation-mode unchecked-hash` by the same "
        "interpreter, the handler's own .pyc included. Plain naive: `naive_plain_handler.py` (VodClient, the "
        "SDK's models module, pydantic and structlog imported, no models of its own); naive with models: "
        "`naive_handler.py`. The CPython 3.10 rows use SCF's wheels (`pip install --platform`) for both.",
    ]
    if warm is not None:
        notes += [
            f"- Warm overhead: {warm['iters']} interleaved pairs after a warm-up; emulator latency 0 and no "
            "emulator rate limit (rps=None); the function ran with VOD_MAX_RPS=1000 and VOD_PACING=fixed ("
            f"{warm['limiter_calls']} calls in all, so its limiter never waited); the "
            "bare client is CommonClient with keepAlive=True. Log lines are formatted and written to /dev/null.",
            f"- Burst: emulator latency {BURST_LATENCY} s and {BURST_RPS} requests/s; the function with its "
            "default configuration (VOD_MAX_RPS=20, VOD_MAX_CONCURRENCY=10), context time limit 60 s; the "
            f"warm container handled a {cfg['learn_records']}-record event 1.5 s before (its pacer's learned rate), "
            "the new one none.",
        ]
    return "\n".join(header) + "\n" + table + "\n" + "\n".join(notes) + "\n", table, fails


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer repetitions")
    group.add_argument("--smoke", action="store_true", help="tiny sizes, < 30 s, writes no results file")
    parser.add_argument("--runs", type=int, help="cold-start runs per variant")
    parser.add_argument("--output", type=Path, help="markdown file (default benchmarks/results.md; "
                                                    "--smoke writes none unless given)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--cold-only", action="store_true", help="only the cold-start variants (writes no file "
                                                                 "unless --output is given)")
    parser.add_argument("--no-cold", action="store_true", help="all but the cold-start variants (writes no file "
                                                               "unless --output is given)")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    if args.runs:
        cfg["cold_runs"] = args.runs
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        variants = [] if args.no_cold else cold_start(cfg, mode)
        if args.cold_only:
            report, _table, fails = build_report(mode, cfg, variants, None, None, None, None)
            print(report)
            if args.output:
                args.output.write_text(report)
            return 1 if (fails and args.strict) else 0
        log("warm overhead")
        warm = warm_overhead(cfg)
        conn = connections(cfg)
        log("burst")
        bur = burst(cfg, warm=True)
        bur["new"] = burst(cfg, warm=False)
        soak = None
        if mode == "smoke":
            import soak as soak_module

            log("soak (tiny)")
            soak = soak_module.run_soak(records=40, max_size=15, seed=3, parallel=2, fault_rate=0.15,
                                        retry_delay=0.2, max_attempts=1)  # faults → redeliveries
            found = soak_module.problems(soak)
            if found:
                raise BenchError("soak: " + "; ".join(found))
        log("baseline burst")
        naive = naive_runs(cfg)  # last: importing the baseline reconfigures structlog globally
    except BenchError as exc:
        print(f"benchmark error: {exc}", file=sys.stderr)
        return 2
    finally:
        S.reset_container()
    report, table, fails = build_report(mode, cfg, variants, warm, conn, bur, naive, soak)
    output = args.output or (None if mode == "smoke" or args.no_cold else BENCH / "results.md")
    return S.finish_report(report, str(output) if output else None, log, mode, started, fails, args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
