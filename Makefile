# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EVENT  ?= events/cos-put.json

.PHONY: setup demo loop serve console test docs lint bench soak scale followup-bench package package-local clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## Run the handler on a sample upload event against the embedded VOD emulator.
demo: $(STAMP)
	$(PY) -m redraw.tools invoke $(EVENT)

## The follow-up's whole loop on local emulators (docs/followup.md): upload -> task -> sweep ->
## task.finished -> the redrawn video in the bucket folder. LOOP_ARGS="--dir ./bucket" keeps the folder;
## LOOP_ARGS="--stay" keeps serving afterwards (Ctrl-C stops) so the web console it names shows the task.
loop: $(STAMP)
	$(PY) -m redraw.tools loop $(LOOP_ARGS)

## The function behind a local HTTP server (docs/cli.md). SERVE_ARGS="--watch ./bucket" adds a
## folder as the COS bucket.
serve: $(STAMP)
	$(PY) -m redraw.tools serve $(SERVE_ARGS)

## The web console (docs/console.md): redraw serve --watch $(CONSOLE_DIR) --follow-up, then open
## http://127.0.0.1:9001/ (upload a video, watch its task, compare before and after). CONSOLE_ARGS passes options.
CONSOLE_DIR ?= ./bucket
console: $(STAMP)
	mkdir -p $(CONSOLE_DIR)/uploads
	$(PY) -m redraw.tools serve --watch $(CONSOLE_DIR) --follow-up $(CONSOLE_ARGS)

## Run the test suite (what CI runs), on TEST_WORKERS parallel workers (pytest-xdist): most of its time is
## waiting (servers, subprocesses, timers), not CPU. Tests go to the workers one at a time, the slow ones
## first (tests/conftest.py). TEST_WORKERS=0 runs it in this one process. -rs: a skipped test says why (the
## browser tests, without Chromium: how to install it).
TEST_WORKERS ?= 6
test: $(STAMP)
	$(PY) -m pytest -q -rs -n $(TEST_WORKERS) --dist load --maxschedchunk 1

## The documentation site (mkdocs.yml, docs/) on http://127.0.0.1:8000 with search, reloading on changes.
## DOCS_ARGS="-a 127.0.0.1:8001" for another port; the suite builds it with --strict (tests/test_docs.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve $(DOCS_ARGS)

## Deployment package for SCF (Linux x86_64, CPython 3.10 wheels + 3.10 bytecode): dist/redraw-scf.zip,
## and the same tree unpacked in dist/redraw-scf/ (the `src` of serverless.yml).
## PY310=/path/to/python3.10 picks the interpreter that compiles the bytecode (default: searched for).
## PACKAGE_ARGS="--extra NAME" adds a requirement beside requirements.txt.
package: $(STAMP)
	$(PY) scripts/package.py --target scf $(if $(PY310),--python $(PY310)) $(PACKAGE_ARGS)
	rm -rf dist/redraw-scf && $(PY) -m zipfile -e dist/redraw-scf.zip dist/redraw-scf

## The same zip for this machine's Python (dist/redraw-scf-local.zip); the benchmarks start it.
package-local: $(STAMP)
	$(PY) scripts/package.py --target local

## Cold start, warm overhead, connections, burst, package size: table + benchmarks/results.md.
## BENCH_ARGS=--quick for fewer repetitions.
bench: $(STAMP) package package-local
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

## 1,000 records through main_handler against a faulty, rate-limited emulator: benchmarks/soak-results.md.
soak: $(STAMP)
	$(PY) benchmarks/soak.py $(SOAK_ARGS)

## N warm instances (processes) sharing one 20/s VOD budget, per pacing mode: benchmarks/scale-results.md.
## SCALE_ARGS="--instances 4 --modes adaptive" for a quick look (about 10-15 minutes in full).
scale: $(STAMP)
	$(PY) benchmarks/scale.py $(SCALE_ARGS)

## The follow-up: upload-path cold start, sweep rate (1,000 ended tasks), delivery of a 300 MiB output:
## benchmarks/followup-results.md. FOLLOWUP_ARGS="--only sweep --tasks 500" for a part.
followup-bench: $(STAMP)
	$(PY) benchmarks/followup_bench.py $(FOLLOWUP_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy redraw handler.py

clean:
	rm -rf $(VENV) dist .pytest_cache .ruff_cache .hypothesis
