# Quick start: `make demo` then `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup clean

setup: $(STAMP)

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $(STAMP)

# The main job, offline, on the embedded defaults: healthy, Byzantine and recovery scenarios.
demo: $(STAMP)
	$(PY) main.py --interactive --no-pause

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# The quick resilience campaign (26 configurations x 5 seeds x agents/FCFS/EASY) into runs/evaluation/.
# The full one (30 seeds): $(PY) main.py --evaluate
.PHONY: evaluate
evaluate: $(STAMP)
	$(PY) main.py --evaluate --quick

clean:
	rm -rf $(VENV) build *.egg-info
