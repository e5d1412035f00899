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

.PHONY: install system demo test results check-demo lint clean

install: system $(VENV)/.installed

system:
	@./scripts/install_system.sh

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e ".[test]"
	touch $@

# The demo's leaderboard goes to outputs/leaderboard: results/ holds the committed canonical tables (`make results`).
demo: install
	PY=$(PY) scripts/demo.sh

test: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist worksteal

# Every committed table in results/: the whole study for each seed of SEEDS (experiments.seeds runs scripts/study.sh
# per seed; resumable per stage,
# several hours a seed on 2 cores), the checks that run once, the replication tables across seeds, then the
# symbolic study (scripts/symbolic_study.sh, results/symbolic/; about 4 hours on 2 cores, resumable).
SEEDS ?= 0 1 2
results: install
	$(PY) -m experiments.codec_probe paths.results=results/seed0
	$(PY) -m experiments.seeds seeds.seeds="[$(shell echo $(SEEDS) | tr ' ' ',')]"
	$(PY) -m experiments.self_influence paths.results=results/seed0
	$(PY) -m experiments.causal_verification paths.results=results/seed0
	$(PY) -m experiments.replication replication.seeds="[$(shell echo $(SEEDS) | tr ' ' ',')]"
	PY=$(PY) scripts/symbolic_study.sh

# A fresh clone's demo against the committed LUMINA rows of results/seed0/leaderboard.csv (not part of `make test`).
check-demo: demo
	$(PY) -m experiments.compare_demo outputs/leaderboard/leaderboard.csv results/seed0/leaderboard.csv

lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf outputs .pytest_cache
