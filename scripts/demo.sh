#!/usr/bin/env bash
# The demo's stages (`make demo`, after the install), each timed; the last line names every stage and its wall
# time. Every stage reuses what an earlier run cached (corpus, model, clips, signatures, Aria's features).
set -euo pipefail
PY=${PY:-.venv/bin/python}
times=()
stage() {  # stage NAME COMMAND...: run it and record its wall seconds
  local name=$1; shift
  local start; start=$(date +%s)
  "$@"
  times+=("$name $(( $(date +%s) - start )) s")
}
started=$(date +%s)
mkdir -p outputs
# Aria's features of the catalogue (what the leaderboard and the report read), in one background process at a
# lower priority: it takes the cycles the training leaves (the codec's fit and the training use less than the
# two cores); the corpus is built once, whichever process gets to it first. It compiles librosa's numba functions
# into a cache of its own: numba's on-disk cache is not safe when two processes compile the same function at
# once (on a cold cache the codec's fit and this process did, and the fit crashed).
NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-outputs/cache/numba}/background" \
  nice -n 10 "$PY" -m experiments.features aria.workers=1 progress=false > outputs/demo-features.log 2>&1 &
features=$!
stage "corpus+training" "$PY" -m experiments.train
stage "generated clips" "$PY" -m experiments.generate
# LUMINA's signatures in two worker processes of one torch thread each (two threads in one process sign no
# faster: docs/lumina.md#results-on-the-embedded-default)
stage "lumina" "$PY" -m experiments.run +method=lumina threads=1 parallel.workers=2
await_features() {  # the background extraction's end; its log shown when it failed
  wait "$features" || { cat outputs/demo-features.log >&2; return 1; }
}
stage "aria features (wait)" await_features
stage "leaderboard" "$PY" -m experiments.leaderboard leaderboard.results=outputs/leaderboard
stage "report" "$PY" -m experiments.report
echo "demo done: score matrices in outputs/runs/music21-<catalogue key>-embedded-seed<seed>-g<generated key>/lumina/," \
  "LUMINA's signature store in outputs/cache/signatures/, leaderboard and figures in outputs/leaderboard/, report in" \
  "outputs/report/index.html"
total=$(( $(date +%s) - started ))
(IFS=';'; echo "demo stages (wall): ${times[*]}; total ${total} s" | sed 's/;/ · /g')
