"""Primitive operations: one Function subclass each, forward and backward side by side.

`forward` takes and returns ndarrays. `backward` is written once with what ndarrays and
Tensors share, so it runs on arrays (ordinary backward) or on Tensors (create_graph=True).
No op reduces a gradient to its input's shape: the engine's `unbroadcast` does that.
Each docstring's first line is the op's local gradient rule (`tg.explain` shows it).
"""
from __future__ import annotations

import functools
import math
import string

import numpy as np
from scipy.special import expit

from .autograd import Function

# ---- unary ---------------------------------------------------------------------------------


class Neg(Function):
    """z = -x;  dz/dx = -1"""

    @staticmethod
    def forward(ctx, x):
        return np.negative(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Exp(Function):
    """z = exp(x);  dz/dx = exp(x)"""

    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out


class Log(Function):
    """z = log(x);  dz/dx = 1 / x"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad / x


class Abs(Function):
    """z = |x|;  dz/dx = sign(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.sign(x)


class Sin(Function):
    """z = sin(x);  dz/dx = cos(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * Cos.apply(x)  # an ndarray for an ndarray x, a recorded Tensor under create_graph


class Cos(Function):
    """z = cos(x);  dz/dx = -sin(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return -grad * Sin.apply(x)


class Sigmoid(Function):
    """z = 1 / (1 + exp(-x));  dz/dx = z * (1 - z)"""

    @staticmethod
    def forward(ctx, x):
        # 1 / (1 + exp(-x)) with NumPy's vectorised exp, step by step in one array of x's float dtype
        # (why: docs/performance.md, "W1's array work"). Where x < -709 (float64) exp(-x) overflows
        # to inf, and 1 / inf = 0 is right: the true value is subnormal there.
        out = np.asanyarray(np.negative(x, dtype=np.result_type(x, 1.0)))  # a 0-d x gives a scalar
        with np.errstate(over="ignore"):
            np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        # Built in place in its own fresh `1 - out`: one array of a batch's size, not three, which
        # keeps a big batch's backward from growing the heap (W1, docs/performance.md). On Tensors
        # (create_graph) `*=` records a new node instead.
        dx = 1 - out
        dx *= out
        dx *= grad
        return dx


class Tanh(Function):
    """z = tanh(x);  dz/dx = 1 - z**2"""

    @staticmethod
    def forward(ctx, x):
        out = np.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (1 - out * out)


class Relu(Function):
    """z = max(x, 0);  dz/dx = 1 where x > 0, else 0"""

    @staticmethod
    def forward(ctx, x):
        out = np.maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        # Nonzero output means x > 0. The output as the condition makes no mask array, which
        # keeps W5's peak in budget (docs/performance.md).
        return np.where(out, grad, 0)


class Clip(Function):
    """z = clip(x, lo, hi);  dz/dx = 1 where lo <= x <= hi, else 0"""

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        if lo is None and hi is None:
            raise ValueError("clip needs at least one of lo and hi")
        inside = np.ones_like(x, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        ctx.save_for_backward(inside)
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved
        return grad * inside


# ---- binary (the engine reduces each gradient back to its input's shape) ----------------------


class Add(Function):
    """z = x + y;  dz/dx = 1,  dz/dy = 1"""

    broadcasts = True

    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    """z = x - y;  dz/dx = 1,  dz/dy = -1"""

    broadcasts = True

    @staticmethod
    def forward(ctx, x, y):
        return x - y

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad if ctx.needs_input_grad[1] else None  # y is often a constant target


class Mul(Function):
    """z = x * y;  dz/dx = y,  dz/dy = x"""

    broadcasts = True

    @staticmethod
    def forward(ctx, x, y):
        # Each input is saved only for the other's gradient, so an optimizer step that writes
        # into a weight breaks only the backwards that would read it (PyTorch saves the same way).
        needs_dx, needs_dy = ctx.needs_input_grad
        ctx.save_for_backward(x if needs_dy else None, y if needs_dx else None)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved
        dx = grad * y if ctx.needs_input_grad[0] else None
        dy = grad * x if ctx.needs_input_grad[1] else None
        return dx, dy


class Div(Function):
    """z = x / y;  dz/dx = 1 / y,  dz/dy = -x / y**2"""

    broadcasts = True

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, y)  # x only for dy (as in Mul)
        return x / y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved
        dx = grad / y if ctx.needs_input_grad[0] else None
        dy = -grad * x / (y * y) if ctx.needs_input_grad[1] else None
        return dx, dy


class Pow(Function):
    """z = x ** y;  dz/dx = y * x**(y - 1),  dz/dy = z * log(x)

    As in PyTorch, dz/dx is 0 where y = 0 (x**0 is the constant 1, also at x = 0, where
    0 * 0**-1 would be nan) and dz/dy is 0 where x = 0 and y >= 0 (0**y is constant there,
    where 0 * log(0) would be nan).
    """

    broadcasts = True

    @staticmethod
    def forward(ctx, x, y):
        out = np.power(x, y)
        ctx.save_for_backward(x, y, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, y, out = ctx.saved
        dx = dy = None
        if ctx.needs_input_grad[0]:
            if type(y) is int and y == 2:
                dx = 2 * x  # the square's slope as a reader writes it (tg.compile's program shows it)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    dx = y * x ** (y - 1)
                # asanyarray, not asarray: tg.compile's recording arrays stay themselves, so that this
                # branch is checked at every call of a compiled step.
                if np.any(np.asanyarray(y) == 0):  # 0 * x**-1 is nan where x**-1 overflows (x = 0)
                    dx = np.where(np.asanyarray(y) == 0, 0, dx)
            dx = grad * dx
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                dy = grad * out * np.log(x)
            base_is_zero = np.asanyarray(x) == 0
            if np.any(base_is_zero):
                dy = np.where(base_is_zero & (np.asanyarray(y) >= 0), 0, dy)
        return dx, dy


class Maximum(Function):
    """z = maximum(x, y);  dz/dx = 1 where x > y (1/2 at ties),  dz/dy = 1 - dz/dx"""

    broadcasts = True

    @staticmethod
    def forward(ctx, x, y):
        out = np.maximum(x, y)
        ctx.save_for_backward(_share_of_x(x > y, x == y, out.dtype))
        return out

    @staticmethod
    def backward(ctx, grad):
        (share,) = ctx.saved
        return grad * share, grad * (1 - share)


class Minimum(Function):
    """z = minimum(x, y);  dz/dx = 1 where x < y (1/2 at ties),  dz/dy = 1 - dz/dx"""

    broadcasts = True

    @staticmethod
    def forward(ctx, x, y):
        out = np.minimum(x, y)
        ctx.save_for_backward(_share_of_x(x < y, x == y, out.dtype))
        return out

    @staticmethod
    def backward(ctx, grad):
        (share,) = ctx.saved
        return grad * share, grad * (1 - share)


def _share_of_x(wins, ties, dtype):
    """x's part of the gradient of maximum/minimum: 1 where x wins, 1/2 where x and y tie."""
    return np.asanyarray(wins + 0.5 * ties).astype(dtype if dtype.kind == "f" else np.float64, copy=False)


class Where(Function):
    """z = x where cond else y;  dz/dx = cond,  dz/dy = not cond"""

    broadcasts = True

    @staticmethod
    def forward(ctx, cond, x, y):
        cond = np.asanyarray(cond, dtype=bool)
        ctx.save_for_backward(cond)
        return np.where(cond, x, y)

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved
        return None, grad * cond, grad * ~cond


# ---- reductions ------------------------------------------------------------------------------


def _kept_shape(shape: tuple, axis) -> tuple:
    """The shape a reduction has with keepdims=True (axis: None or a tuple of non-negative ints)."""
    return tuple(1 if axis is None or i in axis else n for i, n in enumerate(shape))


class Sum(Function):
    """z = sum(x, axis);  dz/dx = grad spread back over the summed axes"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.in_shape, ctx.kept_shape = x.shape, _kept_shape(x.shape, axis)
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return np.broadcast_to(grad.reshape(ctx.kept_shape), ctx.in_shape)


class Max(Function):
    """z = max(x, axis);  dz/dx = 1 at the maximum (shared equally by ties, and by NaNs), else 0"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return _extreme(ctx, np.max, x, axis, keepdims)

    @staticmethod
    def backward(ctx, grad):
        (share,) = ctx.saved
        return grad.reshape(ctx.kept_shape) * share


class Min(Function):
    """z = min(x, axis);  dz/dx = 1 at the minimum (shared equally by ties, and by NaNs), else 0"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return _extreme(ctx, np.min, x, axis, keepdims)

    @staticmethod
    def backward(ctx, grad):
        (share,) = ctx.saved
        return grad.reshape(ctx.kept_shape) * share


class Prod(Function):
    """z = prod(x, axis);  dz/dx = the product of the other elements of x's slice

    Never divides by zero: where the slice has no zero it is z / x; at the one zero of a
    slice it is the product of the nonzero elements (0 elsewhere in that slice); with two or
    more zeros it is 0 everywhere. A slice holding inf or NaN, where z / x would be inf / inf,
    takes the products before and after each element instead (PyTorch's values: d/dx of
    prod([inf, 2, 3]) is [6, inf, inf]). Under create_graph the second derivative is exact
    except between two zeros of one slice and with inf or NaN (taken as constants there).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis, ctx.kept_shape = axis, _kept_shape(x.shape, axis)
        out = np.prod(x, axis=axis, keepdims=keepdims)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved
        # Subnormals count as zeros: a product that underflows makes out / x lose its digits there.
        # (asanyarray keeps tg.compile's recording arrays: the branches are checked at every call.)
        is_zero = np.abs(np.asanyarray(x)) < np.finfo(x.dtype).tiny
        if not np.isfinite(np.asanyarray(out)).all() and not np.isfinite(np.asanyarray(x)).all():
            return grad.reshape(ctx.kept_shape) * _product_of_the_others(np.asanyarray(x), ctx.axis)
        if not np.any(is_zero):
            return grad.reshape(ctx.kept_shape) * (out.reshape(ctx.kept_shape) / x)
        zeros_in_slice = is_zero.sum(axis=ctx.axis, keepdims=True)
        nonzero_x = np.where(is_zero, 1, x)
        # Out / x is exact (also as a function of the zeros elsewhere) wherever x is not 0.
        others = np.where(is_zero, 0, out.reshape(ctx.kept_shape) / nonzero_x)
        at_zero = Prod.apply(nonzero_x, axis=ctx.axis, keepdims=True)  # product of the nonzero ones
        dx = np.where(is_zero & (zeros_in_slice == 1), at_zero, others)
        return grad.reshape(ctx.kept_shape) * dx


def _product_of_the_others(x: np.ndarray, axis) -> np.ndarray:
    """For each element, the product of the other elements of its slice (axis: None or a tuple),
    as (product of those before it) * (product of those after it): no division, so exact at 0,
    inf and NaN."""
    reduced = tuple(range(x.ndim)) if axis is None else axis
    at_end = tuple(range(x.ndim - len(reduced), x.ndim))
    moved = np.moveaxis(x, reduced, at_end)
    rows = moved.reshape(moved.shape[:x.ndim - len(reduced)] + (-1,))  # one slice per row
    ones = np.ones(rows.shape[:-1] + (1,), dtype=x.dtype)
    before = np.cumprod(np.concatenate([ones, rows[..., :-1]], axis=-1), axis=-1)
    after = np.cumprod(np.concatenate([ones, rows[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return np.moveaxis((before * after).reshape(moved.shape), at_end, reduced)


class Cumsum(Function):
    """z = cumsum(x, axis);  dz/dx = grad summed from the end: the reversed cumsum of grad"""

    @staticmethod
    def forward(ctx, x, axis=None):
        ctx.axis, ctx.in_shape = axis, x.shape  # axis: None (flattened, as NumPy) or non-negative
        return np.cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        axis = 0 if ctx.axis is None else ctx.axis
        reverse = (slice(None),) * axis + (slice(None, None, -1),)
        return Cumsum.apply(grad[reverse], axis=axis)[reverse].reshape(ctx.in_shape)


def _extreme(ctx, reduce, x, axis, keepdims):
    """Forward of Max/Min: the reduced values, saving each element's share of the gradient."""
    ctx.kept_shape = _kept_shape(x.shape, axis)
    out = reduce(x, axis=axis, keepdims=True)  # NumPy raises for an empty axis: nothing to pick
    hits = x == out
    if x.dtype.kind in "fc" and np.isnan(out).any():  # NaN wins, yet equals nothing: NaNs take it (PyTorch)
        hits |= np.isnan(x)
    share = hits / hits.sum(axis=axis, keepdims=True)
    ctx.save_for_backward(share.astype(x.dtype if x.dtype.kind == "f" else np.float64))
    if keepdims:
        return out
    return out.reshape(tuple(n for i, n in enumerate(x.shape) if axis is not None and i not in axis))


# ---- shape -----------------------------------------------------------------------------------


class Reshape(Function):
    """z = x.reshape(shape);  dz/dx = grad reshaped back to x's shape"""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.in_shape)


class Transpose(Function):
    """z = x.transpose(axes);  dz/dx = grad transposed by the inverse permutation"""

    @staticmethod
    def forward(ctx, x, axes):
        axes = tuple(axes)
        if len(axes) != x.ndim or not all(-x.ndim <= a < x.ndim for a in axes) or \
                len({a % x.ndim for a in axes}) != x.ndim:
            raise ValueError(f"axes {axes} are not a permutation of the {x.ndim} axes")
        # Non-negative, so that argsort in backward inverts it (-1 would sort first)
        ctx.axes = tuple(a % x.ndim for a in axes)
        return x.transpose(ctx.axes)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(tuple(np.argsort(ctx.axes)))


class BroadcastTo(Function):
    """z = broadcast_to(x, shape);  dz/dx = grad summed over the broadcast axes (done by the engine)"""

    @staticmethod
    def forward(ctx, x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return grad  # unbroadcast in the engine sums it back to x's shape


class GetItem(Function):
    """z = x[index];  dz/dx = grad placed back at index (zeros elsewhere; repeated indices add up)"""

    @staticmethod
    def forward(ctx, x, index):
        ctx.index, ctx.in_shape = index, x.shape
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        return ScatterAdd.apply(grad, index=ctx.index, shape=ctx.in_shape)


class ScatterAdd(Function):
    """z = zeros(shape) with x added at index;  dz/dx = grad[index]  (the backward of indexing)"""

    @staticmethod
    def forward(ctx, x, index, shape):
        ctx.index = index
        out = np.zeros_like(x, shape=shape)
        if _has_array(index):
            np.add.at(out, index, x)  # unbuffered: repeated indices add up
        else:
            out[index] = x  # basic indexing never repeats an element
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.index]


class SetItem(Function):
    """z = x with z[index] = y;  dz/dx = grad with zeros at index,  dz/dy = grad[index]

    `t[index] = y` in grad mode (Tensor.__setitem__). The value y is broadcast into the indexed
    part and cast to x's dtype, as NumPy assigns; x itself is not written. With a repeated
    integer index the last write wins, and every copy of y gets the gradient of its place
    (PyTorch's rule for index_put).
    """

    @staticmethod
    def forward(ctx, x, y, index):
        ctx.index = index
        out = np.copy(x)  # an array even where tg.compile's program holds x as a NumPy scalar
        out[index] = y
        return out

    @staticmethod
    def backward(ctx, grad):
        kept = np.ones_like(grad, dtype=bool)  # where x still shows through
        kept[ctx.index] = False
        return grad * kept, grad[ctx.index]


def _has_array(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(part, (np.ndarray, list)) for part in parts)


class Concatenate(Function):
    """z = concatenate(xs, axis);  dz/dxs[i] = the slice of grad that xs[i] became"""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        if any(np.ndim(x) == 0 for x in xs):
            raise ValueError("zero-dimensional arrays cannot be concatenated (use stack to make a new axis)")
        ctx.axis = axis % np.ndim(xs[0]) if -np.ndim(xs[0]) <= axis < np.ndim(xs[0]) else axis
        ctx.bounds = np.cumsum([0] + [np.shape(x)[ctx.axis] for x in xs])
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        before = (slice(None),) * ctx.axis
        bounds = ctx.bounds
        return tuple(grad[before + (slice(bounds[i], bounds[i + 1]),)] for i in range(len(bounds) - 1))


# ---- products --------------------------------------------------------------------------------


class MatMul(Function):
    """z = x @ y;  dz/dx = grad @ y.T,  dz/dy = x.T @ grad

    A 1-D x acts as a row, a 1-D y as a column; leading axes broadcast as batches.
    """

    @staticmethod
    def forward(ctx, x, y):
        x, y = np.asanyarray(x), np.asanyarray(y)
        ctx.ndims = x.ndim, y.ndim
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, y if ctx.needs_input_grad[0] else None)
        try:
            return x @ y
        except ValueError:
            _check_matmul_shapes(x.shape, y.shape)  # says which dimensions disagree (checked only on failure)
            raise

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved  # each saved only for the other's gradient (as in Mul)
        x_ndim, y_ndim = ctx.ndims
        # Work with matrices: a vector x is a 1-row matrix, a vector y a 1-column matrix; grad
        # gets back the row or column axis the vector's product dropped.
        if x_ndim == 1 or y_ndim == 1:
            shape = grad.shape + (1,) if y_ndim == 1 else grad.shape
            grad = grad.reshape(shape[:-1] + (1,) + shape[-1:] if x_ndim == 1 else shape)
        dx = dy = None
        if ctx.needs_input_grad[0]:
            ym = y if y_ndim > 1 else y.reshape(-1, 1)
            dx = grad @ ym.mT  # a 1-D x's extra leading axes are summed by the engine
        if ctx.needs_input_grad[1]:
            xm = x if x_ndim > 1 else x.reshape(1, -1)
            dy = xm.mT @ grad
            if y_ndim == 1:
                dy = dy.reshape(dy.shape[:-1])  # drop the column axis; batch axes go to the engine
        return dx, dy


class Linear(Function):
    """z = x @ w.T + b;  dz/dx = grad @ w,  dz/dw = grad.T @ x,  dz/db = grad

    A layer's affine map as one node (nn.Linear, F.linear), with PyTorch's weight layout
    (out_features, in_features). Three nodes (Transpose, MatMul, Add) would give the same
    values, but grad.T @ x builds the weight's gradient directly in the weight's own layout,
    where the MatMul of a transposed weight hands back a transposed (Fortran-ordered) one that
    every later update would walk against the grain. Batch axes of x are summed for w.
    """

    @staticmethod
    def forward(ctx, x, w, b):
        x, w = np.asanyarray(x), np.asanyarray(w)
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None)
        try:
            product = x @ w.T
        except ValueError:  # say it in the layer's terms (checked only on failure)
            raise ValueError(f"the weight of shape {w.shape} (out_features, in_features) takes inputs whose "
                             f"last axis has {w.shape[-1]} features, got an input of shape {x.shape}") from None
        return product + b

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved  # each saved only for the other's gradient (as in Mul)
        dx = grad @ w if ctx.needs_input_grad[0] else None
        dw = None
        if ctx.needs_input_grad[1]:
            # Every leading axis of x is a batch axis: flatten them, so one product sums them. The
            # batch size is spelled out: with 0 features, reshape could not infer a -1.
            batch = math.prod(x.shape[:-1])
            dw = grad.reshape(batch, grad.shape[-1]).T @ x.reshape(batch, x.shape[-1])
        return dx, dw, grad  # the engine sums grad over the axes b was broadcast along


def _check_matmul_shapes(x_shape: tuple, y_shape: tuple) -> None:
    """Raise a ValueError that says which dimensions of `x @ y` disagree, and what would fit."""
    if not x_shape or not y_shape:
        raise ValueError("matmul needs operands with at least 1 dimension (use * for scalars)")
    inner_x = x_shape[-1]
    inner_y = y_shape[-2] if len(y_shape) > 1 else y_shape[0]
    if inner_x != inner_y:
        where_y = "y.shape[-2]" if len(y_shape) > 1 else "y.shape[0]"
        hint = ""
        if len(y_shape) > 1 and inner_x == y_shape[-1]:
            hint = f"; y transposed has {y_shape[-1]} rows and would fit: did you mean x @ y.T?"
        elif len(x_shape) > 1 and x_shape[-2] == inner_y:
            hint = f"; x transposed has {x_shape[-2]} columns and would fit: did you mean x.T @ y?"
        raise ValueError(
            f"the inner dimensions disagree: x.shape[-1] = {inner_x} but {where_y} = {inner_y}{hint}"
        )
    if len(x_shape) <= 2 and len(y_shape) <= 2:
        return  # no batch dimensions (the usual layer), so nothing else to check
    try:
        np.broadcast_shapes(x_shape[:-2], y_shape[:-2])
    except ValueError:
        raise ValueError(
            f"the batch dimensions {x_shape[:-2]} and {y_shape[:-2]} do not broadcast"
        ) from None


class Einsum(Function):
    """z = einsum(subscripts, *xs);  dz/dxs[i] = einsum of grad with the other operands, into xs[i]'s indices

    Like NumPy, an index may have size 1 in one operand and n in another (broadcast). Each
    gradient is built at its operand's own sizes: an index the operand has at size n but
    that is size 1 (or absent) everywhere else gets a ones(n) operand, which stretches the
    result to n; an index the operand has at size 1 comes out at size n, and the engine's
    `unbroadcast` sums it back to 1, as it does for any size-1 broadcast.
    """

    @staticmethod
    def forward(ctx, *xs, subscripts):
        shapes = [np.shape(x) for x in xs]
        ctx.inputs, ctx.output = _parse_einsum(subscripts, shapes)
        ctx.shapes = shapes
        ctx.save_for_backward(*xs)
        return _einsum(",".join(ctx.inputs) + "->" + ctx.output, *xs)

    @staticmethod
    def backward(ctx, grad):
        xs, grads = ctx.saved, []
        for i, target in enumerate(ctx.inputs):
            if not ctx.needs_input_grad[i]:
                grads.append(None)
                continue
            subs = [ctx.output] + [s for j, s in enumerate(ctx.inputs) if j != i]
            operands = [grad] + [x for j, x in enumerate(xs) if j != i]
            sizes = {}  # each index's largest size among grad and the other operands
            for letters, operand in zip(subs, operands):
                for letter, n in zip(letters, np.shape(operand)):
                    sizes[letter] = max(sizes.get(letter, 0), n)
            result = ""
            for letter, size in zip(target, ctx.shapes[i]):
                if letter in result:
                    # A repeated index (a diagonal, as in 'ii'): route the gradient through eye.
                    fresh = _unused_letters(ctx.inputs + [ctx.output, result], 1)
                    subs.append(letter + fresh)
                    operands.append(np.eye(size, dtype=grad.dtype))
                    letter = fresh
                elif letter not in sizes or sizes[letter] < size:
                    # An index summed away inside this operand alone, or broadcast from size 1
                    # everywhere else: the gradient is constant along it.
                    subs.append(letter)
                    operands.append(np.ones(size, dtype=grad.dtype))
                result += letter
            grads.append(_einsum(",".join(subs) + "->" + result, *operands))
        return tuple(grads)


def _einsum(subscripts: str, *operands):
    """np.einsum, letting it plan a BLAS-backed order when that pays: several operands or big
    ones (planning costs tens of microseconds; a plain einsum of big matrices costs far more)."""
    plan = len(operands) > 2 or sum(np.size(x) for x in operands) > 2048
    return np.einsum(subscripts, *operands, optimize=plan)


def _unused_letters(used, count: int) -> str:
    taken = set("".join(used))
    free = [c for c in string.ascii_letters if c not in taken]
    if len(free) < count:
        raise ValueError("einsum: too many indices")
    return "".join(free[:count])


def _parse_einsum(subscripts: str, shapes: list) -> tuple:
    """Explicit form of `subscripts`: one letter string per operand and the output, '...' expanded."""
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, rhs = subscripts.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum '{subscripts}' names {len(inputs)} operands but got {len(shapes)}")
    for letters in inputs + [rhs]:
        bad = set(letters.replace("...", "")) - set(string.ascii_letters)
        if bad:
            raise ValueError(f"einsum '{subscripts}': invalid index characters {sorted(bad)}")
    ellipsis_dims = max(
        (len(shape) - len(s.replace("...", "")) for s, shape in zip(inputs, shapes) if "..." in s), default=0
    )
    fill = _unused_letters(inputs + [rhs], ellipsis_dims)
    expanded = []
    for s, shape in zip(inputs, shapes):
        if "..." in s:
            own = len(shape) - len(s.replace("...", ""))
            s = s.replace("...", fill[ellipsis_dims - own:] if own else "")
        if len(s) != len(shape):
            raise ValueError(f"einsum '{subscripts}': '{s}' has {len(s)} indices for an operand of shape {shape}")
        expanded.append(s)
    if arrow:
        output = rhs.replace("...", fill)
    else:
        # Implicit mode, like NumPy: broadcast axes first, then the indices used once, sorted.
        letters = "".join(inputs).replace("...", "")
        output = fill + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return expanded, output


# ---- windows and convolution (NCHW; the last two axes are the image) -----------------------


class Windows(Function):
    """z = windows(x);  dz/dx = col2im(grad)

    Every kernel-sized window of the last two axes, as a strided view (im2col without a copy):
    z[..., h, w, i, j] = x[..., h*stride + i*dilation, w*stride + j*dilation], so an input
    (N, C, H, W) gives (N, C, OH, OW, kh, kw). Windows overlap, so one element of x sits in
    several windows: its gradient is the sum of theirs, which is what col2im adds up.
    """

    @staticmethod
    def forward(ctx, x, kernel=(1, 1), stride=(1, 1), dilation=(1, 1)):
        ctx.in_shape, ctx.stride, ctx.dilation = x.shape, stride, dilation
        return _windows(x, kernel, stride, dilation)

    @staticmethod
    def backward(ctx, grad):
        return Col2Im.apply(grad, shape=ctx.in_shape, stride=ctx.stride, dilation=ctx.dilation)


class Col2Im(Function):
    """z = col2im(x);  dz/dx = windows(grad)

    The adjoint of Windows: x holds windows (..., OH, OW, kh, kw); each is added back at the
    place it came from in an array of `shape` (where windows overlap, their values add up).
    """

    @staticmethod
    def forward(ctx, x, shape=(), stride=(1, 1), dilation=(1, 1)):
        ctx.kernel, ctx.stride, ctx.dilation = x.shape[-2:], stride, dilation
        out = np.zeros_like(x, shape=shape)
        out_h, out_w, kernel_h, kernel_w = x.shape[-4:]
        # One strided slice per kernel offset (i, j): kh * kw vectorised adds, no add-at.
        for i in range(kernel_h):
            rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (out_h - 1) + 1, stride[0])
            for j in range(kernel_w):
                cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (out_w - 1) + 1, stride[1])
                out[..., rows, cols] += x[..., i, j]
        return out

    @staticmethod
    def backward(ctx, grad):
        return Windows.apply(grad, kernel=ctx.kernel, stride=ctx.stride, dilation=ctx.dilation)


def _windows(x: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """The (..., OH, OW, kh, kw) view of Windows: a dilated kernel spans dilation*(k-1)+1 pixels;
    take every window of that span, then every stride-th one and every dilation-th pixel in it."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = np.lib.stride_tricks.sliding_window_view(x, span, axis=(-2, -1))
    return view[..., :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


class MaxPool2d(Function):
    """z = max(windows(x), axis=(-2, -1));  dz/dx = col2im(grad * (1 at each window's first maximum, else 0))

    Windows then Max, as one node: the maximum is taken as np.maximum over the kh * kw offsets,
    each a strided (N, C, OH, OW) slice, where a reduction over the two small window axes would
    run NumPy's inner loop kh * kw elements at a time (most of a CNN training step, W6).
    Each window gives its whole gradient to one cell, PyTorch's: the first maximum in row-major
    order, or the last NaN of a window holding NaNs (NaN wins the maximum but equals nothing).
    `border` names the cells of x that F.max_pool2d added as -inf padding: they never take it.
    """

    @staticmethod
    def forward(ctx, x, kernel=(1, 1), stride=(1, 1), dilation=(1, 1), border=((0, 0), (0, 0))):
        ctx.in_shape, ctx.stride, ctx.dilation = x.shape, stride, dilation
        windows = _windows(x, kernel, stride, dilation)
        out = windows[..., 0, 0].copy()
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                np.maximum(out, windows[..., i, j], out=out)
        ctx.save_for_backward(_pool_winners(windows, out, x.shape, stride, dilation, border))
        return out

    @staticmethod
    def backward(ctx, grad):
        (winners,) = ctx.saved
        window_grads = grad.reshape(grad.shape + (1, 1)) * winners
        return Col2Im.apply(window_grads, shape=ctx.in_shape, stride=ctx.stride, dilation=ctx.dilation)


def _pool_winners(windows, out, x_shape: tuple, stride: tuple, dilation: tuple, border: tuple) -> np.ndarray:
    """True at the one cell of each window (..., OH, OW, kh, kw) of x that MaxPool2d's maximum `out`
    came from (PyTorch's choice, see MaxPool2d); F.max_pool2d's return_indices reads it too."""
    kernel = windows.shape[-2:]
    maxima = windows == out[..., None, None]
    if border != ((0, 0), (0, 0)):  # the -inf padding ties with a maximum of -inf: it must not win
        height, width = (n - before - after for n, (before, after) in zip(x_shape[-2:], border))
        maxima &= _windows(np.pad(np.ones((height, width), bool), border), kernel, stride, dilation)
    winners = _first_in_window(maxima)
    if np.isnan(out).any():  # reversing both window axes reverses row-major order: the last NaN
        winners |= _first_in_window(np.isnan(windows)[..., ::-1, ::-1])[..., ::-1, ::-1]
    return winners


def _first_in_window(found: np.ndarray) -> np.ndarray:
    """True at the first True of each window of `found` (..., kh, kw) in row-major order."""
    first = np.zeros_like(found)
    unclaimed = np.ones_like(found[..., 0, 0])
    for i in range(found.shape[-2]):
        for j in range(found.shape[-1]):
            np.logical_and(found[..., i, j], unclaimed, out=first[..., i, j])
            unclaimed &= ~found[..., i, j]
    return first


class Conv2d(Function):
    """z = einsum('nchwij,ocij->nohw', windows(x), w);  dz/dx = col2im(einsum('nohw,ocij->nchwij', grad, w)),  dz/dw = einsum('nohw,nchwij->ocij', grad, windows(x))

    Cross-correlation of x (N, C, H, W), already padded, with w (O, C, kh, kw), as PyTorch's
    conv2d: the windows of x (im2col, a view) times the weight in one matrix product over the
    (c, i, j) axes. Backward is two more products: each output gradient spread back over the
    window it came from (dx: the weight's product, then col2im adds overlapping windows) and
    the windows weighted by the output gradient (dw). Both are recorded ops on Tensors, so
    second derivatives work. The bias is a separate broadcast add (F.conv2d).
    """

    @staticmethod
    def forward(ctx, x, w, stride=(1, 1), dilation=(1, 1)):
        ctx.stride, ctx.dilation = stride, dilation
        ctx.save_for_backward(x, w)
        return _einsum("nchwij,ocij->nohw", _windows(x, w.shape[2:], stride, dilation), w)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved
        dx = dw = None
        if ctx.needs_input_grad[0]:
            window_grads = _einsum("nohw,ocij->nchwij", grad, w)
            dx = Col2Im.apply(window_grads, shape=x.shape, stride=ctx.stride, dilation=ctx.dilation)
        if ctx.needs_input_grad[1]:
            windows = Windows.apply(x, kernel=w.shape[2:], stride=ctx.stride, dilation=ctx.dilation)
            dw = _einsum("nohw,nchwij->ocij", grad, windows)
        return dx, dw


# ---- fused losses: one node each, so backward is the short textbook formula ------------------


class SoftmaxCrossEntropy(Function):
    """z = -sum(t * log_softmax(x), axis);  dz/dx = softmax(x) * sum(t) - t,  dz/dt = -log_softmax(x)

    t is probability rows of x's shape, or integer class indices (x's shape without `axis`),
    which stand for one-hot rows: the loss picks each sample's log-probability and the gradient
    is softmax(x) with 1 taken off at the picked class, without building the rows. For rows
    summing to 1 the gradient is the familiar softmax(x) - t. Forward keeps softmax(x) for
    backward: on a small batch each NumPy call costs more than its arithmetic.
    """

    @staticmethod
    def forward(ctx, x, t, axis, reduction):
        ctx.axis, ctx.reduction = axis, reduction
        shifted = x - _softmax_shift(x, axis)
        probs = np.exp(shifted)
        sums = probs.sum(axis=axis, keepdims=True)
        log_sums = np.log(sums)
        if t.dtype.kind in "iu":  # log_softmax at each sample's class: shifted - log_sums there
            losses = log_sums.reshape(t.shape) - shifted[class_index(t, axis)]
        else:  # where t is 0 the term is 0, even beside a masked -inf logit (0 * -inf would be nan)
            losses = -(t * np.where(t != 0, shifted - log_sums, 0)).sum(axis=axis)
        probs /= sums
        ctx.save_for_backward(x, t, probs)
        ctx.kept_shape = sums.shape  # x's shape with 1 on the class axis: 'none' puts row gradients there
        return _reduce_losses(ctx, losses)

    @staticmethod
    def backward(ctx, grad):
        x, t, probs = ctx.saved
        axis = ctx.axis
        grad = grad.reshape(ctx.kept_shape) if ctx.reduction == "none" else _spread_loss_grad(ctx, grad)
        if isinstance(x, np.ndarray) and t.dtype.kind in "iu":
            dx = probs * grad
            dx[class_index(t, axis)] -= grad.reshape(t.shape) if grad.ndim else grad
            return dx, None
        log_probs = None
        if not isinstance(x, np.ndarray):
            # create_graph: x is the logits Tensor and the kept softmax a constant; compute it
            # from x again, so the recorded gradient depends on x (second derivatives).
            log_probs = _log_softmax(x, axis)
            probs = log_probs.exp()
        if t.dtype.kind in "iu":  # the one-hot rows the indices stand for, as a constant
            rows = np.zeros(x.shape, x.dtype)
            rows[class_index(t, axis)] = 1
            t = rows
        dt = None
        if ctx.needs_input_grad[1]:  # soft targets that require grad (rare): d/dt = -log_softmax(x)
            dt = -grad * (_log_softmax(x, axis) if log_probs is None else log_probs)
        dx = grad * (probs * t.sum(axis=axis, keepdims=True) - t)
        return dx, dt


class SquaredError(Function):
    """z = (x - t)**2, reduced;  dz/dx = 2 (x - t),  dz/dt = -2 (x - t)

    mse_loss as one node with the textbook gradient 2 (x - t) / N. The composite (Sub, Pow,
    Sum, Div) gives the same values in four nodes, which cost a quarter of a small network's
    training step (W3 in docs/performance.md).
    """

    @staticmethod
    def forward(ctx, x, t, reduction):
        ctx.reduction = reduction
        ctx.save_for_backward(x, t)
        return _reduce_losses(ctx, (x - t) ** 2)

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved
        dx = 2 * (x - t) * _spread_loss_grad(ctx, grad)
        dt = -dx if ctx.needs_input_grad[1] else None
        return dx, dt


class BinaryCrossEntropyWithLogits(Function):
    """z = max(x, 0) - x * t + log(1 + exp(-|x|));  dz/dx = sigmoid(x) - t,  dz/dt = -x"""

    @staticmethod
    def forward(ctx, x, t, reduction):
        ctx.reduction = reduction
        ctx.save_for_backward(x, t)
        # Equal to -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), but exp never overflows.
        losses = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        return _reduce_losses(ctx, losses)

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved
        grad = _spread_loss_grad(ctx, grad)
        dt = -grad * x if ctx.needs_input_grad[1] else None
        return grad * (expit(x) - t), dt


class BinaryCrossEntropy(Function):
    """z = -(t log p + (1 - t) log(1 - p)), logs clamped at -100;  dz/dp = (p - t) / max(p (1 - p), 1e-12),  dz/dt = log(1 - p) - log(p)

    A primitive because the clamp (PyTorch's, so p = 0 or 1 gives a finite loss) would give
    a composite the gradient 0 * inf = nan there; this is PyTorch's finite backward.
    """

    @staticmethod
    def forward(ctx, p, t, reduction):
        ctx.reduction = reduction
        ctx.save_for_backward(p, t)
        log_p, log_not_p = _clamped_logs(p)
        return _reduce_losses(ctx, -(t * log_p + (1 - t) * log_not_p))

    @staticmethod
    def backward(ctx, grad):
        p, t = ctx.saved
        grad = _spread_loss_grad(ctx, grad)
        dp = grad * (p - t) / np.maximum(p * (1 - p), 1e-12)
        if not ctx.needs_input_grad[1]:
            return dp, None
        log_p, log_not_p = _clamped_logs(p)
        return dp, grad * (log_not_p - log_p)


def _clamped_logs(p):
    """log(p) and log(1 - p), each at least -100 (log(0) would be -inf)."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(p), -100.0), np.maximum(np.log(1 - p), -100.0)


def class_index(labels: np.ndarray, axis: int) -> tuple:
    """The index that picks scores[n, labels[n], d1, ...] from scores with classes on `axis`:
    `labels` on that axis, a broadcast arange on every other (cached per shape)."""
    others = _sparse_grid(labels.shape)
    return others[:axis] + (labels,) + others[axis:]


@functools.lru_cache(maxsize=32)
def _sparse_grid(shape: tuple) -> tuple:
    grid = np.indices(shape, sparse=True)
    for axis in grid:
        axis.flags.writeable = False  # shared from one call to the next
    return tuple(grid)


def _log_softmax(x, axis: int):
    """x - logsumexp(x, axis), computed as shifted - log(sum(exp(shifted))) (see _softmax_shift)."""
    shifted = x - _softmax_shift(x, axis)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _softmax_shift(x, axis: int) -> np.ndarray:
    """The maximum along `axis`, a constant: subtracting it keeps exp from overflowing and cancels
    out of softmax and log-softmax (and their gradients). A row holding +inf, or of -inf only, has
    no softmax: x - max is nan there (inf - inf), as in PyTorch. logsumexp takes such a maximum as 0."""
    return np.asanyarray(x).max(axis=axis, keepdims=True, initial=-np.inf)


def _reduce_losses(ctx, losses):
    """Apply a loss's reduction ('none' | 'sum' | 'mean'), remembering what backward must undo."""
    ctx.count = losses.size
    if ctx.reduction == "mean":
        return losses.sum() / ctx.count  # the sum, then one division, as Tensor.mean (docs/performance.md)
    return losses.sum() if ctx.reduction == "sum" else losses


def _spread_loss_grad(ctx, grad):
    """The upstream gradient of a reduced loss, per element of the unreduced losses."""
    return grad / ctx.count if ctx.reduction == "mean" else grad


# ---- dtype -----------------------------------------------------------------------------------


class Cast(Function):
    """z = x.astype(dtype);  dz/dx = grad, cast back to x's dtype by the engine"""

    @staticmethod
    def forward(ctx, x, dtype):
        return x.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return grad
