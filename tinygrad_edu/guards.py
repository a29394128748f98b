"""Opt-in checks on every operation: the broadcast guard and anomaly detection (NaN/Inf tracing).

The engine calls three hooks from the calling thread's switches (modes.py): `broadcast_check`
after the forward of an op that broadcasts, `forward_check` after every forward and
`backward_check` after each backward step; this module installs them only while a check is on
in that thread, so with all off an operation pays an `is None` test. Nothing here changes a
value. Both settings belong to one thread (as grad mode does); a new thread starts from the
defaults: guard 'warn', anomaly detection off.
"""
from __future__ import annotations

import contextlib
import linecache
import os
import sys
import threading
import warnings

import numpy as np

from . import modes as thread_modes

BROADCAST_MODES = ("off", "warn", "raise")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class BroadcastWarning(UserWarning):
    """Both operands of an operation were stretched by broadcasting (see set_broadcast_check)."""


class BroadcastError(ValueError):
    """Raised instead of BroadcastWarning in ``set_broadcast_check('raise')`` mode."""


class AnomalyError(RuntimeError):
    """detect_anomaly() found NaN or Inf in an operation's output or in a gradient."""


# ---- where the user's code is --------------------------------------------------------------
def _user_frame():
    """The innermost stack frame outside this package, and how many frames up it is from the
    caller of this function (the `stacklevel` that makes a warning point at the user's line)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return frame, level


def _describe_site(frame) -> str:
    if frame is None:
        return "an unknown place"
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    where = f"{frame.f_code.co_filename}:{frame.f_lineno}, in {frame.f_code.co_name}"
    return f"{where}: `{line}`" if line else where


# ---- the broadcast guard -------------------------------------------------------------------
class _Settings(threading.local):
    """This thread's settings; a new thread reads the class defaults."""

    broadcast_mode = "warn"
    anomaly_depth = 0  # how many detect_anomaly() blocks are open


_settings = _Settings()


class set_broadcast_check:
    """Choose what happens when BOTH operands of an operation are stretched by broadcasting.

    A column (200, 1) compared with a row (200,) becomes a (200, 200) table: every prediction
    against every label. NumPy does that silently; it is the bug that kept a learner's accuracy
    at 10% for a week. The guard looks at elementwise operations (``+ - * / **``, maximum,
    minimum, where) and comparisons on Tensors. Broadcasting a single value, or one operand
    against a bigger one ((N, C) + (C,)), is normal and never flagged.

    Parameters
    ----------
    mode : {'off', 'warn', 'raise'}
        'warn' (the default) issues a BroadcastWarning pointing at your line; 'raise' raises
        BroadcastError; 'off' checks nothing (an outer product ``a[:, None] * b`` is intended).

    The setting applies at once; used as a context manager it is restored on exit.

    Examples
    --------
    >>> import tinygrad_edu as tg
    >>> predictions = tg.Tensor([[1], [2], [0]])        # (3, 1): a column
    >>> labels = tg.Tensor([1, 2, 0])                   # (3,)
    >>> with tg.set_broadcast_check("raise"):
    ...     predictions == labels
    Traceback (most recent call last):
    ...
    tinygrad_edu.guards.BroadcastError: == of shapes (3, 1) and (3,): both operands are stretched by broadcasting into (3, 3), pairing every element of one with every element of the other. If you meant elementwise, give them the same shape (e.g. reshape the (3, 1) one to (3,)); if the (3, 3) table is intended, use tg.set_broadcast_check('off').
    """

    def __init__(self, mode: str):
        if mode not in BROADCAST_MODES:
            raise ValueError(f"set_broadcast_check: mode must be one of {BROADCAST_MODES}, got {mode!r}")
        self.previous, _settings.broadcast_mode = _settings.broadcast_mode, mode
        _install_hooks()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        _settings.broadcast_mode = self.previous
        _install_hooks()
        return False


def get_broadcast_check() -> str:
    """The broadcast guard's current mode in this thread: 'off', 'warn' or 'raise'."""
    return _settings.broadcast_mode


def check_broadcast(op: str, out_shape: tuple, *shapes) -> None:
    """Warn or raise (by the mode) when two or more operands were stretched into `out_shape`.

    An operand counts as stretched when it has fewer elements than the result, but more than
    one: a single value, or extra leading axes of length 1, replicate nothing worth flagging.
    """
    if _settings.broadcast_mode == "off":
        return
    out_size = int(np.prod(out_shape))
    stretched = [s for s in shapes if 1 < int(np.prod(s)) < out_size]
    if len(stretched) < 2:
        return
    message = (
        f"{op} of shapes {' and '.join(str(s) for s in shapes)}: both operands are stretched by "
        f"broadcasting into {out_shape}, pairing every element of one with every element of the "
        f"other. If you meant elementwise, give them the same shape{_reshape_hint(stretched)}; "
        f"if the {out_shape} table is intended, use tg.set_broadcast_check('off')."
    )
    if _settings.broadcast_mode == "raise":
        raise BroadcastError(message)
    _, level = _user_frame()
    warnings.warn(message, BroadcastWarning, stacklevel=level)


def _reshape_hint(stretched: list) -> str:
    """The learner's case, a column (200, 1) against a row (200,): say which reshape fixes it."""
    a, b = stretched[0], stretched[1]
    if int(np.prod(a)) != int(np.prod(b)):
        return ""
    column = a if len(a) > len(b) or (len(a) == len(b) and a[-1] == 1) else b
    other = b if column is a else a
    return f" (e.g. reshape the {column} one to {other})"


# ---- anomaly detection ---------------------------------------------------------------------
class detect_anomaly(contextlib.ContextDecorator):
    """Stop at the first operation whose output or gradient holds NaN or Inf (PyTorch's name).

    Inside the block every operation notes the line of your code that created it, checks its
    forward output, and during backward checks each gradient it returns. The AnomalyError
    names the operation, its input shapes and that line. It costs a stack walk and an
    `isfinite` per operation: use it to find a bug, not for every run.

    Parameters
    ----------
    check_nan : bool
        False turns the checks off (as in PyTorch), keeping the code in place.

    Examples
    --------
    >>> import numpy as np
    >>> import tinygrad_edu as tg
    >>> x = tg.Tensor([1.0, 0.0], requires_grad=True)
    >>> with tg.detect_anomaly(), np.errstate(divide="ignore"):   # (NumPy's own warning off)
    ...     y = x.log()                                   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tinygrad_edu.guards.AnomalyError: Log produced -inf in its output (shape (2,)) from inputs of shape (2,) ...
    """

    def __init__(self, check_nan: bool = True):
        self.check_nan = bool(check_nan)

    def __enter__(self):
        _settings.anomaly_depth += self.check_nan
        _install_hooks()
        return self

    def __exit__(self, *exc_info):
        _settings.anomaly_depth -= self.check_nan
        _install_hooks()
        return False


def is_anomaly_enabled() -> bool:
    """True inside a detect_anomaly() block (in this thread)."""
    return _settings.anomaly_depth > 0


def _nonfinite(array) -> str:
    """'' for finite (or non-float) arrays, else which of nan / inf / -inf it holds."""
    if array.dtype.kind not in "fc" or np.isfinite(array).all():
        return ""
    found = [name for name, test in (("nan", np.isnan), ("inf", np.isposinf), ("-inf", np.isneginf)) if test(array).any()]
    return " and ".join(found)


def _input_shapes(inputs) -> str:
    """Shapes of arrays, or of graph items (a node or a leaf: both have .shape)."""
    return ", ".join(str(x.shape if hasattr(x, "shape") else np.shape(x)) for x in inputs)


def _after_broadcasting_op(cls, arrays, data) -> None:
    # The common case costs a few comparisons: count operands smaller than the output but
    # bigger than one element (numbers and equal shapes are never stretched).
    stretched = 0
    for a in arrays:
        if type(a) is np.ndarray and 1 < a.size < data.size:
            stretched += 1
    if stretched > 1:
        check_broadcast(cls.__name__, data.shape, *(np.shape(a) for a in arrays))


def _after_forward(cls, arrays, data, ctx) -> None:
    if _settings.anomaly_depth:
        frame, _ = _user_frame()
        ctx.origin = _describe_site(frame)
        found = _nonfinite(data)
        if found:
            bad_inputs = [str(i) for i, a in enumerate(arrays) if isinstance(a, np.ndarray) and _nonfinite(a)]
            cause = f"; input {', '.join(bad_inputs)} already held NaN/Inf" if bad_inputs else " (all inputs finite)"
            raise AnomalyError(
                f"{cls.__name__} produced {found} in its output (shape {data.shape}) from inputs of "
                f"shape {_input_shapes(arrays)}{cause}. The operation was created at {ctx.origin}."
            )


def _after_backward(ctx, input_grads) -> None:
    for index, grad in enumerate(input_grads):
        if grad is None:
            continue
        found = _nonfinite(np.asarray(grad.data if hasattr(grad, "requires_grad") else grad))
        if found:
            origin = ctx.origin or (
                "an unknown place (the forward pass ran outside detect_anomaly(); run it inside to see where)"
            )
            raise AnomalyError(
                f"{ctx.fn.__name__}'s backward produced {found} in the gradient for its input {index} "
                f"(inputs of shape {_input_shapes(ctx.parents)}). The operation was created at {origin}."
            )


def _install_hooks() -> None:
    """Give the engine, for this thread, the checks that are on, or None so it skips them at no cost."""
    thread_modes.switch(
        broadcast_check=_after_broadcasting_op if _settings.broadcast_mode != "off" else None,
        forward_check=_after_forward if _settings.anomaly_depth else None,
        backward_check=_after_backward if _settings.anomaly_depth else None,
    )


# A new thread starts with the default settings: the guard on ('warn'), anomaly detection off.
thread_modes.set_default_checks(broadcast_check=_after_broadcasting_op)
_install_hooks()
