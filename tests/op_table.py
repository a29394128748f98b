"""The op table: one OpSpec row per public op, run by both table tests.

test_ops_forward.py checks each row's values against NumPy and test_ops_gradient.py
its vector-Jacobian product against central differences. Adding an op means adding
its Function class in tinygrad_edu/ops.py and its row here; nothing else.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import strategies as S
import tinygrad_edu as tg
import tinygrad_edu.functional as F
import tinygrad_edu.ops as ops
from strategies import Domain
from tinygrad_edu import Tensor

REALS = Domain(-3.0, 3.0)
# Forward only (gradients by central differences lose their digits at this scale): where an
# op can overflow (exp, the log-sum-exp family, losses on logits) it must match NumPy there.
WIDE = Domain(-1e4, 1e4)
NONZERO = Domain(-3.0, 3.0, avoid=(0.0,))
ZERO_OR_AWAY = Domain(-3.0, 3.0, avoid=(0.0,), zeros=True)  # exact zeros, nothing within GAP of 0
WITH_ZEROS = Domain(-3.0, 3.0, zeros=True)
POSITIVE = Domain(1e-3, 3.0)
POSITIVE_OR_ZERO = Domain(1e-3, 3.0, zeros=True)
BASES = Domain(0.2, 3.0)
EXPONENTS = Domain(-2.0, 2.0, zeros=True)
DISTINCT = Domain(-3.0, 3.0, distinct=True)
INTEGERS = Domain(-2.0, 2.0, grid=0.0)
HALF_INTEGERS = Domain(-3.0, 3.0, grid=0.5)
PROBS = Domain(0.05, 0.95)
CONST = Domain(-3.0, 3.0, kind="const")
CONST_UNIT = Domain(0.0, 1.0, kind="const")
BOOL = Domain(kind="bool")
CLIP_LO, CLIP_HI = -1.0, 0.5
AWAY_FROM_CLIP = Domain(-3.0, 3.0, avoid=(CLIP_LO, CLIP_HI))


def _no_kwargs(shapes_strategy):
    return shapes_strategy.map(lambda shapes: (tuple(shapes), {}))


UNARY = _no_kwargs(S.broadcastable_shapes(1))
BINARY = _no_kwargs(S.broadcastable_shapes(2))
TERNARY = _no_kwargs(S.broadcastable_shapes(3))
MATMUL = _no_kwargs(S.matmul_shapes())


@dataclass(frozen=True)
class OpSpec:
    """One row of the table.

    fn gets Tensors for "float" inputs (ndarrays for "const"/"bool" ones) plus kwargs;
    ref gets the same inputs as ndarrays and returns what fn must return.
    inputs: strategy of ``(shapes, kwargs)``: one shape per positional input; kwargs
    (axes, indices, scalars) go unchanged to both fn and ref.
    domains: one per positional input; the last one repeats for variadic ops.
    grad: False for ops without a gradient (comparisons, argmax); their outputs must
    not require grad. grad_domains replaces domains in the gradient test (kinks).
    """

    name: str
    fn: Callable[..., Any]
    ref: Callable[..., Any]
    inputs: st.SearchStrategy = UNARY
    domains: tuple = (REALS,)
    grad: bool = True
    rtol: float = 1e-5
    atol: float = 1e-7
    grad_domains: tuple | None = None

    def __repr__(self):  # hypothesis prints the row in every falsifying example
        return f"OpSpec({self.name!r})"

    def domain(self, i, for_grad=False):
        domains = self.grad_domains if (for_grad and self.grad_domains) else self.domains
        return domains[min(i, len(domains) - 1)]


# ---------------------------------------------------------------- drawing a case


def freeze(obj):
    """Make every ndarray in ``obj`` (nested in tuples, lists, dicts) read-only."""
    if isinstance(obj, np.ndarray):
        obj.flags.writeable = False
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            freeze(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            freeze(item)
    return obj


def draw_case(spec, data, dtype, for_grad=False, zeros=True):
    """Draw ``(arrays, kwargs)`` for ``spec``: read-only inputs in the row's domains.

    ``zeros=False`` keeps domains that draw exact zeros away from 0 altogether: the
    second-order test differentiates the backward numerically around each point, and a
    zero is a first-order special point (x**0, a product with two zeros), where the
    backward is a constant that has no derivative to compare.
    """
    shapes, kwargs = data.draw(spec.inputs, label="shapes, kwargs")
    domains = [spec.domain(i, for_grad) for i in range(len(shapes))]
    if not zeros:
        domains = [replace(d, zeros=False, avoid=d.avoid + (0.0,)) if d.zeros else d for d in domains]
    arrays = [
        data.draw(S.arrays(domain, shape, dtype), label=f"input {i}")
        for i, (domain, shape) in enumerate(zip(domains, shapes))
    ]
    return freeze(arrays), freeze(kwargs)


def make_inputs(spec, arrays, requires_grad):
    """Tensors for the row's "float" inputs; "const" and "bool" inputs stay ndarrays."""
    return [
        Tensor(a, requires_grad=requires_grad) if spec.domain(i).kind == "float" else a
        for i, a in enumerate(arrays)
    ]


def snapshot(obj):
    """A deep, writable copy of drawn inputs, to detect mutation later."""
    return copy.deepcopy(obj)


def assert_unchanged(before, after, where):
    """Fail if any ndarray in ``after`` differs from its copy in ``before``."""
    if isinstance(before, np.ndarray):
        same = before.dtype == after.dtype and np.array_equal(before, after, equal_nan=True)
        assert same, f"{where}: an input was mutated: {before!r} became {after!r}"
    elif isinstance(before, (tuple, list)):
        for b, a in zip(before, after):
            assert_unchanged(b, a, where)
    elif isinstance(before, dict):
        for key in before:
            assert_unchanged(before[key], after[key], where)


# ---------------------------------------------------------------- input strategies


@st.composite
def with_scalar(draw, lo=-3.0, hi=3.0):
    """One array and a Python float ``c`` (for the reflected operators)."""
    (shape,) = draw(S.broadcastable_shapes(1))
    return (shape,), {"c": draw(st.floats(lo, hi))}


@st.composite
def reduction(draw, tuples=True, keepdims=True, none=True, min_dims=0, ddof=False):
    """A shape and its ``axis`` (and ``keepdims``, and ``ddof`` 0 or 1) kwargs."""
    shape = draw(S.shapes(min_dims=min_dims))
    kwargs = {"axis": draw(S.axes(len(shape), none=none, tuples=tuples))}
    if keepdims:
        kwargs["keepdims"] = draw(st.booleans())
    if ddof:
        kwargs["ddof"] = draw(st.sampled_from([0, 0, 1]))
    return (shape,), kwargs


@st.composite
def cumsum_inputs(draw):
    """A shape and an axis: None (flattened), or an int that may be negative (0-d: 0 or -1)."""
    shape = draw(S.shapes())
    ndim = max(len(shape), 1)  # NumPy's cumsum treats a 0-d array as 1-d
    return (shape,), {"axis": draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1)))}


@st.composite
def integer_power(draw):
    """One array and a Python int exponent 0..3: x**0 and x**1 at x = 0 are special points."""
    (shape,) = draw(S.broadcastable_shapes(1))
    return (shape,), {"c": draw(st.integers(0, 3))}


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def reshape_inputs(draw):
    """A shape and a random compatible target, sometimes with one -1."""
    shape = draw(S.shapes())
    remaining = int(np.prod(shape))
    ndim = draw(st.integers(0 if remaining == 1 else 1, S.MAX_DIMS))
    target = []
    for _ in range(ndim - 1):
        # An empty shape stays empty: its target needs a 0 somewhere (here: the last side)
        target.append(draw(st.sampled_from(_divisors(remaining) if remaining else [1, 2, 3])))
        remaining //= target[-1] if remaining else 1
    if ndim:
        target.append(remaining)
        target = draw(st.permutations(target))
        if draw(st.booleans()) and remaining:  # -1 is ambiguous for an empty shape
            target[draw(st.integers(0, ndim - 1))] = -1
    return (shape,), {"shape": tuple(target)}


@st.composite
def transpose_inputs(draw):
    shape = draw(S.shapes())
    axes = draw(S.permutations(len(shape)))
    return (shape,), {"axes": axes, "as_tuple": draw(st.booleans())}


@st.composite
def squeeze_inputs(draw):
    """A shape with some size-1 axes; axis None, one of them, or a tuple of them."""
    shape = list(draw(S.shapes(min_dims=1)))
    ndim = len(shape)
    ones = draw(st.lists(st.integers(0, ndim - 1), min_size=1, unique=True))
    for axis in ones:
        shape[axis] = 1
    signed = st.sampled_from(ones).flatmap(lambda a: st.sampled_from([a, a - ndim]))
    axis = draw(st.one_of(st.none(), signed, st.just(tuple(ones))))
    return (tuple(shape),), {"axis": axis}


@st.composite
def unsqueeze_inputs(draw):
    shape = draw(S.shapes())
    ndim = len(shape)
    return (shape,), {"axis": draw(st.integers(-ndim - 1, ndim))}


@st.composite
def broadcast_to_inputs(draw):
    """A shape and a different target it broadcasts to (stretched 1s, new leading axes)."""
    shape = draw(S.shapes(max_side=3))
    target = [draw(st.integers(1, 3)) if side == 1 else side for side in shape]
    extra = draw(st.lists(st.integers(1, 3), max_size=4 - len(shape)))
    target = tuple(extra + target)
    if target == shape:
        target = (2,) + target  # always a real broadcast (an identity may return x itself)
    return (shape,), {"shape": target}


@st.composite
def flatten_inputs(draw):
    shape = draw(S.shapes())
    ndim = len(shape)
    if ndim == 0:
        return (shape,), {"start_axis": 0, "end_axis": -1}
    start = draw(st.integers(-ndim, ndim - 1))
    end = draw(st.integers(start % ndim, ndim - 1))
    if draw(st.booleans()):
        end -= ndim
    return (shape,), {"start_axis": start, "end_axis": end}


def _flatten_ref(x, start_axis, end_axis):
    if x.ndim == 0:
        return x.reshape(1)
    start, end = start_axis % x.ndim, end_axis % x.ndim
    merged = int(np.prod(x.shape[start : end + 1]))  # not -1: ambiguous for an empty array
    return x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1 :])


@st.composite
def index_inputs(draw, kind):
    # Integer indices need a non-empty axis to point into
    shape = draw(S.shapes(min_dims=0 if kind == "basic" else 1, min_side=1 if kind == "int" else None))
    strategy = {"basic": S.basic_index, "int": S.integer_index, "mask": S.bool_mask}[kind]
    return (shape,), {"index": draw(strategy(shape))}


@st.composite
def scatter_add_inputs(draw):
    """Target shape and index; the positional input is a gradient shaped like x[index]."""
    shape = draw(S.shapes(min_dims=1, min_side=1))
    index = draw(S.any_index(shape))
    return (np.zeros(shape)[index].shape,), {"index": index, "shape": shape}


@st.composite
def setitem_inputs(draw, kind):
    """x's shape, a value shape that broadcasts into x[index], and the index: basic, a mask, or
    distinct integers (a repeated one keeps the last write: the values it overwrote get a
    gradient by PyTorch's convention, not by any derivative, and tests/test_inplace.py pins that)."""
    shape = draw(S.shapes(min_dims=0 if kind == "basic" else 1, min_side=1 if kind == "int" else None))
    if kind == "int":
        places = draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=shape[0], unique=True))
        index = np.array([p - shape[0] if draw(st.booleans()) else p for p in places], dtype=np.intp)
    else:
        index = draw(S.basic_index(shape) if kind == "basic" else S.bool_mask(shape))
    target = np.zeros(shape)[index].shape
    value_shape = draw(hnp.broadcastable_shapes(target, max_dims=len(target), min_side=0).filter(
        lambda drawn: np.broadcast_shapes(drawn, target) == target))
    return (shape, value_shape), {"index": index}


def _setitem(x, value, index):
    out = x * 1.0  # a non-leaf: a leaf that requires grad refuses t[index] = value, as in PyTorch
    out[index] = value
    return out


def _setitem_ref(x, value, index):
    out = x.copy()
    out[index] = value
    return out


def _scatter_add_ref(grad, index, shape):
    out = np.zeros(shape, dtype=grad.dtype)
    np.add.at(out, index, grad)
    return out


@st.composite
def concatenate_inputs(draw):
    shape = draw(S.shapes(min_dims=1, max_side=3))
    ndim = len(shape)
    axis = draw(st.integers(-ndim, ndim - 1))
    sizes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    shapes = [shape[: axis % ndim] + (n,) + shape[axis % ndim + 1 :] for n in sizes]
    return tuple(shapes), {"axis": axis}


@st.composite
def stack_inputs(draw):
    shape = draw(S.shapes(max_side=3))
    ndim = len(shape)
    count = draw(st.integers(1, 3))
    return (shape,) * count, {"axis": draw(st.integers(-ndim - 1, ndim))}


@st.composite
def einsum_inputs(draw, subscripts):
    """Operand shapes for ``subscripts``; each '...' gets its own broadcastable batch.

    An index shared by several operands is drawn at size 1 in some of them now and then:
    einsum broadcasts it, as NumPy does, and backward must give each operand its own shape.
    """
    operands = subscripts.split("->")[0].split(",")
    letters = sorted(set(subscripts) - set(".,->"))
    sizes = {letter: draw(st.integers(1, 4)) for letter in letters}
    batches = draw(S.broadcastable_shapes(len(operands), max_dims=2, max_side=3))
    shapes = []
    for operand, batch in zip(operands, batches):
        core_letters = operand.replace("...", "")
        shared = [c for c in set(core_letters) if sum(c in other for other in operands) > 1]
        own = {c: 1 if c in shared and draw(st.booleans()) else sizes[c] for c in sorted(set(core_letters))}
        core = tuple(own[letter] for letter in core_letters)
        shapes.append((batch if "..." in operand else ()) + core)
    return tuple(shapes), {"subscripts": subscripts}


@st.composite
def linear_inputs(draw, bias):
    """x (..., in), weight (out, in) and a bias: (out,) or, now and then, (1, out) or ()."""
    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(S.shapes(max_dims=2, max_side=3))
    shapes = [batch + (n_in,), (n_out, n_in)]
    if bias:
        shapes.append(draw(st.sampled_from([(n_out,), (n_out,), (1, n_out), ()])))
    return tuple(shapes), {}


REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


@st.composite
def loss_inputs(draw, target):
    """Loss inputs and a ``reduction``.

    target "same": two arrays of one shape (elementwise losses); "class": (N, C) logits
    with integer targets in kwargs; "probs": (N, C) logits and (N, C) target rows.
    """
    n, classes = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kwargs = {"reduction": draw(REDUCTIONS)}
    if target == "same":
        shape = draw(S.shapes())
        return (shape, shape), kwargs
    if target == "probs":
        return ((n, classes), (n, classes)), kwargs
    kwargs["target"] = draw(hnp.arrays(np.intp, n, elements=st.integers(0, classes - 1)))
    return ((n, classes),), kwargs


@st.composite
def one_hot_inputs(draw):
    num_classes = draw(st.integers(1, 5))
    shape = draw(S.shapes(max_dims=2))
    labels = draw(hnp.arrays(np.intp, shape, elements=st.integers(0, num_classes - 1)))
    return (), {"labels": labels, "num_classes": num_classes}


@st.composite
def embedding_inputs(draw):
    """A weight (rows, dim) and integer indices of any small shape (repeats likely) into its rows."""
    rows, dim = draw(st.integers(1, 4)), draw(st.integers(0, 3))
    indices = draw(hnp.arrays(np.intp, S.shapes(max_dims=2), elements=st.integers(0, rows - 1)))
    return ((rows, dim),), {"input": indices}


# ---------------------------------------------------------------- images (NCHW)


@st.composite
def window_geometry(draw, pool=False):
    """Kernel, stride, padding, dilation (each an (h, w) pair, sometimes given as one int) and an
    image side list that leaves every output side >= 1."""
    def pair(lo, hi):
        h = draw(st.integers(lo, hi))
        return (h, draw(st.integers(lo, hi))) if draw(st.booleans()) else (h, h)

    kernel, stride, dilation = pair(1, 3), pair(1, 2), pair(1, 2)
    if pool:  # at most half a kernel, and sides the dilated kernel spans: no window is all padding
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        sides = tuple(d * (k - 1) + 1 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation))
    else:
        padding = pair(0, 2)
        sides = tuple(
            max(d * (k - 1) + 1 - 2 * p, 1) + draw(st.integers(0, 3))
            for k, d, p in zip(kernel, dilation, padding)
        )
    return kernel, stride, padding, dilation, sides


def _one_int_sometimes(pair):
    return pair[0] if pair[0] == pair[1] else pair


@st.composite
def conv2d_inputs(draw, bias):
    kernel, stride, padding, dilation, (height, width) = draw(window_geometry())
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shapes = [(n, c, height, width), (o, c) + kernel] + ([(o,)] if bias else [])
    kwargs = {"stride": _one_int_sometimes(stride), "padding": _one_int_sometimes(padding),
              "dilation": _one_int_sometimes(dilation)}
    return tuple(shapes), kwargs


def _pair_of(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _padded(x, padding, value=0.0):
    (ph, pw) = _pair_of(padding)
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _patch(x, h, v, kernel, stride, dilation):
    """The input pixels under output pixel (h, v)."""
    rows = slice(h * stride[0], h * stride[0] + dilation[0] * (kernel[0] - 1) + 1, dilation[0])
    cols = slice(v * stride[1], v * stride[1] + dilation[1] * (kernel[1] - 1) + 1, dilation[1])
    return x[:, :, rows, cols]


def _conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1):
    """The definition, one output element at a time."""
    (sh, sw), (dh, dw) = _pair_of(stride), _pair_of(dilation)
    x = _padded(x, padding)
    kh, kw = w.shape[2:]
    out_h = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], out_h, out_w), dtype=x.dtype)
    for h in range(out_h):
        for v in range(out_w):
            patch = _patch(x, h, v, (kh, kw), (sh, sw), (dh, dw))
            out[:, :, h, v] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b.reshape(-1, 1, 1)


@st.composite
def pool2d_inputs(draw, dilation=True):
    kernel, stride, padding, dil, sides = draw(window_geometry(pool=True))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kwargs = {"kernel_size": _one_int_sometimes(kernel), "stride": _one_int_sometimes(stride),
              "padding": _one_int_sometimes(padding)}
    if dilation:
        kwargs["dilation"] = _one_int_sometimes(dil)
    else:  # avg_pool2d has no dilation: redraw sides for dilation 1
        sides = tuple(k + draw(st.integers(0, 3)) for k in kernel)
    return ((n, c) + sides,), kwargs


def _pool2d_ref(reduce, fill):
    def ref(x, kernel_size, stride, padding, dilation=1):
        (kh, kw), (sh, sw), (dh, dw) = _pair_of(kernel_size), _pair_of(stride), _pair_of(dilation)
        x = _padded(x, padding, fill)
        out_h = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
        out_w = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
        out = np.zeros(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
        for h in range(out_h):
            for v in range(out_w):
                patch = _patch(x, h, v, (kh, kw), (sh, sw), (dh, dw))
                out[:, :, h, v] = reduce(patch, axis=(2, 3))
        return out
    return ref


@st.composite
def pad_inputs(draw):
    shape = draw(S.shapes(min_dims=1))
    pairs = draw(st.integers(1, len(shape)))
    amounts = []
    for side in shape[::-1][:pairs]:
        before = draw(st.integers(-(side - 1), 2))
        after = draw(st.integers(-(side - 1 - max(-before, 0)), 2))
        amounts += [before, after]
    return (shape,), {"pad": tuple(amounts), "value": draw(st.sampled_from([None, 0.0, -1.5]))}


def _pad_ref(x, pad, value):
    widths = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(len(pad) - 2, -1, -2)]
    crop = tuple(slice(max(-a, 0), n - max(-b, 0)) for (a, b), n in zip(widths, x.shape))
    widths = [(max(a, 0), max(b, 0)) for a, b in widths]
    return np.pad(x[crop], widths, constant_values=0.0 if value is None else value)


@st.composite
def pad_mode_inputs(draw):
    """A copying mode and (before, after) amounts within its limits, for up to 3 trailing axes."""
    mode = draw(st.sampled_from(["reflect", "replicate", "circular"]))
    shape = draw(S.shapes(min_dims=1, min_side=1))
    amounts = []
    for side in shape[::-1][:draw(st.integers(1, min(3, len(shape))))]:
        most = {"reflect": side - 1, "replicate": 3, "circular": side}[mode]
        amounts += [draw(st.integers(0, most)), draw(st.integers(0, most))]
    return (shape,), {"pad": tuple(amounts), "mode": mode}


def _pad_mode_ref(x, pad, mode):
    widths = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(len(pad) - 2, -1, -2)]
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode])


@st.composite
def batch_norm_inputs(draw, training):
    """x (N, C, ...) with N * (spatial size) >= 2, and weight and bias (C,)."""
    channels = draw(st.integers(1, 3))
    shape = (draw(st.integers(2, 3)), channels) + draw(S.shapes(max_dims=2, min_side=1, max_side=3))
    kwargs = {"training": training}
    if not training:
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        kwargs["running_mean"] = rng.uniform(-1, 1, channels)
        kwargs["running_var"] = rng.uniform(0.5, 2, channels)
    return (shape, (channels,), (channels,)), kwargs


def _batch_norm_ref(x, weight, bias, training, running_mean=None, running_var=None):
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    else:
        mean = running_mean.astype(x.dtype).reshape(per_channel)  # stats take the input's dtype
        var = running_var.astype(x.dtype).reshape(per_channel)
    normal = (x - mean) / np.sqrt(var + 1e-5)
    return normal * weight.reshape(per_channel) + bias.reshape(per_channel)


@st.composite
def layer_norm_inputs(draw):
    shape = draw(S.shapes(min_dims=1, max_side=3))
    count = draw(st.integers(1, len(shape)))
    normalized = shape[len(shape) - count:]
    if np.prod(normalized) < 2:  # one value: its deviation is 0 and the gradient is degenerate
        shape, normalized = shape[:-1] + (2,), normalized[:-1] + (2,)
    return (shape, normalized, normalized), {"normalized_shape": normalized}


def _layer_norm_ref(x, weight, bias, normalized_shape):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    normal = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-5)
    return normal * weight + bias


@st.composite
def col2im_inputs(draw):
    """Windows (N, C, OH, OW, kh, kw) and the image shape they came from."""
    kernel, stride, _, dilation, _ = draw(window_geometry(pool=True))
    sides = tuple(d * (k - 1) + 1 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation))
    image = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + sides
    windows_shape = ops.Windows.apply(np.zeros(image), kernel=kernel, stride=stride, dilation=dilation).shape
    return (windows_shape,), {"shape": image, "stride": stride, "dilation": dilation}


def _col2im_ref(x, shape, stride, dilation):
    out = np.zeros(shape, dtype=x.dtype)
    out_h, out_w, kh, kw = x.shape[-4:]
    for h in range(out_h):
        for v in range(out_w):
            for i in range(kh):
                for j in range(kw):
                    row, col = h * stride[0] + i * dilation[0], v * stride[1] + j * dilation[1]
                    out[..., row, col] += x[..., h, v, i, j]
    return out


# ---------------------------------------------------------------- NumPy references


def _reduce(values, reduction):
    if reduction == "mean":
        return np.mean(values)
    if reduction == "sum":
        return np.sum(values)
    return values


def _logsumexp(x, axis=None):  # an empty axis: log(0) = -inf, as in PyTorch 2.13 and SciPy
    peak = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    out = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return np.squeeze(out, axis=axis)


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _relu(x):
    return np.maximum(x, 0)


def _std(x, axis=None, keepdims=False, ddof=0):
    return np.std(x, axis=axis, keepdims=keepdims, ddof=ddof)


def _getitem(x, index):
    return x[index]


def _transpose(x, axes, as_tuple):
    return np.transpose(x, axes)


def _transpose_call(x, axes, as_tuple):
    with warnings.catch_warnings():  # a drawn identity (0, 1) of a matrix warns for PyTorch ports: meant here
        warnings.filterwarnings("ignore", r"transpose\(0, 1\) of a 2-D tensor", UserWarning)
        return x.transpose(axes) if as_tuple else x.transpose(*axes)


def _cross_entropy_ref(logits, target, reduction):
    log_probs = _log_softmax(logits, axis=1)
    if target.ndim == 1:
        return _reduce(-log_probs[np.arange(len(target)), target], reduction)
    return _reduce(-np.sum(target * log_probs, axis=1), reduction)


def _binary_cross_entropy_ref(probs, target, reduction):
    return _reduce(-(target * np.log(probs) + (1 - target) * np.log(1 - probs)), reduction)


def _bce_with_logits_ref(logits, target, reduction):
    loss = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    return _reduce(loss, reduction)


EINSUM_SUBSCRIPTS = [
    "ij,jk->ik",
    "i,i->",
    "bij,bjk->bik",
    "ii->i",
    "ij->",
    "ij,jk",
    "...ij,...jk->...ik",
]


# ---------------------------------------------------------------- the table

OPS = [
    # arithmetic (broadcasting)
    OpSpec("add", lambda x, y: x + y, np.add, BINARY, (REALS, REALS)),
    OpSpec("sub", lambda x, y: x - y, np.subtract, BINARY, (REALS, REALS)),
    OpSpec("mul", lambda x, y: x * y, np.multiply, BINARY, (REALS, REALS)),
    OpSpec("div", lambda x, y: x / y, np.divide, BINARY, (REALS, NONZERO)),
    OpSpec(
        "pow", lambda x, y: x**y, np.power, BINARY, (Domain(0.2, 3.0, zeros=True), EXPONENTS),
        grad_domains=(BASES, EXPONENTS),  # 0**y with y < 1 has an infinite slope
    ),
    OpSpec("pow[int exponent]", lambda x, c: x**c, lambda x, c: x**c, integer_power(), (WITH_ZEROS,)),
    OpSpec("matmul", lambda x, y: x @ y, np.matmul, MATMUL, (REALS, REALS)),
    OpSpec("neg", lambda x: -x, np.negative),
    # reflected forms: a Python scalar or an ndarray on the left
    OpSpec("radd", lambda x, c: c + x, lambda x, c: c + x, with_scalar()),
    OpSpec("rsub", lambda x, c: c - x, lambda x, c: c - x, with_scalar()),
    OpSpec("rmul", lambda x, c: c * x, lambda x, c: c * x, with_scalar()),
    OpSpec("rtruediv", lambda x, c: c / x, lambda x, c: c / x, with_scalar(), (NONZERO,)),
    OpSpec("rpow", lambda x, c: c**x, lambda x, c: c**x, with_scalar(0.2, 3.0), (EXPONENTS,)),
    OpSpec("rpow[zero base]", lambda x: 0.0**x, lambda x: 0.0**x, UNARY, (Domain(0.2, 2.0),)),
    OpSpec("rmatmul[ndarray]", lambda a, y: a @ y, np.matmul, MATMUL, (CONST, REALS)),
    OpSpec("rmul[ndarray]", lambda a, y: a * y, np.multiply, BINARY, (CONST, REALS)),
    # comparisons: forward only, boolean results
    OpSpec("lt", lambda x, y: x < y, np.less, BINARY, (INTEGERS,), grad=False),
    OpSpec("le", lambda x, y: x <= y, np.less_equal, BINARY, (INTEGERS,), grad=False),
    OpSpec("gt", lambda x, y: x > y, np.greater, BINARY, (INTEGERS,), grad=False),
    OpSpec("ge", lambda x, y: x >= y, np.greater_equal, BINARY, (INTEGERS,), grad=False),
    OpSpec("eq", lambda x, y: x == y, np.equal, BINARY, (INTEGERS,), grad=False),
    OpSpec("ne", lambda x, y: x != y, np.not_equal, BINARY, (INTEGERS,), grad=False),
    # elementwise
    OpSpec("exp", lambda x: x.exp(), np.exp, UNARY, (WIDE,), grad_domains=(REALS,)),
    OpSpec("log", lambda x: x.log(), np.log, UNARY, (POSITIVE_OR_ZERO,), grad_domains=(POSITIVE,)),
    OpSpec("sqrt", lambda x: x.sqrt(), np.sqrt, UNARY, (POSITIVE_OR_ZERO,), grad_domains=(POSITIVE,)),
    OpSpec("abs", lambda x: x.abs(), np.abs, UNARY, (ZERO_OR_AWAY,)),  # slope 0 at exactly 0
    OpSpec("sigmoid", lambda x: x.sigmoid(), _sigmoid, UNARY, (WIDE,), grad_domains=(REALS,)),
    OpSpec("tanh", lambda x: x.tanh(), np.tanh, UNARY, (WIDE,), grad_domains=(REALS,)),
    OpSpec("sin", lambda x: x.sin(), np.sin),
    OpSpec("cos", lambda x: x.cos(), np.cos),
    OpSpec("relu", lambda x: x.relu(), _relu, grad_domains=(NONZERO,)),
    OpSpec(
        "clip",
        lambda x: x.clip(CLIP_LO, CLIP_HI),
        lambda x: np.clip(x, CLIP_LO, CLIP_HI),
        grad_domains=(AWAY_FROM_CLIP,),
    ),
    OpSpec("maximum", tg.maximum, np.maximum, BINARY, (INTEGERS, HALF_INTEGERS)),
    OpSpec("minimum", tg.minimum, np.minimum, BINARY, (INTEGERS, HALF_INTEGERS)),
    OpSpec("where", tg.where, np.where, TERNARY, (BOOL, REALS, REALS)),
    # reductions
    OpSpec("sum", lambda x, **kw: x.sum(**kw), np.sum, reduction()),
    OpSpec("mean", lambda x, **kw: x.mean(**kw), np.mean, reduction()),
    OpSpec("max", lambda x, **kw: x.max(**kw), np.max, reduction(), (DISTINCT,)),
    OpSpec("min", lambda x, **kw: x.min(**kw), np.min, reduction(), (DISTINCT,)),
    OpSpec("var", lambda x, **kw: x.var(**kw), np.var, reduction(ddof=True)),
    OpSpec(  # sqrt of the variance: no slope where all values tie (distinct values for gradients)
        "std", lambda x, **kw: x.std(**kw), _std, reduction(ddof=True), grad_domains=(DISTINCT,)
    ),
    OpSpec("prod", lambda x, **kw: x.prod(**kw), np.prod, reduction(), (WITH_ZEROS,)),
    OpSpec("cumsum", lambda x, axis: x.cumsum(axis), np.cumsum, cumsum_inputs()),
    OpSpec(
        "argmax",
        lambda x, **kw: x.argmax(**kw),
        np.argmax,
        reduction(tuples=False),
        (DISTINCT,),
        grad=False,
    ),
    OpSpec(
        "argmin",
        lambda x, **kw: x.argmin(**kw),
        np.argmin,
        reduction(tuples=False),
        (DISTINCT,),
        grad=False,
    ),
    OpSpec(
        "logsumexp",
        lambda x, axis: x.logsumexp(axis),
        _logsumexp,
        reduction(keepdims=False),
        (WIDE,),
        grad_domains=(REALS,),
    ),
    # shape
    OpSpec("reshape", lambda x, shape: x.reshape(*shape), np.reshape, reshape_inputs()),
    OpSpec("transpose", _transpose_call, _transpose, transpose_inputs()),
    OpSpec("transpose[reverse]", lambda x: x.transpose(), np.transpose),
    OpSpec("T", lambda x: x.T, np.transpose),
    OpSpec("squeeze", lambda x, axis: x.squeeze(axis), np.squeeze, squeeze_inputs()),
    OpSpec("unsqueeze", lambda x, axis: x.unsqueeze(axis), np.expand_dims, unsqueeze_inputs()),
    OpSpec(
        "broadcast_to",
        lambda x, shape: x.broadcast_to(shape),
        np.broadcast_to,
        broadcast_to_inputs(),
    ),
    OpSpec("flatten", lambda x, **kw: x.flatten(**kw), _flatten_ref, flatten_inputs()),
    OpSpec("ravel", lambda x: x.ravel(), np.ravel),
    OpSpec("getitem[basic]", _getitem, _getitem, index_inputs("basic")),
    OpSpec("getitem[int_array]", _getitem, _getitem, index_inputs("int")),
    OpSpec("getitem[mask]", _getitem, _getitem, index_inputs("mask")),
    OpSpec("setitem[basic]", _setitem, _setitem_ref, setitem_inputs("basic")),
    OpSpec("setitem[int_array]", _setitem, _setitem_ref, setitem_inputs("int")),
    OpSpec("setitem[mask]", _setitem, _setitem_ref, setitem_inputs("mask")),
    OpSpec(
        "ScatterAdd",
        lambda grad, index, shape: ops.ScatterAdd.apply(grad, index=index, shape=shape),
        _scatter_add_ref,
        scatter_add_inputs(),
    ),
    OpSpec(
        "concatenate",
        lambda *xs, axis: tg.concatenate(list(xs), axis),
        lambda *xs, axis: np.concatenate(xs, axis),
        concatenate_inputs(),
    ),
    OpSpec(
        "stack",
        lambda *xs, axis: tg.stack(list(xs), axis),
        lambda *xs, axis: np.stack(xs, axis),
        stack_inputs(),
    ),
    # matmul's generalisation
    *[
        OpSpec(
            f"einsum[{subscripts}]",
            lambda *xs, subscripts: tg.einsum(subscripts, *xs),
            lambda *xs, subscripts: np.einsum(subscripts, *xs),
            einsum_inputs(subscripts),
        )
        for subscripts in EINSUM_SUBSCRIPTS
    ],
    # dtype
    OpSpec("astype[float32]", lambda x: x.astype(np.float32), lambda x: x.astype(np.float32)),
    OpSpec("astype[float64]", lambda x: x.astype(np.float64), lambda x: x.astype(np.float64)),
    # tinygrad_edu.functional
    OpSpec("F.sigmoid", F.sigmoid, _sigmoid),
    OpSpec("F.tanh", F.tanh, np.tanh),
    OpSpec("F.relu", F.relu, _relu, grad_domains=(NONZERO,)),
    OpSpec(
        "F.leaky_relu",
        lambda x, c: F.leaky_relu(x, negative_slope=c),
        lambda x, c: np.where(x > 0, x, c * x),
        with_scalar(0.0, 0.5),
        grad_domains=(NONZERO,),
    ),
    OpSpec(
        "F.softmax",
        lambda x, axis: F.softmax(x, axis=axis),
        _softmax,
        reduction(tuples=False, keepdims=False, none=False, min_dims=1),
        (WIDE,),
        grad_domains=(REALS,),
    ),
    OpSpec(
        "F.log_softmax",
        lambda x, axis: F.log_softmax(x, axis=axis),
        _log_softmax,
        reduction(tuples=False, keepdims=False, none=False, min_dims=1),
        (WIDE,),
        grad_domains=(REALS,),
    ),
    OpSpec(
        "F.logsumexp",
        lambda x, axis: F.logsumexp(x, axis),
        _logsumexp,
        reduction(keepdims=False),
        (WIDE,),
        grad_domains=(REALS,),
    ),
    OpSpec(
        "F.linear",
        lambda x, weight: F.linear(x, weight),
        lambda x, weight: x @ weight.T,
        linear_inputs(bias=False),
    ),
    OpSpec(
        "F.linear[bias]",  # the fused ops.Linear
        lambda x, weight, bias: F.linear(x, weight, bias),
        lambda x, weight, bias: x @ weight.T + bias,
        linear_inputs(bias=True),
    ),
    OpSpec(
        "F.dropout[eval]",
        lambda x, c: F.dropout(x, c, training=False),
        lambda x, c: x,
        with_scalar(0.0, 0.9),
    ),
    OpSpec(
        "F.dropout[p=0]",
        lambda x: F.dropout(x, 0.0, training=True),
        lambda x: x,
    ),
    OpSpec(
        "F.one_hot",
        lambda labels, num_classes: F.one_hot(labels, num_classes),
        lambda labels, num_classes: np.eye(num_classes, dtype=tg.get_default_dtype())[labels],  # the oracle
        one_hot_inputs(),
        grad=False,
    ),
    # padding_idx has its own test: its zero gradient is PyTorch's rule, not a derivative
    OpSpec("F.embedding", lambda weight, input: F.embedding(input, weight),
           lambda weight, input: weight[input], embedding_inputs()),
    OpSpec(
        "F.mse_loss",
        lambda x, target, reduction: F.mse_loss(x, target, reduction=reduction),
        lambda x, target, reduction: _reduce((x - target) ** 2, reduction),
        loss_inputs("same"),
        (REALS, REALS),
    ),
    OpSpec(
        "F.cross_entropy",
        lambda x, target, reduction: F.cross_entropy(x, target, reduction=reduction),
        _cross_entropy_ref,
        loss_inputs("class"),
        (WIDE,),
        grad_domains=(REALS,),
    ),
    OpSpec(
        "F.cross_entropy[probs]",
        lambda x, target, reduction: F.cross_entropy(x, target, reduction=reduction),
        _cross_entropy_ref,
        loss_inputs("probs"),
        (REALS, PROBS),
    ),
    OpSpec(
        "F.nll_loss",
        lambda x, target, reduction: F.nll_loss(x, target, reduction=reduction),
        lambda x, target, reduction: _reduce(-x[np.arange(len(target)), target], reduction),
        loss_inputs("class"),
    ),
    OpSpec(
        "F.binary_cross_entropy",
        lambda p, target, reduction: F.binary_cross_entropy(p, target, reduction=reduction),
        _binary_cross_entropy_ref,
        loss_inputs("same"),
        (PROBS, PROBS),
    ),
    OpSpec(
        "F.binary_cross_entropy_with_logits",
        lambda x, target, reduction: F.binary_cross_entropy_with_logits(
            x, target, reduction=reduction
        ),
        _bce_with_logits_ref,
        loss_inputs("same"),
        (WIDE, PROBS),
        grad_domains=(REALS, PROBS),
    ),
    # images (NCHW): convolution, pooling, padding, normalisation
    OpSpec("F.conv2d", F.conv2d, _conv2d_ref, conv2d_inputs(bias=False), (REALS, REALS)),
    OpSpec("F.conv2d[bias]", F.conv2d, _conv2d_ref, conv2d_inputs(bias=True), (REALS, REALS, REALS)),
    OpSpec("F.max_pool2d", F.max_pool2d, _pool2d_ref(np.max, -np.inf), pool2d_inputs(), (DISTINCT,)),
    OpSpec("F.avg_pool2d", F.avg_pool2d, _pool2d_ref(np.mean, 0.0), pool2d_inputs(dilation=False)),
    OpSpec("F.pad", F.pad, _pad_ref, pad_inputs()),
    OpSpec("F.pad[modes]", F.pad, _pad_mode_ref, pad_mode_inputs()),
    OpSpec(
        "Col2Im",  # the backward of Windows (conv and pooling), as a forward of its own
        lambda x, shape, stride, dilation: ops.Col2Im.apply(x, shape=shape, stride=stride, dilation=dilation),
        _col2im_ref,
        col2im_inputs(),
    ),
    OpSpec(
        "F.batch_norm[train]",
        lambda x, weight, bias, training: F.batch_norm(x, None, None, weight, bias, training=training),
        _batch_norm_ref,
        batch_norm_inputs(training=True),
        (DISTINCT, REALS, REALS),
        rtol=1e-4,
    ),
    OpSpec(
        "F.batch_norm[eval]",
        lambda x, weight, bias, **kw: F.batch_norm(x, kw["running_mean"], kw["running_var"], weight, bias,
                                                   training=kw["training"]),
        _batch_norm_ref,
        batch_norm_inputs(training=False),
    ),
    OpSpec(
        "F.layer_norm",
        lambda x, weight, bias, normalized_shape: F.layer_norm(x, normalized_shape, weight, bias),
        _layer_norm_ref,
        layer_norm_inputs(),
        (DISTINCT, REALS, REALS),
        rtol=1e-4,
    ),
]
