"""Layers: Linear and the activation, dropout and reshaping modules.

Each is a thin Module over `functional` (or a Tensor method): the math, and its gradient,
lives there once.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..tensor import accepts_dim, as_tensor, get_default_dtype
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x @ weight.T + bias, with weight shaped (out_features, in_features) as in PyTorch.

    Initialised as PyTorch does: weight and bias uniform in +-1/sqrt(in_features)
    (``kaiming_uniform_`` with ``a=sqrt(5)``). For deep networks prefer ``nn.init.xavier_uniform_``
    before tanh (with ``gain=4.0`` before a sigmoid: its slope is at most 1/4) and
    ``nn.init.kaiming_uniform_(nonlinearity='relu')`` before ReLU.

    >>> import tinygrad_edu as tg
    >>> from tinygrad_edu import nn
    >>> layer = nn.Linear(400, 25)
    >>> layer.weight.shape, layer(tg.zeros(5000, 400)).shape
    ((25, 400), (5000, 25))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw weight and bias again as at construction: PyTorch's uniform in +-1/sqrt(in_features)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # bound = 1 / sqrt(in_features)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to switch a layer off)."""

    def forward(self, x):
        return x


class Sigmoid(Module):
    """1 / (1 + exp(-x)), elementwise."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x), elementwise."""

    def forward(self, x):
        return F.tanh(x)


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class _AlongAxis(Module):
    """A layer that works along one axis (the class axis, usually the last); ``dim=`` works too."""

    @accepts_dim
    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Softmax(_AlongAxis):
    """exp(x) / sum(exp(x)) along `axis`: scores to probabilities.

    To train a classifier, give raw scores to ``CrossEntropyLoss`` instead (it applies
    log-softmax itself, more stably and with a one-step gradient).
    """

    def forward(self, x):
        return F.softmax(x, axis=self.axis)


class LogSoftmax(_AlongAxis):
    """log(softmax(x)) along `axis`, computed without overflow; pairs with ``NLLLoss``."""

    def forward(self, x):
        return F.log_softmax(x, axis=self.axis)


class Dropout(Module):
    """During training, zero each element with probability p and scale the rest by 1/(1-p);
    in eval mode, the identity."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Merge axes start_axis..end_axis into one (by default: all but the batch axis)."""

    @accepts_dim
    def __init__(self, start_axis: int = 1, end_axis: int = -1):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x):
        return as_tensor(x).flatten(self.start_axis, self.end_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"
