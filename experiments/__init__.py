"""The Hydra applications of the harness, one module per command (`python -m experiments.NAME`); each parses its
configuration, calls the library and prints. Not a library API: nothing imports an app."""

import os

# OpenMP threads that sleep instead of spinning while they wait: on a busy 2-core machine spinning threads
# made training 15x slower (30 s instead of 2 s per step with other jobs running). Must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# NumPy's OpenBLAS spins its threads the same way; its matrices here are small, so one thread is as fast.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from execution.kernels import pin_kernels  # noqa: E402  (after the variables above, before numpy and torch)

pin_kernels()
