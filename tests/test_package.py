"""The SCF package holds the function and its runtime dependencies, nothing of the tools.

Builds the zip for this interpreter (``scripts/package.py --target local``, which also
runs the unzipped function on a sample of each redraw source with a clean ``sys.path``)
and opens it.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, in_background, run_wide

# The first test builds the zip (scheduled first, conftest); the others reuse it, scheduled last, so that no
# worker of `make test` waits for the build.
pytestmark = pytest.mark.last

#: Top-level names that belong to the tools or the tests, never to the function.
TOOL_DEPENDENCIES = ("rich", "tqdm", "yaml", "pytest", "hypothesis", "_pytest", "mypy", "ruff", "watchdog",
                     "imageio_ffmpeg")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """Built once per test run (the workers of ``make test`` share it: package.py stages in build/)."""
    with run_wide(tmp_path_factory, "package") as folder:
        out = folder / "redraw-scf-test.zip"
        if not out.exists():
            done = subprocess.run([sys.executable, "scripts/package.py", "--target", "local", "--output", str(out)],
                                  cwd=ROOT, capture_output=True, text=True, timeout=600,
                                  preexec_fn=in_background)
            assert done.returncode == 0, done.stderr[-3000:]
            assert "verify: OK" in done.stderr  # each sample event was handled from the unzipped tree
    return out


@pytest.mark.slow
def test_the_zip_holds_no_tool_module_or_tool_dependency(package):
    names = zipfile.ZipFile(package).namelist()
    assert "handler.py" in names and "redraw/app.py" in names
    assert not [n for n in names if n.startswith("redraw/tools/")]
    tops = {n.split("/", 1)[0] for n in names}
    assert not tops & set(TOOL_DEPENDENCIES), tops & set(TOOL_DEPENDENCIES)


def test_every_module_the_function_imports_is_in_the_zip(package):
    names = set(zipfile.ZipFile(package).namelist())
    for path in [ROOT / "handler.py", *(ROOT / "redraw").rglob("*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("redraw/tools/"):
            continue
        assert rel in names, rel
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level and node.module and "tools" in node.module.split("."):
                pytest.fail(f"{rel} imports the tools ({node.module})")


def test_the_unzipped_function_handles_each_source_with_a_clean_path(package, tmp_path):
    code = tmp_path / "code"
    zipfile.ZipFile(package).extractall(code)
    probe = ("import sys, json; import handler; "
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             + repr(TOOL_DEPENDENCIES + ("tencentcloud", "qcloud_cos")) + " or m.startswith('redraw.tools'))))")
    done = subprocess.run([sys.executable, "-S", "-B", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []  # importing the handler loads neither tools nor the SDKs yet
    assert "qcloud_cos/__init__.py" in set(zipfile.ZipFile(package).namelist())  # the follow-up's COS SDK ships


def test_tool_dependencies_are_an_extra_the_function_never_installs():
    import re
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    runtime = re.search(r"^dependencies = \[(.*?)\]", pyproject, re.M | re.S).group(1)  # type: ignore[union-attr]
    runtime += (ROOT / "requirements.txt").read_text()
    assert re.search(r'^tools = \["rich>=.*"watchdog>=', pyproject, re.M)
    assert re.search(r'^tools = \[.*"imageio-ffmpeg>=', pyproject, re.M)
    for name in ("rich", "tqdm", "pyyaml", "pytest", "hypothesis", "watchdog", "imageio"):
        assert name not in runtime, name


@pytest.mark.parametrize("sample, loaded, absent", [
    # a COS upload needs neither pydantic's model machinery nor the request models
    ("cos-put.json", ["redraw.sources.cos", "pydantic_core"], ["pydantic.main", "redraw.request", "redraw.sources.http",
                                                               # the follow-up is off: nothing of it, nor the COS SDK
                                                               "redraw.followup", "redraw.cosclient", "qcloud_cos"]),
    ("apigw-post.json", ["redraw.sources.http", "redraw.request", "pydantic.main"], ["redraw.sources.cos"]),
])
def test_an_event_imports_only_what_its_trigger_needs(package, tmp_path, emulator, sample, loaded, absent):
    from conftest import SUB_APP_ID
    from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY

    code = tmp_path / "code"
    zipfile.ZipFile(package).extractall(code)
    probe = ("import sys, json; import handler; event = json.load(open(sys.argv[1])); "
             "handler.main_handler(event, {'request_id': 'probe'}); "
             "print(json.dumps(sorted(sys.modules)), file=sys.stderr)")
    env = {"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin", "VOD_SUB_APP_ID": str(SUB_APP_ID),
           "VOD_ENDPOINT": emulator.url, "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID,
           "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY}
    done = subprocess.run([sys.executable, "-S", "-B", "-c", probe, str(ROOT / "events" / sample)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert set(loaded) <= modules, set(loaded) - modules
    assert not set(absent) & modules, set(absent) & modules


def test_pydantic_core_loads_before_structlog():
    # redraw/app.py: from source, compiling pydantic-core's big modules first lets the imports after
    # them reuse that memory (source-only cold start peak RSS ~0.75 MB lower); keep the order
    probe = "import sys, handler; m = list(sys.modules); print(m.index('pydantic_core') < m.index('structlog'))"
    done = subprocess.run([sys.executable, "-B", "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"
