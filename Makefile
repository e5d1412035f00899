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

.PHONY: install system demo test results lint clean

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
	$(PY) -m experiments.run +method=lumina
	$(PY) -m experiments.leaderboard leaderboard.results=outputs/leaderboard
	$(PY) -m experiments.report
	@echo "demo done: score matrices in outputs/runs/music21-<catalogue key>-embedded-seed<seed>/lumina/, LUMINA's" \
	  "signature store in outputs/cache/signatures/, leaderboard and figures in outputs/leaderboard/, report in" \
	  "outputs/report/index.html"

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# Every committed table in results/, in dependency order (several hours on 2 cores; each step resumes).
METHODS := lumina trak gradcos graddot tracin logra factgrass unlearning embedding clap mert
results: install
	$(PY) -m experiments.codec_probe
	for m in $(METHODS); do $(PY) -m experiments.run +method=$$m || exit 1; done
	for e in madmom-chordfeat madmom-notes; do $(PY) -m experiments.run +method=embedding method.encoder=$$e || exit 1; done
	$(PY) -m experiments.leaderboard
	$(PY) -m experiments.self_influence
	$(PY) -m experiments.causal_verification +method=lumina
	$(PY) -m experiments.subsets
	$(PY) -m experiments.ground_truth

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf outputs .pytest_cache
