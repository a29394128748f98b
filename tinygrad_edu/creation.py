"""Factories: zeros, ones, full, arange, eye, and the random rand / randn.

The random ones draw from the package's one generator (random_generator.py), which
`manual_seed(n)` reseeds; both are importable from here too.
"""
from __future__ import annotations

import numpy as np

from .random_generator import generator, manual_seed  # noqa: F401 (public here too)
from .tensor import Tensor, _shape_args, get_default_dtype

def _float_dtype(dtype):
    return get_default_dtype() if dtype is None else np.dtype(dtype)


def zeros(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros; `zeros(2, 3)` and `zeros((2, 3))` both work."""
    return Tensor(np.zeros(_shape_args(shape), dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones; `ones(2, 3)` and `ones((2, 3))` both work."""
    return Tensor(np.ones(_shape_args(shape), dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def full(shape, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `shape` filled with `fill_value`."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return Tensor(np.full(shape, fill_value, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and, unless `dtype` is given, the dtype) of `t`."""
    dtype = np.asarray(t).dtype if dtype is None else dtype
    return Tensor(np.zeros(np.shape(t), dtype=dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape (and, unless `dtype` is given, the dtype) of `t`."""
    dtype = np.asarray(t).dtype if dtype is None else dtype
    return Tensor(np.ones(np.shape(t), dtype=dtype), requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in [start, stop).

    Integer arguments give int64 (as in PyTorch), except with requires_grad=True, where
    the default float dtype is used (only floating tensors have gradients).
    """
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        all_ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = np.int64 if all_ints and not requires_grad else get_default_dtype()
    return Tensor(np.arange(start, stop, step, dtype=dtype), requires_grad=requires_grad)


def eye(n: int, m=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (m defaults to n)."""
    return Tensor(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def rand(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1)."""
    data = generator().random(_shape_args(shape)).astype(_float_dtype(dtype), copy=False)
    return Tensor(data, requires_grad=requires_grad)


def randn(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (mean 0, standard deviation 1)."""
    data = generator().standard_normal(_shape_args(shape)).astype(_float_dtype(dtype), copy=False)
    return Tensor(data, requires_grad=requires_grad)
