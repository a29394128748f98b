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
        F._check_softmax_axis(axis, type(self).__name__)
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


class Embedding(Module):
    """A lookup table of `num_embeddings` learned vectors of size `embedding_dim` (see F.embedding).

    Initialised as PyTorch does: weight drawn from N(0, 1), the `padding_idx` row (if any) zeros;
    that row gets no gradient, so it stays as it is during training.

    >>> import tinygrad_edu as tg
    >>> from tinygrad_edu import nn
    >>> table = nn.Embedding(10, 3, padding_idx=0)
    >>> table, table(tg.Tensor([[1, 0, 4]])).shape, table.weight[0].tolist()
    (Embedding(10, 3, padding_idx=0), (1, 3, 3), [0.0, 0.0, 0.0])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = None if padding_idx is None else F._padding_row(padding_idx, num_embeddings)
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weight again as at construction: N(0, 1), with the padding row zeros."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


# ---- images and normalisation ------------------------------------------------------------------
class Conv2d(Module):
    """2-D convolution over NCHW images, as PyTorch's: weight (out_channels, in_channels, kh, kw).

    Each output channel is one kernel slid over every input channel; the output is
    (N, out_channels, OH, OW) with OH = (H + 2*padding - dilation*(kh-1) - 1) // stride + 1.
    Initialised as PyTorch does: weight and bias uniform in +-1/sqrt(fan_in), where
    fan_in = in_channels * kh * kw (``kaiming_uniform_`` with ``a=sqrt(5)``).

    >>> import tinygrad_edu as tg
    >>> from tinygrad_edu import nn
    >>> conv = nn.Conv2d(1, 8, kernel_size=3, padding=1)
    >>> conv
    Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> conv.weight.shape, conv(tg.zeros(64, 1, 28, 28)).shape
    ((8, 1, 3, 3), (64, 8, 28, 28))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, bias: bool = True, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = F._pair(kernel_size, "kernel_size")
        self.stride, self.dilation = F._pair(stride, "stride"), F._pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else F._pair(padding, "padding", minimum=0)
        F._conv_padding(self.padding, self.kernel_size, self.stride, self.dilation)  # refuse it here, as PyTorch
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        self.weight = Parameter(np.empty((out_channels, in_channels, *self.kernel_size), dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw weight and bias again as at construction: PyTorch's uniform in +-1/sqrt(fan_in)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # bound = 1 / sqrt(fan_in)
        if self.bias is not None:
            fan_in = self.in_channels * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        x = as_tensor(x)
        sizes = f"{self.in_channels}, {self.out_channels}, kernel_size={self._kernel_text()}"
        who = f"{type(self).__name__}({sizes})"
        if x.ndim == 3 and x.shape[0] != self.in_channels:  # name the shape the caller gave
            raise ValueError(f"{who} expects in_channels={self.in_channels} on the input's axis 0 (an unbatched "
                             f"(C, H, W) image), got an input of shape {x.shape}")
        if x.ndim == 4:  # say it in the layer's terms (F.conv2d would name the weight's shape)
            padding = F._conv_padding(self.padding, self.kernel_size, self.stride, self.dilation)
            F._check_conv_input(who, x.shape, self.in_channels)
            F._check_output_size(who, x.shape, self.kernel_size, self.stride, padding, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def _kernel_text(self) -> str:
        k = self.kernel_size
        return str(k[0]) if k[0] == k[1] else str(k)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}")
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        return text + ("" if self.bias is not None else ", bias=False")


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """The largest value of each kernel_size window, per channel (stride defaults to kernel_size);
    with ``return_indices=True``, (out, indices) as F.max_pool2d.

    >>> from tinygrad_edu import nn
    >>> nn.MaxPool2d(2)
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding)
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class AvgPool2d(_Pool2d):
    """The mean of each kernel_size window, per channel (stride defaults to kernel_size); with
    ``count_include_pad=False`` the padding's zeros do not count in the mean; ``ceil_mode`` rounds
    the output size up (see F.max_pool2d)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class _BatchNorm(Module):
    """Batch normalisation over axis 1 with PyTorch's buffers and update rule (see F.batch_norm).

    In training each batch is normalised with its own statistics and the running ones move
    towards them (``momentum=None``: a plain average over all batches so far); in eval mode the
    running statistics normalise. Buffers: ``running_mean`` (zeros), ``running_var`` (ones),
    ``num_batches_tracked``; parameters ``weight`` (ones) and ``bias`` (zeros) when affine.
    """

    _input_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        self.weight = Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x):
        x = as_tensor(x)
        if x.ndim not in self._input_dims:
            shapes = " or ".join(("(N, C)", "(N, C, L)", "(N, C, H, W)")[n - 2] for n in self._input_dims)
            raise ValueError(f"{type(self).__name__} takes an input of shape {shapes}, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects num_features="
                             f"{self.num_features} on the input's axis 1, got an input of shape {x.shape}")
        momentum = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting and self.momentum is None:  # a cumulative average: batch k weighs 1/k
            momentum = 1.0 / (self.num_batches_tracked.data + 1)  # an array expression: tg.compile replays it
        use_batch = self.training or not self.track_running_stats
        out = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                           use_batch, momentum, self.eps)
        if counting:  # counted once the batch is accepted: a refused batch changes no buffer
            self.num_batches_tracked.data += 1
        return out

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per feature C (see F.batch_norm).

    >>> from tinygrad_edu import nn
    >>> sorted(nn.BatchNorm1d(4).state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C (see F.batch_norm)."""

    _input_dims = (4,)


class LayerNorm(Module):
    """Normalise each sample over its last axes (`normalized_shape`), then scale and shift.

    >>> from tinygrad_edu import nn
    >>> nn.LayerNorm(8)
    LayerNorm((8,), eps=1e-05, elementwise_affine=True)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(int(n) for n in normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        affine = elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype)) if affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
