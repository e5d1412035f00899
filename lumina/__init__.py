"""LUMINA and the attribution methods of the harness: everything that produces a score matrix."""

from execution.kernels import pin_kernels

pin_kernels()  # numpy and torch load with AVX2 kernels on every x86-64 machine class (execution/kernels.py)

__version__ = "0.1.0"
