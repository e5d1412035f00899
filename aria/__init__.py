"""Aria: judge an attribution score matrix (reliability, evidence-channel homogeneity, residual, alignment).

Reads score matrices and a corpus manifest in the documented formats (docs/formats.md) and imports
nothing from the producing packages, so it can judge matrices made by any tool. See docs/aria.md.
"""

from execution.kernels import pin_kernels

pin_kernels()  # numpy and torch load with AVX2 kernels on every x86-64 machine class (execution/kernels.py)

__version__ = "0.1.0"
