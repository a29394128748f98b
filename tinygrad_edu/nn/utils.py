"""Gradient clipping, as ``torch.nn.utils`` does it: between ``backward()`` and the optimizer's
``step()``, rescale or clamp the parameters' ``.grad`` outside the graph.

Clipping keeps one bad batch (a huge gradient, e.g. in a recurrent network or at a too high
learning rate) from throwing the weights far away. Gradients are replaced by new arrays, never
written into: a gradient may be a read-only broadcast view.
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor, get_default_dtype

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _gradients(parameters) -> list:
    """The `.grad` Tensors of `parameters` (one Tensor or an iterable); missing ones are skipped."""
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint norm is at most `max_norm`.

    The norm treats every gradient as part of one long vector (``norm_type`` 2: the square root
    of the sum of all squares; ``math.inf``: the largest absolute value). Where it exceeds
    `max_norm`, every gradient is multiplied by ``max_norm / (norm + 1e-6)``: the step keeps its
    direction and only gets shorter. A NaN or inf norm spreads to every gradient, as in PyTorch,
    unless ``error_if_nonfinite=True`` makes it an error (and nothing changes).

    Returns
    -------
    Tensor
        The norm before clipping (0-d; 0 when no parameter has a gradient).

    >>> import numpy as np
    >>> import tinygrad_edu as tg
    >>> from tinygrad_edu import nn
    >>> w = tg.Tensor(np.zeros(2), requires_grad=True)
    >>> (w * np.array([3.0, 4.0])).sum().backward()
    >>> nn.utils.clip_grad_norm_([w], max_norm=1.0).item(), w.grad.numpy().round(4).tolist()
    (5.0, [0.6, 0.8])
    """
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    grads = _gradients(parameters)
    if not grads:
        return Tensor(np.zeros((), dtype=get_default_dtype()))
    dtype = grads[0].dtype
    norm_type = float(norm_type)
    # The norm of the per-gradient norms is the norm of all elements taken together.
    norms = np.array([np.linalg.norm(g.data.ravel(), ord=norm_type) if g.size else 0.0 for g in grads],
                     dtype=dtype)
    total = np.linalg.norm(norms, ord=norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           "non-finite, so it cannot be clipped; pass error_if_nonfinite=False to scale "
                           "them by it anyway")
    scale = np.minimum(max_norm / (total + 1e-6), 1.0)  # never enlarges; NaN stays NaN
    for grad in grads:
        grad.data = grad.data * scale.astype(grad.dtype)
    return Tensor(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` (each on its own, unlike
    `clip_grad_norm_`, so the step's direction can change)."""
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for grad in _gradients(parameters):
        grad.data = np.clip(grad.data, -clip_value, clip_value)
