"""Benchmarks of tinygrad_edu against a hand-written NumPy floor (and PyTorch when installed).

`python benchmarks/run.py` is the entry point; see benchmarks/README.md. Nothing in the
package imports this directory.
"""
