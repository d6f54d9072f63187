"""The README, serverless.yml, Makefile and CI agree with the code."""
from __future__ import annotations

import importlib
import re

import yaml

from conftest import ROOT
from redraw.config import VARIABLES

README = (ROOT / "README.md").read_text(encoding="utf-8")
SLS = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))


def _table_rows(text: str) -> list:
    table = text.split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    return re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.*?) \|$", table, re.M)


def test_readme_configuration_table_matches_the_code():
    # the upload rules' variables have their rows in docs/rules.md (same format), merged in code order
    rules_page = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    order = list(VARIABLES)
    rows = sorted(_table_rows(README) + _table_rows(rules_page), key=lambda row: order.index(row[0]))
    assert [(name, default, meaning) for name, default, meaning in rows] == \
        [(name, default, meaning) for name, (default, meaning) in VARIABLES.items()]


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
    assert f"`{inputs['handler']}`" in README
    assert inputs["runtime"] == "Python3.10" and "`Python3.10`" in README
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
    assert "authType: CAM" in README


def test_serverless_yml_api_gateway_alternative_is_complete():
    [event] = _apigw_alternative()
    endpoints = {(e["method"], e["path"]): e for e in event["apigw"]["parameters"]["endpoints"]}
    assert set(endpoints) == {("POST", "/redraw"), ("GET", "/tasks/{TaskId}")}
    for endpoint in endpoints.values():
        assert endpoint["function"]["isIntegratedResponse"] is True
        assert endpoint["authType"] == "APP" and endpoint["app"]["name"]  # APP auth needs its app


def test_readme_deploy_section_covers_env_file_retries_and_dead_letter_queue():
    deploy = README.split("## Deploy")[1].split("\n## ")[0]
    for words in ("cp .env.example .env", "UpdateFunctionEventInvokeConfig", "TDMQ for CMQ",
                  "RetryNum", "MsgTTL", "asyncRunEnable"):
        assert words in deploy, words


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
    assert {"cos", "url", "apigw", "ckafka", "direct"} <= set(kinds.values())


def test_ruff_clean():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_readme_function_url_signing_example_signs_like_the_sdk(monkeypatch):
    """The README's CAM example runs, and its TC3 signature is the SDK's for the request it sends."""
    import hashlib
    import io
    import json
    import urllib.request
    from datetime import datetime, timezone
    from urllib.parse import urlsplit

    from tencentcloud.common.sign import Sign

    http = README.split("### HTTP: function URL and API Gateway")[1].split("\n### ")[0]
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
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
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
