#!/usr/bin/env python3
"""Follow-up benchmarks (REDRAW_FOLLOW_UP=true): upload-path cold start, sweep rate, delivery.

    python benchmarks/followup_bench.py                 # the full run (what `make followup-bench` runs):
                                                        # table on stdout and in benchmarks/followup-results.md
    python benchmarks/followup_bench.py --smoke         # tiny sizes from the development tree, < 20 s, writes nothing

Everything runs on loopback: the project's VOD emulator (TC3 signatures checked, DescribeTaskDetail
limited to 100 requests in any sliding second, the documented limit) and its COS emulator (COS
signatures checked, objects are files). ``--out FILE`` writes the markdown elsewhere (``-``: none).

Upload-path cold start
    As ``bench.py`` measures it: a fresh ``python -B -S`` process per run, PYTHONPATH = a read-only
    code tree, importing the handler and handling one COS upload event against the emulators in
    this process; wall time, CPU time and peak RSS from ``os.wait4``; variants interleaved, the
    order rotated every round, one warm-up round discarded; medians, and for ratios the median of
    the per-round ratios (the two runs of a pair are at most a few runs apart). Code trees (the
    full run), built as ``scripts/package.py`` stages a package (same pruning, bytecode by
    ``compileall --invalidation-mode unchecked-hash``) and cached in ``benchmarks/.work/``:

    - *before the follow-up*: the code of commit e6c761f (the last one without it), today's deps;
      ``--before COMMIT`` puts another commit's code there (issue 22: ``--before b80e9c1``, the code
      before the module restructuring), then also run with the follow-up on (``before-on``);
      ``--after COMMIT`` puts a commit's code in the trees of today's code (``--before b80e9c1 --after
      9b027ab``: the restructuring alone);
    - *today's package*: the current code, requirements.txt: what ``make package`` ships (the COS SDK
      in it since the follow-up was deployed);
    - *package + COS SDK*: the same plus ``cos-python-sdk-v5`` (``PACKAGE_ARGS="--extra
      cos-python-sdk-v5"``, what the follow-up needs), run with the follow-up off and on (on: the
      task's two record PUTs go to the COS emulator);
    - *plain naive, bytecode*: ``naive_plain_handler.py`` with its bytecode, as in ``bench.py``.

    Then, for the follow-up-on variant, where its extra time and memory go: the handler's import,
    the handling, ``record_task`` (the COS SDK's import and client, each PUT) and the modules that
    only the follow-up loads (``-X importtime``).

Sweep
    ``--tasks`` (1,000) ended tasks, each with its pending record and receipt in the state bucket
    (as the function writes them, ``records.new_record``) and its task in the VOD emulator
    (``add_task``, ended before the sweep starts). The function runs in a process of its own
    (``_fnproc.py``: the package + COS SDK tree, a warm container whose previous sweep found
    nothing) and sweeps with timer invocations of serverless.yml's 60 s time limit until every
    task is finished; each emulator runs in a process of its own (``_emuhost.py``). Measured:
    tasks finished per second of sweep time (the invocations' wall time), for a new container
    (its DescribeTaskDetail pacer starts at 3/s) and then the same container again (its pacer
    warm); DescribeTaskDetail's rate, the emulator's limit hits, the CPU time of each process.
    A third run of the same size times every COS and VOD call (``"profile"``: where a task's time goes).

Delivery
    One succeeded task whose output is ``--delivery-mib`` (300) MiB (the VOD emulator's
    ``output_bytes``), delivered by a timer sweep in a process of its own (``_fnproc.py`` with
    REDRAW_DELIVER_PREFIX): the invocation's wall time and the process's peak RSS (``ru_maxrss``);
    against the same copy by a bare script (``requests`` GET streamed + ``cos-python-sdk-v5``
    multipart upload, 8 MiB parts) in a process of its own, runs paired and alternated.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _support as S  # noqa: E402
import bench as B  # noqa: E402
from _support import BENCH, ROOT, SUB_APP_ID, WORK  # noqa: E402

from redraw.tools.cos_emulator import CosEmulator  # noqa: E402
from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator  # noqa: E402
from redraw.tools.samples import cos_event  # noqa: E402

MODES: Dict[str, Dict[str, Any]] = {
    "full": dict(cold_runs=30, warmup_round=True, explain_runs=7, tasks=1000, warm_round=True, profile=True,
                 delivery_mib=300, delivery_pairs=5),
    "smoke": dict(cold_runs=1, warmup_round=False, explain_runs=1, tasks=12, warm_round=False, profile=True,
                  delivery_mib=20, delivery_pairs=1),
}
BEFORE_COMMIT = "e6c761f"      # the last commit before the follow-up (7bda12a added it)
BUCKET = "media-1250000000"    # the uploads' bucket (deliveries go beside the upload, under redrawn/)
STATE = "redraw-state-1250000000"
REGION = "ap-guangzhou"
STATE_PREFIX = "redraw/"
DELIVER_PREFIX = "redrawn/"
TIME_LIMIT_MS = 60000          # serverless.yml: timeout 60
DESCRIBE_LIMIT = 100           # DescribeTaskDetail: 100 requests/s (tencentcloud.com/document/api/266/34129)
PART_SIZE = 8 * 1024 * 1024    # redraw.cosclient.PART_SIZE; the bare copy uses the same
#: --what-if: the sweep as it is, then with changes to its COS work applied cumulatively (_fnproc.WHAT_IFS).
WHAT_IF_SETS: Tuple[Tuple[str, ...], ...] = ((), ("no-done-get",), ("no-done-get", "optimistic-claim"),
                                              ("no-done-get", "optimistic-claim", "no-trust-env"))
WEBHOOK_SECRET = "whsec_" + "QmVuY2htYXJrIHNlY3JldCBmb3IgcmVkcmF3IGhvb2tzIQ=="
#: ten upload rules (docs/rules.md), the cold start's key (uploads/cold/...) matched by the most specific one
TEN_RULES = json.dumps([{"name": f"team-{i}", "prefix": f"uploads/team-{i}/", "Style": f"style-{i}",
                         "TasksPriority": i - 5} for i in range(8)] +
                       [{"name": "cold", "prefix": "uploads/cold/", "Style": "anime", "MediaName": "{stem} (redrawn)",
                         "ExpireTime": "P30D"},
                        {"name": "drafts", "prefix": "uploads/drafts/", "skip": True}])
TARGETS = dict(rules_vs_today=1.03, off_vs_today=1.03, today_vs_before=1.03,  # rules: docs/rules.md
               hooks_vs_on=1.03, hooks_sweep_cpu=1.10,  # webhooks: docs/webhooks.md
               on_vs_plain=1.0, on_rss_mb=45.0, sweep_rate=0.9 * DESCRIBE_LIMIT,
               delivery_rss_mb=64.0, delivery_ratio=0.8)


def log(message: str) -> None:
    print(f"[followup-bench] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A benchmark could not run correctly (as opposed to missing a target)."""


# --- code trees ----------------------------------------------------------------------------------

@dataclass
class Trees:
    """PYTHONPATH of each code tree (``os.pathsep``-joined)."""

    before: Optional[str]
    today: str
    cos: str
    plain: str
    kind: str  # "package" (staged + bytecode) or "development" (the worktree + the venv's site-packages)
    before_commit: str = BEFORE_COMMIT  # the code of the "before" tree
    after_commit: Optional[str] = None  # the code of the "today" and "cos" trees (None: the worktree's)

    @property
    def today_label(self) -> str:
        return f"the code of {self.after_commit}, package" if self.after_commit else "today's package"

    @property
    def before_label(self) -> str:
        return (f"before the follow-up ({BEFORE_COMMIT})" if self.before_commit == BEFORE_COMMIT
                else f"the code of {self.before_commit}")

    @property
    def before_follows(self) -> bool:
        """Whether the "before" code has the follow-up (any commit but the one before it)."""
        return self.before_commit != BEFORE_COMMIT


def _code_digest() -> str:
    h = hashlib.sha256()
    for path in [ROOT / "handler.py", *sorted(p for p in (ROOT / "redraw").rglob("*.py") if "tools" not in p.parts)]:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _cached(name: str, key: str, build) -> Path:
    """``WORK/followup-<name>-<key>``, built by ``build(stage)`` once; older builds of ``name`` removed."""
    dest = WORK / f"followup-{name}-{key}"
    if (dest / ".complete").exists():
        return dest
    for old in WORK.glob(f"followup-{name}-*"):
        B._writable(old)
        shutil.rmtree(old, ignore_errors=True)
    stage = WORK / f".stage-{name}"
    B._writable(stage) if stage.exists() else None
    shutil.rmtree(stage, ignore_errors=True)
    build(stage)
    (stage / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
    stage.rename(dest)
    B._read_only(dest)
    return dest


def _package_tree(pk: Any, name: str, deps: Path, commit: Optional[str]) -> Path:
    """A package as scripts/package.py stages it (deps pruned, code, bytecode), for ``commit``'s code or today's."""
    def build(stage: Path) -> None:
        log(f"building the {name} tree (package.py staging + compileall, unchecked-hash)")
        pk.stage_tree(deps, stage)
        if commit:
            shutil.rmtree(stage / "redraw")
            (stage / "handler.py").unlink()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "handler.py", "redraw"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(stage)], input=archive, check=True)
            shutil.rmtree(stage / "redraw" / "tools", ignore_errors=True)
        pk.compile_tree(sys.executable, stage)
    return _cached(name, hashlib.sha256(f"{deps.name}\n{commit or _code_digest()}".encode()).hexdigest()[:12], build)


def _plain_tree(deps: Path) -> Path:
    """The plain naive baseline with bytecode, exactly as bench.py builds it."""
    compiled = B._compiled(sys.executable, deps)
    source = (BENCH / "naive_plain_handler.py").read_bytes()

    def build(stage: Path) -> None:
        B._copy_tree(compiled, stage)
        B._add_code(stage, "naive_plain_handler")
        code = ("import py_compile, sys; py_compile.compile(sys.argv[1], cfile=__import__('importlib.util')"
                ".util.cache_from_source(sys.argv[1]), doraise=True, "
                "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)")
        subprocess.run([sys.executable, "-c", code, str(stage / "naive_plain_handler.py")], check=True)
    return _cached("plain", hashlib.sha256(compiled.name.encode() + source).hexdigest()[:12], build)


def prepare_trees(mode: str, before_commit: str = BEFORE_COMMIT, after_commit: Optional[str] = None) -> Trees:
    if mode == "smoke":  # the worktree's code and the venv's installed packages: nothing to build
        site = sysconfig.get_paths()["purelib"]
        return Trees(None, os.pathsep.join([str(ROOT), site]), os.pathsep.join([str(ROOT), site]),
                     os.pathsep.join([str(BENCH), site]), "development")
    pk = S.load_packager()
    cos_sdk = B._dev_requirement("cos-python-sdk-v5")
    vod_sdk = B._dev_requirement("tencentcloud-sdk-python-vod")
    # Copied from this venv's installed distributions (package.py --deps-from-env), for every tree alike:
    # pip --only-binary=:all: cannot install cos-python-sdk-v5 (its dependency crcmod has no wheel).
    log("dependency trees (copied from the venv, cached in benchmarks/.work/)")
    deps, deps_cos, deps_vod = (pk.install_deps(WORK, False, extra, from_env=True)
                                for extra in ([], [cos_sdk], [vod_sdk]))
    return Trees(before=str(_package_tree(pk, "before", deps, before_commit)),
                 today=str(_package_tree(pk, "today", deps, after_commit)),
                 cos=str(_package_tree(pk, "cos", deps_cos, after_commit)),
                 plain=str(_plain_tree(deps_vod)), kind="package", before_commit=before_commit,
                 after_commit=after_commit)


# --- environment ---------------------------------------------------------------------------------

def function_env(vod_url: str, cos_url: str, pythonpath: str, follow: bool, **extra: str) -> Dict[str, str]:
    env = S.function_env(vod_url)
    env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), PYTHONPATH=pythonpath, LANG="C.UTF-8")
    if follow:
        env.update(REDRAW_FOLLOW_UP="true", REDRAW_STATE_BUCKET=STATE, REDRAW_STATE_PREFIX=STATE_PREFIX,
                   REDRAW_COS_ENDPOINT=cos_url)
    env.update(extra)
    return env


def webhook_env(url: str, allow_private: bool = False) -> Dict[str, str]:
    """The webhook variables: one endpoint, a fixed secret (32 bytes)."""
    return {"REDRAW_WEBHOOK_URL": url, "REDRAW_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REDRAW_WEBHOOK_ALLOW_PRIVATE": "true" if allow_private else "false"}


# --- 1. upload-path cold start -------------------------------------------------------------------

@dataclass
class Cold:
    key: str
    label: str
    pythonpath: str
    module: str
    follow: bool
    project: bool = True
    env: Dict[str, str] = field(default_factory=dict)  # variables of this variant only
    times: List[float] = field(default_factory=list)
    cpu: List[float] = field(default_factory=list)
    rss: List[float] = field(default_factory=list)


def cold_variants(trees: Trees) -> List[Cold]:
    out = []
    if trees.before:
        out.append(Cold("before", f"{trees.before_label}, package", trees.before, "handler", False))
        if trees.before_follows:
            out.append(Cold("before-on", f"{trees.before_label}, package + COS SDK, follow-up on", trees.before,
                            "handler", True))
    out += [Cold("today", f"{trees.today_label}, follow-up off", trees.today, "handler", False),
            Cold("off", "package + COS SDK, follow-up off", trees.cos, "handler", False),
            Cold("on", f"{trees.today_label if trees.after_commit else 'package'} + COS SDK, follow-up on",
                 trees.cos, "handler", True),
            Cold("hooks", "package + COS SDK, follow-up on, webhooks configured", trees.cos, "handler", True,
                 env=webhook_env("https://hooks.example.com/redraw?token=bench")),
            Cold("rules", "today's package, ten upload rules (REDRAW_RULES)", trees.today, "handler", False,
                 env={"REDRAW_RULES": TEN_RULES}),
            Cold("plain", "plain naive, bytecode", trees.plain, "naive_plain_handler", False, project=False)]
    if trees.kind == "development":
        for v in out:
            v.label = v.label.replace("package", "development tree")
    return out


def cold_run(v: Cold, vod: VodEmulator, cos: CosEmulator, scratch: Path, n: int) -> None:
    key = f"uploads/cold/{v.key}-{n}.mp4"
    event_path, out_path = scratch / f"event-{v.key}-{n}.json", scratch / f"result-{v.key}-{n}.json"
    log_path = scratch / f"log-{v.key}-{n}.txt"
    event_path.write_text(json.dumps(cos_event([key], bucket=BUCKET)))
    env = function_env(vod.url, cos.url, v.pythonpath, v.follow, **v.env)
    before, puts_before = vod.task_count, _puts(cos)
    empty = scratch / "cwd"
    empty.mkdir(exist_ok=True)
    with open(log_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-B", "-S", "-c", B._RUNNER, str(event_path), v.module, str(out_path)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(empty), close_fds=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not out_path.exists():
        raise BenchError(f"cold start {v.key} exited {code}:\n{log_path.read_text(errors='replace')[-3000:]}")
    result = json.loads(out_path.read_text())
    if v.project:
        first = result["results"][0]
        ok = first["status"] == "submitted" and (first.get("recorded") is True) == v.follow \
            and first.get("rule") == ("cold" if "REDRAW_RULES" in v.env else None)
    else:
        ok = bool(result and result[0].get("TaskId"))
    if not ok or vod.task_count != before + 1 or (_puts(cos) - puts_before) != (2 if v.follow else 0):
        raise BenchError(f"cold start {v.key}: unexpected result {str(result)[:400]} "
                         f"(COS PUTs {_puts(cos) - puts_before})")
    v.times.append(wall)
    v.cpu.append(usage.ru_utime + usage.ru_stime)
    v.rss.append(usage.ru_maxrss / 1024.0)


def _puts(cos: CosEmulator) -> int:
    return sum(1 for c in cos.calls if c["method"] == "PUT")


def cold_start(cfg: dict, trees: Trees, tmp: Path) -> List[Cold]:
    variants = [v for v in cold_variants(trees) if not cfg.get("cold_variants") or v.key in cfg["cold_variants"]]
    scratch = tmp / "cold"
    scratch.mkdir()
    with VodEmulator(rps=None) as vod, CosEmulator(root=tmp / "cold-cos") as cos:
        cos.add_bucket(STATE)
        if cfg["warmup_round"]:
            log("cold start: warm-up round (page cache), discarded")
            for v in variants:
                cold_run(v, vod, cos, scratch, -1)
                v.times.clear(), v.cpu.clear(), v.rss.clear()
        for n in range(cfg["cold_runs"]):
            order = variants[n % len(variants):] + variants[:n % len(variants)]
            for v in order:
                cold_run(v, vod, cos, scratch, n)
            log(f"cold start round {n + 1}/{cfg['cold_runs']}: " + ", ".join(
                f"{v.key} {v.times[-1]:.3f}s/{v.rss[-1]:.1f}MB" for v in variants))
    return variants


def paired(a: Cold, b: Cold, what: str = "times") -> float:
    """Median of the per-round ratios a/b (same round: the runs were close in time)."""
    return S.median([x / y for x, y in zip(getattr(a, what), getattr(b, what))])


_EXPLAIN = r"""
import json, resource, sys, time
t0 = time.perf_counter()
event_path, out_path = sys.argv[1:3]
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
m = {"rss_start": rss()}
with open(event_path) as f:
    event = json.load(f)
import handler
m["import_s"], m["rss_import"] = time.perf_counter() - t0, rss()
from redraw import core, cosclient
m["puts"] = []
orig_client, orig_put = cosclient.CosStore._client, cosclient.CosStore.put_bytes
def _client(self, region, bulk=False):
    if (region, bulk) not in self._clients:
        t = time.perf_counter()
        client = orig_client(self, region, bulk)
        m["client_s"] = time.perf_counter() - t
        return client
    return orig_client(self, region, bulk)
def put_bytes(self, *a, **k):
    if "qcloud_cos" not in sys.modules:  # put_bytes imports the SDK (qcloud_cos/__init__ loads all of it)
        t, r = time.perf_counter(), rss()
        import qcloud_cos
        m["sdk_import_s"], m["rss_sdk"] = time.perf_counter() - t, rss() - r
    t = time.perf_counter()
    try:
        return orig_put(self, *a, **k)
    finally:
        m["puts"].append(time.perf_counter() - t)
cosclient.CosStore._client, cosclient.CosStore.put_bytes = _client, put_bytes
from redraw.followup import records
orig_record = records.record_task
def record_task(*a, **k):
    t, r = time.perf_counter(), rss()
    try:
        return orig_record(*a, **k)
    finally:
        m["record_s"], m["rss_record"] = time.perf_counter() - t, rss() - r
records.record_task = record_task
t = time.perf_counter()
result = handler.main_handler(event, {"request_id": "explain", "function_name": "redraw-bench",
                                      "time_limit_in_ms": 30000, "memory_limit_in_mb": 64})
m["handle_s"], m["rss_end"] = time.perf_counter() - t, rss()
m["recorded"] = result["results"][0].get("recorded")
with open(out_path, "w") as f:
    json.dump(m, f)
"""


def _importtime(python_args: List[str], env: Dict[str, str], cwd: Path) -> Dict[str, Tuple[int, int]]:
    """module -> (self µs, cumulative µs) from ``-X importtime``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *python_args], env=env, cwd=str(cwd),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError("importtime run failed:\n" + proc.stderr[-2000:])
    out: Dict[str, Tuple[int, int]] = {}
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            self_us, cumulative, name = line[len("import time:"):].split("|")
            out[name.strip()] = (int(self_us), int(cumulative))
    return out


def explain_on(cfg: dict, trees: Trees, tmp: Path) -> dict:
    """Where the follow-up's extra cold-start time and memory go (the follow-up-on variant)."""
    scratch = tmp / "explain"
    scratch.mkdir()
    runs = []
    with VodEmulator(rps=None) as vod, CosEmulator(root=tmp / "explain-cos") as cos:
        cos.add_bucket(STATE)
        for n in range(cfg["explain_runs"]):
            event_path, out_path = scratch / f"event-{n}.json", scratch / f"out-{n}.json"
            event_path.write_text(json.dumps(cos_event([f"uploads/explain/{n}.mp4"], bucket=BUCKET)))
            env = function_env(vod.url, cos.url, trees.cos, True)
            proc = subprocess.run([sys.executable, "-B", "-S", "-c", _EXPLAIN, str(event_path), str(out_path)],
                                  env=env, cwd=str(scratch), capture_output=True, text=True)
            if proc.returncode != 0:
                raise BenchError("explain run failed:\n" + proc.stderr[-3000:])
            runs.append(json.loads(out_path.read_text()))
        if not all(r["recorded"] for r in runs):
            raise BenchError(f"explain: the task was not recorded: {runs}")
        times = {}
        for follow in (False, True):
            event_path, out_path = scratch / f"event-it-{follow}.json", scratch / f"out-it-{follow}.json"
            event_path.write_text(json.dumps(cos_event([f"uploads/explain/it-{follow}.mp4"], bucket=BUCKET)))
            env = function_env(vod.url, cos.url, trees.cos, follow)
            times[follow] = _importtime(["-B", "-S", "-c", B._RUNNER, str(event_path), "handler", str(out_path)],
                                        env, scratch)
    only_on = {name: v for name, v in times[True].items() if name not in times[False]}
    top = sorted(only_on.items(), key=lambda kv: -kv[1][0])[:8]
    keys = ("import_s", "handle_s", "record_s", "sdk_import_s", "client_s", "rss_import", "rss_end", "rss_sdk",
            "rss_record")
    out = {k: S.median([r[k] for r in runs if k in r]) for k in keys}
    out["put_s"] = S.median([p for r in runs for p in r["puts"]])
    out.update(modules_on=len(only_on), self_us_on=sum(v[0] for v in only_on.values()),
               top=[(name, v[0]) for name, v in top])
    return out


# --- emulator processes --------------------------------------------------------------------------

class Host:
    """An emulator in a process of its own (``_emuhost.py``), driven by JSON lines."""

    def __init__(self, kind: str, options: dict) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_"))}
        env["PYTHONPATH"] = str(ROOT)
        self.p = subprocess.Popen([sys.executable, str(BENCH / "_emuhost.py"), kind, json.dumps(options)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.url = self._read()["url"]
        self.lock = threading.Lock()

    def _read(self) -> dict:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            raise BenchError("an emulator process ended")
        return json.loads(line)

    def ask(self, op: str, **fields: Any) -> dict:
        assert self.p.stdin is not None
        with self.lock:
            self.p.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.p.stdin.flush()
            return self._read()

    def stop(self) -> None:
        try:
            self.ask("stop") if self.p.poll() is None else None
        except (BenchError, OSError, ValueError):
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Function:
    """The function in a warm container of its own (``_fnproc.py``); its stdout (log lines) to a file."""

    def __init__(self, pythonpath: str, env: Dict[str, str], log_path: Path, profile: bool = False,
                 what_if: Tuple[str, ...] = (), time_reads: bool = False) -> None:
        self.log_path = log_path
        self._out = open(log_path, "wb")
        self.p = subprocess.Popen([sys.executable, "-B", "-S", str(BENCH / "_fnproc.py"),
                                   json.dumps({"time_limit_ms": TIME_LIMIT_MS, "profile": profile,
                                               "what_if": list(what_if), "time_reads": time_reads})],
                                  stdin=subprocess.PIPE, stdout=self._out, stderr=subprocess.PIPE, env=env,
                                  cwd=str(log_path.parent), text=True)
        self._expect_line("ready")
        self.hwm_ready_mb = _vm_hwm_mb(self.p.pid)

    def _expect_line(self, word: str) -> None:
        assert self.p.stderr is not None
        lines = []
        while True:
            line = self.p.stderr.readline()
            if not line:
                raise BenchError(f"the function process ended before '{word}':\n" + "".join(lines)[-3000:])
            if line.strip() == word:
                return
            lines.append(line)

    def sweep(self, expect: int, out: Path) -> dict:
        assert self.p.stdin is not None
        self.p.stdin.write(f"go {expect} {out}\n")
        self.p.stdin.flush()
        self._expect_line("done")
        return json.loads(out.read_text())

    def close(self) -> Any:
        """End the process; its rusage (ru_maxrss: the process's peak RSS)."""
        assert self.p.stdin is not None
        self.p.stdin.close()
        _, status, usage = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self._out.close()
        if self.p.returncode != 0:
            raise BenchError(f"the function process exited {self.p.returncode}")
        return usage

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self._out.close()

    def lines(self, event: str) -> List[dict]:
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("event") == event:
                out.append(line)
        return out


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def write_tasks(vod: Host, cos_root: Path, env: Dict[str, str], n: int, tag: str, deliver: bool = False) -> List[str]:
    """``n`` ended upload tasks: in the VOD emulator (ended a minute ago) and recorded in the state bucket
    (pending record + receipt, as ``records.record_task`` writes them, the record's time its creation)."""
    from redraw.config import load_settings
    from redraw.followup import records
    from redraw.sources.cos import session_context_for

    settings = load_settings(env)
    keys = [f"uploads/{tag}/clip-{i:05d}.mp4" for i in range(n)]
    sources = [f"https://{BUCKET}.cos.{REGION}.myqcloud.com/{key}" for key in keys]
    contexts = [session_context_for("cos", BUCKET, key) for key in keys]
    task_ids = vod.ask("add_tasks", n=n, sub_app_id=SUB_APP_ID, age=60.0, sources=sources, contexts=contexts)["task_ids"]
    state = cos_root / STATE
    created = time.time() - 60.0
    layout = records.layout_of(settings)
    for key, url, task_id in zip(keys, sources, task_ids):
        params = {"SubAppId": SUB_APP_ID, "FileInfo": {"Type": "Url", "Url": url}}
        record = records.new_record(settings, params, task_id, f"redraw-bench-{task_id[-12:]}", "bench",
                                    {"trigger": "cos", "bucket": BUCKET, "region": REGION, "key": key}, created)
        if deliver != bool(record["deliver_to"]):
            raise BenchError("write_tasks: the record's deliver_to does not match the setting")
        body = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        for name in (layout.pending_key(created, task_id), record["receipt"]):
            path = state / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
        os.utime(state / layout.pending_key(created, task_id), (created, created))
    return task_ids


# --- 2. sweep ------------------------------------------------------------------------------------

def sweep_round(fn: Function, vod: Host, cos: Host, cos_root: Path, env: Dict[str, str], n: int, tag: str,
                out: Path) -> dict:
    task_ids = write_tasks(vod, cos_root, env, n, tag)
    vod.ask("reset"), cos.ask("reset")
    vod_before, cos_before = vod.ask("stats"), cos.ask("stats")
    finished_before = {line["task_id"] for line in fn.lines("task.finished")}
    result = fn.sweep(n, out)
    vod_after, cos_after = vod.ask("stats"), cos.ask("stats")
    lines = [line for line in fn.lines("task.finished") if line["task_id"] not in finished_before]
    ids = [line["task_id"] for line in lines]
    pending_left = list((cos_root / STATE / STATE_PREFIX / "pending").glob("*.json"))
    if sorted(ids) != sorted(task_ids) or pending_left:
        raise BenchError(f"sweep {tag}: {len(set(ids))} of {n} tasks finished ({len(ids)} lines), "
                         f"{len(pending_left)} pending records left; invocations {result['invocations']}")
    if any(line.get("outcome") != "succeeded" for line in lines):
        raise BenchError(f"sweep {tag}: a task did not succeed: {[x for x in lines if x.get('outcome') != 'succeeded'][:2]}")
    invocations = result["invocations"]
    sweep_s = sum(i["elapsed"] for i in invocations)
    describes = vod_after["calls"].get("DescribeTaskDetail", 0)
    return {"tasks": n, "invocations": len(invocations), "sweep_s": sweep_s, "rate": n / sweep_s,
            "describes": describes, "describe_rate": describes / sweep_s,
            "describe_limit_hits": vod_after["describe_limit_hits"],
            "describe_max_window": vod_after["describe_max_per_second"],
            "cos_requests": sum(cos_after["calls"].values()), "cos_calls": cos_after["calls"],
            "cos_errors": cos_after["errors"],
            "cpu_function": sum(i["cpu"] for i in invocations), "cpu_cos": cos_after["cpu_s"] - cos_before["cpu_s"],
            "cpu_vod": vod_after["cpu_s"] - vod_before["cpu_s"], "profile": result.get("profile"),
            "summaries": [i["summary"] for i in invocations]}


def sweep_bench(cfg: dict, trees: Trees, tmp: Path) -> dict:
    cos_root = tmp / "sweep-cos"
    vod = Host("vod", {"task_duration": 0.5, "describe_rps": DESCRIBE_LIMIT})
    cos = Host("cos", {"root": str(cos_root), "buckets": [STATE, BUCKET]})
    out: Dict[str, Any] = {}
    try:
        env = function_env(vod.url, cos.url, trees.cos, True)
        n = cfg["tasks"]
        fn = Function(trees.cos, env, tmp / "sweep-function.log")
        try:
            log(f"sweep: {n} ended tasks, a new container")
            out["new"] = sweep_round(fn, vod, cos, cos_root, env, n, "sweep-new", tmp / "sweep-new.json")
            if cfg["warm_round"]:
                log(f"sweep: {n} more, the same container (its pacer warm)")
                out["warm"] = sweep_round(fn, vod, cos, cos_root, env, n, "sweep-warm", tmp / "sweep-warm.json")
            fn.close()
        finally:
            fn.kill()
        out["hooks"] = sweep_hooks(trees, vod, cos, cos_root, env, n, tmp)
        if cfg["profile"]:
            log(f"sweep: {n} more, every call timed (profile)")
            fn = Function(trees.cos, env, tmp / "sweep-profile.log", profile=True)
            try:
                out["profile"] = sweep_round(fn, vod, cos, cos_root, env, n, "sweep-profile", tmp / "sweep-profile.json")
                fn.close()
            finally:
                fn.kill()
        if cfg.get("what_if"):
            out["what_if"] = []
            for changes in WHAT_IF_SETS:
                tag = "+".join(changes) or "as-is"
                log(f"sweep what-if {tag}: {n} tasks in a new container, {n} more in the same one")
                fn = Function(trees.cos, env, tmp / f"sweep-{tag}.log", what_if=changes)
                try:
                    rounds = [sweep_round(fn, vod, cos, cos_root, env, n, f"wi-{tag}-{i}", tmp / f"wi-{tag}-{i}.json")
                              for i in range(2)]
                    fn.close()
                finally:
                    fn.kill()
                out["what_if"].append((changes, rounds))
    finally:
        vod.stop(), cos.stop()
    return out


def sweep_hooks(trees: Trees, vod: Host, cos: Host, cos_root: Path, env: Dict[str, str], n: int,
                tmp: Path) -> dict:
    """The same sweep in a new container without and with webhooks (a local receiver that verifies each
    message, in this process), three times each, alternated (off/on, on/off, off/on): the function's CPU
    per task."""
    from redraw.tools.inbox import WebhookInbox

    rounds: Dict[str, List[dict]] = {"off": [], "on": []}
    with WebhookInbox(WEBHOOK_SECRET, quiet=True) as inbox:
        hooked = {**env, **webhook_env(inbox.url + "/hook", allow_private=True)}
        for i in range(3):
            pair = (("off", env), ("on", hooked))
            for key, variant in (pair if i % 2 == 0 else pair[::-1]):
                log(f"sweep: {n} ended tasks, a new container, webhooks {key} ({i + 1}/3)")
                fn = Function(trees.cos, variant, tmp / f"sweep-hooks-{key}-{i}.log")
                try:
                    rounds[key].append(sweep_round(fn, vod, cos, cos_root, variant, n, f"hooks-{key}-{i}",
                                                   tmp / f"sweep-hooks-{key}-{i}.json"))
                    fn.close()
                finally:
                    fn.kill()
        told = {d["task_id"] for d in inbox.deliveries() if d["verified"]}
    if len(told) != 3 * n:
        raise BenchError(f"sweep with webhooks: {len(told)} of {3 * n} tasks told")
    return rounds


# --- 3. delivery ---------------------------------------------------------------------------------

_BARE = r"""
import json, resource, sys, time
cfg = json.loads(sys.argv[1])
import requests
from qcloud_cos import CosConfig, CosS3Client
rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
started = time.perf_counter()
client = CosS3Client(CosConfig(Region=cfg["region"], SecretId=cfg["secret_id"], SecretKey=cfg["secret_key"],
                               IP=cfg["ip"], Port=cfg["port"], Scheme="http"), retry=0)
response = requests.get(cfg["url"], stream=True, timeout=(5, 30))
response.raise_for_status()
upload = client.create_multipart_upload(Bucket=cfg["bucket"], Key=cfg["key"], ContentType="video/mp4")
parts, number, total, read_s = [], 0, 0, 0.0
while True:
    t = time.perf_counter()
    chunk = response.raw.read(cfg["part_size"], decode_content=True)
    read_s += time.perf_counter() - t
    if not chunk:
        break
    number += 1
    total += len(chunk)
    answer = client.upload_part(Bucket=cfg["bucket"], Key=cfg["key"], Body=chunk, PartNumber=number,
                                UploadId=upload["UploadId"])
    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
client.complete_multipart_upload(Bucket=cfg["bucket"], Key=cfg["key"], UploadId=upload["UploadId"],
                                 MultipartUpload={"Part": parts})
print(json.dumps({"elapsed": time.perf_counter() - started, "bytes": total, "parts": number, "rss_ready": rss_ready,
                  "read_s": read_s, "cpu_s": time.process_time()}))
"""


def _delivery_function(trees: Trees, vod: Host, cos: Host, cos_root: Path, tmp: Path, n: int, size: int) -> dict:
    env = function_env(vod.url, cos.url, trees.cos, True, REDRAW_DELIVER_PREFIX=DELIVER_PREFIX)
    fn = Function(trees.cos, env, tmp / f"delivery-{n}.log", time_reads=True)
    try:
        [task_id] = write_tasks(vod, cos_root, env, 1, f"delivery-{n}", deliver=True)
        result = fn.sweep(1, tmp / f"delivery-{n}.json")
        usage = fn.close()
    finally:
        fn.kill()
    [line] = [x for x in fn.lines("task.finished") if x["task_id"] == task_id]
    target = cos_root / BUCKET / DELIVER_PREFIX / f"uploads/delivery-{n}/clip-00000.mp4"
    if line.get("delivered_to") is None or not target.exists() or target.stat().st_size != size:
        raise BenchError(f"delivery {n}: not delivered ({line}; {target.exists() and target.stat().st_size})")
    target.unlink()
    elapsed = sum(i["elapsed"] for i in result["invocations"])
    return {"elapsed": elapsed, "rate": size / elapsed / 2**20, "rss": usage.ru_maxrss / 1024.0, "read_s": result["read_s"],
            "rss_ready": fn.hwm_ready_mb, "invocations": len(result["invocations"])}


def _delivery_bare(trees: Trees, vod: Host, cos: Host, cos_root: Path, tmp: Path, n: int, size: int) -> dict:
    [task_id] = vod.ask("add_tasks", n=1, sub_app_id=SUB_APP_ID, age=60.0)["task_ids"]
    url = vod.ask("output_url", task_id=task_id)["url"]
    host, _, port = cos.url.split("://", 1)[1].rpartition(":")
    key = f"bare/{n}.mp4"
    cfg = {"url": url, "bucket": BUCKET, "key": key, "region": REGION, "ip": host, "port": int(port),
           "secret_id": DEFAULT_SECRET_ID, "secret_key": DEFAULT_SECRET_KEY, "part_size": PART_SIZE}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": trees.cos, "LANG": "C.UTF-8"}
    out_path, err_path = tmp / f"bare-{n}.out", tmp / f"bare-{n}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-B", "-S", "-c", _BARE, json.dumps(cfg)], stdout=out, stderr=err,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"bare copy exited {os.waitstatus_to_exitcode(status)}:\n"
                         + err_path.read_text(errors="replace")[-3000:])
    stdout = out_path.read_text()
    answer = json.loads(stdout.strip().splitlines()[-1])
    target = cos_root / BUCKET / key
    if answer["bytes"] != size or target.stat().st_size != size:
        raise BenchError(f"bare copy: {answer['bytes']} bytes read, {target.stat().st_size} written, {size} expected")
    target.unlink()
    return {"elapsed": answer["elapsed"], "rate": size / answer["elapsed"] / 2**20, "parts": answer["parts"],
            "rss": usage.ru_maxrss / 1024.0, "rss_ready": answer["rss_ready"], "read_s": answer["read_s"]}


def delivery_bench(cfg: dict, trees: Trees, tmp: Path) -> dict:
    size = cfg["delivery_mib"] * 2**20
    # The COS emulator's objects in memory (tmpfs) when there is one: disk writeback of 300 MB objects made
    # the copies' times vary by ±30 % from run to run, whichever side ran.
    shm = Path("/dev/shm")
    cos_root = Path(tempfile.mkdtemp(prefix="redraw-bench-cos-", dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) \
        else tmp / "delivery-cos"
    vod = Host("vod", {"task_duration": 0.5, "output_bytes": size, "describe_rps": DESCRIBE_LIMIT})
    cos = Host("cos", {"root": str(cos_root), "buckets": [STATE, BUCKET]})
    fun: List[dict] = []
    bare: List[dict] = []
    try:
        for n in range(cfg["delivery_pairs"]):
            for side in (("function", "bare") if n % 2 == 0 else ("bare", "function")):
                if side == "function":
                    fun.append(_delivery_function(trees, vod, cos, cos_root, tmp, n, size))
                else:
                    bare.append(_delivery_bare(trees, vod, cos, cos_root, tmp, n, size))
            log(f"delivery pair {n + 1}/{cfg['delivery_pairs']}: function {fun[-1]['rate']:.0f} MiB/s "
                f"({fun[-1]['rss']:.1f} MB peak RSS), bare {bare[-1]['rate']:.0f} MiB/s")
    finally:
        vod.stop(), cos.stop()
        shutil.rmtree(cos_root, ignore_errors=True)
    return {"size": size, "function": fun, "bare": bare, "tmpfs": cos_root.is_relative_to(shm),
            "ratio": S.median([f["rate"] / b["rate"] for f, b in zip(fun, bare)])}


# --- report --------------------------------------------------------------------------------------

class Table:
    def __init__(self) -> None:
        self.rows: List[List[str]] = []
        self.fails: List[str] = []

    def row(self, metric: str, value: str, target: str = "", ok: Optional[bool] = None) -> None:
        if ok is False:
            self.fails.append(metric)
        self.rows.append([metric, value, target or "—", "info" if ok is None else ("✔" if ok else "✘")])

    def render(self) -> str:
        return S.markdown_table(["metric", "value", "target", "result"], self.rows)


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def cold_section(variants: List[Cold], explain: Optional[dict], cfg: dict, trees: Trees) -> Tuple[List[str], Table]:
    t = Table()
    by = {v.key: v for v in variants}
    for v in variants:
        t.row(f"cold start: {v.label}", f"{S.median(v.times):.3f} s (min {min(v.times):.3f}, max {max(v.times):.3f}; "
                                        f"CPU {S.median(v.cpu):.3f} s); peak RSS {S.median(v.rss):.1f} MB")

    def ratio(a: str, b: str, what: str, limit: Optional[float]) -> None:
        if a in by and b in by:
            r = paired(by[a], by[b])
            value = (f"{r:.3f} ({(r - 1) * 100:+.1f} %; CPU time {paired(by[a], by[b], 'cpu'):.3f}; "
                     f"ratio of medians {S.median(by[a].times) / S.median(by[b].times):.3f})")
            t.row(f"cold start ratio: {what}", value, f"≤ {limit:.2f}" if limit else "",
                  None if limit is None else r <= limit)
    ratio("rules", "today", "ten upload rules / none (today's package)", TARGETS["rules_vs_today"])
    ratio("off", "today", "follow-up off (package + COS SDK) / today's package", TARGETS["off_vs_today"])
    ratio("today", "before", f"{trees.today_label} / {trees.before_label}", TARGETS["today_vs_before"])
    ratio("on", "before-on", f"follow-up on (package + COS SDK) / the same, {trees.before_label}",
          TARGETS["today_vs_before"])
    ratio("on", "plain", "follow-up on / plain naive with bytecode", TARGETS["on_vs_plain"])
    ratio("on", "off", "follow-up on / off (same tree)", None)
    ratio("hooks", "on", "webhooks configured / follow-up on (same tree)", TARGETS["hooks_vs_on"])
    if "on" in by:
        rss = S.median(by["on"].rss)
        others = ", ".join(f"{k}: {S.median(by[k].rss):.1f} MB" for k in ("off", "today") if k in by)
        t.row("peak RSS: follow-up on", f"{rss:.1f} MB ({others})", f"≤ {TARGETS['on_rss_mb']:.0f} MB",
              rss <= TARGETS["on_rss_mb"])
    if explain:
        e = explain
        t.row("follow-up on: import handler (in-process clock)", f"{_ms(e['import_s'])}, peak RSS {e['rss_import']:.1f} MB")
        t.row("follow-up on: main_handler on the upload event",
              f"{_ms(e['handle_s'])}, peak RSS at the end {e['rss_end']:.1f} MB")
        t.row("  of which record_task (recording the task in COS)",
              f"{_ms(e['record_s'])}, +{e['rss_record']:.1f} MB peak RSS")
        t.row("    of which importing qcloud_cos (first COS call)", f"{_ms(e['sdk_import_s'])}, +{e['rss_sdk']:.1f} MB")
        t.row("    of which building the CosS3Client", _ms(e["client_s"]))
        t.row("    each of the 2 PUTs (pending record, receipt)", f"{_ms(e['put_s'])} (median; the first builds "
              "the client)")
        top = ", ".join(f"{name} {us / 1e3:.1f}" for name, us in e["top"])
        t.row("modules loaded only with the follow-up on (-X importtime)",
              f"{e['modules_on']} modules, {e['self_us_on'] / 1e3:.1f} ms self time in all; largest (ms): {top}")
    notes = [
        f"Median of {cfg['cold_runs']} interleaved runs per variant (order rotated each round"
        f"{', one warm-up round discarded' if cfg['warmup_round'] else ''}); each run a fresh `python -B -S` "
        "process, PYTHONPATH = a read-only code tree, one COS upload event against the VOD emulator (and, "
        "follow-up on, the COS emulator: 2 PUTs) in the benchmark process. Ratios: the median of the per-round "
        "ratios (paired runs), the CPU-time ratio and the ratio of the medians beside it.",
        ("Code trees: staged as `scripts/package.py` stages a package (the same pruning; bytecode from "
         "`compileall --invalidation-mode unchecked-hash`), cached in `benchmarks/.work/`; dependencies copied "
         "from the venv's installed distributions (`package.py --deps-from-env`) for every tree alike: `pip "
         "install --only-binary=:all:`, what package.py runs, cannot install cos-python-sdk-v5 (crcmod has no "
         "wheel). Plain naive: `naive_plain_handler.py` with its bytecode, as `bench.py` builds it."
         if trees.kind == "package" else
         "Smoke: the worktree's code and the venv's site-packages (no package built), one run per variant: "
         "figures are not comparable with a full run's."),
        "The follow-up-on breakdown: the same variant with clocks around the handler's import, the handling, "
        "`records.record_task`, the COS adapter's first client (the SDK's import timed apart) and each "
        f"`put_bytes` (median of {cfg['explain_runs']} runs); in-process clocks, so the interpreter's start and exit "
        "are not in them. The module list: modules in `-X importtime` of a follow-up-on run that a follow-up-off "
        "run of the same tree does not load.",
    ]
    if not explain:
        notes.pop()
    return notes, t


def sweep_section(sw: dict) -> Tuple[List[str], Table, Optional[str], Optional[str]]:
    t = Table()
    for name, label in (("new", "a new container (DescribeTaskDetail pacer from 3/s)"),
                        ("warm", "the same container again (pacer warm)"), ("profile", "profiled run (every call timed)")):
        r = sw.get(name)
        if r is None:
            continue
        target = name == "new" or name == "warm"
        t.row(f"sweep, {label}: tasks finished per second of sweep time",
              f"{r['rate']:.1f}/s ({r['tasks']} tasks in {r['sweep_s']:.2f} s, {r['invocations']} invocation"
              f"{'s' if r['invocations'] != 1 else ''})",
              f"≥ {TARGETS['sweep_rate']:.0f}/s" if target else "", (r["rate"] >= TARGETS["sweep_rate"]) if target else None)
        t.row("  DescribeTaskDetail", f"{r['describes']} calls, {r['describe_rate']:.1f}/s; most in any 1 s: "
              f"{r['describe_max_window']}; emulator limit hits {r['describe_limit_hits']}")
        t.row("  COS requests", f"{r['cos_requests']} ({r['cos_requests'] / r['tasks']:.1f} per task; 5xx {r['cos_errors']})")
        t.row("  CPU time (s): function / COS emulator / VOD emulator",
              f"{r['cpu_function']:.2f} / {r['cpu_cos']:.2f} / {r['cpu_vod']:.2f} "
              f"({(r['cpu_function'] + r['cpu_cos'] + r['cpu_vod']) / r['sweep_s']:.2f} cores busy on average)")
        per_task = r["cpu_function"] / r["tasks"]
        t.row("  the function's CPU per task → its ceiling on one core (one process: one GIL)",
              f"{per_task * 1e3:.1f} ms → {1 / per_task:.0f} tasks/s (the process was busy "
              f"{r['cpu_function'] / r['sweep_s'] * 100:.0f} % of the sweep time)")
    hooks = sw.get("hooks")
    if hooks:
        cpu = {k: [r["cpu_function"] / r["tasks"] for r in rounds] for k, rounds in hooks.items()}
        cos_per = {k: S.median([r["cos_requests"] / r["tasks"] for r in rounds]) for k, rounds in hooks.items()}
        growth = S.median(cpu["on"]) / S.median(cpu["off"])
        t.row("sweep, a new container, webhooks off / on: the function's CPU per task",
              f"{' / '.join(f'{x * 1e3:.1f}' for x in cpu['off'])} ms / "
              f"{' / '.join(f'{x * 1e3:.1f}' for x in cpu['on'])} ms → ×{growth:.3f} (medians)",
              f"≤ ×{TARGETS['hooks_sweep_cpu']:.2f}", growth <= TARGETS["hooks_sweep_cpu"])
        t.row("  COS requests per task, webhooks off / on", f"{cos_per['off']:.1f} / {cos_per['on']:.1f}")
        t.row("  tasks finished per second, webhooks off / on",
              f"{S.median([r['rate'] for r in hooks['off']]):.1f} / {S.median([r['rate'] for r in hooks['on']]):.1f}")
    profile_table = None
    p = sw.get("profile")
    if p and p.get("profile"):
        rows = []
        tasks = p["tasks"]
        entries = sorted(p["profile"].items(), key=lambda kv: -kv[1][1])
        for label, (count, seconds, cpu) in entries:
            rows.append([label, f"{count / tasks:.2f}", f"{seconds / count * 1e3:.2f}", f"{seconds / tasks * 1e3:.2f}",
                         f"{cpu / count * 1e3:.2f}", f"{cpu / tasks * 1e3:.2f}"])
        whole_cpu = p["cpu_function"] / tasks * 1e3
        rows.append(["function process, all threads (time.process_time)", "", "", "", "", f"{whole_cpu:.2f}"])
        profile_table = S.markdown_table(["call", "per task", "wall ms per call", "wall ms per task",
                                          "CPU ms per call", "CPU ms per task"], rows)
    what_if_table = None
    if sw.get("what_if"):
        rows = []
        for changes, rounds in sw["what_if"]:
            rows.append([" + ".join(changes) or "(as it is)",
                         f"{S.median([r['cos_requests'] / r['tasks'] for r in rounds]):.1f}",
                         " / ".join(f"{r['cpu_function'] / r['tasks'] * 1e3:.1f}" for r in rounds),
                         " / ".join(f"{r['rate']:.1f}" for r in rounds),
                         " / ".join(str(r["describe_limit_hits"]) for r in rounds)])
        what_if_table = S.markdown_table(["changes (cumulative; none is in redraw)", "COS requests per task",
                                          "function CPU ms per task (new / warm)", "tasks/s (new / warm)",
                                          "DescribeTaskDetail limit hits"], rows)
    notes = [
        f"Tasks: ended upload tasks (VOD emulator `add_task`, a minute old, task duration 0.5 s), each with its pending "
        "record and receipt written into the state bucket's folder as `records.new_record` makes them. The function: "
        f"`_fnproc.py` (the package + COS SDK tree, `-B -S`), serverless.yml's settings for the sweep "
        f"(REDRAW_DESCRIBE_RPS 100, REDRAW_SWEEP_CONCURRENCY 16, REDRAW_POLL_MAX_INTERVAL_S 300, VOD_PACING "
        f"adaptive), timer invocations with `time_limit_in_ms` {TIME_LIMIT_MS} (serverless.yml's timeout: 60 s) "
        "until every task is finished; no delivery. Its log lines go to a file; every task has exactly one "
        "`task.finished` line and no pending record is left (checked).",
        f"The limit: DescribeTaskDetail allows {DESCRIBE_LIMIT} requests per second "
        "(tencentcloud.com/document/api/266/34129); the VOD emulator enforces it over any sliding second "
        "(`describe_rps=100`, answering RequestLimitExceeded). Target: ≥ 0.9 × 100 = 90 tasks/s.",
        "Each emulator is a process of its own (`_emuhost.py`); the machine has 2 cores for the three processes.",
    ]
    return notes, t, profile_table, what_if_table


def delivery_section(d: dict) -> Tuple[List[str], Table]:
    t = Table()
    mib = d["size"] / 2**20
    fun, bare = d["function"], d["bare"]
    f_rate, b_rate = S.median([f["rate"] for f in fun]), S.median([b["rate"] for b in bare])
    t.row(f"delivery of {mib:.0f} MiB by a timer sweep (function process)",
          f"{f_rate:.0f} MiB/s (median; {', '.join(_s(f['elapsed']) for f in fun)})")
    t.row("same copy, bare script (requests GET stream + SDK multipart, 8 MiB parts)",
          f"{b_rate:.0f} MiB/s (median; {', '.join(_s(b['elapsed']) for b in bare)})")
    t.row("throughput: function / bare (median of pairs)", f"{d['ratio']:.2f}", f"≥ {TARGETS['delivery_ratio']:.1f}",
          d["ratio"] >= TARGETS["delivery_ratio"])
    rss = max(f["rss"] for f in fun)
    t.row("function process peak RSS (max of runs)",
          f"{rss:.1f} MB (before the delivery: {max(f['rss_ready'] for f in fun):.1f} MB)",
          f"≤ {TARGETS['delivery_rss_mb']:.0f} MB", rss <= TARGETS["delivery_rss_mb"])
    t.row("bare script peak RSS (max of runs)", f"{max(b['rss'] for b in bare):.1f} MB")
    t.row("time reading the download (both sides: part reads of 8 MiB)",
          f"function {S.median([f['read_s'] for f in fun]):.2f} s, "
          f"bare {S.median([b['read_s'] for b in bare]):.2f} s (the rest: the uploads, mostly the COS emulator's work)")
    notes = [
        f"{len(fun)} pairs, the order alternated. Function: a new `_fnproc.py` process per run (package + COS SDK "
        "tree), one warm-up sweep with nothing pending (runtime and COS client built), then one timer invocation "
        "that finds the task ended and delivers its output to `redrawn/<key>` in the upload's bucket; its wall "
        "time includes the sweep's other calls (list, record, DescribeTaskDetail, claim, done record, receipt). "
        "Peak RSS: the process's `ru_maxrss` (`os.wait4`); 'before the delivery': its VmHWM after the warm-up.",
        "Bare: `requests.get(stream=True)`, then `create_multipart_upload`, `raw.read(8 MiB)` → `upload_part` in a "
        "loop, `complete_multipart_upload`; the same tree and interpreter flags; timed from the client's creation "
        "(its imports not included). Both write through the COS emulator (objects are files) and read the VOD "
        "emulator's generated output, each emulator in a process of its own. Every object's size is checked. "
        + ("The COS emulator's folder is on tmpfs (/dev/shm)." if d.get("tmpfs") else "The COS emulator's folder is on disk."),
    ]
    return notes, t


def build_report(mode: str, cfg: dict, trees: Trees, cold: Optional[Tuple[List[Cold], Optional[dict]]],
                 sw: Optional[dict], dl: Optional[dict], elapsed: float) -> Tuple[str, List[str]]:
    ran = [f"cold start {cfg['cold_runs']} runs per variant" if cold is not None else "",
           f"sweep {cfg['tasks']} tasks per run" if sw is not None else "",
           f"delivery {cfg['delivery_mib']} MiB × {cfg['delivery_pairs']} pairs" if dl is not None else ""]
    parts = [f"# redraw follow-up benchmarks ({mode})", "", *S.machine_lines(),
             f"- settings: {'; '.join(r for r in ran if r)}; code trees: {trees.kind}; run time {elapsed:.0f} s", ""]
    fails: List[str] = []
    if cold is not None:
        notes, t = cold_section(cold[0], cold[1], cfg, trees)
        parts += ["## 1. Upload path cold start", "", t.render(), "", *[f"- {n}" for n in notes], ""]
        fails += t.fails
    if sw is not None:
        notes, t, profile, what_if = sweep_section(sw)
        parts += ["## 2. Sweep", "", t.render(), ""]
        if what_if:
            parts += ["What changes to the sweep's COS work would gain (`--what-if`: each set applied at run time in "
                      "`_fnproc.py`, a new container then the same one again; `no-done-get`: no GET of the done "
                      "record before the claim; `optimistic-claim`: create `claims/<TaskId>/000000` first, list the "
                      "claims only if it exists; `no-trust-env`: the COS SDK's requests session ignores proxy/CA "
                      "variables):", "", what_if, "",
                      "`optimistic-claim` is not safe as it stands: the chain of claims relies on a claim never "
                      "being deleted after it expired, and a sweep can outlive its claim (a claim lives until its "
                      "invocation's deadline + 5 s; with REDRAW_SAFETY_MARGIN_MS above 5 s the invocation runs on "
                      "past it), release it, and let another sweep create `000000` while `000001` is alive. It "
                      "would need `_release` to delete a claim only well before it expires. `no-trust-env` ignores "
                      "HTTP(S)_PROXY for COS.", ""]
        if profile:
            parts += ["Where a task's time goes (the profiled run): wall time of each call in its thread (16 threads "
                      "overlap) and the CPU time of the calling thread (`time.thread_time`); nested rows are part "
                      "of the rows above them (a task check holds its COS and VOD calls).", "", profile, ""]
        parts += [*[f"- {n}" for n in notes], ""]
        fails += t.fails
    if dl is not None:
        notes, t = delivery_section(dl)
        parts += ["## 3. Delivery", "", t.render(), "", *[f"- {n}" for n in notes], ""]
        fails += t.fails
    return "\n".join(parts), fails


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes from the development tree, writes no file")
    parser.add_argument("--out", help="markdown results file (default benchmarks/followup-results.md; '-': none)")
    parser.add_argument("--only", default="cold,sweep,delivery", help="comma-separated parts to run")
    parser.add_argument("--runs", type=int, help="cold-start runs per variant")
    parser.add_argument("--cold-variants", help="comma-separated cold-start variants (before,before-on,today,off,on,rules,"
                                                "plain; "
                                                "default all; the report needs all)")
    parser.add_argument("--before", default=BEFORE_COMMIT, metavar="COMMIT",
                        help=f"the commit whose code the 'before' cold-start tree holds (default {BEFORE_COMMIT})")
    parser.add_argument("--after", metavar="COMMIT",
                        help="the commit whose code the cold start's trees of today's code hold (default: the worktree's)")
    parser.add_argument("--tasks", type=int, help="ended tasks per sweep run")
    parser.add_argument("--delivery-mib", type=int, help="size of the delivered output, MiB")
    parser.add_argument("--pairs", type=int, help="delivery runs per side")
    parser.add_argument("--what-if", action="store_true",
                        help="also sweep with changes to its COS work tried at run time (not in redraw): what they gain")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "full"
    cfg = dict(MODES[mode])
    for name, value in (("cold_runs", args.runs), ("tasks", args.tasks), ("delivery_mib", args.delivery_mib),
                        ("delivery_pairs", args.pairs)):
        if value:
            cfg[name] = value
    cfg["what_if"] = args.what_if
    cfg["cold_variants"] = args.cold_variants.split(",") if args.cold_variants else None
    only = set(args.only.split(","))
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="redraw-followup-bench-"))
    cold = sw = dl = None
    try:
        trees = prepare_trees(mode, args.before, args.after)
        if "cold" in only:
            variants = cold_start(cfg, trees, tmp)
            log("cold start: where the follow-up's time goes")
            cold = (variants, explain_on(cfg, trees, tmp) if any(v.key == "on" for v in variants) else None)
        if "sweep" in only:
            sw = sweep_bench(cfg, trees, tmp)
        if "delivery" in only:
            log(f"delivery: {cfg['delivery_mib']} MiB, {cfg['delivery_pairs']} pairs")
            dl = delivery_bench(cfg, trees, tmp)
    except BenchError as exc:
        print(f"benchmark error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report, fails = build_report(mode, cfg, trees, cold, sw, dl, time.monotonic() - started)
    out = args.out or (None if mode == "smoke" else str(BENCH / "followup-results.md"))
    return S.finish_report(report, out, log, mode, started, fails, args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
