#!/usr/bin/env bash
# The symbolic study of results/symbolic/README.md, step by step (each step resumes where it stopped).
set -euo pipefail
PY=${PY:-.venv/bin/python}
D="data=chorales model=musictransformer"
G="data.generated_dir=results/symbolic/generated"
S="ground_truth.dir=results/symbolic/subset_models"  # loss records of the subset models, committed
$PY -m experiments.train $D train_app.curve=true               # the full model; loss per group at each checkpoint
[ -d results/symbolic/generated ] || $PY -m experiments.generate $D $G
for m in trak tracin gradcos graddot logra lumina symbolic; do $PY -m experiments.run +method=$m $D $G; done
$PY -m experiments.run +method=trak $D $G method.ensemble=1
$PY -m experiments.run +method=trak $D $G method.proj_dim=512
$PY -m experiments.run +method=trak $D $G method.ensemble_over=checkpoints
$PY -m experiments.run +method=tracin $D $G method.parameters=all
$PY -m experiments.run +method=gradcos $D $G method.parameters=[-1]
$PY -m experiments.run +method=graddot $D $G method.parameters=[-1]
$PY -m experiments.leaderboard $D $G aria.channels=symbolic leaderboard.results=results/symbolic
$PY -m experiments.subsets $D $G $S                            # 32 half-subset models (long; resumable)
$PY -m experiments.symbolic_truth $D $G $S                     # LDS (last token, whole window), Table 1
