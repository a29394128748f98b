"""Composite operations, built only from Tensor methods that call primitives in ops.py.

Nothing here has a backward of its own: the gradient comes from the primitives. An operation
that would be wrong or numerically unstable as a composite belongs in ops.py instead.
`mean`, `var`, `squeeze`, `unsqueeze` and `flatten` sit behind the Tensor methods of those names.
"""
from __future__ import annotations

import math

import numpy as np

from . import creation, ops
from .tensor import Tensor, as_tensor, get_default_dtype, where

__all__ = [
    "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "log_softmax", "logsumexp", "linear",
    "dropout", "one_hot", "mse_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "accuracy",
]
REDUCTIONS = ("mean", "sum", "none")


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
    keep = creation.generator().random(x.shape, dtype=np.float32) >= p
    return x * (keep * x.dtype.type(1.0 / (1.0 - p)))  # the mask in x's dtype: one pass, no float64


def one_hot(labels, num_classes: int = -1) -> Tensor:
    """Rows of zeros with a 1 at each label: shape ``labels.shape + (num_classes,)``.

    Unlike PyTorch (int64), the result has the default float dtype, so it can be used as a
    target directly. ``num_classes=-1`` means ``max(labels) + 1``.

    >>> one_hot([0, 2], 3)
    Tensor([[1., 0., 0.],
            [0., 0., 1.]], shape=(2, 3), dtype=float32)
    """
    labels = _class_indices(labels, "one_hot")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    _check_classes(labels, num_classes, "one_hot")
    return Tensor._make(np.eye(num_classes, dtype=get_default_dtype())[labels])


# ---- losses ----------------------------------------------------------------------------------
def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Squared error (input - target)**2, averaged (or summed) over every element.

    `target` must have exactly `input`'s shape: broadcasting (200, 1) against (200,) would
    silently compare every prediction with every target.
    """
    input = as_tensor(input)
    target = _target_like(input, target)
    _check_same_shape("mse_loss", input, target)
    _check_reduction(reduction)
    return ops.SquaredError.apply(input, target, reduction=reduction)  # one node, like the other losses


def cross_entropy(logits: Tensor, target, reduction: str = "mean") -> Tensor:
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

    The gradient with respect to the logits is the fused ``softmax(logits) - target`` (divided
    by N for 'mean'): one node in the graph, exact even for logits of magnitude 1e4.

    >>> logits = Tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    >>> loss = cross_entropy(logits, [0])
    >>> round(loss.item(), 4)
    0.1698
    """
    logits = as_tensor(logits)
    _check_reduction(reduction)
    axis = 1 if logits.ndim > 1 else 0
    if logits.ndim == 0:
        raise ValueError("cross_entropy: logits must have a class axis, got a 0-d tensor")
    target = _cross_entropy_target(logits, target, axis, "cross_entropy")
    return ops.SoftmaxCrossEntropy.apply(logits, target, axis=axis, reduction=reduction)


def nll_loss(log_probs: Tensor, target, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: minus the log-probability each sample gives its class.

    `log_probs` is (N, C) (classes on axis 1, as in `cross_entropy`), usually from
    `log_softmax`; `target` holds integer class indices of shape (N,).
    """
    log_probs = as_tensor(log_probs)
    _check_reduction(reduction)
    if log_probs.ndim == 0:
        raise ValueError("nll_loss: log_probs must have a class axis, got a 0-d tensor")
    axis = 1 if log_probs.ndim > 1 else 0
    target = _checked_indices(log_probs, target, axis, "nll_loss")
    return _reduced(-log_probs[ops.class_index(target, axis)], reduction)


def binary_cross_entropy(probs: Tensor, target, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) for probabilities p in [0, 1].

    Each log is clamped at -100, as PyTorch does, so p = 0 or 1 gives a large finite loss
    instead of inf, and the gradient is PyTorch's finite (p - t) / max(p (1 - p), 1e-12).
    Prefer `binary_cross_entropy_with_logits` on scores: it is exact there too.
    """
    probs = as_tensor(probs)
    target = _target_like(probs, target)
    _check_same_shape("binary_cross_entropy", probs, target)
    if probs.size and (np.min(probs.data) < 0 or np.max(probs.data) > 1):
        raise ValueError(
            "binary_cross_entropy: probs must lie in [0, 1] (apply sigmoid first, or use "
            f"binary_cross_entropy_with_logits on raw scores); got values from {np.min(probs.data)} "
            f"to {np.max(probs.data)}"
        )
    _check_reduction(reduction)
    return ops.BinaryCrossEntropy.apply(probs, target, reduction=reduction)


def binary_cross_entropy_with_logits(logits: Tensor, target, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of sigmoid(logits) and target, in the stable form
    max(x, 0) - x t + log(1 + exp(-|x|)); its gradient is the fused ``sigmoid(x) - t``."""
    logits = as_tensor(logits)
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


def _reduced(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


def _target_like(input: Tensor, target) -> Tensor:
    """A constant target takes the input's dtype, so a float64 or integer target array does not
    silently turn a float32 network's loss (and every gradient after it) into float64."""
    if isinstance(target, Tensor):
        return target
    dtype = input.dtype if input.dtype.kind == "f" else None
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


def _class_indices(labels, name: str, shape: tuple | None = None) -> np.ndarray:
    """Labels as an integer array. Floats holding whole numbers count as well, since
    ``tg.Tensor([0, 2])`` (a Python list) is float32 by the default-dtype rule."""
    labels = np.asanyarray(labels.data if isinstance(labels, Tensor) else labels)
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.array_equal(labels, np.round(labels)):
        return labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise ValueError(
            f"{name}: class labels must be integers{'' if shape is None else f' of shape {shape}'}, "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    return labels


def _check_classes(labels: np.ndarray, classes: int, name: str) -> None:
    if not labels.size:
        return
    if labels.dtype == np.int64:  # one reduction, not two: read as uint64, a negative label is above 2**63
        wrong = labels.view(np.uint64).max() >= classes
    else:
        wrong = labels.min() < 0 or labels.max() >= classes
    if wrong:
        raise ClassIndexError(
            f"{name}: class indices must lie in [0, {classes}), got values from {labels.min()} to {labels.max()}"
        )


def _checked_indices(scores: Tensor, target, axis: int, name: str) -> np.ndarray:
    """Class-index targets: integers, one per sample, each a valid class."""
    expected = scores.shape[:axis] + scores.shape[axis + 1:]
    target = _class_indices(target, name, expected)
    if target.shape != expected:
        also = f" (or float probabilities of shape {scores.shape})" if name == "cross_entropy" else ""
        raise ValueError(
            f"{name}: expected integer class indices of shape {expected}{also} for scores of shape "
            f"{scores.shape}, got {target.dtype} of shape {target.shape}"
        )
    _check_classes(target, scores.shape[axis], name)
    return target


def _cross_entropy_target(logits: Tensor, target, axis: int, name: str):
    """cross_entropy's target: float probability rows of the logits' shape, or checked class indices."""
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
    return _checked_indices(logits, target, axis, name)
