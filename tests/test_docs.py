"""The README, serverless.yml, Makefile and CI agree with the code."""
from __future__ import annotations

import importlib
import re

import yaml

from conftest import ROOT
from redraw.config import VARIABLES

README = (ROOT / "README.md").read_text(encoding="utf-8")
SLS = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))


def test_readme_configuration_table_matches_the_code():
    table = README.split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.*?) \|$", table, re.M)
    assert [(name, default, meaning) for name, default, meaning in rows] == \
        [(name, default, meaning) for name, (default, meaning) in VARIABLES.items()]


def test_added_variable_names_use_the_project_prefixes():
    for name in VARIABLES:
        assert name.startswith(("VOD_", "REDRAW_")) or name.startswith("TENCENTCLOUD_"), name


def test_serverless_yml_matches_the_code():
    inputs = SLS["inputs"]
    module, function = inputs["handler"].split(".")
    assert callable(getattr(importlib.import_module(module), function))
    assert inputs["runtime"] == "Python3.10"
    assert inputs["src"]["src"] == "./dist/redraw-scf"
    assert "dist/redraw-scf.zip dist/redraw-scf" in (ROOT / "Makefile").read_text()  # make package unpacks it there
    assert inputs["memorySize"] == 64 and 1 <= inputs["timeout"] <= 900
    assert inputs["deadLetter"]["type"] == "CMQ" and inputs["deadLetter"]["name"]
    variables = inputs["environment"]["variables"]
    assert "VOD_SUB_APP_ID" in variables
    assert set(variables) <= set(VARIABLES), set(variables) - set(VARIABLES)
    assert len(str(variables)) < 4096  # SCF: all variables together ≤ 4 KB
    events = {list(e)[0]: list(e.values())[0]["parameters"] for e in inputs["events"]}
    assert events["cos"]["events"] == "cos:ObjectCreated:*" and events["cos"]["enable"] is True
    assert events["cos"]["bucket"].endswith(".myqcloud.com}") or ".cos." in events["cos"]["bucket"]
    endpoints = {(e["method"], e["path"]): e for e in events["apigw"]["endpoints"]}
    assert set(endpoints) == {("POST", "/redraw"), ("GET", "/tasks/{TaskId}")}
    for endpoint in endpoints.values():
        assert endpoint["function"]["isIntegratedResponse"] is True
        assert endpoint["authType"] != "NONE"


def test_readme_documents_every_serverless_variable_and_the_two_commands():
    for name in SLS["inputs"]["environment"]["variables"]:
        assert f"`{name}`" in README
    assert "make demo" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:.*\n\t.*pytest", makefile, re.M)
    assert re.search(r"^demo:.*\n\t.*redraw.tools invoke", makefile, re.M)


def test_every_sample_event_is_documented_kind():
    from redraw.sources import detect
    kinds = {p.name: detect(__import__("json").loads(p.read_text(encoding="utf-8")))
             for p in (ROOT / "events").glob("*.json")}
    assert {"cos", "apigw", "direct"} <= set(kinds.values())


def test_ruff_clean():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
