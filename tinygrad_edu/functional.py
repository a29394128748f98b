"""Composite operations, built only from Tensor methods that call primitives in ops.py.

Nothing here has a backward of its own: the gradient comes from the primitives. An operation
that would be wrong or numerically unstable as a composite belongs in ops.py instead.
`mean`, `var`, `std`, `squeeze`, `unsqueeze` and `flatten` sit behind the Tensor methods of those names.
Every function that takes an axis also takes PyTorch's ``dim=`` (see `tensor.accepts_dim`).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from . import ops
from .random_generator import generator
from .tensor import Tensor, _axis_tuple, accepts_dim, as_tensor, get_default_dtype, where

__all__ = [
    "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "log_softmax", "logsumexp", "linear",
    "dropout", "one_hot", "embedding", "mse_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "accuracy",
    "pad", "conv2d", "max_pool2d", "avg_pool2d", "batch_norm", "layer_norm",
]
REDUCTIONS = ("mean", "sum", "none")


def _reduced_count(shape: tuple, axis) -> int:
    """How many elements a reduction over `axis` combines into each result."""
    if axis is None:
        return math.prod(shape)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    return math.prod(shape[a] for a in axes)


# ---- behind Tensor methods -------------------------------------------------------------------
def _widened(x: Tensor):
    """x in float32 if it is a narrower float (float16): NumPy accumulates means and variances
    of float16 in float32, where a sum of 1000 values of 100 does not overflow (float16 ends at 65504)."""
    return x.astype(np.float32) if x.dtype.kind == "f" and x.dtype.itemsize < 4 else x


def _floating(x) -> Tensor:
    """x as a Tensor of floats. Integer and bool scores take the float type NumPy's exp gives them
    (int8 -> float16, int64 -> float64): in their own dtype, subtracting the maximum or negating
    would wrap around (uint8 0 - 2 is 254). They cannot require grad, so there is no graph to keep."""
    x = as_tensor(x)
    if x.dtype.kind in "fc":
        return x
    return Tensor(x.data.astype(np.result_type(x.dtype, np.float16)))


@accepts_dim
def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (None: all elements), like ``np.mean`` (nan, with a warning, over no elements)."""
    x = as_tensor(x)
    axes = _axis_tuple(axis, x.ndim)  # as np.mean: a 0-d tensor takes no axis (np.sum would)
    wide = _widened(x)
    if wide is not x:
        return mean(wide, axes, keepdims).astype(x.dtype)
    return x.sum(axis=axes, keepdims=keepdims) / _reduced_count(x.shape, axes)


@accepts_dim
def var(x: Tensor, axis=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over `axis` like ``np.var``: mean squared deviation, divided by N - ddof.

    With ``ddof >= N`` the divisor is 0, so the result is inf (or nan), with a RuntimeWarning,
    as in NumPy: never a negative variance.
    """
    x = as_tensor(x)
    axes = _axis_tuple(axis, x.ndim)
    wide = _widened(x)
    if wide is not x:
        return var(wide, axes, keepdims, ddof).astype(x.dtype)
    deviation = x - x.mean(axis=axes, keepdims=True)
    count = _reduced_count(x.shape, axes) - ddof
    if count <= 0:
        warnings.warn(f"var: degrees of freedom <= 0 ({count + ddof} values, ddof={ddof}): the result is "
                      "inf or nan, as in NumPy", RuntimeWarning, stacklevel=2)
        count = 0
    with np.errstate(divide="ignore", invalid="ignore"):  # warned above
        return (deviation * deviation).sum(axis=axes, keepdims=keepdims) / count


@accepts_dim
def std(x: Tensor, axis=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Standard deviation like ``np.std``: ``sqrt(var(x, axis, keepdims, ddof))``.

    Where the variance is 0 (all values equal, or one value) sqrt's slope is infinite; the
    gradient there is 0, as in PyTorch, not nan.

    >>> Tensor([1.0, 3.0]).std().item()
    1.0
    """
    variance = var(x, axis, keepdims, ddof)
    flat = variance.data == 0
    if not np.any(flat):
        return variance.sqrt()
    return where(flat, 0, where(flat, 1, variance).sqrt())


@accepts_dim
def squeeze(x: Tensor, axis=None) -> Tensor:
    """Drop axes of length 1 (all of them, or the ones named by `axis`)."""
    x = as_tensor(x)
    if axis is None:
        drop = {i for i, n in enumerate(x.shape) if n == 1}
    else:
        drop = set(_axis_tuple(axis, x.ndim, zero_d_axis_0=True))
        for a in drop:
            if x.shape[a] != 1:
                raise ValueError(f"cannot squeeze axis {a} of shape {x.shape}: its length is not 1")
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if i not in drop))


@accepts_dim
def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of length 1 at position `axis` (negative counts from the new end)."""
    x = as_tensor(x)
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise ValueError(f"unsqueeze axis {axis} is out of range for shape {x.shape}")
    axis = axis % (x.ndim + 1)
    return x.reshape(x.shape[:axis] + (1,) + x.shape[axis:])


@accepts_dim
def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis (inclusive) into one."""
    x = as_tensor(x)
    if x.ndim == 0:
        return x.reshape(1)
    (start,), (end,) = _axis_tuple(start_axis, x.ndim), _axis_tuple(end_axis, x.ndim)
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


@accepts_dim
def logsumexp(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x), axis)) without overflow.

    The largest value m is taken out first: log(sum(exp(x - m))) + m. m is a constant here,
    which is exact: its effect on the gradient cancels out. An infinite m is taken as 0, as
    PyTorch does: a row holding +inf gives inf (not inf - inf = nan), one of -inf only gives -inf.
    """
    x = _floating(x)
    shift = ops._softmax_shift(x.data, axis)
    shift = np.where(np.isfinite(shift), shift, 0)
    out = (x - shift).exp().sum(axis=axis, keepdims=True).log() + shift
    return out if keepdims else squeeze(out, axis) if axis is not None else out.reshape(())


@accepts_dim
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x), axis), shifted by the maximum so large inputs cannot overflow."""
    _check_softmax_axis(axis, "softmax")
    x = _floating(x)
    exps = (x - ops._softmax_shift(x.data, axis)).exp()
    return exps / exps.sum(axis=axis, keepdims=True)


@accepts_dim
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x, axis): the log of softmax, without taking log of a rounded-to-zero value.

    Computed as ``shifted - log(sum(exp(shifted)))`` with ``shifted = x - max(x)``: subtracting
    logsumexp from x directly would cancel two large numbers (x = 4096 in float32 is 0.0002 off).
    """
    _check_softmax_axis(axis, "log_softmax")
    x = _floating(x)
    shifted = x - ops._softmax_shift(x.data, axis)  # a constant: it cancels from the gradient
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def _check_softmax_axis(axis, who: str) -> None:
    # PyTorch reads dim=None as an implicit (deprecated) choice of one axis, never as all of them:
    # a softmax over every element would give other numbers without a word
    if axis is None:
        raise TypeError(f"{who} needs the axis to normalise along (axis=-1 for the class axis of "
                        f"(N, C) scores; PyTorch's dim=None picks one implicitly and is deprecated)")


def linear(x: Tensor, weight: Tensor, bias=None) -> Tensor:
    """x @ weight.T + bias, with weight shaped (out_features, in_features) as in PyTorch.

    With a bias it is one node, ``ops.Linear`` (its weight gradient comes out in the weight's
    own memory layout); without one, a transpose and a matrix product.
    """
    if bias is None:
        return as_tensor(x) @ as_tensor(weight).T
    return ops.Linear.apply(x, weight, bias)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability `p` and scale the survivors by 1 / (1 - p).

    The scaling keeps every unit's expected value unchanged, so evaluation (``training=False``,
    where dropout is the identity) needs no correction. Draws from the generator that
    ``tg.manual_seed`` controls.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    x = as_tensor(x)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * np.zeros(x.shape, dtype=x.dtype)
    keep = generator().random(x.shape, dtype=np.float32) >= p
    # The mask in x's float dtype (one pass, no float64); integers get floats, as 1 / (1 - p) needs.
    # where(), not keep * scale: a scale past float16's range is inf, and False * inf is nan
    dtype = np.result_type(x.dtype, np.float16)
    return x * np.where(keep, dtype.type(1.0 / (1.0 - p)), dtype.type(0))


def one_hot(labels, num_classes: int = -1) -> Tensor:
    """Rows of zeros with a 1 at each label: shape ``labels.shape + (num_classes,)``.

    Unlike PyTorch (int64), the result has the default float dtype, so it can be used as a
    target directly. ``num_classes=-1`` means ``max(labels) + 1``.

    >>> one_hot([0, 2], 3)
    Tensor([[1., 0., 0.],
            [0., 0., 1.]], shape=(2, 3), dtype=float32)
    """
    labels = _class_indices(labels, "one_hot")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < -1:
        raise ValueError(f"one_hot: num_classes must be a non-negative int (or -1), got {num_classes!r}")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    _check_classes(labels, num_classes, "one_hot")
    return Tensor._make(one_hot_rows(labels, num_classes, get_default_dtype()))


def one_hot_rows(labels: np.ndarray, num_classes: int, dtype) -> np.ndarray:
    """The one home of one-hot rows (F.one_hot and data.one_hot): zeros of shape
    ``labels.shape + (num_classes,)`` with a 1 put at each (checked) label; no identity matrix,
    whose num_classes**2 entries would dwarf the result for many classes."""
    rows = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(rows, labels[..., None], 1, axis=-1)
    return rows


def embedding(input, weight: Tensor, padding_idx=None) -> Tensor:
    """The rows of `weight` (num_embeddings, embedding_dim) at integer indices: a lookup table.

    The result has shape ``input.shape + (embedding_dim,)``. It is indexing, ``weight[input]``, so an
    index used twice adds both gradients into its row. Positions holding `padding_idx` (negative
    counts from the end) show their row but pass no gradient to it, as in PyTorch. An index outside
    [0, num_embeddings) is an IndexError naming the range.

    >>> weight = Tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> out = embedding([[1, 2, 1]], weight, padding_idx=2)
    >>> out.shape
    (1, 3, 2)
    >>> out.sum().backward()
    >>> weight.grad.tolist()
    [[0.0, 0.0], [2.0, 2.0], [0.0, 0.0]]
    """
    weight = as_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must have shape (num_embeddings, embedding_dim), got shape "
                         f"{weight.shape}")
    rows = weight.shape[0]
    indices = _class_indices(input, "embedding", what="indices")
    if not _all_classes(indices, rows):
        bad = (indices < 0) | (indices >= rows)
        raise IndexError(f"embedding: indices must lie in [0, {rows}) (the rows of a weight of shape "
                         f"{weight.shape}), got {_some_values(indices, bad)}")
    out = weight[indices]
    if padding_idx is None:
        return out
    padding_idx = _padding_row(padding_idx, rows)
    # The same values, but at the padding positions taken from a copy outside the graph
    return where(np.expand_dims(indices == padding_idx, -1), out.detach(), out)


def _padding_row(padding_idx: int, rows: int) -> int:
    """padding_idx as a row number in [0, rows) (negative counts from the end, as in PyTorch)."""
    if not -rows <= padding_idx < rows:
        raise ValueError(f"padding_idx must be within num_embeddings: in [{-rows}, {rows}), "
                         f"got {padding_idx}")
    return padding_idx % rows


# ---- images: padding, convolution, pooling (NCHW) and normalisation -----------------------------
def pad(x: Tensor, pad: tuple, mode: str = "constant", value=None) -> Tensor:
    """Pad PyTorch's way: `pad` lists (before, after) pairs from the last axis backwards, so
    ``(1, 1, 2, 2)`` adds 1 column left and right and 2 rows above and below.

    `mode` says what goes in the border: 'constant' is `value` (default 0); 'reflect' mirrors the
    axis about its first and last values (``[1, 2, 3]`` padded by 2 on the left: ``[3, 2, 1, 2, 3]``),
    so each amount must be less than the axis' size; 'replicate' repeats the edge value; 'circular'
    continues from the other end (each amount at most the axis' size: it wraps around once).
    Negative amounts crop. The constant border is a ScatterAdd of x into zeros (its gradient is the
    matching slice of the upstream gradient); the other modes index x with a fixed list of positions,
    so a copied value's gradient adds up over its copies.

    >>> pad(Tensor([[1.0, 2.0]]), (1, 0)).tolist()
    [[0.0, 1.0, 2.0]]
    >>> pad(Tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
    [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    """
    x = as_tensor(x)
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) > 2 * x.ndim:
        raise ValueError(f"pad: {pad} must hold (before, after) pairs for at most the {x.ndim} axes of "
                         f"an input of shape {x.shape}")
    widths = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(len(pad) - 2, -1, -2)]
    if mode != "constant":
        if value is not None and value != 0:  # PyTorch refuses a value it would not use
            raise ValueError(f"pad: mode={mode!r} copies the input's values and takes no value, got {value}")
        for axis, (before, after) in enumerate(widths):
            if before or after:
                positions = _copied_positions(x.shape, axis, before, after, mode)
                x = x[(slice(None),) * axis + (positions,)]
        return x
    crop = tuple(slice(max(-before, 0), n - max(-after, 0)) for (before, after), n in zip(widths, x.shape))
    if any(before < 0 or after < 0 for before, after in widths):
        x = x[crop]
    widths = [(max(before, 0), max(after, 0)) for before, after in widths]
    shape = tuple(n + before + after for n, (before, after) in zip(x.shape, widths))
    inside = tuple(slice(before, before + n) for n, (before, _) in zip(x.shape, widths))
    out = ops.ScatterAdd.apply(x, index=inside, shape=shape)
    if value is not None and value != 0:
        mask = np.zeros(shape, dtype=bool)
        mask[inside] = True
        out = where(mask, out, np.asarray(value, dtype=out.dtype))
    return out


PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _copied_positions(shape: tuple, axis: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each position of the padded axis, the position of x it copies (PyTorch's rules: reflect and
    replicate count from x's own ends even where the other end is cropped; circular wraps the cropped
    axis)."""
    size = shape[axis]
    place = f"for axis {axis} of an input of shape {shape}"
    if size == 0:
        raise ValueError(f"pad: mode={mode!r} copies values, but there are none {place} (its size is 0)")
    if mode == "reflect" and max(before, after) >= size:
        raise ValueError(f"pad: mode='reflect' needs each amount to be less than the axis' size (PyTorch's "
                         f"limit), got ({before}, {after}) {place}")
    kept = np.arange(max(-before, 0), size - max(-after, 0))
    if mode == "circular" and (max(before, after) > size or kept.size == 0):
        raise ValueError(f"pad: mode='circular' wraps around at most once: each amount must be at most the "
                         f"axis' size, and something must be left after cropping, got ({before}, {after}) "
                         f"{place}")
    if mode == "circular":
        return np.pad(kept, (max(before, 0), max(after, 0)), mode="wrap")
    positions = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    positions = np.abs(positions)  # reflect about the first value, then about the last
    return np.where(positions > size - 1, 2 * (size - 1) - positions, positions)


def conv2d(x: Tensor, weight: Tensor, bias=None, stride=1, padding=0, dilation=1) -> Tensor:
    """2-D cross-correlation as PyTorch's conv2d: x (N, C, H, W), weight (O, C, kh, kw), bias (O,).

    Output (N, O, OH, OW) with OH = (H + 2*padding - dilation*(kh-1) - 1) // stride + 1 (OW alike).
    `stride`, `padding` and `dilation` are an int or an (h, w) pair; padding may be 'valid' (0) or
    'same' (stride 1: the output keeps H and W). One node, ``ops.Conv2d``: the input's windows
    (im2col, a strided view) times the weight in one matrix product.

    >>> x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> conv2d(x, Tensor(np.ones((1, 1, 3, 3))), padding=1).shape
    (1, 1, 4, 4)
    """
    x, weight = as_tensor(x), as_tensor(weight)
    if x.ndim == 3:  # one unbatched image (C, H, W), as PyTorch accepts
        return conv2d(x.unsqueeze(0), weight, bias, stride, padding, dilation).squeeze(0)
    if weight.ndim != 4:
        raise ValueError(f"conv2d: the weight must have shape (out_channels, in_channels, kh, kw), "
                         f"got shape {weight.shape}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    padding = _conv_padding(padding, weight.shape[2:], stride, dilation)
    who = f"conv2d with a weight of shape {weight.shape}"
    _check_conv_input(who, x.shape, weight.shape[1])
    _check_output_size(who, x.shape, weight.shape[2:], stride, padding, dilation)
    if padding != ((0, 0), (0, 0)):
        x = pad(x, (padding[1][0], padding[1][1], padding[0][0], padding[0][1]))
    out = ops.Conv2d.apply(x, weight, stride=stride, dilation=dilation)
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"conv2d: bias has shape {bias.shape}, expected ({weight.shape[0]},) (one per "
                             f"output channel of the weight of shape {weight.shape})")
        out = out + bias.reshape(-1, 1, 1)
    return out


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """The largest value of each window, per channel: x (N, C, H, W) -> (N, C, OH, OW).

    `stride` defaults to `kernel_size` (windows side by side); padding adds -inf borders (at most
    half a kernel), which never win. ``ceil_mode=True`` rounds the output size up, as PyTorch: a last
    window that sticks out past the bottom or right edge still counts (if it starts inside the image
    or the padding). One node, ``ops.MaxPool2d``: the maximum over the windows (a strided view); each
    window's gradient goes to one of its cells, the one PyTorch picks: the first maximum in row-major
    order (so one of a window of tied zeros after a ReLU), or the last NaN if it holds any, never the
    padding. col2im adds the gradients up where windows overlap.
    ``return_indices=True`` returns that cell too, as PyTorch: (out, indices), where indices
    (int64, out's shape, no gradient) is the cell's flat position ``row * W + column`` in its
    (H, W) plane of x.

    >>> max_pool2d(Tensor(np.arange(16.0).reshape(1, 1, 4, 4)), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    >>> max_pool2d(Tensor([[[[1.0, 3.0], [2.0, 0.0]]]]), 2, return_indices=True)[1].tolist()
    [[[[1]]]]
    """
    return _pool(x, kernel_size, stride, padding, dilation, "max_pool2d", ceil_mode,
                 return_indices=return_indices)


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """The mean of each window, per channel: x (N, C, H, W) -> (N, C, OH, OW).

    `stride` defaults to `kernel_size`; padding adds zeros that count in the mean (PyTorch's
    default, count_include_pad=True); with ``count_include_pad=False`` each window's sum is divided
    by the number of its pixels inside the image instead. ``ceil_mode`` as in ``max_pool2d``; what a
    last window holds past the padding never counts. The windows (a strided view), then a mean.

    >>> avg_pool2d(Tensor(np.arange(16.0).reshape(1, 1, 4, 4)), 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    return _pool(x, kernel_size, stride, padding, 1, "avg_pool2d", ceil_mode, count_include_pad)


def _pool(x, kernel_size, stride, padding, dilation, who: str, ceil_mode: bool = False,
          count_include_pad: bool = True, return_indices: bool = False):
    x = as_tensor(x)
    if x.ndim == 3:  # one unbatched image (C, H, W)
        options = (ceil_mode, count_include_pad, return_indices)
        image = _pool(x.unsqueeze(0), kernel_size, stride, padding, dilation, who, *options)
        return tuple(part.squeeze(0) for part in image) if return_indices else image.squeeze(0)
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding", minimum=0), _pair(dilation, "dilation")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{who}: padding {padding} is more than half the kernel {kernel}: "
                         "a window could hold padding only")
    image_size = x.shape[-2:]
    padding = tuple((p, p + (_ceil_extra(n, k, s, p, d) if ceil_mode else 0))
                    for n, k, s, p, d in zip(image_size, kernel, stride, padding, dilation))
    who = f"{who}(kernel_size={kernel_size})"
    _check_output_size(who, x.shape, kernel, stride, padding, dilation, min_ndim=3)
    if any(before or after for before, after in padding):
        smallest = -np.inf if np.issubdtype(x.dtype, np.inexact) else np.iinfo(x.dtype).min
        fill = smallest if who.startswith("max") else 0.0  # a border that never wins the maximum
        x = pad(x, (padding[1][0], padding[1][1], padding[0][0], padding[0][1]), value=fill)
    if who.startswith("max"):
        out = ops.MaxPool2d.apply(x, kernel=kernel, stride=stride, dilation=dilation, border=padding)
        if return_indices:
            return out, _max_pool_indices(x.data, out.data, kernel, stride, dilation, padding, image_size[1])
        return out
    windows = ops.Windows.apply(x, kernel=kernel, stride=stride, dilation=dilation)
    beyond = [(0, after - before) for before, after in padding]  # what ceil_mode added past the padding
    if count_include_pad and not any(extra for _, extra in beyond):
        return windows.mean(axis=(-2, -1))
    # The divisor counts each window's cells that count (the image's, and the padding's when
    # count_include_pad): the same windows over a mask of ones where a cell counts, zeros elsewhere.
    dtype = x.dtype if np.issubdtype(x.dtype, np.inexact) else get_default_dtype()
    if count_include_pad:
        padded_size = [n + 2 * before for n, (before, _) in zip(image_size, padding)]
        counted = np.pad(np.ones(padded_size, dtype=dtype), beyond)
    else:
        counted = np.pad(np.ones(image_size, dtype=dtype), padding)
    return windows.sum(axis=(-2, -1)) / ops._windows(counted, kernel, stride, dilation).sum(axis=(-2, -1))


def _max_pool_indices(padded, out, kernel: tuple, stride: tuple, dilation: tuple, padding: tuple,
                      width: int) -> Tensor:
    """Where in its (H, W) plane (row * width + column, unpadded) each window's maximum came from."""
    windows = ops._windows(padded, kernel, stride, dilation)
    winners = ops._pool_winners(windows, out, padded.shape, stride, dilation, padding)
    place = winners.reshape(winners.shape[:-2] + (-1,)).argmax(axis=-1)  # the winner's place in its window
    i, j = np.divmod(place, winners.shape[-1])
    rows = np.arange(out.shape[-2])[:, None] * stride[0] + i * dilation[0] - padding[0][0]
    columns = np.arange(out.shape[-1]) * stride[1] + j * dilation[1] - padding[1][0]
    return Tensor((rows * width + columns).astype(np.int64))


def _ceil_extra(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """The cells ceil_mode adds after the padding so that the rounded-up last window fits (PyTorch's
    rule: the output size rounds up, but the last window must start inside the image or the padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0:
        return 0  # no window fits at all: _check_output_size says so
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - (size + 2 * padding))


def _pair(value, name: str, minimum: int = 1) -> tuple:
    """An int or an (h, w) pair of ints, each at least `minimum`, as a pair."""
    if isinstance(value, (int, np.integer)):
        pair = (value, value)
    else:  # a float, a string or None is no pair: say so rather than fail inside tuple()
        pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(isinstance(n, (int, np.integer)) and n >= minimum for n in pair):
        raise ValueError(f"{name} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return tuple(int(n) for n in pair)


def _conv_padding(padding, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """((top, bottom), (left, right)) from an int, a pair, 'valid' or 'same'."""
    if isinstance(padding, str) and padding not in ("valid", "same"):
        raise ValueError(f"padding must be an int or a pair of ints >= 0, 'valid' or 'same', got {padding!r}")
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"conv2d: padding='same' needs stride 1, got stride {stride}")
        # The span dilation*(k-1) is split; an odd one puts the extra row at the bottom, as PyTorch.
        spans = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((span // 2, span - span // 2) for span in spans)
    return tuple((p, p) for p in _pair(padding, "padding", minimum=0))


def _check_conv_input(who: str, x_shape: tuple, in_channels: int) -> None:
    """An NCHW input whose axis 1 holds the `in_channels` the weight expects."""
    if len(x_shape) != 4:
        raise ValueError(f"{who} takes an input of shape (N, C, H, W), got shape {x_shape}")
    if x_shape[1] != in_channels:
        raise ValueError(f"{who} expects in_channels={in_channels} on the input's axis 1, "
                         f"got an input of shape {x_shape} (axis 1 = {x_shape[1]})")


def _check_output_size(who: str, x_shape: tuple, kernel: tuple, stride: tuple, padding: tuple,
                      dilation: tuple, min_ndim: int = 4) -> None:
    """Raise a ValueError that shows the output-size rule with the numbers when a side would be < 1."""
    if len(x_shape) < min_ndim:
        raise ValueError(f"{who} takes an input of shape (N, C, H, W), got shape {x_shape}")
    for axis, name in ((-2, "height"), (-1, "width")):
        size, k, s, d = x_shape[axis], kernel[axis], stride[axis], dilation[axis]
        before, after = padding[axis]
        out = (size + before + after - d * (k - 1) - 1) // s + 1
        if out < 1:
            padded = f"2*{before}" if before == after else f"{before} + {after}"
            rule = f"({size} + {padded} - {d}*({k}-1) - 1) // {s} + 1 = {out}"
            raise ValueError(f"{who} on {x_shape}: output {name} {rule} < 1; "
                             "pad the input or use a smaller kernel")


def batch_norm(x: Tensor, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (axis 1) to mean 0 and variance 1, then scale by weight and shift by bias.

    In training the statistics are the batch's, over every axis but 1 (the biased variance, as
    PyTorch), and the running statistics, when given, move towards them in place:
    ``running = (1 - momentum) * running + momentum * batch`` (the variance unbiased: n / (n - 1)).
    Otherwise the running statistics normalise. The batch statistics are recorded ops, so the
    gradient includes how every sample moves the mean and variance.

    >>> x = Tensor([[1.0], [3.0]])
    >>> np.round(batch_norm(x, None, None, training=True).numpy(), 4).tolist()
    [[-1.0], [1.0]]
    """
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm takes an input of shape (N, C, ...), got shape {x.shape}")
    channels = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    per_channel = (1, channels) + (1,) * (x.ndim - 2)
    for name, stat in (("running_mean", running_mean), ("running_var", running_var),
                       ("weight", weight), ("bias", bias)):
        if stat is not None and np.shape(stat) != (channels,):
            raise ValueError(f"batch_norm: {name} has shape {np.shape(stat)}, but the input of shape "
                             f"{x.shape} has {channels} channels on axis 1")
    # eps keeps a constant channel's division finite: a batch's variance may be exactly 0 (PyTorch)
    if eps < 0 or (training and eps == 0):
        needed = "positive during training" if training else "non-negative"
        raise ValueError(f"batch_norm eps must be {needed}, got {eps}")
    wide = _widened(x)
    if wide is not x:  # float16 squares overflow past 256: compute in float32, as PyTorch does
        return batch_norm(wide, running_mean, running_var, weight, bias, training, momentum, eps).astype(x.dtype)
    if training and x.size == 0:
        # An empty batch has no statistics to normalise by or to learn from: its empty output, with
        # the running statistics unchanged (PyTorch)
        return _scaled_and_shifted(x, weight, bias, per_channel)
    if training:
        count = x.size // max(channels, 1)
        if count <= 1:
            raise ValueError(f"batch_norm in training needs more than 1 value per channel, got input "
                             f"of shape {x.shape}")
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
        if running_mean is not None and running_var is not None:
            _move_towards(running_mean, mean.data.reshape(channels), momentum)
            _move_towards(running_var, var.data.reshape(channels) * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm outside training needs running_mean and running_var")
        # Tensor operations (nothing is recorded: no grad), so tg.compile reads the statistics at each call
        running_mean, running_var = as_tensor(running_mean), as_tensor(running_var)
        centered = x - running_mean.astype(x.dtype).reshape(per_channel)
        var = running_var.astype(x.dtype).reshape(per_channel)
    return _scaled_and_shifted(centered / (var + eps).sqrt(), weight, bias, per_channel)


def _scaled_and_shifted(out: Tensor, weight, bias, per_channel: tuple) -> Tensor:
    """out * weight + bias, each channel's own (either may be None)."""
    if weight is not None:
        out = out * as_tensor(weight).reshape(per_channel)
    if bias is not None:
        out = out + as_tensor(bias).reshape(per_channel)
    return out


def _plain(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _move_towards(running, batch_value: np.ndarray, momentum: float) -> None:
    """running <- (1 - momentum) * running + momentum * batch_value, in place (not recorded)."""
    array = _plain(running)
    # One in-place write, the same rule: tg.compile records it as a line of its program when the
    # running statistics are a module's buffers, and refuses it (nothing written) for other arrays.
    array += momentum * (batch_value - array)


def layer_norm(x: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last axes (`normalized_shape`) of each sample, then scale and shift.

    Unlike batch_norm the statistics are each sample's own (the biased variance), so training
    and evaluation compute the same thing.

    >>> np.round(layer_norm(Tensor([[1.0, 3.0]]), (2,)).numpy(), 4).tolist()
    [[-1.0, 1.0]]
    """
    x = as_tensor(x)
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(normalized_shape)
    count = len(normalized_shape)
    if count == 0 or x.shape[x.ndim - count:] != normalized_shape or count > x.ndim:
        raise ValueError(f"layer_norm: normalized_shape {normalized_shape} must be the last axes of "
                         f"the input, got an input of shape {x.shape}")
    for name, stat in (("weight", weight), ("bias", bias)):  # a (1,) weight would broadcast silently
        if stat is not None and np.shape(stat) != normalized_shape:
            raise ValueError(f"layer_norm: {name} has shape {np.shape(stat)}, expected normalized_shape "
                             f"{normalized_shape}")
    wide = _widened(x)
    if wide is not x:  # float16 squares overflow past 256: compute in float32, as PyTorch does
        return layer_norm(wide, normalized_shape, weight, bias, eps).astype(x.dtype)
    axes = tuple(range(x.ndim - count, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    out = centered / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


# ---- losses ----------------------------------------------------------------------------------
def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Squared error (input - target)**2, averaged (or summed) over every element.

    `target` must have exactly `input`'s shape: broadcasting (200, 1) against (200,) would
    silently compare every prediction with every target.
    """
    input = _floating(input)
    target = _target_like(input, target)
    _check_same_shape("mse_loss", input, target)
    _check_reduction(reduction)
    return ops.SquaredError.apply(input, target, reduction=reduction)  # one node, like the other losses


def cross_entropy(logits: Tensor, target, reduction: str = "mean", *, weight=None, ignore_index: int = -100,
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between softmax(logits) and the target, computed through log-sum-exp.

    Parameters
    ----------
    logits : Tensor
        Scores of shape (N, C) (also (C,) for one sample, or (N, C, d1, ...); classes on axis 1).
    target : array_like
        Integer class indices of shape (N,) (or (N, d1, ...)), or float probabilities (one-hot
        or soft rows) of the same shape as `logits`.
    reduction : {'mean', 'sum', 'none'}
        'mean' averages the per-sample losses, 'sum' adds them, 'none' returns them.
    weight : array_like or Tensor, optional
        One weight per class, shape (C,): each sample's loss is scaled by its class's weight
        (for probability rows, each class's term by its own). With class indices, 'mean' divides
        by the sum of the weights of the samples that count, not by N.
    ignore_index : int
        Class indices equal to it contribute nothing and do not count in the mean (PyTorch's -100
        marks padding). If every sample is ignored, 'mean' is nan (0/0) and the gradient 0.
        Only for class indices.
    label_smoothing : float in [0, 1]
        Mixes the target with the uniform distribution: ``(1 - s) * target + s / C``.

    Keyword options, with PyTorch's meanings (PyTorch's third positional parameter is `weight`:
    pass it by name). Every option changes only the target rows: class weights scale their
    column, an ignored sample's row is zeros, smoothing mixes in 1/C. The loss is then
    ``-sum(rows * log_softmax(logits))`` per sample. The gradient with respect to the logits is the
    fused ``softmax(logits) * sum(rows) - rows`` (``softmax - target`` for plain rows; divided by N
    for 'mean'): one node in the graph, exact even for logits of magnitude 1e4.

    >>> logits = Tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    >>> loss = cross_entropy(logits, [0])
    >>> round(loss.item(), 4)
    0.1698
    >>> round(cross_entropy(logits, [0], label_smoothing=0.3).item(), 4)
    0.6698
    """
    logits = _floating(logits)
    if reduction is not None and not isinstance(reduction, str):  # a weight vector where PyTorch has it
        raise TypeError(f"cross_entropy: the third positional argument is reduction, got "
                        f"{type(reduction).__name__}; pass class weights by name: "
                        "cross_entropy(logits, target, weight=w)")
    _check_reduction(reduction)
    if logits.ndim == 0:
        raise ValueError("cross_entropy: logits must have a class axis, got a 0-d tensor")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    axis = 1 if logits.ndim > 1 else 0
    weight = _class_weights(weight, logits, axis)
    checked = _cross_entropy_target(logits, target, axis, "cross_entropy", ignore_index)
    ignored = None
    if isinstance(checked, tuple):  # class indices, and where they equal ignore_index (None: nowhere)
        checked, ignored = checked
    elif ignore_index != -100:
        raise ValueError(f"cross_entropy: ignore_index={ignore_index} applies to class indices, not to "
                         "probability targets (as in PyTorch)")
    if weight is None and ignored is None and label_smoothing == 0:
        if isinstance(target, Tensor) and checked is target.data:
            checked = target  # the Tensor, not its array: its version counter guards the labels (no copy)
        return ops.SoftmaxCrossEntropy.apply(logits, checked, axis=axis, reduction=reduction)
    return _cross_entropy_with_options(logits, checked, ignored, axis, reduction, weight, label_smoothing)


def _class_weights(weight, logits: Tensor, axis: int, name: str = "cross_entropy"):
    """A loss's `weight` as a Tensor of shape (C,) in the scores' dtype, or None."""
    if weight is None:
        return None
    classes = logits.shape[axis]
    if np.shape(weight) != (classes,):
        raise ValueError(f"{name}: weight must hold one value for each of the {classes} classes, "
                         f"shape ({classes},), got shape {np.shape(weight)}")
    return _target_like(logits, weight)  # a constant takes the logits' dtype; a Tensor may require grad


def _cross_entropy_with_options(logits: Tensor, target, ignored, axis: int, reduction: str, weight,
                                smoothing: float) -> Tensor:
    """cross_entropy with class weights, ignored samples or label smoothing: PyTorch's definitions,
    written as target rows for the one fused op (see cross_entropy)."""
    classes = logits.shape[axis]
    per_class = (classes,) + (1,) * (logits.ndim - axis - 1)  # a (C,) vector along the class axis
    indices = target.dtype.kind in "iu"
    if indices:
        counted = np.ones(target.shape, dtype=bool) if ignored is None else ~ignored
        labels = np.where(counted, target, 0)  # an ignored sample's row is zeros whatever its label
        one_hot = np.expand_dims(labels, axis) == np.arange(classes).reshape(per_class)
        rows = Tensor((one_hot & np.expand_dims(counted, axis)).astype(logits.dtype))
    else:
        rows = as_tensor(target)
    if smoothing:
        uniform = (np.expand_dims(counted, axis) if indices else np.float64(1)) / np.float64(classes)
        rows = rows * (1 - smoothing) + (uniform * smoothing).astype(logits.dtype)
    if weight is not None:
        rows = rows * weight.reshape(per_class)
    if reduction == "none" or not indices:  # probability rows: 'mean' divides by the number of samples
        return ops.SoftmaxCrossEntropy.apply(logits, rows, axis=axis, reduction=reduction)
    loss = ops.SoftmaxCrossEntropy.apply(logits, rows, axis=axis, reduction="sum")
    if reduction == "sum":
        return loss
    return _weighted_mean(loss, counted, labels, weight)


def _weighted_mean(loss_sum: Tensor, counted: np.ndarray, labels: np.ndarray, weight) -> Tensor:
    """PyTorch's 'mean' for class indices with weights or ignored samples: the sum of the losses over
    the total weight of the samples that count (their number without weights). If none counts it is
    nan, as 0/0, with a zero gradient (PyTorch's), not the nan gradient of a division by 0."""
    dtype = loss_sum.dtype
    total = Tensor(counted.sum(dtype=dtype)) if weight is None else (weight[labels] * counted).sum()
    nothing_counts = total.data == 0
    return where(nothing_counts, np.asarray(np.nan, dtype), loss_sum / where(nothing_counts, 1, total))


def nll_loss(log_probs: Tensor, target, reduction: str = "mean", *, weight=None,
             ignore_index: int = -100) -> Tensor:
    """Negative log-likelihood: minus the log-probability each sample gives its class.

    `log_probs` is (N, C) (classes on axis 1, as in `cross_entropy`), usually from
    `log_softmax`; `target` holds integer class indices of shape (N,). `weight` (one per class)
    and `ignore_index` are keywords with PyTorch's meanings, as in `cross_entropy`: each loss is
    scaled by its class's weight, an ignored sample's is 0, and 'mean' divides by the total weight
    of the samples that count.

    >>> round(nll_loss(Tensor([[-0.5, -1.0], [-2.0, -0.1]]), [0, -100]).item(), 4)
    0.5
    """
    log_probs = _floating(log_probs)
    if reduction is not None and not isinstance(reduction, str):  # a weight vector where PyTorch has it
        raise TypeError(f"nll_loss: the third positional argument is reduction, got "
                        f"{type(reduction).__name__}; pass class weights by name: nll_loss(..., weight=w)")
    _check_reduction(reduction)
    if log_probs.ndim == 0:
        raise ValueError("nll_loss: log_probs must have a class axis, got a 0-d tensor")
    axis = 1 if log_probs.ndim > 1 else 0
    weight = _class_weights(weight, log_probs, axis, "nll_loss")
    target, ignored = _checked_indices(log_probs, target, axis, "nll_loss", ignore_index)
    if weight is None and ignored is None:
        return _reduce_losses(-log_probs[ops.class_index(target, axis)], reduction)
    counted = np.ones(target.shape, dtype=bool) if ignored is None else ~ignored
    labels = np.where(counted, target, 0)  # an ignored sample's loss is 0 whatever its label
    losses = -log_probs[ops.class_index(labels, axis)]
    if weight is not None:
        losses = losses * weight[labels]
    losses = where(counted, losses, np.asarray(0, losses.dtype))
    if reduction != "mean":
        return _reduce_losses(losses, reduction)
    return _weighted_mean(losses.sum(), counted, labels, weight)


def binary_cross_entropy(probs: Tensor, target, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) for probabilities p in [0, 1].

    Each log is clamped at -100, as PyTorch does, so p = 0 or 1 gives a large finite loss
    instead of inf, and the gradient is PyTorch's finite (p - t) / max(p (1 - p), 1e-12).
    Prefer `binary_cross_entropy_with_logits` on scores: it is exact there too.
    """
    probs = as_tensor(probs)
    target = _target_like(probs, target)
    _check_same_shape("binary_cross_entropy", probs, target)
    _check_unit_interval("probs", probs.data, "apply sigmoid first, or use binary_cross_entropy_with_logits "
                         "on raw scores")
    # outside [0, 1] the loss has no lower bound (PyTorch refuses such targets too)
    _check_unit_interval("target", target.data, "a target is a probability: 0, 1 or in between")
    _check_reduction(reduction)
    return ops.BinaryCrossEntropy.apply(probs, target, reduction=reduction)


def _check_unit_interval(name: str, values: np.ndarray, hint: str) -> None:
    if values.size and not (np.min(values) >= 0 and np.max(values) <= 1):  # NaN fails both
        found = "NaN" if np.isnan(values).any() else f"values from {np.min(values)} to {np.max(values)}"
        raise ValueError(f"binary_cross_entropy: {name} must lie in [0, 1] ({hint}); got {found}")


def binary_cross_entropy_with_logits(logits: Tensor, target, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of sigmoid(logits) and target, in the stable form
    max(x, 0) - x t + log(1 + exp(-|x|)); its gradient is the fused ``sigmoid(x) - t``."""
    logits = _floating(logits)
    target = _target_like(logits, target)
    _check_same_shape("binary_cross_entropy_with_logits", logits, target)
    _check_reduction(reduction)
    return ops.BinaryCrossEntropyWithLogits.apply(logits, target, reduction=reduction)


def accuracy(scores, targets) -> float:
    """Fraction of samples whose highest score is at their class: a number in [0, 1], not recorded.

    Parameters
    ----------
    scores : Tensor or array_like
        Shape (N, C): one row of class scores (logits, probabilities) per sample.
    targets : Tensor or array_like
        Class indices of shape (N,), or one-hot (or probability) rows of shape (N, C), whose
        largest entry marks the class.

    Shapes must match exactly: an (N, 1) column of labels is refused, because comparing it
    with (N,) predictions broadcasts to an (N, N) table whose mean is about 1/C whatever the
    network does.

    >>> accuracy([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], [1, 0, 0])
    0.6666666666666666
    """
    scores = np.asarray(scores.data if isinstance(scores, Tensor) else scores)
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if scores.ndim != 2:
        raise ValueError(f"accuracy: scores must have shape (N, C), got shape {scores.shape}")
    if targets.shape == scores.shape:
        labels = targets.argmax(axis=1)
    elif targets.shape == scores.shape[:1]:
        labels = _class_indices(targets, "accuracy", scores.shape[:1])
        _check_classes(labels, scores.shape[1], "accuracy")
    else:
        hint = " (use targets.reshape(-1) for a column of labels)" if targets.shape == scores.shape[:1] + (1,) else ""
        raise ValueError(
            f"accuracy: targets of shape {targets.shape} do not fit scores of shape {scores.shape}; "
            f"expected class indices of shape {scores.shape[:1]} or one-hot rows of shape {scores.shape}{hint}"
        )
    if scores.shape[0] == 0:
        raise ValueError("accuracy: no samples (scores have shape (0, C))")
    return float(np.mean(scores.argmax(axis=1) == labels))


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce_losses(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


def _target_like(input: Tensor, target) -> Tensor:
    """A constant target takes the input's dtype, so a float64 or integer target array does not
    silently turn a float32 network's loss (and every gradient after it) into float64. A float
    Tensor target is kept as it is (it may require grad); an integer or bool one is a constant
    and takes the input's dtype too, as PyTorch's type promotion gives (float32 with int64: float32)."""
    dtype = input.dtype if input.dtype.kind == "f" else None
    if isinstance(target, Tensor):
        if target.dtype.kind == "f" or dtype is None:
            return target
        target = target.data
    # asanyarray and astype, not asarray(dtype=): tg.compile follows the target through them
    target = np.asanyarray(target)
    return Tensor(target if dtype is None else target.astype(dtype, copy=False))


def _check_same_shape(name: str, input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        raise ValueError(
            f"{name}: target shape {target.shape} does not match input shape {input.shape}; "
            "reshape one of them (broadcasting would pair every input with every target)"
        )


class ClassIndexError(ValueError, IndexError):
    """A class index outside [0, num_classes): bad input (ValueError), and an IndexError as in PyTorch."""


def _class_indices(labels, name: str, shape: tuple | None = None, what: str = "class labels") -> np.ndarray:
    """Labels as an integer array: the one check of class labels (losses, accuracy, one-hot,
    data.one_hot, load_mat) and of embedding indices. Floats holding whole numbers count as well, since
    ``tg.Tensor([0, 2])`` (a Python list) is float32 by the default-dtype rule and MATLAB stores
    labels as doubles."""
    labels = np.asanyarray(labels.data if isinstance(labels, Tensor) else labels)
    expected = "" if shape is None else f" of shape {shape}"
    if labels.dtype.kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            raise ValueError(f"{name}: {what} must be integers{expected} (floats only if they hold "
                             f"whole numbers), got {_some_values(labels, ~whole)} ({labels.dtype} of shape "
                             f"{labels.shape})")
        return labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name}: {what} must be integers{expected}, got {labels.dtype} of shape "
                         f"{labels.shape}")
    return labels


def _some_values(values: np.ndarray, where: np.ndarray, limit: int = 5) -> str:
    """A few distinct values of `values` where `where` holds, for error messages: '-1, 12' or
    '0.5, 1.5, ... (7 distinct)'. Plain copies (np.asarray): a compiled step's trace that meets
    the bad values raises the same error as eager mode, not a tracing error about a mask."""
    distinct = np.unique(np.asarray(values)[np.asarray(where)])
    shown = ", ".join(str(v) for v in distinct[:limit].tolist())
    return shown if len(distinct) <= limit else f"{shown}, ... ({len(distinct)} distinct)"


def _check_classes(labels: np.ndarray, classes: int, name: str, also: str = "") -> None:
    if not _all_classes(labels, classes):
        bad = (labels < 0) | (labels >= classes)
        raise ClassIndexError(f"{name}: class indices must lie in [0, {classes}), "
                              f"got {_some_values(labels, bad)}{also}")


def _all_classes(labels: np.ndarray, classes: int) -> bool:
    """Whether every label lies in [0, classes)."""
    if not labels.size:
        return True
    if labels.dtype == np.int64:  # one reduction, not two: read as uint64, a negative label is above 2**63
        return bool(labels.view(np.uint64).max() < classes)
    return bool(labels.min() >= 0 and labels.max() < classes)


def _checked_indices(scores: Tensor, target, axis: int, name: str, ignore_index: int) -> tuple:
    """Class-index targets: integers, one per sample, each a valid class or `ignore_index`.
    Returns them and where they equal `ignore_index` (None where none does)."""
    expected = scores.shape[:axis] + scores.shape[axis + 1:]
    target = _class_indices(target, name, expected)
    if target.shape != expected:
        also = f" (or float probabilities of shape {scores.shape})" if name == "cross_entropy" else ""
        raise ValueError(
            f"{name}: expected integer class indices of shape {expected}{also} for scores of shape "
            f"{scores.shape}, got {target.dtype} of shape {target.shape}"
        )
    classes = scores.shape[axis]
    # The usual case, labels all valid and ignore_index outside them (-100), costs the one check
    if not 0 <= ignore_index < classes and _all_classes(target, classes):
        return target, None
    ignored = target == ignore_index
    # where(), not target[~ignored]: a mask's selection has no fixed shape, which tg.compile refuses
    skipped = f" (labels equal to ignore_index={ignore_index} are skipped)"
    _check_classes(np.where(ignored, 0, target), classes, name, skipped)
    return target, (ignored if ignored.any() else None)


def _cross_entropy_target(logits: Tensor, target, axis: int, name: str, ignore_index: int):
    """cross_entropy's target: float probability rows of the logits' shape, or checked class indices
    with the mask of those equal to `ignore_index` (see _checked_indices)."""
    if not isinstance(target, Tensor):
        target = np.asanyarray(target)
    index_shape = logits.shape[:axis] + logits.shape[axis + 1:]
    if target.dtype.kind == "f" and target.shape == logits.shape:
        return target if isinstance(target, Tensor) else target.astype(logits.dtype, copy=False)
    if target.dtype.kind == "f" and target.shape != index_shape:
        raise ValueError(
            f"{name}: the target must be float probabilities of the logits' shape {logits.shape} "
            f"or integer class indices of shape {index_shape}; got {target.dtype} of shape {target.shape}"
        )
    return _checked_indices(logits, target, axis, name, ignore_index)
