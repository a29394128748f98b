"""The one random generator of the package, and `manual_seed` to make it repeatable.

Everything random in tinygrad_edu (factories such as `tg.randn`, initialisation, dropout,
shuffling) draws from `generator()`. This module imports nothing from the package, so any
module may use it without joining the core's import circle.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the package's random generator, making every random function reproducible."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator() -> np.random.Generator:
    """The generator every random function of the package draws from."""
    return _generator
