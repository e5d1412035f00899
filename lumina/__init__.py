"""LUMINA and the attribution methods of the harness: everything that produces a score matrix."""

__version__ = "0.1.0"
