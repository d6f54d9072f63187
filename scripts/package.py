#!/usr/bin/env python3
"""Build the SCF deployment zip: runtime dependencies + handler.py + redraw/, with bytecode.

Standard library only. Two targets:

``--target scf`` (``make package``) → ``dist/redraw-scf.zip``
    Dependencies from requirements.txt as Linux x86_64 / CPython 3.10 wheels
    (``pip install --platform manylinux2014_x86_64 --python-version 3.10
    --implementation cp --only-binary=:all: --target …``), bytecode compiled by a
    Python 3.10 interpreter. If none can be found the zip is built source-only
    (with a loud warning): 3.11 bytecode is never shipped for 3.10.

``--target local`` (``make package-local``) → ``dist/redraw-scf-local.zip``
    The same zip for the interpreter running this script (its platform, its
    Python, its bytecode). The benchmarks use it.

Layout: the zip root holds ``handler.py``, ``redraw/`` (without ``redraw/tools``, the
command-line tools, which the function never imports) and the dependencies
(SCF puts the unzipped code directory on ``sys.path``). Bytecode is written by
``compileall --invalidation-mode unchecked-hash`` (PEP 552) in the normal
``__pycache__/NAME.cpython-3XY.pyc`` layout: the import system uses it from a
read-only directory without ever looking at the source's mtime, and never
needs to write a cache. Sources stay in the zip (tracebacks show lines).

Removed from the dependencies: ``bin/``, ``*.dist-info`` (licence files are
kept under ``THIRD_PARTY_LICENSES/``), pip/setuptools/wheel, ``__pycache__``,
``*.pyi``, ``py.typed``, ``tests`` directories inside packages, and the pure
Python twin of any module that ships compiled (``X.py`` beside
``X.cpython-*.so``: the extension module always wins the import).
Nothing at run time reads the distributions' metadata: pydantic's plugin
discovery (``importlib.metadata.entry_points``) simply finds no plugins, and
the check run by ``--verify`` (default on) imports and runs the function from
the unzipped package, with nothing else on ``sys.path``, on a sample event of
each redraw source against the VOD emulator.

The zip is deterministic: sorted entries, fixed timestamps (1980-01-01),
normalised permissions, ZIP_DEFLATED.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
CODE = ("handler.py", "redraw")
#: What people run on their machines, never shipped: the subpackage redraw/tools.
TOOLS = ("tools",)
SCF_PLATFORM = "manylinux2014_x86_64"
SCF_PYTHON = "3.10"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SIZE_LIMIT = 10 * 1024 * 1024          # our own target; SCF accepts 50 MB zipped
SCF_CODE_DIR = "/var/user"             # where SCF unpacks the code (only used for co_filename)

DROP_TOP = {"bin", "pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel",
            "distutils-precedence.pth", "__pycache__",
            # pycryptodome (17 MB): only cos-python-sdk-v5's client-side encryption imports it
            # (qcloud_cos/crypto.py, cos_encryption_client.py), which redraw never uses
            "Crypto"}
DROP_DIR_NAMES = {"__pycache__", "tests", "test"}
DROP_FILE_SUFFIXES = (".pyc", ".pyo", ".pyi")
DROP_FILE_NAMES = {"py.typed"}
LICENSE_RE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.IGNORECASE)
EXT_RE = re.compile(r"^(?P<stem>[^.]+)\.(cpython-\d+[a-z]*-[^.]+|abi3)\.so$")


def log(message: str) -> None:
    print(f"[package] {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    bar = "!" * 78
    print(f"{bar}\n[package] WARNING: {message}\n{bar}", file=sys.stderr, flush=True)


# --- finding an interpreter for the target Python ---------------------------------------------

def _version_of(python: str) -> Optional[str]:
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str, explicit: Optional[str] = None) -> Optional[str]:
    """A working interpreter for ``version`` ("3.10"), or None.

    Looks at --python / $PYTHON310, ``python3.10`` on PATH (pyenv shims that
    refuse are skipped), pyenv's versions directory, ``uv python find``.
    """
    candidates: List[str] = []
    if explicit:
        candidates.append(explicit)
    env_name = "PYTHON" + version.replace(".", "")
    if os.environ.get(env_name):
        candidates.append(os.environ[env_name])
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for found in sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin",
                                               f"python{version}")), reverse=True):
        candidates.append(found)
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    uv = shutil.which("uv")
    if uv:
        try:
            out = subprocess.run([uv, "python", "find", version], capture_output=True, text=True,
                                 timeout=60)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    seen = set()
    for cand in candidates:
        if cand in seen or not os.path.exists(cand):
            continue
        seen.add(cand)
        if _version_of(cand) == version:
            return cand
        if cand == explicit:
            warn(f"{cand} is not Python {version}")
    return None


# --- dependencies -------------------------------------------------------------------------------

def _requirement_names(text: str) -> List[str]:
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if m:
            names.append(m.group(0))
    return names


#: Dependencies published only as source, with a pure-Python package inside: ``name: (version, the
#: package's folder in the sdist)``. crcmod (needed by cos-python-sdk-v5) has an optional C extension
#: and falls back to its pure-Python CRC functions, which are what ships.
PURE_SDISTS = {"crcmod": ("1.7", "python3/crcmod")}


def _pure_wheels(where: Path) -> Path:
    """py3-none-any wheels built from PURE_SDISTS' pure-Python packages (for --only-binary installs)."""
    import base64
    import tarfile

    where.mkdir(parents=True, exist_ok=True)
    for name, (version, folder) in PURE_SDISTS.items():
        wheel = where / f"{name}-{version}-py3-none-any.whl"
        if wheel.exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--no-binary", ":all:", "--dest", tmp, f"{name}=={version}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            sdists = glob.glob(os.path.join(tmp, f"{name}-{version}.tar.gz"))
            if proc.returncode != 0 or not sdists:
                raise SystemExit(f"pip download of {name}=={version} (source) failed: {proc.stderr.strip()[-500:]}")
            files: List[Tuple[str, bytes]] = []
            with tarfile.open(sdists[0]) as sdist:
                prefix = f"{name}-{version}/{folder}/"
                for member in sdist.getmembers():
                    if member.isfile() and member.name.startswith(prefix) and member.name.endswith(".py") \
                            and not member.name.endswith("/test.py"):
                        handle = sdist.extractfile(member)
                        assert handle is not None
                        files.append((f"{name}/{member.name[len(prefix):]}", handle.read()))
                licence = next((m for m in sdist.getmembers() if m.name == f"{name}-{version}/LICENSE"), None)
                if licence is not None and (handle := sdist.extractfile(licence)) is not None:
                    files.append((f"{name}-{version}.dist-info/LICENSE", handle.read()))
        info = f"{name}-{version}.dist-info"
        files.append((f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()))
        files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: redraw-package\nRoot-Is-Purelib: true\n"
                                       b"Tag: py3-none-any\n"))
        record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                  f"{len(data)}" for path, data in files] + [f"{info}/RECORD,,"]
        files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
        partial = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, data in files:
                zf.writestr(path, data)
        partial.rename(wheel)
        log(f"built {wheel.name} from the source distribution's pure-Python package")
    return where


def _pip_install(target: Path, requirements: Path, extra: Sequence[str], scf: bool) -> None:
    wheels = _pure_wheels(target.parent / "pure-wheels")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-compile", "--no-warn-script-location", "--only-binary=:all:", "--find-links", str(wheels),
           "--target", str(target), "-r", str(requirements), *extra]
    if scf:
        cmd += ["--platform", SCF_PLATFORM, "--python-version", SCF_PYTHON, "--implementation", "cp"]
    log("pip install --target " + ("(Linux x86_64, CPython 3.10 wheels)" if scf else "(this interpreter)"))
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    noise = ("is ignored: it is neither a file nor a directory",)
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip() and not any(n in line for n in noise):
            print("  pip: " + line, file=sys.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"pip install failed (exit {proc.returncode}): {' '.join(cmd)}")


def _copy_from_this_python(target: Path, requirements: Path, extra: Sequence[str]) -> None:
    """Offline alternative to pip: copy the installed distributions (and their dependencies)."""
    from importlib import metadata

    todo = _requirement_names(requirements.read_text()) + _requirement_names("\n".join(extra))
    done = set()
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in done:
            continue
        done.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"--deps-from-env: {name} is not installed in {sys.prefix}") from None
        for req in dist.requires or []:
            if "extra ==" in req.replace('"', "").replace("'", ""):
                continue
            marker = req.split(";", 1)[1] if ";" in req else ""
            if "python_" in marker and not _simple_marker_ok(marker):
                continue
            todo += _requirement_names(req.split(";", 1)[0])
        base = Path(dist.locate_file("")).resolve()
        for rel in dist.files or []:
            src = Path(dist.locate_file(rel)).resolve()
            try:
                relpath = src.relative_to(base)
            except ValueError:
                continue  # scripts in bin/ and the like
            if "__pycache__" in relpath.parts or not src.is_file():
                continue
            dst = target / relpath
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _simple_marker_ok(marker: str) -> bool:
    """Evaluate ``python_version`` / ``python_full_version <op> "X.Y[.Z]"`` markers (the only kinds
    our dependencies use; redis has ``python_full_version < '3.11.3'``)."""
    m = re.search(r"python_(?:full_)?version\s*(<=|>=|==|!=|<|>)\s*['\"](\d+(?:\.\d+)*)['\"]", marker)
    if not m:
        return True
    want = tuple(int(part) for part in m.group(2).split("."))
    have = tuple(sys.version_info[:len(want)])
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want,
            "==": have == want, "!=": have != want}[m.group(1)]


def deps_path(cache_dir: Path, scf: bool, extra: Sequence[str] = (), from_env: bool = False) -> Path:
    """Where install_deps keeps (or would keep) this dependency tree."""
    how = "env" if from_env else "pip"
    target_tag = f"cp{SCF_PYTHON.replace('.', '')}-{SCF_PLATFORM}" if scf else \
        f"cp{sys.version_info[0]}{sys.version_info[1]}-{sys.platform}-{os.uname().machine}"
    digest = hashlib.sha256("\n".join([REQUIREMENTS.read_text(), *extra, target_tag, how,
                                       sys.executable if not scf else ""]).encode()).hexdigest()[:12]
    return cache_dir / f"deps-{target_tag}-{how}-{digest}"


def install_deps(cache_dir: Path, scf: bool, extra: Sequence[str] = (), from_env: bool = False,
                 use_cache: bool = True) -> Path:
    """The dependency tree for the target (a plain --target install), cached by requirements + target."""
    dest = deps_path(cache_dir, scf, extra, from_env)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if use_cache and (dest / ".complete").exists():
        log(f"dependencies: cached {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=cache_dir))
    try:
        if from_env:
            if scf:
                raise SystemExit("--deps-from-env only works for --target local")
            log(f"dependencies: copied from {sys.prefix} (offline)")
            _copy_from_this_python(tmp, REQUIREMENTS, extra)
        else:
            _pip_install(tmp, REQUIREMENTS, extra, scf)
        (tmp / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --- staging -------------------------------------------------------------------------------------

def _licences(deps: Path, stage: Path) -> int:
    count = 0
    for info in sorted(deps.glob("*.dist-info")):
        dist = info.name[: -len(".dist-info")]
        files = [p for p in info.rglob("*") if p.is_file() and
                 (LICENSE_RE.match(p.name) or "licenses" in p.relative_to(info).parts)]
        for src in files:
            rel = src.relative_to(info)
            rel = Path(*[part for part in rel.parts if part != "licenses"])
            dst = stage / "THIRD_PARTY_LICENSES" / dist / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            count += 1
    return count


def _keep(rel: Path, is_dir: bool, siblings: Iterable[str]) -> bool:
    parts = rel.parts
    if parts[0] in DROP_TOP or parts[0].endswith((".dist-info", ".egg-info", ".pth")):
        return False
    name = parts[-1]
    if is_dir:
        return name not in DROP_DIR_NAMES
    if name in DROP_FILE_NAMES or name.endswith(DROP_FILE_SUFFIXES):
        return False
    if name.endswith(".py"):
        stem = name[:-3]
        if any((m := EXT_RE.match(s)) and m.group("stem") == stem for s in siblings):
            return False  # compiled twin present: the extension module is what gets imported
    return True


def stage_tree(deps: Path, stage: Path) -> Tuple[int, List[str]]:
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    dropped: List[str] = []
    for dirpath, dirnames, filenames in os.walk(deps):
        here = Path(dirpath)
        rel_here = here.relative_to(deps)
        for d in sorted(dirnames):
            if not _keep(rel_here / d, True, ()):
                dropped.append(str(rel_here / d) + "/")
                dirnames.remove(d)
        for f in filenames:
            rel = rel_here / f
            if rel == Path(".complete"):
                continue
            if not _keep(rel, False, filenames):
                if not rel.parts[0].endswith(".dist-info"):
                    dropped.append(str(rel))
                continue
            dst = stage / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(here / f, dst)
            if os.access(here / f, os.X_OK) and f.endswith(".so"):
                os.chmod(dst, 0o755)
    licences = _licences(deps, stage)
    # The function's own code.
    shutil.copyfile(ROOT / "handler.py", stage / "handler.py")
    shutil.copytree(ROOT / "redraw", stage / "redraw",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", *TOOLS))
    # Directories emptied by the pruning (e.g. pydantic_core/_pydantic_core/ held only .pyi).
    for dirpath, _dirs, _files in os.walk(stage, topdown=False):  # bottom-up
        if not os.listdir(dirpath) and Path(dirpath) != stage:
            os.rmdir(dirpath)
    return licences, dropped


def compile_tree(python: str, stage: Path) -> None:
    cmd = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
           "-s", str(stage), "-p", SCF_CODE_DIR, str(stage)]
    # PYTHONHASHSEED=0: constant frozensets are marshalled in hash order, so a random seed
    # would make the bytecode (and the zip) differ from build to build.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit("compileall failed")
    tag = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    missing = [str(p.relative_to(stage)) for p in stage.rglob("*.py")
               if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists()]
    if missing:
        raise SystemExit(f"no bytecode for {len(missing)} files, e.g. {missing[:5]}")
    stray = [str(p.relative_to(stage)) for p in stage.rglob("*.pyc") if f".{tag}." not in p.name]
    if stray:
        raise SystemExit(f"bytecode for another Python in the package: {stray[:5]}")


# --- zip -----------------------------------------------------------------------------------------

def write_zip(stage: Path, output: Path) -> Tuple[int, int]:
    entries = []
    for dirpath, dirnames, filenames in os.walk(stage):
        for name in dirnames:
            entries.append((Path(dirpath, name), True))
        for name in filenames:
            entries.append((Path(dirpath, name), False))
    entries.sort(key=lambda e: e[0].relative_to(stage).as_posix())
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    unzipped = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path, is_dir in entries:
            arcname = path.relative_to(stage).as_posix() + ("/" if is_dir else "")
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix: the permission bits below are honoured
            if is_dir:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(info, b"")
                continue
            mode = 0o755 if os.access(path, os.X_OK) and path.suffix == ".so" else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, output)
    return output.stat().st_size, unzipped


# --- verification --------------------------------------------------------------------------------

#: Sample events the packaged function must handle, one per redraw source, and what each must answer.
VERIFY_EVENTS = {"cos-put.json": "cos", "url-post.json": "http", "apigw-post.json": "http",
                 "ckafka.json": "ckafka", "direct.json": "direct"}

_VERIFY = r"""
import os, sys, json
events = json.loads(sys.argv[1])
import handler
out, sys.stdout = sys.stdout, open(os.devnull, "w")
answers = {name: handler.main_handler(event, {"request_id": "verify-" + name}) for name, event in events.items()}
sweep = handler.main_handler({"Type": "Timer", "TriggerName": "redraw-sweep", "Time": "2026-12-05T08:00:00Z",
                              "Message": "sweep"}, {"request_id": "verify-sweep", "time_limit_in_ms": 60000})
sys.stdout = out
import certifi
tools = sorted(m for m in sys.modules if m.startswith("redraw.tools") or m in ("rich", "yaml", "pytest"))
print(json.dumps({"answers": answers, "sweep": sweep["sweep"], "tools": tools, "python": "%d.%d" % sys.version_info[:2],
                  "cert": os.path.exists(certifi.where())}))
"""


def _outcome(kind: str, answer: dict) -> str:
    if kind in ("cos", "ckafka"):  # every record/message of the sample submitted
        statuses = {r["status"] for r in answer["results"]}
        return statuses.pop() if len(statuses) == 1 else str(answer)
    if kind == "http":
        return "submitted" if answer.get("statusCode") == 200 and "TaskId" in json.loads(answer["body"]) else str(answer)
    return str(answer.get("Status"))


def verify(zip_path: Path, python: str, bytecode: bool) -> None:
    """Unzip into a read-only directory and run the function from it, as SCF would, with the
    follow-up on as serverless.yml deploys it: each sample event, then a timer sweep that finishes
    and delivers every task (the COS SDK from the package, against the COS emulator).

    Only the unzipped code is on ``sys.path`` (``-S``: no site-packages); the emulators run in
    this process, so nothing of the tools is importable there.
    """
    sys.path.insert(0, str(ROOT))
    from redraw.tools.cos_emulator import CosEmulator
    from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator

    events = {name: json.loads((ROOT / "events" / name).read_text(encoding="utf-8")) for name in VERIFY_EVENTS}
    with tempfile.TemporaryDirectory(prefix="redraw-verify-") as tmp, \
            VodEmulator(rps=None, task_duration=0) as emu, CosEmulator(root=Path(tmp) / "cos", auto_buckets=True) as cos:
        code = Path(tmp) / "code"
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(code)
        for dirpath, _dirnames, filenames in os.walk(code):
            for n in filenames:
                os.chmod(os.path.join(dirpath, n), 0o444)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(code),
               "LANG": "C.UTF-8", "VOD_ENDPOINT": emu.url, "VOD_SUB_APP_ID": "1500000001",
               "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY,
               "TENCENTCLOUD_REGION": "ap-guangzhou", "REDRAW_FOLLOW_UP": "true",
               "REDRAW_STATE_BUCKET": "media-1250000000", "REDRAW_COS_ENDPOINT": cos.url,
               "REDRAW_DELIVER_PREFIX": "redrawn/", "REDRAW_POLL_MAX_INTERVAL_S": "0"}
        proc = subprocess.run([python, "-B", "-S", "-v", "-c", _VERIFY, json.dumps(events)], capture_output=True,
                              text=True, env=env, cwd=tmp, timeout=120)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"verify: the packaged function failed under {python}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        outcomes = {name: _outcome(VERIFY_EVENTS[name], answer) for name, answer in report["answers"].items()}
        tasks = sum(len(a["results"]) if VERIFY_EVENTS[n] in ("cos", "ckafka") else 1
                    for n, a in report["answers"].items())
        if set(outcomes.values()) != {"submitted"} or emu.task_count != tasks or not report["cert"] \
                or report["tools"]:
            raise SystemExit(f"verify: unexpected outcome {outcomes}, {emu.task_count} tasks, tools {report['tools']}")
        delivered = len(cos.keys("media-1250000000", "redrawn/"))
        if report["sweep"].get("succeeded") != tasks or delivered != tasks:
            raise SystemExit(f"verify: the sweep finished {report['sweep']} and delivered {delivered} of {tasks} tasks")
        # "# code object from '<path>.py'" = compiled from source at import time.
        from_source = [line for line in proc.stderr.splitlines()
                       if line.startswith("# code object from") and str(code) in line
                       and not line.rstrip("'").endswith(".pyc")]
        from_pyc = [line for line in proc.stderr.splitlines()
                    if line.startswith("# code object from") and str(code) in line
                    and line.rstrip("'").endswith(".pyc")]
        if bytecode and from_source:
            raise SystemExit(f"verify: {len(from_source)} modules compiled from source at import, "
                             f"e.g. {from_source[:3]}")
        log(f"verify: OK under Python {report['python']} ({python}): {', '.join(events)} → tasks submitted, "
            f"recorded, swept and delivered; "
            f"{len(from_pyc)} modules loaded from bytecode, {len(from_source)} compiled from source")


# --- main ----------------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("scf", "local"), default="scf",
                        help="scf: Linux x86_64 / CPython 3.10 (default); local: this interpreter")
    parser.add_argument("--output", type=Path, help="zip path (default dist/redraw-scf[-local].zip)")
    parser.add_argument("--python", help="interpreter that compiles the bytecode for --target scf "
                                         "(default: search for python3.10, $PYTHON310, pyenv, uv)")
    parser.add_argument("--require-bytecode", action="store_true",
                        help="fail instead of building a source-only package when no interpreter is found")
    parser.add_argument("--deps-from-env", action="store_true",
                        help="(local only) copy dependencies from this interpreter's installed "
                             "distributions instead of running pip (offline)")
    parser.add_argument("--extra", action="append", default=[],
                        help="extra requirement to install beside requirements.txt (repeatable)")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build",
                        help="work directory (default build/)")
    parser.add_argument("--no-cache", action="store_true", help="reinstall the dependencies")
    parser.add_argument("--no-verify", action="store_true", help="skip the run-from-the-zip check")
    args = parser.parse_args(argv)

    started = time.monotonic()
    scf = args.target == "scf"
    output = args.output or ROOT / "dist" / ("redraw-scf.zip" if scf else "redraw-scf-local.zip")
    build = args.build_dir.resolve()
    (build / "cache").mkdir(parents=True, exist_ok=True)

    if scf:
        python = find_python(SCF_PYTHON, args.python)
        if python is None:
            message = (f"no Python {SCF_PYTHON} interpreter found (tried --python, $PYTHON310, "
                       f"python{SCF_PYTHON}, pyenv, uv): building a SOURCE-ONLY package. It works, "
                       "but every cold start compiles all modules from source (~3x slower). "
                       "Install Python 3.10 (e.g. `uv python install 3.10`, pyenv) and rebuild.")
            if args.require_bytecode:
                raise SystemExit(message)
            warn(message)
    else:
        python = sys.executable
    deps = install_deps(build / "cache", scf, args.extra, args.deps_from_env, not args.no_cache)
    stage = build / f"package-{args.target}"
    licences, dropped = stage_tree(deps, stage)
    infos = [d for d in dropped if ".dist-info" in d]
    others = sorted(d for d in dropped if ".dist-info" not in d)
    log(f"staged {stage.relative_to(ROOT) if stage.is_relative_to(ROOT) else stage}: dropped "
        f"{len(infos)} *.dist-info ({licences} licence files kept in THIRD_PARTY_LICENSES/) and "
        f"{len(others)} other paths: {', '.join(others)}")
    if python:
        compile_tree(python, stage)
        tag = "cpython-" + (_version_of(python) or "?").replace(".", "")
        log(f"bytecode: {tag}, unchecked-hash (PEP 552), compiled by {python}")
    size, unzipped = write_zip(stage, output)
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    files = len([n for n in zipfile.ZipFile(output).namelist() if not n.endswith("/")])
    shown = output.relative_to(ROOT) if output.resolve().is_relative_to(ROOT) else output
    log(f"{shown}: {size / 1e6:.2f} MB zipped ({size} bytes), {unzipped / 1e6:.1f} MB unzipped, "
        f"{files} files, sha256 {digest[:16]}…, built in {time.monotonic() - started:.1f} s")
    if size > SIZE_LIMIT:
        warn(f"{shown} is {size / 1e6:.1f} MB, over the {SIZE_LIMIT / 1e6:.0f} MB target")
    if not args.no_verify:
        runner = python if scf else sys.executable
        if runner is None:
            runner = find_python(SCF_PYTHON)
        if runner is None:
            log("verify: skipped (no Python 3.10 to run the SCF package with)")
        else:
            verify(output, runner, bytecode=python is not None)
    print(json.dumps({"zip": str(shown), "bytes": size, "unzipped_bytes": unzipped, "files": files,
                      "sha256": digest, "bytecode": bool(python)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
