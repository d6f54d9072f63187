# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EVENT  ?= events/cos-put.json

.PHONY: setup demo test lint bench package package-local clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

## Run the handler on a sample upload event against the embedded VOD emulator.
demo: $(STAMP)
	$(PY) -m redraw invoke $(EVENT)

## Run the test suite (what CI runs).
test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) dist .pytest_cache .ruff_cache .hypothesis
