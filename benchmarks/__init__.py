"""Benchmarks: scripts that print figures and ratios (speed, memory, scaling), never timed tests."""

from execution.kernels import pin_kernels

pin_kernels()  # numpy and torch load with AVX2 kernels on every x86-64 machine class (execution/kernels.py)
