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
stage "corpus+training" "$PY" -m experiments.train
stage "generated clips" "$PY" -m experiments.generate
stage "lumina" "$PY" -m experiments.run +method=lumina
stage "leaderboard" "$PY" -m experiments.leaderboard leaderboard.results=outputs/leaderboard
stage "report" "$PY" -m experiments.report
echo "demo done: score matrices in outputs/runs/music21-<catalogue key>-embedded-seed<seed>-g<generated key>/lumina/," \
  "LUMINA's signature store in outputs/cache/signatures/, leaderboard and figures in outputs/leaderboard/, report in" \
  "outputs/report/index.html"
total=$(( $(date +%s) - started ))
(IFS=';'; echo "demo stages (wall): ${times[*]}; total ${total} s" | sed 's/;/ · /g')
