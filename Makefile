# The same commands as the README and .ci/run.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test test-slow lint bench

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'

install: $(PY)

# In CI (CI=true) the local job renders, cleans once and exits; elsewhere it runs
# until Ctrl-C. ARGS passes more flags: make run ARGS="--state-dir /tmp/hg".
run: $(PY)
	$(VENV)/bin/hourglass local config/ $(if $(CI),--once,) $(ARGS)

test: $(PY) lint
	$(PY) -m pytest -m "not slow" -p no:cacheprovider

test-slow: $(PY)
	$(PY) -m pytest -m slow -p no:cacheprovider

lint: $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(PY)
	$(PY) -m bench --quick
