"""The doctor for a learner's own NumPy code, as it is: no porting to ``nn`` modules first.

`NumpyMonitor` reads named arrays of the learner's object (weights, activations) after each
training step; `check_broadcasts` runs one of their NumPy functions once on Tensors (through
NumPy interop) under the broadcast guard. Neither changes the learner's arrays.
"""
from __future__ import annotations

import html
import linecache
import math
import warnings
from typing import Callable, Optional

import numpy as np

from ..autograd import Context
from ..guards import BroadcastWarning, set_broadcast_check
from ..tensor import Tensor
from . import kinds
from .monitor import _mismatch_message
from .report import DiagnosticsReport, columns, pct, sci, warn

_SATURATING = ("sigmoid", "tanh")


class NumpyMonitor:
    """Watch the arrays of your own NumPy network while it trains, and say why it does not learn.

    Parameters
    ----------
    obj : object
        Your network object, e.g. an instance of your ``ANN`` class.
    weights : dict of str to str, or list of str
        Names of its weight-matrix attributes, first layer first, each mapped to the attribute
        of the activation it multiplies (``{"W1": "a0", "W2": "a1", "W3": "a2"}``). Checked at
        once for an all-positive or all-equal start; after every `step`, each matrix's change
        gives its update size. With the inputs named, the change also tells the gradient at
        the layer's output: for ``z = W.T @ a`` one sample's step changes W by
        ``lr * outer(a, dL/dz)``, so ``|dW| / |a|`` is ``lr * |dL/dz|`` (for a batch, an
        estimate); first and last layers are compared as the ``nn`` Monitor does. A list of
        names only gives update sizes.
    activations : dict of str to str, optional
        Attribute names of hidden activations and their function, ``"sigmoid"`` or ``"tanh"``
        (``{"a1": "sigmoid", "a2": "sigmoid"}``): the saturated fraction is read at every step.
    output : str, optional
        The attribute holding the network's output (e.g. ``"Y_est"``).
    cost : str, optional
        The name of the method that computes the cost from `output` (e.g. ``"cost_function"``).
        It is run once with the output as a Tensor to see what it computes (NumPy interop): a
        ``log(1 - output)`` term on outputs that sum to 1 is binary cross-entropy on a softmax.

    Call ``monitor.step()`` after each of your training steps, then ``monitor.report()``.
    Measures, as the ``nn`` Monitor does: saturation (``saturation``), weights that barely move
    (``small_update``), the first layer getting far less gradient than the last
    (``vanishing_gradient``), ``all_positive_init`` / ``all_equal_init`` and
    ``output_loss_mismatch``.
    """

    def __init__(self, obj, weights: list, activations: Optional[dict] = None,
                 output: Optional[str] = None, cost: Optional[str] = None):
        self.obj = obj
        self.inputs = dict(weights) if isinstance(weights, dict) else {}
        self.weights = list(weights)
        self.activations = dict(activations or {})
        for name in self.weights:
            self._array(name)
        for name, function in self.activations.items():
            if function not in _SATURATING:
                raise ValueError(f"NumpyMonitor: activation {name!r} must be one of {_SATURATING}, "
                                 f"got {function!r}")
        self.output, self.cost = output, cost
        self.saturated = {name: [] for name in self.activations}
        self.update_ratio = {name: [] for name in self.weights}
        self.output_grad = {name: [] for name in self.inputs}  # lr * RMS of dL/dz, estimated
        self._initial_problems = kinds.initial_weight_problems(
            [(name, np.asarray(getattr(obj, name))) for name in self.weights])
        self._before = {name: np.array(getattr(obj, name), dtype=np.float64) for name in self.weights}
        self._mismatch: Optional[str] = None
        self._cost_checked = False

    def step(self) -> None:
        """Read the arrays after one training step of your own code."""
        for name, function in self.activations.items():
            a = self._array(name).astype(np.float64)
            bound = np.abs(a) > 0.99 if function == "tanh" else (a < 0.01) | (a > 0.99)
            self.saturated[name].append(float(np.mean(bound)) if a.size else math.nan)
        for name in self.weights:
            now = np.asarray(getattr(self.obj, name), dtype=np.float64)
            before = self._before[name]
            change = now - before
            scale = float(np.linalg.norm(before))
            self.update_ratio[name].append(float(np.linalg.norm(change)) / scale if scale else math.nan)
            if name in self.inputs:
                a = np.asarray(self._array(self.inputs[name]), dtype=np.float64)
                size = float(np.linalg.norm(a)) * math.sqrt(now.shape[-1])
                self.output_grad[name].append(float(np.linalg.norm(change)) / size if size else math.nan)
            np.copyto(before, now)
        if not self._cost_checked and self.output and self.cost:
            self._cost_checked = True
            self._mismatch = self._check_cost()

    def _array(self, name: str) -> np.ndarray:
        value = getattr(self.obj, name, None)
        if not isinstance(value, np.ndarray):
            raise ValueError(f"NumpyMonitor: {type(self.obj).__name__}.{name} is not a NumPy array "
                             f"(got {type(value).__name__}); watch arrays your code sets in each step")
        return value

    def _check_cost(self) -> Optional[str]:
        """Run the cost method once with the output as a Tensor; look for log(1 - output)."""
        original = getattr(self.obj, self.output)
        output = np.asarray(original, dtype=np.float64)
        rows = output.reshape(1, -1) if output.ndim == 1 else output
        traced = Tensor(output.copy(), requires_grad=True)
        attributes = dict(vars(self.obj)) if hasattr(self.obj, "__dict__") else None
        setattr(self.obj, self.output, traced)
        try:
            result = getattr(self.obj, self.cost)()
        except Exception:  # noqa: BLE001 (e.g. an ndarray method a Tensor lacks: nothing can be said,
            return None    # and the learner's training loop must go on)
        finally:
            if attributes is not None:  # what the cost stored on the object (self.J = ...) is put back
                vars(self.obj).clear()
                vars(self.obj).update(attributes)
            setattr(self.obj, self.output, original)
        results = result if isinstance(result, (tuple, list)) else (result,)
        nodes = [r._ctx for r in results if isinstance(r, Tensor) and r._ctx is not None]
        if not any(_has_log_of_one_minus(node, traced) for node in nodes):
            return None
        return _mismatch_message("BinaryCrossEntropy", rows)

    def report(self, last: int = 10) -> DiagnosticsReport:
        """The table (means over the `last` steps) and the warnings, like `Monitor.report`."""
        recent = {name: _mean(values[-last:]) for name, values in self.saturated.items()}
        ratios = {name: _mean(values[-last:]) for name, values in self.update_ratio.items()}
        grads = {name: _mean(values[-last:]) for name, values in self.output_grad.items()}
        steps = len(next(iter(self.update_ratio.values()), []))
        lines = [f"NumPy code diagnostics: {steps} step(s) recorded; means over the last {min(last, steps)}"]
        tables = []
        if recent:
            rows = [["activation", "function", "saturated"]]
            rows += [[name, self.activations[name], pct(value)] for name, value in recent.items()]
            lines += columns(rows)
            tables.append(rows)
        rows = [["weight", "shape", "lr * dL/dz rms", "update/weight"]]
        rows += [[name, str(np.shape(getattr(self.obj, name))), sci(grads.get(name, math.nan)),
                  sci(ratios[name])] for name in self.weights]
        lines += columns(rows)
        tables.append(rows)
        found = list(self._initial_problems)
        for name, value in recent.items():
            found += kinds.saturation_warning(f"{name} ({self.activations[name]})", value)
        names = [name for name in self.weights if name in grads and not math.isnan(grads[name])]
        if len(names) >= 2:
            first, last_layer = grads[names[0]], grads[names[-1]]
            if last_layer > 0 and first < kinds.NUMPY_VANISHING_RATIO * last_layer:
                found.append(warn(
                    "vanishing_gradient",
                    f"gradients vanish toward the input: dL/dz RMS at {names[0]}'s output is "
                    f"{last_layer / max(first, 1e-300):.0f}x smaller than at {names[-1]}'s; use a zero-mean "
                    "init (Xavier: np.random.uniform(-r, r, shape), r = sqrt(6 / (n_in + n_out)))",
                ))
        for name in self.weights:
            if np.ndim(getattr(self.obj, name)) >= 2 and ratios[name] < kinds.SMALL_UPDATE:
                found.append(warn(
                    "small_update",
                    f"{name}: update/weight ratio {ratios[name]:.1e} per step — barely changing; raise the "
                    "learning rate, or fix a vanishing gradient if one is reported (about 1e-3 is healthy)",
                ))
        if self._mismatch:
            found.append(warn("output_loss_mismatch", self._mismatch))
        return DiagnosticsReport("\n".join(lines), found, tuple(tables))

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython's text display: the report too
        printer.text(str(self.report()))

    def _repr_html_(self) -> str:
        return self.report()._repr_html_()


def _has_log_of_one_minus(root: Context, output: Tensor) -> bool:
    """True when the graph holds log(c - output), c a constant: the (1 - p) half of BCE."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if type(node) is not Context or id(node) in seen:
            continue
        seen.add(id(node))
        if node.name == "Log":
            inner = node.parents[0]
            if type(inner) is Context and inner.name == "Sub" and any(p is output for p in inner.parents):
                return True
        stack.extend(node.parents or ())
    return False


def _mean(values: list) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


# ---- the broadcast guard on plain NumPy code ------------------------------------------------------
class BroadcastReport:
    """What `check_broadcasts` found: ``.findings`` (one line each: where, and the guard's
    message), ``.ok`` (none found), ``.result`` (the function's result, as NumPy arrays)."""

    def __init__(self, findings: list, result):
        self.findings = findings
        self.result = result

    @property
    def ok(self) -> bool:
        """True when no operation stretched both of its operands."""
        return not self.findings

    def __bool__(self) -> bool:
        """``report.ok``, so ``assert report`` fails when a check found a problem."""
        return self.ok

    def __str__(self) -> str:
        if not self.findings:
            return "check_broadcasts: no operation stretched both of its operands"
        lines = [f"check_broadcasts: {len(self.findings)} operation(s) stretched both operands"]
        return "\n".join(lines + [f"- {finding}" for finding in self.findings])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def check_broadcasts(fn: Callable, *args, **kwargs) -> BroadcastReport:
    """Run your plain-NumPy function once on Tensors, under the broadcast guard.

    NumPy arrays among the arguments (also inside lists, tuples and dicts) become Tensors, so
    NumPy's functions record them (NumPy interop) and every comparison and elementwise operation
    passes the guard. Each operation that stretches BOTH operands (a (200, 1) column against a
    (200,) row becomes a (200, 200) table) is reported with the line of your code that did it.
    Your function is not changed; nothing is trained.

    Returns
    -------
    BroadcastReport
        ``.ok``, ``.findings`` and ``.result`` (what `fn` returned, Tensors turned back into arrays).

    Examples
    --------
    >>> import numpy as np
    >>> def accuracy(predictions, labels):
    ...     return np.mean(predictions.reshape(-1, 1) == labels)
    >>> report = check_broadcasts(accuracy, np.array([1, 2, 0]), np.array([1, 2, 0]))
    >>> report.ok, round(float(report.result), 3)      # 1/3 instead of 1: the bug
    (False, 0.333)
    >>> print(report.findings[0])                       # doctest: +ELLIPSIS
    <doctest ...>:2, in accuracy: `return np.mean(predictions.reshape(-1, 1) == labels)`: == of
    shapes (3, 1) and (3,): ...
    """
    args = [_to_tensors(a) for a in args]
    kwargs = {key: _to_tensors(value) for key, value in kwargs.items()}
    findings = []
    with warnings.catch_warnings(record=True) as caught, set_broadcast_check("warn"):
        warnings.simplefilter("always", BroadcastWarning)
        result = fn(*args, **kwargs)
    for item in caught:
        if not issubclass(item.category, BroadcastWarning):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
            continue
        line = linecache.getline(item.filename, item.lineno).strip()
        function = _function_at(fn, item.filename, item.lineno)
        where = f"{item.filename}:{item.lineno}" + (f", in {function}" if function else "")
        findings.append(f"{where}: `{line}`: {item.message}" if line else f"{where}: {item.message}")
    return BroadcastReport(findings, _to_arrays(result))


def _function_at(fn, filename: str, lineno: int) -> str:
    code = getattr(fn, "__code__", None)
    if code is not None and code.co_filename == filename:
        return fn.__name__
    return ""


def _to_tensors(value):
    if isinstance(value, np.ndarray):
        return Tensor(value.copy())  # a Tensor shares its array: fn's writes must not reach the caller's
    if isinstance(value, (list, tuple)):
        return type(value)(_to_tensors(item) for item in value)
    if isinstance(value, dict):
        return {key: _to_tensors(item) for key, item in value.items()}
    return value


def _to_arrays(value):
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (list, tuple)):
        return type(value)(_to_arrays(item) for item in value)
    if isinstance(value, dict):
        return {key: _to_arrays(item) for key, item in value.items()}
    return value
