"""NumPy functions applied to Tensors: `np.exp(t)`, `np.sum(t)`, `ndarray @ t` come back as Tensors.

NumPy hands Tensors to `Tensor.__array_ufunc__` / `__array_function__`, which land here. Each
supported function maps to the Tensor operation of the same meaning, so the call is recorded
in the graph. Anything unsupported raises a TypeError that names it, never a silent ndarray.
"""
from __future__ import annotations

import numpy as np
import scipy.special

from . import functional, ops
from .tensor import Tensor, as_tensor, compare, concatenate, einsum, stack, where



def _plain(x):
    return x.data if isinstance(x, Tensor) else x


# Differentiable ufuncs whose Tensor operation has another name or form. A one-input ufunc
# named like a Tensor method (np.exp, np.sin, ...) needs no entry: it calls that method.
_UFUNCS = {
    np.add: ops.Add.apply,
    np.subtract: ops.Sub.apply,
    np.multiply: ops.Mul.apply,
    np.true_divide: ops.Div.apply,
    np.power: ops.Pow.apply,
    np.matmul: ops.MatMul.apply,
    np.maximum: ops.Maximum.apply,
    np.minimum: ops.Minimum.apply,
    np.negative: ops.Neg.apply,
    np.positive: lambda x: x,
    np.square: lambda x: x * x,
    np.absolute: ops.Abs.apply,
    scipy.special.expit: ops.Sigmoid.apply,
}

# Ufuncs whose result is piecewise constant or boolean: computed on the data, outside the graph.
_CONSTANT_UFUNCS = {
    np.sign, np.floor, np.ceil, np.rint, np.trunc, np.isnan, np.isinf, np.isfinite,
    np.logical_and, np.logical_or, np.logical_not, np.logical_xor,
}
# Comparisons: outside the graph too, but through the Tensor's own, which the broadcast guard watches.
_COMPARISONS = {np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal}


def tensor_method(ufunc):
    """The Tensor method a one-input ufunc stands for (`np.sin` -> `Tensor.sin`), or None."""
    if ufunc.nin != 1 or ufunc in _CONSTANT_UFUNCS:
        return None
    return getattr(Tensor, ufunc.__name__, None)


# The same-name ufuncs join the table once, here, so a call costs one lookup. (NumPy passes a
# one-input ufunc to Tensor.__array_ufunc__ only when that input is a Tensor.)
_UFUNCS.update(
    (ufunc, tensor_method(ufunc)) for ufunc in vars(np).values()
    if isinstance(ufunc, np.ufunc) and tensor_method(ufunc) is not None and ufunc not in _UFUNCS
)


def array_ufunc(ufunc, method, inputs, kwargs):
    """Called by NumPy for `ufunc(*inputs)` when an input is a Tensor."""
    if method != "__call__" or kwargs:
        details = f"{method} " if method != "__call__" else ""
        extra = f" with {sorted(kwargs)}" if kwargs else ""
        raise TypeError(
            f"numpy.{ufunc.__name__} {details}is not supported on Tensors{extra} "
            "(in-place and out= forms would bypass the graph)"
        )
    if ufunc in _UFUNCS:
        return _UFUNCS[ufunc](*inputs)
    if ufunc in _COMPARISONS:
        return compare(ufunc, *inputs)
    if ufunc in _CONSTANT_UFUNCS:
        return Tensor._make(np.asarray(ufunc(*(_plain(x) for x in inputs))))
    raise TypeError(f"numpy.{ufunc.__name__} is not supported on Tensors by tinygrad_edu")


def _refuse(name: str, out, options: dict) -> None:
    """Options the Tensor version cannot honour are an error, never silently dropped."""
    refused = sorted(options) + (["out"] if out is not None else [])
    if refused:
        raise TypeError(f"numpy.{name} with {', '.join(refused)}= is not supported on Tensors")


def _reduction(method: str):
    def reduce(a, axis=None, dtype=None, out=None, keepdims=False, **options):
        _refuse(method, out, options)
        result = getattr(as_tensor(a), method)(axis=axis, keepdims=bool(keepdims))
        return result if dtype is None else result.astype(dtype)

    return reduce


def _spread(method: str):
    """np.var and np.std (they take ddof)."""
    def spread(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **options):
        _refuse(method, out, options)
        result = getattr(as_tensor(a), method)(axis=axis, keepdims=bool(keepdims), ddof=ddof)
        return result if dtype is None else result.astype(dtype)

    return spread


def _cumsum(a, axis=None, dtype=None, out=None):
    _refuse("cumsum", out, {})
    result = as_tensor(a).cumsum(axis=axis)
    return result if dtype is None else result.astype(dtype)


def _ravel(a, order="C"):
    if order != "C":
        raise TypeError(f"numpy.ravel with order={order!r} is not supported on Tensors (only 'C')")
    return as_tensor(a).ravel()


def _dot(a, b, out=None):
    _refuse("dot", out, {})
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.ndim > 2 or b.ndim > 2:
        raise TypeError("numpy.dot of arrays with more than 2 dimensions is not supported; use tg.einsum")
    return a @ b


def _reshape(a, *args, **kwargs):
    shape = kwargs.get("shape", kwargs.get("newshape", args[0] if args else None))
    return as_tensor(a).reshape(shape)


def _transpose(a, axes=None):
    # NumPy's meaning exactly (Tensor.transpose also accepts PyTorch's two-axis swap).
    a = as_tensor(a)
    axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(axes)
    return ops.Transpose.apply(a, axes=axes)


def _where(cond, x=None, y=None):
    if x is None and y is None:
        return np.where(_plain(cond))
    return where(_plain(cond), x, y)


def _expand_dims(a, axis):
    return functional.unsqueeze(a, axis)


def _clip(a, a_min=None, a_max=None, **kwargs):
    return as_tensor(a).clip(kwargs.get("min", a_min), kwargs.get("max", a_max))


def _outer(a, b, out=None):
    _refuse("outer", out, {})
    # A column times a row, as a matrix product: the broadcast guard rightly flags the `*` form.
    return as_tensor(a).reshape(-1, 1) @ as_tensor(b).reshape(1, -1)


def _concatenate(arrays, axis=0, out=None, **options):
    _refuse("concatenate", out, options)
    if axis is None:  # NumPy's meaning: every array flattened first
        arrays, axis = [as_tensor(a).ravel() for a in arrays], 0
    return concatenate(arrays, axis=axis)


def _stack(arrays, axis=0, out=None, **options):
    _refuse("stack", out, options)
    return stack(arrays, axis=axis)


def _at_least(arrays, ndim: int) -> list:
    """np.atleast_1d / np.atleast_2d on Tensors: a 0-d one becomes (1,) or (1, 1), a vector (1, n)."""
    tensors = [as_tensor(a) for a in arrays]
    return [t.reshape((1,) * (ndim - t.ndim) + t.shape) if t.ndim < ndim else t for t in tensors]


def _hstack(arrays, **options):
    _refuse("hstack", None, options)
    arrays = _at_least(arrays, 1)
    return concatenate(arrays, axis=0 if arrays and arrays[0].ndim == 1 else 1)  # NumPy's rule


def _vstack(arrays, **options):
    _refuse("vstack", None, options)
    return concatenate(_at_least(arrays, 2), axis=0)


def _einsum(subscripts, *operands, out=None, optimize=False, **options):
    _refuse("einsum", out, options)  # optimize only picks an order of the products: same values
    return einsum(subscripts, *operands)


_FUNCTIONS = {
    np.sum: _reduction("sum"),
    np.mean: _reduction("mean"),
    np.max: _reduction("max"),
    np.min: _reduction("min"),
    np.amax: _reduction("max"),
    np.amin: _reduction("min"),
    np.prod: _reduction("prod"),
    np.var: _spread("var"),
    np.std: _spread("std"),
    np.cumsum: _cumsum,
    np.ravel: _ravel,
    np.dot: _dot,
    np.outer: _outer,
    np.reshape: _reshape,
    np.transpose: _transpose,
    np.squeeze: lambda a, axis=None: functional.squeeze(a, axis),
    np.expand_dims: _expand_dims,
    np.broadcast_to: lambda array, shape, subok=False: as_tensor(array).broadcast_to(shape),
    np.concatenate: _concatenate,
    np.stack: _stack,
    np.hstack: _hstack,
    np.vstack: _vstack,
    np.where: _where,
    np.einsum: _einsum,
    np.clip: _clip,
    np.shape: lambda a: np.shape(_plain(a)),
    np.ndim: lambda a: np.ndim(_plain(a)),
    np.size: lambda a, axis=None: np.size(_plain(a), axis),
    np.argmax: lambda a, axis=None, keepdims=False: as_tensor(a).argmax(axis, keepdims),
    np.argmin: lambda a, axis=None, keepdims=False: as_tensor(a).argmin(axis, keepdims),
}

# Functions that only look at values (no gradient can flow through them): run on the data.
_CONSTANT_FUNCTIONS = {
    np.allclose, np.isclose, np.array_equal, np.count_nonzero, np.any, np.all,
    np.nonzero, np.argsort, np.sort, np.unique, np.zeros_like, np.ones_like, np.full_like,
    np.empty_like, np.copy, np.array2string, np.array_repr, np.result_type, np.can_cast,
}


def array_function(func, args, kwargs):
    """Called by NumPy for array functions (np.sum, np.dot, ...) when an argument is a Tensor."""
    if func in _FUNCTIONS:
        return _FUNCTIONS[func](*args, **kwargs)
    if func in _CONSTANT_FUNCTIONS:
        args = [_plain(a) for a in args]
        return func(*args, **{k: _plain(v) for k, v in kwargs.items()})
    raise TypeError(
        f"numpy.{func.__name__} is not supported on Tensors by tinygrad_edu; "
        "write it with Tensor operations, or call it on t.detach().numpy() to leave the graph"
    )
