"""Composite operations, built only from Tensor methods that call primitives in ops.py.

Nothing here has a backward of its own: the gradient comes from the primitives. An operation
that would be wrong or numerically unstable as a composite belongs in ops.py instead.
`mean`, `var`, `squeeze`, `unsqueeze` and `flatten` sit behind the Tensor methods of those names.
"""
from __future__ import annotations

import math

import numpy as np

from .tensor import Tensor, as_tensor, where

__all__ = ["sigmoid", "tanh", "relu", "leaky_relu", "softmax", "log_softmax", "logsumexp", "linear"]


def _reduced_count(shape: tuple, axis) -> int:
    """How many elements a reduction over `axis` combines into each result."""
    if axis is None:
        return math.prod(shape)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    return math.prod(shape[a] for a in axes)


# ---- behind Tensor methods -------------------------------------------------------------------
def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (None: all elements), like ``np.mean``."""
    x = as_tensor(x)
    return x.sum(axis=axis, keepdims=keepdims) / _reduced_count(x.shape, axis)


def var(x: Tensor, axis=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over `axis` like ``np.var``: mean squared deviation, divided by N - ddof."""
    x = as_tensor(x)
    deviation = x - x.mean(axis=axis, keepdims=True)
    count = _reduced_count(x.shape, axis) - ddof
    return (deviation * deviation).sum(axis=axis, keepdims=keepdims) / count


def squeeze(x: Tensor, axis=None) -> Tensor:
    """Drop axes of length 1 (all of them, or the ones named by `axis`)."""
    x = as_tensor(x)
    if axis is None:
        drop = {i for i, n in enumerate(x.shape) if n == 1}
    else:
        drop = {a % x.ndim for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis)}
        for a in drop:
            if x.shape[a] != 1:
                raise ValueError(f"cannot squeeze axis {a} of shape {x.shape}: its length is not 1")
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if i not in drop))


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of length 1 at position `axis` (negative counts from the new end)."""
    x = as_tensor(x)
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise ValueError(f"unsqueeze axis {axis} is out of range for shape {x.shape}")
    axis = axis % (x.ndim + 1)
    return x.reshape(x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis (inclusive) into one."""
    x = as_tensor(x)
    if x.ndim == 0:
        return x.reshape(1)
    start, end = start_axis % x.ndim, end_axis % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    merged = math.prod(x.shape[start:end + 1])
    return x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1:])


# ---- the public functional API ---------------------------------------------------------------
def sigmoid(x: Tensor) -> Tensor:
    """Logistic function 1 / (1 + exp(-x)), computed without overflow."""
    return as_tensor(x).sigmoid()


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return as_tensor(x).tanh()


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return as_tensor(x).relu()


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    x = as_tensor(x)
    return where(x.data > 0, x, x * negative_slope)


def logsumexp(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x), axis)) without overflow.

    The largest value m is taken out first: log(sum(exp(x - m))) + m. m is a constant here,
    which is exact: its effect on the gradient cancels out.
    """
    x = as_tensor(x)
    shift = np.max(x.data, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0)  # all -inf (or an inf) would give nan
    out = (x - shift).exp().sum(axis=axis, keepdims=True).log() + shift
    return out if keepdims else squeeze(out, axis) if axis is not None else out.reshape(())


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x), axis), shifted by the maximum so large inputs cannot overflow."""
    x = as_tensor(x)
    exps = (x - np.max(x.data, axis=axis, keepdims=True)).exp()
    return exps / exps.sum(axis=axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x, axis): the log of softmax, without taking log of a rounded-to-zero value."""
    x = as_tensor(x)
    return x - logsumexp(x, axis=axis, keepdims=True)


def linear(x: Tensor, weight: Tensor, bias=None) -> Tensor:
    """x @ weight.T + bias, with weight shaped (out_features, in_features) as in PyTorch."""
    out = as_tensor(x) @ as_tensor(weight).T
    return out if bias is None else out + bias
