"""Initial weights: fill a tensor in place with values of a chosen scale, as PyTorch's nn.init does.

Why the scale matters: a layer with n inputs sums n products, so weights of a fixed size make
the signal grow or shrink by about sqrt(n) per layer, and sigmoid/tanh units saturate (their
gradient vanishes). These functions pick the variance that keeps signals and gradients at a
steady size. Every function draws from the generator `tg.manual_seed` controls.
"""
from __future__ import annotations

import math

import numpy as np

from ..random_generator import generator
from ..tensor import Tensor

_GAINS = {
    "linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0,
    "conv_transpose1d": 1.0, "conv_transpose2d": 1.0, "conv_transpose3d": 1.0,
    "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4,
}


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The factor by which to scale weights so that `nonlinearity` keeps the signal's variance.

    1 for linear and sigmoid, 5/3 for tanh, sqrt(2) for relu (it zeroes half of its inputs),
    sqrt(2 / (1 + slope**2)) for leaky_relu (slope `param`, default 0.01), 3/4 for selu.

    >>> round(calculate_gain("relu"), 4)
    1.4142
    """
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; choose from {sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[nonlinearity]


def _fans(tensor) -> tuple:
    """(fan_in, fan_out) for PyTorch's layout: weight (out, in, *kernel)."""
    shape = np.shape(tensor)
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out need a tensor with at least 2 dimensions, got shape {shape} "
            "(a bias has no fans: initialise it with uniform_, zeros_ or constant_)"
        )
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    """Write `values` into the tensor's own array (outside the graph) and return the tensor."""
    array = tensor.data if isinstance(tensor, Tensor) else tensor
    array[...] = values
    if isinstance(tensor, Tensor):
        tensor._bump_version()  # an in-place write: a graph that saved the old values refuses them
    return tensor


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    """Fill with samples from U(a, b). For biases, or when you choose the range yourself."""
    return _fill(tensor, generator().uniform(a, b, size=np.shape(tensor)))


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    """Fill with samples from N(mean, std**2). Note std=1 is far too large for a layer with many inputs."""
    return _fill(tensor, generator().normal(mean, std, size=np.shape(tensor)))


def constant_(tensor, val: float):
    """Fill with `val`. Fine for biases; for weights every unit would learn the same thing."""
    return _fill(tensor, val)


def ones_(tensor):
    """Fill with ones."""
    return _fill(tensor, 1.0)


def zeros_(tensor):
    """Fill with zeros: the usual start for biases (never for all weights: symmetry is never broken)."""
    return _fill(tensor, 0.0)


def xavier_uniform_(tensor, gain: float = 1.0):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010).

    For tanh layers (gain 5/3 from `calculate_gain`) and sigmoid layers: it keeps the variance of
    both the forward signal and the backward gradient about constant, so units do not saturate.
    A sigmoid's slope is at most 1/4, so before a sigmoid pass ``gain=4.0`` (calculate_gain
    gives 1, as PyTorch's does); see docs/initialisation.md.
    """
    if np.size(tensor) == 0:
        return tensor  # nothing to fill (and fans of 0 would divide by zero)
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(tensor, generator().uniform(-bound, bound, size=np.shape(tensor)))


def xavier_normal_(tensor, gain: float = 1.0):
    """N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out)); the normal form of Xavier,
    for tanh layers and (with ``gain=4.0``) sigmoid layers."""
    if np.size(tensor) == 0:
        return tensor  # nothing to fill (and fans of 0 would divide by zero)
    fan_in, fan_out = _fans(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, generator().normal(0.0, std, size=np.shape(tensor)))


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015).

    For ReLU-family layers: ReLU zeroes half its inputs, so the weights need twice Xavier's
    variance (gain sqrt(2)) to keep the signal from shrinking layer by layer. `a` is the
    negative slope for leaky_relu; mode 'fan_in' preserves the forward signal, 'fan_out' the
    backward gradient.
    """
    if np.size(tensor) == 0:
        return tensor  # nothing to fill (and fans of 0 would divide by zero)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return _fill(tensor, generator().uniform(-bound, bound, size=np.shape(tensor)))


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """N(0, std**2) with std = gain / sqrt(fan); the normal form of Kaiming, for ReLU layers."""
    if np.size(tensor) == 0:
        return tensor  # nothing to fill (and fans of 0 would divide by zero)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return _fill(tensor, generator().normal(0.0, std, size=np.shape(tensor)))


def lecun_normal_(tensor):
    """N(0, 1 / fan_in) (LeCun et al., 1998). Keeps the forward variance for linear-like units;
    the standard start for SELU networks. (Not in PyTorch's nn.init.)"""
    if np.size(tensor) == 0:
        return tensor  # nothing to fill (and fans of 0 would divide by zero)
    fan_in, _ = _fans(tensor)
    return _fill(tensor, generator().normal(0.0, 1.0 / math.sqrt(fan_in), size=np.shape(tensor)))
