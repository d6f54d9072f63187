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

from conftest import ROOT

#: Top-level names that belong to the tools or the tests, never to the function.
TOOL_DEPENDENCIES = ("rich", "tqdm", "yaml", "pytest", "hypothesis", "_pytest", "qcloud_cos", "mypy", "ruff")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "redraw-scf-test.zip"
    done = subprocess.run([sys.executable, "scripts/package.py", "--target", "local", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "verify: OK" in done.stderr  # each sample event was handled from the unzipped tree
    return out


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
             + repr(TOOL_DEPENDENCIES + ("tencentcloud",)) + " or m.startswith('redraw.tools'))))")
    done = subprocess.run([sys.executable, "-S", "-B", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []  # importing the handler loads neither tools nor the SDK yet
