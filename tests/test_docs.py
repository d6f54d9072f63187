"""The README, the docs site (docs/, mkdocs.yml), serverless.yml, Makefile and CI agree with the code."""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import yaml

from conftest import ROOT
from redraw.config import VARIABLES

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


#: every page of the site and the README, as one text: "is it documented anywhere"
ALL_DOCS = README + "".join(page(p.name) for p in sorted(DOCS.glob("*.md")))
SLS = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))


def test_configuration_table_matches_the_code():
    """docs/configuration.md's table is the one scripts/config_table.py generates from Settings."""
    table = page("configuration.md").split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.*?) \|$", table, re.M)
    assert [(name, default, meaning) for name, default, meaning in rows] == \
        [(name, default, meaning) for name, (default, meaning) in VARIABLES.items()], \
        "docs/configuration.md differs from redraw.config: run python scripts/config_table.py --write"
    out = subprocess.run([sys.executable, "scripts/config_table.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_added_variable_names_use_the_project_prefixes():
    for name in VARIABLES:
        assert name.startswith(("VOD_", "REDRAW_")) or name.startswith("TENCENTCLOUD_"), name


SLS_TEXT = (ROOT / "serverless.yml").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
#: variables the component itself resolves (configure.md: name: ${name}-${stage}-${app})
COMPONENT_VARIABLES = {"name", "stage", "app", "org"}


def _apigw_alternative() -> list:
    """The commented API Gateway block, uncommented and parsed."""
    block = SLS_TEXT.split("# apigw-alternative:start\n")[1].split("# apigw-alternative:end")[0]
    lines = [line.strip()[2:] if line.strip().startswith("# ") else "" for line in block.splitlines()]
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return yaml.safe_load("\n".join(line[indent:] for line in lines))


def test_serverless_yml_uses_only_resolvable_variables_listed_in_env_example():
    doc_examples = ("${env:NAME}", "${env:NAME, 'x'}")  # the file's own comment about the forms
    text = SLS_TEXT
    for example in doc_examples:
        text = text.replace(example, "")
    forms = re.findall(r"\$\{([^}]*)\}", text)
    assert forms
    example = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.M))
    for form in forms:
        if form in COMPONENT_VARIABLES:
            continue
        match = re.fullmatch(r"env:([A-Z][A-Z0-9_]*)", form)
        assert match, f"${{{form}}} is not a form the Serverless CLIs resolve: use ${{env:NAME}}"
        assert match.group(1) in example, f"{match.group(1)} is missing from .env.example"
    for name in example:  # and .env.example holds nothing the file does not use
        assert f"${{env:{name}}}" in SLS_TEXT, name
    assert not re.search(r"(?i)(secret|token|password)\w*=\S", ENV_EXAMPLE)


def test_serverless_yml_matches_the_code():
    inputs = SLS["inputs"]
    module, function = inputs["handler"].split(".")
    assert callable(getattr(importlib.import_module(module), function))
    deploy = page("deploy.md")
    assert f"`{inputs['handler']}`" in deploy
    assert inputs["runtime"] == "Python3.10" and "`Python3.10`" in deploy
    assert inputs["src"]["src"] == "./dist/redraw-scf"
    assert "dist/redraw-scf.zip dist/redraw-scf" in (ROOT / "Makefile").read_text()  # make package unpacks it there
    assert inputs["memorySize"] == 64 and 1 <= inputs["timeout"] <= 900
    # retryNum / msgTTL only apply with asyncRunEnable: true (long-running async execution)
    assert inputs["asyncRunEnable"] is False
    assert "retryNum" not in inputs and "msgTTL" not in inputs
    assert inputs["deadLetter"] == {"type": "CMQ", "name": "redraw-dlq"}
    assert "cls" not in inputs or all(inputs["cls"].values())  # an empty id would be sent as such
    variables = inputs["environment"]["variables"]
    assert "VOD_SUB_APP_ID" in variables
    assert set(variables) <= set(VARIABLES), set(variables) - set(VARIABLES)
    assert len(str(variables)) < 4096  # SCF: all variables together ≤ 4 KB
    events = {list(e)[0]: list(e.values())[0]["parameters"] for e in inputs["events"]}
    assert set(events) == {"cos", "http", "timer"}  # no API Gateway trigger: it can no longer be created
    # the follow-up's sweep: every minute (7-field SCF cron), with the argument the timer source accepts
    assert events["timer"]["cronExpression"] == "0 */1 * * * * *" and events["timer"]["argument"] == "sweep"
    assert variables["REDRAW_FOLLOW_UP"] == "true" and variables["REDRAW_DELIVER_PREFIX"]
    # loop-safe: deliveries land outside the prefix that fires the cos trigger
    assert not variables["REDRAW_DELIVER_PREFIX"].startswith(events["cos"]["filter"]["prefix"])
    assert events["cos"]["events"] == "cos:ObjectCreated:*" and events["cos"]["enable"] is True
    assert events["cos"]["bucket"] == "${env:COS_BUCKET}.cos.${env:REGION}.myqcloud.com"
    assert events["http"]["authType"] == "CAM" and events["http"]["netConfig"]["enableExtranet"] is True
    assert "authType: CAM" in page("http.md") and "authType: CAM" in page("deploy.md")


def test_serverless_yml_api_gateway_alternative_is_complete():
    [event] = _apigw_alternative()
    endpoints = {(e["method"], e["path"]): e for e in event["apigw"]["parameters"]["endpoints"]}
    assert set(endpoints) == {("POST", "/redraw"), ("GET", "/tasks/{TaskId}")}
    for endpoint in endpoints.values():
        assert endpoint["function"]["isIntegratedResponse"] is True
        assert endpoint["authType"] == "APP" and endpoint["app"]["name"]  # APP auth needs its app


def test_deploy_page_covers_env_file_retries_and_dead_letter_queue():
    deploy = page("deploy.md")
    for words in ("cp .env.example .env", "UpdateFunctionEventInvokeConfig", "TDMQ for CMQ",
                  "RetryNum", "MsgTTL", "asyncRunEnable"):
        assert words in deploy, words


def test_docs_document_every_serverless_variable_and_the_readme_the_two_commands():
    for name in SLS["inputs"]["environment"]["variables"]:
        assert f"`{name}`" in page("configuration.md"), name
    two = README.split("## Two commands")[1].split("\n## ")[0]
    assert "make demo " in two and "make test " in two
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:.*\n\t.*pytest", makefile, re.M)
    assert re.search(r"^demo:.*\n\t.*redraw.tools invoke", makefile, re.M)


def test_every_sample_event_is_documented_kind():
    from redraw.sources import detect
    kinds = {p.name: detect(__import__("json").loads(p.read_text(encoding="utf-8")))
             for p in (ROOT / "events").glob("*.json")}
    assert {"cos", "url", "apigw", "ckafka", "direct"} <= set(kinds.values())


def test_ruff_clean():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_function_url_signing_example_signs_like_the_sdk(monkeypatch):
    """The HTTP page's CAM example runs, and its TC3 signature is the SDK's for the request it sends."""
    import hashlib
    import io
    import json
    import urllib.request
    from datetime import datetime, timezone
    from urllib.parse import urlsplit

    from tencentcloud.common.sign import Sign

    http = page("http.md").split("## Calling the function URL")[1].split("\n## ")[0]
    code = http.split("```python\n")[1].split("```")[0]
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDexample")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "example-key")
    sent = []

    def urlopen(request, *args, **kwargs):
        sent.append(request)
        path = urlsplit(request.full_url).path
        answer = {"TaskId": "t-1"} if request.get_method() == "POST" else {"TaskId": path.rsplit("/", 1)[-1]}
        return io.BytesIO(json.dumps(answer).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    exec(compile(code, "docs/http.md", "exec"), {"__name__": "docs_example"})
    assert [r.get_method() for r in sent] == ["POST", "GET"]
    assert urlsplit(sent[1].full_url).path == "/tasks/t-1"
    for request in sent:
        headers = {k.lower(): v for k, v in request.header_items()}
        host, ts = headers["host"], int(headers["x-tc-timestamp"])
        assert urlsplit(request.full_url).netloc == host and request.full_url.startswith("https://")
        date = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")
        body = request.data or b""
        canonical = (f"{request.get_method()}\n{urlsplit(request.full_url).path}\n\n"
                     f"content-type:{headers['content-type']}\nhost:{host}\n\ncontent-type;host\n"
                     f"{hashlib.sha256(body).hexdigest()}")
        scope = f"{date}/scf/tc3_request"
        to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = Sign.sign_tc3("example-key", date, "scf", to_sign)
        assert headers["authorization"] == (f"TC3-HMAC-SHA256 Credential=AKIDexample/{scope}, "
                                            f"SignedHeaders=content-type;host, Signature={signature}")


def test_readme_is_a_landing_page_that_links_into_the_docs():
    """At most about 250 lines, and a table of links into the docs, every one of which resolves."""
    assert len(README.splitlines()) <= 250
    linked = set(re.findall(r"\]\(docs/([a-z0-9-]+\.md)\)", README))
    assert len(linked) >= 10
    assert linked <= {p.name for p in DOCS.glob("*.md")}, linked - {p.name for p in DOCS.glob("*.md")}


MKDOCS = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


def test_docs_site_builds_strict(tmp_path):
    """mkdocs build --strict: a broken link or anchor, or a page missing from the nav, fails the build."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "search" / "search_index.json").exists()  # search is built
    nav = set(re.findall(r"\b([a-z0-9-]+\.md)\b", MKDOCS))
    assert nav == {p.name for p in DOCS.glob("*.md")}, nav ^ {p.name for p in DOCS.glob("*.md")}


def _documented(pattern: str) -> set:
    """What the README and the pages name in code: spans and fenced blocks alike."""
    code = re.findall(r"`([^`\n]+)`", ALL_DOCS) + re.findall(r"```[a-z]*\n(.*?)```", ALL_DOCS, re.S)
    return {m for text in code for m in re.findall(pattern, text)}


def test_every_documented_make_target_exists():
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))
    documented = _documented(r"(?:^|[\s(])make ([a-z][a-z0-9-]*)")
    assert {"demo", "test", "loop", "serve", "docs"} <= documented
    assert documented <= targets, documented - targets


def test_every_documented_redraw_command_exists_and_every_command_is_documented():
    from redraw.tools.cli import build_parser
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    commands = set(sub.choices)
    documented = _documented(r"(?:^|[\s/(])redraw ([a-z][a-z-]+)")
    assert documented <= commands, documented - commands
    table = page("cli.md").split("## Commands")[1].split("\n## ")[0]
    for command in commands:
        assert f"| `redraw {command}" in table, command
    # each option a command's row (or the `redraw serve` section) names is one of that command's options
    options = {name: {o for action in sub.choices[name]._actions for o in action.option_strings} for name in commands}
    rows = re.findall(r"^\| `redraw ([a-z-]+)[^|]*\|(.*)$", table, re.M)
    rows.append(("serve", page("cli.md").split("## `redraw serve`")[1].split("\n### ")[0]))
    for command, text in rows:
        text = re.sub(r"`redraw [^`]*`", "", text)  # another command's line quoted in the row
        named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
        assert named and named <= options[command], (command, named - options[command])


def test_figures_quote_the_benchmark_runs_on_file():
    """A section that quotes a benchmark's results file gives that run's date: rerunning a benchmark
    without updating the figures that quote it fails here."""
    from datetime import datetime
    quoted = 0
    sections = [(doc.name, section) for doc in sorted(DOCS.glob("*.md"))
                for section in re.split(r"^## ", doc.read_text(encoding="utf-8"), flags=re.M)]
    for doc, text in sections:
        for name in sorted(set(re.findall(r"benchmarks/([a-z-]*results\.md)", text))):
            stamp = re.search(r"^- date: (.*?)(?: \(|$)", (ROOT / "benchmarks" / name).read_text(encoding="utf-8"), re.M)
            day = datetime.strptime(" ".join(stamp.group(1).split()), "%a %b %d %H:%M:%S UTC %Y").strftime("%Y-%m-%d")
            assert day in text, f"a section of docs/{doc} quotes benchmarks/{name}, whose run is of {day}"
            quoted += 1
    assert quoted >= 6  # results, soak, serve, follow-up, follow-up soak, scale


def test_every_documented_variable_exists():
    """A REDRAW_* or VOD_* name anywhere in the README or the pages is a setting of redraw.config."""
    named = set(re.findall(r"\b((?:REDRAW|VOD)_[A-Z0-9_]+)\b", ALL_DOCS))
    assert {"VOD_SUB_APP_ID", "REDRAW_FOLLOW_UP"} <= named
    assert named <= set(VARIABLES), named - set(VARIABLES)
