"""Aria: judge an attribution score matrix (reliability, evidence-channel homogeneity, residual, alignment).

Reads score matrices and a corpus manifest in the documented formats (docs/formats.md) and imports
nothing from the producing packages, so it can judge matrices made by any tool. See docs/aria.md.
"""

__version__ = "0.1.0"
