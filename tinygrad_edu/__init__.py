"""tinygrad_edu: a small, fast, honest autograd framework for learning how networks really train.

    >>> import tinygrad_edu as tg
    >>> w = tg.Tensor([2.0], requires_grad=True)
    >>> loss = ((w * 3.0 - 1.0) ** 2).sum()
    >>> loss.backward()
    >>> w.grad
    Tensor([30.], shape=(1,), dtype=float32)
"""
from . import data, diagnostics, functional, nn, optim, viz
from .compile import CompiledStep, TracingError, compile
from .autograd import enable_grad, grad, is_grad_enabled, no_grad
from .creation import (
    arange, eye, full, manual_seed, ones, ones_like, rand, randn, zeros, zeros_like,
)
from .explain import explain
from .backprop_check import BackpropReport, GradientReport, check_backprop, compare_grads
from .gradcheck import GradcheckError, gradcheck
from .guards import (
    AnomalyError, BroadcastError, BroadcastWarning, detect_anomaly, get_broadcast_check,
    is_anomaly_enabled, set_broadcast_check,
)
from .serialization import load, save
from .summary import ModelSummary, summary
from .tensor import (
    GraphDroppedWarning, Tensor, concatenate, einsum, get_default_dtype, maximum, minimum,
    set_default_dtype, stack, where,
)

__version__ = "0.1.0"

__all__ = [
    "Tensor", "data", "functional", "nn", "optim", "viz", "diagnostics", "save", "load",
    "grad", "no_grad", "enable_grad", "is_grad_enabled",
    "get_default_dtype", "set_default_dtype", "manual_seed",
    "zeros", "ones", "full", "zeros_like", "ones_like", "arange", "eye", "rand", "randn",
    "maximum", "minimum", "where", "concatenate", "stack", "einsum",
    "gradcheck", "GradcheckError", "check_backprop", "BackpropReport", "explain",
    "compare_grads", "GradientReport", "summary", "ModelSummary",
    "set_broadcast_check", "get_broadcast_check", "BroadcastWarning", "BroadcastError",
    "detect_anomaly", "is_anomaly_enabled", "AnomalyError", "GraphDroppedWarning",
    "compile", "CompiledStep", "TracingError",
]
