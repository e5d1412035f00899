#!/usr/bin/env bash
# One seed's whole study, resumable per stage (docs/replication.md):
#   scripts/study.sh SEED            # 32 subset models, every method setting, abstention, leaderboard, ground truth
# Tables go to results/seed<SEED>/; expensive stages leave a stamp (with their wall seconds) in
# outputs/study/seed<SEED>/ and are skipped when rerun; the cheap stages that read them always rerun.
# The subset models' loss records (one JSON a model) are kept in results/seed<SEED>/subset_models/ and committed:
# the ground truth is recomputed from them without retraining, and a study moved to another machine resumes.
set -uo pipefail
SEED=${1:?usage: scripts/study.sh SEED}
PY=${PY:-.venv/bin/python}
OUT=results/seed$SEED
SUBSETS="ground_truth.dir=$OUT/subset_models"
STAMPS=outputs/study/seed$SEED
mkdir -p "$STAMPS" "$OUT"
failed=0
stage() {  # stage NAME stamp|always COMMAND...: run a stage, record its wall seconds
  local name=$1 mode=$2; shift 2
  if [ "$mode" = stamp ] && [ -f "$STAMPS/$name.done" ]; then echo "== $name: done before ($(cat "$STAMPS/$name.done") s)"; return; fi
  echo "== $name (seed $SEED) $(date -u +%H:%M:%S)"
  local start; start=$(date +%s)
  if "$@"; then
    [ "$mode" = stamp ] && echo $(( $(date +%s) - start )) > "$STAMPS/$name.done"
  else
    echo "!! $name failed (exit $?); the other stages go on" >&2; failed=1
  fi
}
# The generated queries first (every later stage's corpus includes them; reused when their key matches), then the
# subset models: the longest stage, and the one whose records are kept (see above).
stage generate always "$PY" -m experiments.generate seed="$SEED" progress=false
stage subsets stamp "$PY" -m experiments.subsets seed="$SEED" "$SUBSETS" progress=false
stage run-lumina stamp "$PY" -m experiments.run +method=lumina seed="$SEED" progress=false
# TRAK, Grad-Cos, GradDot, TracIn, LoGra and FactGraSS from one shared gradient pass (docs/baselines.md#the-shared-gradient-pass)
stage run-gradients stamp "$PY" -m experiments.run +method=gradients seed="$SEED" progress=false
for m in unlearning embedding clap mert; do
  stage "run-$m" stamp "$PY" -m experiments.run +method=$m seed="$SEED" progress=false
done
for e in madmom-chordfeat madmom-notes; do
  stage "run-embedding-$e" stamp "$PY" -m experiments.run +method=embedding method.encoder=$e seed="$SEED" progress=false
done
stage abstention always "$PY" -m experiments.abstention seed="$SEED" abstention.results="$OUT"
stage leaderboard always "$PY" -m experiments.leaderboard seed="$SEED" leaderboard.results="$OUT"
stage ground_truth always "$PY" -m experiments.ground_truth seed="$SEED" "$SUBSETS" ground_truth.results="$OUT" \
  ground_truth.leaderboard="$OUT/leaderboard.csv"
exit $failed
