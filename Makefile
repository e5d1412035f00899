# The two Quickstart commands: `make demo` and `make test`. Both install everything first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH := torch==2.13.0
export NUMBA_CACHE_DIR := $(CURDIR)/outputs/cache/numba
export MPLBACKEND := Agg
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export OMP_WAIT_POLICY := PASSIVE
export OPENBLAS_NUM_THREADS := 1

.PHONY: install system demo test lint clean

install: system $(VENV)/.installed

system:
	@./scripts/install_system.sh

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e ".[test]"
	touch $@

demo: install
	$(PY) -m experiments.run +method=lumina
	$(PY) -m experiments.leaderboard

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf outputs .pytest_cache
