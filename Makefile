# The same commands as the README and .ci/run.
VENV ?= .venv
PY := $(VENV)/bin/python
# The installer's own version; everything else comes from uv.lock (refresh: make lock).
UV_VERSION := 0.13.9
UV := UV_PROJECT_ENVIRONMENT=$(abspath $(VENV)) $(PY) -m uv

.PHONY: install uv sync lock run test test-slow lint bench controlplane prometheus

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)
	$(UV) sync -q --locked --inexact --extra dev

install: $(PY)

# The pinned uv, also in a venv that lost it (an exact `uv sync` removes uv itself).
uv: $(PY)
	@$(PY) -m uv --version 2>/dev/null | grep -q " $(UV_VERSION)" || $(PY) -m pip install -q uv==$(UV_VERSION)

# Bring an existing .venv back to exactly what uv.lock says (after a pull that moved it).
sync: uv
	$(UV) sync -q --locked --inexact --extra dev

# Refresh the lock on purpose: newest versions the pyproject ranges allow, then review
# the diff of uv.lock and run make test before committing it.
lock: uv
	$(UV) lock --upgrade

# In CI (CI=true) the local job renders, cleans once and exits; elsewhere it runs
# until Ctrl-C. ARGS passes more flags: make run ARGS="--state-dir /tmp/hg".
run: $(PY)
	$(VENV)/bin/hourglass local config/ $(if $(CI),--once,) $(ARGS)

# With Go, the real control plane is built first (cached; about 20 min cold), outside
# any test's timeout; without Go its tests are left out with one line saying why.
controlplane: $(PY)
	@if command -v go >/dev/null 2>&1; then $(PY) -m tests.controlplane --build-only; \
	else echo "no Go: the control-plane tests will be left out"; fi

# The same for the test Prometheus (about 5-25 min cold, by the machine's load).
prometheus: $(PY)
	@if command -v go >/dev/null 2>&1; then $(PY) -m tests.prometheus --build-only; \
	else echo "no Go: the Prometheus tests will be left out"; fi

test: $(PY) lint controlplane prometheus
	$(PY) -m pytest -m "not slow" -p no:cacheprovider

test-slow: $(PY) controlplane
	$(PY) -m pytest -m slow -p no:cacheprovider

lint: $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(PY)
	$(PY) -m bench --quick
