# The same commands as the README and .ci/run.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test test-slow lint bench

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'

install: $(PY)

run: $(PY)
	$(VENV)/bin/hourglass local config/

test: $(PY) lint
	$(PY) -m pytest -m "not slow"

test-slow: $(PY)
	$(PY) -m pytest -m slow

lint: $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(PY)
	$(PY) -m bench --quick
