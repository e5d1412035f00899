#!/usr/bin/env bash
# The GPU checks of the `device` and `dtype` settings, for a machine with a CUDA GPU (README "Devices"):
#   1. the model and gradient tests on cuda against the CPU (synthetic codes: no corpus tools needed), float32
#      and bfloat16;
#   2. one method end to end on cuda (the tiny corpus: training, GradDot, LoGra through dattri's compressors
#      on the GPU), when FluidSynth is there to render the corpus;
#   3. the per-track profile of musicgen-small on the GPU (benchmarks/real_architectures.py), the figures
#      docs/scale.md's GPU column needs.
# Usage: scripts/gpu_check.sh [python]      (default .venv/bin/python); about 5 minutes on one GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
"$PY" -m pytest -q -rs tests/test_device.py -k "cuda and not end_to_end"
if command -v fluidsynth >/dev/null 2>&1; then
  "$PY" -m pytest -q -rs tests/test_device.py -k "end_to_end"
else
  echo "FluidSynth missing: the end-to-end test needs the rendered tiny corpus; skipped (scripts/install_system.sh)"
fi
"$PY" -m benchmarks.real_architectures --sizes small --tracks 2 --out outputs/benchmarks/gpu device=cuda
