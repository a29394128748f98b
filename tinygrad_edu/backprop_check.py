"""`check_backprop` and `compare_grads`: a learner's hand-derived gradients against the real ones.

check_backprop runs a learner's NumPy cost and backprop, compare_grads takes gradients they
computed by hand; both compare them with autograd's (or central differences') and return a
report that names each wrong parameter and the likely kind of mistake (shape, transposed,
sign, a factor such as a missing 1/m). Nothing here changes the arrays it is given.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ._tables import html_table, shape_text, text_table
from .autograd import Context, enable_grad, grad, node_of, toposort
from .gradcheck import numeric_grad
from .tensor import Tensor


# A constant-factor bug (a missing 1/m, a dropped 0.5) is exact up to rounding: the fitted
# residual is ~1e-12 against autograd and ~1e-6 against central differences. Another formula
# (a missing g'(z), a wrong index) leaves residuals of percents. 1e-3 sits between the two.
_FIT_TOLERANCE = 1e-3
# A fitted factor this close to -1 or 1 counts as exactly that (the fit is as good as _FIT_TOLERANCE).
_FACTOR_TOLERANCE = 1e-3
# "About m times": the factor is read off a fit, so a few percent is still the same story.
_SAMPLES_TOLERANCE = 0.05


@dataclass(frozen=True)
class BackpropRow:
    """One parameter's verdict in a `BackpropReport`.

    ``kind`` is one of "ok", "shape", "transposed", "sign", "scale", "regularization",
    "values", "nonfinite", "missing" or "type"; ``message`` says it in words and how to fix it.
    Errors and ``worst_index`` are None when the values cannot be compared (a wrong shape).
    """

    key: Any
    expected_shape: tuple
    returned_shape: Optional[tuple]
    max_abs_error: Optional[float]
    max_rel_error: Optional[float]
    worst_index: Optional[tuple]
    kind: str
    message: str

    @property
    def ok(self) -> bool:
        """True when this gradient matches (``kind == "ok"``)."""
        return self.kind == "ok"


class BackpropReport:
    """What `check_backprop` found: one `BackpropRow` per parameter, and how it knew.

    ``bool(report)`` is ``report.ok``, so ``assert tg.check_backprop(...)`` works like
    ``assert tg.gradcheck(...)``; ``print(report)`` shows the table and every wrong parameter.
    """

    def __init__(self, rows: list, method: str, reason: Optional[str] = None, extra_keys: tuple = ()):
        self.rows = list(rows)
        self.method = method            # "autograd" or "central differences"
        self.reason = reason            # why autograd could not be used (None when it was)
        self.extra_keys = tuple(extra_keys)  # gradients returned for keys that params does not have

    @property
    def ok(self) -> bool:
        """True when every gradient matches and none was returned for a key that params lacks."""
        return not self.extra_keys and all(row.ok for row in self.rows)

    @property
    def wrong(self) -> list:
        """The rows that are not ok."""
        return [row for row in self.rows if not row.ok]

    def __bool__(self) -> bool:
        """``report.ok``, so ``assert tg.check_backprop(...)`` fails on a wrong gradient."""
        return self.ok

    def __getitem__(self, key) -> BackpropRow:
        """The `BackpropRow` of one parameter, by its key in params (a dict key or a list index)."""
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"no parameter {key!r}; the parameters are {[row.key for row in self.rows]}")

    def __repr__(self) -> str:
        return (f"BackpropReport(ok={self.ok}, method={self.method!r}, "
                f"wrong={[row.key for row in self.wrong]})")

    _key_title, _key_word = "param", "parameter"  # the first column's heading; the word in notes

    def _title(self) -> str:
        reference = self.method + (f" (autograd was not usable: {self.reason})" if self.reason else "")
        verdict = ("all gradients match" if self.ok
                   else f"{len(self.wrong)} of {len(self.rows)} gradients are wrong")
        return f"check_backprop: {verdict}; reference: {reference}"

    def _table(self) -> tuple:
        """(header, rows of strings): one row per gradient."""
        header = (self._key_title, "expected shape", "returned shape", "max abs err", "max rel err",
                  "worst index", "kind")
        rows = [(str(row.key), shape_text(row.expected_shape), shape_text(row.returned_shape),
                 _number_text(row.max_abs_error), _number_text(row.max_rel_error),
                 "-" if row.worst_index is None else str(row.worst_index), row.kind)
                for row in self.rows]
        return header, rows

    def _notes(self) -> list:
        # Every wrong gradient gets its own line; ok rows only when they carry a note.
        notes = [f"{self._key_word} {row.key!r}: {row.message}" for row in self.rows
                 if not row.ok or row.message != "correct"]
        if len(self.rows) >= 2 and all(row.kind == "values" for row in self.rows):
            # One wrong output error spoils every gradient behind it, each by a different amount.
            notes.append(
                "every gradient is wrong, and none by a constant factor, sign, transpose or shape: the "
                "mistake is where they all start, the error at the output. backprop probably "
                "differentiates another cost than `cost`: a - y is the output error of softmax with "
                "cross-entropy (or sigmoid with binary cross-entropy), not of binary cross-entropy on "
                "a softmax or of a squared error. Derive dcost/d(output) from `cost` itself.")
        if self.extra_keys:
            notes.append("backprop also returned gradients for keys that params does not have: "
                         + ", ".join(repr(key) for key in self.extra_keys))
        return notes

    def __str__(self) -> str:
        return "\n".join([self._title(), *text_table(*self._table()), *self._notes()])

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython / Jupyter text display
        printer.text(str(self))

    def _repr_html_(self) -> str:  # Jupyter: a table, the wrong rows tinted
        bad = tuple(i for i, row in enumerate(self.rows) if not row.ok)
        return html_table(self._title(), *self._table(), self._notes(), bad_rows=bad)


def check_backprop(cost: Callable, backprop: Callable, params, *args,
                   atol: float = 1e-6, rtol: float = 1e-4) -> BackpropReport:
    """Check hand-derived gradients (your own NumPy backprop) against the real ones.

    The reference comes from autograd: `cost` is called with the parameters as float64
    Tensors (NumPy functions on Tensors are recorded), then differentiated. Where `cost`
    cannot be traced (an unsupported NumPy function raises, it returns a plain number, or
    its result is not connected to the parameters), central differences on float64 copies
    are used instead, and the report says why. The caller's arrays are never modified: the
    data reach `cost` and `backprop` read-only, and `backprop` gets copies of the parameters.

    Parameters
    ----------
    cost : callable
        ``cost(params, *args)`` returns the scalar cost.
    backprop : callable
        ``backprop(params, *args)`` returns the gradients, in the structure of `params`.
    params : list or dict of array_like
        The parameters, as your own code passes them around.
    *args
        Passed on to `cost` and `backprop` (data, labels...). The length of the first one's
        axis 0 is taken as the number of samples m, to recognise a missing or extra 1/m.
    atol, rtol : float
        A gradient is right when ``|returned - expected| <= atol + rtol * |expected|``
        everywhere (``np.allclose``).

    Returns
    -------
    BackpropReport
        ``.ok``, ``.method``, ``.rows`` (also ``report[key]``), and ``str(report)``: a table
        and one line per wrong parameter saying what kind of mistake it looks like.

    Raises
    ------
    ValueError
        `cost` does not return a single number or has no finite gradient at `params`,
        `backprop` returns a list of another length (or one array for a list), or either
        function writes into the arrays it is given (they are passed read-only: each is
        called several times with the same parameters and data), or `cost` computes in
        float32 and autograd cannot be used (central differences in float32 are too coarse).
    TypeError
        `params` is not a list or dict of numeric arrays, or the gradients do not match its kind.

    Examples
    --------
    >>> import numpy as np
    >>> from tinygrad_edu.gradcheck import check_backprop
    >>> x = np.array([[1.0, 2.0, 0.0], [3.0, -1.0, 1.0], [0.5, 0.0, 2.0], [1.0, 1.0, 1.0]])
    >>> def cost(p, x):                      # mean of (x @ w)**2 over the 4 samples
    ...     return np.sum(np.square(np.dot(x, p[0]))) / x.shape[0]
    >>> def backprop(p, x):                  # forgot the 2 of d(u**2) = 2u du
    ...     return [np.dot(x.T, np.dot(x, p[0])) / x.shape[0]]
    >>> report = check_backprop(cost, backprop, [np.array([[0.5], [-0.25], [1.0]])], x)
    >>> report.ok, report.method, report[0].kind
    (False, 'autograd', 'scale')
    >>> print(report[0].message)                          # doctest: +ELLIPSIS
    looks like the right gradient times 0.5: a factor of 2: check a 0.5 ...
    """
    is_dict = isinstance(params, Mapping)
    if not is_dict and not isinstance(params, (list, tuple)):
        raise TypeError(
            f"check_backprop: params must be a list or dict of arrays, not {type(params).__name__}")
    keys = list(params) if is_dict else list(range(len(params)))
    arrays = [_as_float64(params[key], key) for key in keys]
    args = tuple(_read_only(arg) for arg in args)  # the caller's data must come back as it was
    expected, method, reason = _reference_gradients(cost, keys, arrays, is_dict, args)
    for key, e in zip(keys, expected):
        if not np.all(np.isfinite(e)):
            raise ValueError(f"check_backprop: the true gradient for parameter {key!r} is not finite "
                             f"(by {method}): the cost overflows or is not differentiable at these values")
    # Copies: backprop may update the parameters it is given (not the data), and the caller's
    # arrays must stay as they were.
    returned = _call("backprop", backprop, _repack(keys, [a.copy() for a in arrays], is_dict), args)
    returned, extra_keys = _align(returned, keys, arrays, is_dict)
    samples = _sample_count(args)
    rows = [_diagnose(key, e, r, p, samples, atol, rtol)
            for key, e, r, p in zip(keys, expected, returned, arrays)]
    return BackpropReport(rows, method, reason, extra_keys)


def _as_float64(value, key) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)  # always a copy
    except (TypeError, ValueError) as error:
        raise TypeError(f"check_backprop: parameter {key!r} is not an array of numbers ({error})") from None
    return array


def _repack(keys: list, values: list, is_dict: bool):
    return dict(zip(keys, values)) if is_dict else list(values)


def _read_only(value):
    """A read-only view of an array (anything else as it is): the learner's functions are called
    many times with the same arrays, so one that writes into them must fail, not drift."""
    if not isinstance(value, np.ndarray):
        return value
    view = value.view()
    view.flags.writeable = False
    return view


def _call(role: str, function: Callable, params, args: tuple):
    """function(params, *args), with a write into a read-only array explained."""
    try:
        return function(params, *args)
    except ValueError as error:
        if "read-only" not in str(error):
            raise
        what = "the data (the arguments after params)" if role == "backprop" else "params or the data"
        raise ValueError(
            f"check_backprop: {role} writes into {what} in place ({error}). check_backprop calls "
            f"{role} several times with the same arrays, as a training loop does, so it must leave "
            "them as they are: write x = x - x.mean(axis=0), not x -= x.mean(axis=0) (a library "
            "that only reads but insists on writable arrays can be given a copy, np.array(x))") from error


def _scalar(result) -> float:
    if not _is_numeric(result):
        raise ValueError(f"check_backprop: cost must return a single number, but it returned "
                         f"{type(result).__name__}")
    value = np.asarray(result)
    if value.size != 1:
        raise ValueError(
            f"check_backprop: cost must return a single number, but it returned shape {value.shape}")
    return float(value.reshape(()))


def _reference_gradients(cost, keys, arrays, is_dict, args):
    """(gradients, method, reason): autograd when `cost` traces, else central differences."""

    def value(*points):
        return _scalar(_call("cost", cost, _repack(keys, [_read_only(p) for p in points], is_dict), args))

    coarseness = 1.0
    try:
        with enable_grad():
            tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
            result = cost(_repack(keys, tensors, is_dict), *args)
    except Exception as error:  # any failure on Tensors: the plain-array run below has the last word
        reason = f"cost raised {type(error).__name__} on Tensors: {error}"
    else:
        at = _scalar(result)
        if not isinstance(result, Tensor):
            reason = (f"cost returned {type(result).__name__}, not a Tensor (the graph was left, "
                      "e.g. through float(), .item() or np.asarray)")
        elif not result.requires_grad:
            reason = "cost's result is not connected to the parameters in the graph"
        else:
            found = grad(result, tensors, allow_unused=True)
            expected = [np.zeros(a.shape) if g is None else np.asarray(g.data, dtype=np.float64)
                        for g, a in zip(found, arrays)]
            # A non-finite gradient cannot be probed; check_backprop reports it as it is.
            finite = all(np.all(np.isfinite(e)) for e in expected)
            # The precision the cost computes in: its ops' outputs (float32 data met by float64
            # parameters computes in float64).
            coarseness = max([_coarseness(node) for node in toposort([result]) if type(node) is Context],
                             default=1.0)
            failed = _first_failed_probe(value, arrays, expected, at, coarseness) if finite else None
            if failed is None:
                return expected, "autograd", None
            reason = (f"autograd's gradient for parameter {keys[failed]!r} disagrees with a finite "
                      "difference (part of cost left the graph, e.g. through np.asarray or .data)")
    sample = _call("cost", cost, _repack(keys, [_read_only(a) for a in arrays], is_dict), args)
    numeric = numeric_grad(value, arrays)
    # Central differences need the cost to ~1e-16: in float32 a step of 1e-6 is lost in rounding
    # (unless the cost does not change at all: then they are exactly 0).
    if max(coarseness, _coarseness(sample)) > 1 and any(np.any(g) for g in numeric):
        raise ValueError(
            "check_backprop: cost computes in lower precision than float64 (float32 or float16), too "
            "coarse for finite differences to give the true gradients, and autograd could not be used "
            f"({reason}). Compute cost in float64 for the check (e.g. leave out .astype(np.float32))")
    return numeric, "central differences", reason


def _coarseness(result) -> float:
    """How many times coarser than float64 a value of the cost is: 1, or about 5e8 in float32."""
    dtype = getattr(result, "dtype", None)  # a Tensor's, a node's or NumPy's; a Python float is float64
    if dtype is None or not np.issubdtype(dtype, np.floating):
        return 1.0
    return max(float(np.finfo(dtype).eps / np.finfo(np.float64).eps), 1.0)


def _first_failed_probe(value, arrays, expected, at, coarseness: float = 1.0):
    """Index of the first parameter whose gradient fails a directional finite difference, or None.

    The graph can be silently incomplete (np.asarray(t) inside cost gives plain numbers), so
    each gradient is tested along one random +-1 direction v: (f(p + eps v) - f(p - eps v)) / 2eps
    must equal sum(gradient * v). Two evaluations per parameter, whatever its size. A cost
    computed in float32 (`coarseness` about 5e8) rounds far more: the step grows with the cube
    root of the coarseness (8e-4) and the error allowed with its square root (2e-3 (1 + |f|)),
    still far below the size of a term that left the graph.
    """
    eps = 1e-6 * coarseness ** (1 / 3)
    allowed = coarseness ** 0.5
    rng = np.random.default_rng(0)  # fixed: the verdict must not depend on the global seed
    for i, (array, g) in enumerate(zip(arrays, expected)):
        if array.size == 0:
            continue
        direction = rng.choice([-1.0, 1.0], size=array.shape)
        points = list(arrays)
        points[i] = array + eps * direction
        above = value(*points)
        points[i] = array - eps * direction
        below = value(*points)
        numeric, analytic = (above - below) / (2 * eps), float(np.sum(g * direction))
        # Rounding in f is about 1e-16 |f|, divided by 2 eps: 1e-7 (1 + |f|) is far above it.
        if abs(numeric - analytic) > allowed * (1e-7 * (1 + abs(at)) + 1e-6 * abs(analytic)):
            return i
    return None


def _align(returned, keys, arrays, is_dict):
    """The returned gradients as a list in params' order, and any extra keys (dicts only)."""
    if is_dict:
        if not isinstance(returned, Mapping):
            raise TypeError(f"check_backprop: params is a dict, so backprop must return a dict with the same "
                            f"keys, but it returned {type(returned).__name__}")
        extra = [key for key in returned if key not in keys]
        return [returned.get(key, _MISSING) for key in keys], extra
    if isinstance(returned, (Mapping, str)) or not isinstance(returned, (Sequence, np.ndarray)):
        raise TypeError(f"check_backprop: params is a list, so backprop must return a list of gradients "
                        f"in the same order, but it returned {type(returned).__name__}")
    if isinstance(returned, np.ndarray) and (returned.ndim == 0 or len(returned) != len(arrays)):
        raise ValueError(f"check_backprop: backprop returned one array of shape "
                         f"{shape_text(returned.shape)}, not a list of {len(arrays)} gradient(s); "
                         "return a list, e.g. [dw] for a single parameter")
    if len(returned) != len(arrays):
        got = ", ".join(shape_text(np.shape(g)) if _is_numeric(g) else type(g).__name__ for g in returned)
        want = ", ".join(shape_text(a.shape) for a in arrays)
        raise ValueError(f"check_backprop: backprop returned {len(returned)} gradients ({got}) for "
                         f"{len(arrays)} parameters ({want}); return one gradient per parameter, in order")
    return list(returned), []


_MISSING = object()


def _is_numeric(value) -> bool:
    if value is None or isinstance(value, (str, bytes)):  # NumPy would read None as nan, "1" as 1.0
        return False
    try:
        np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _sample_count(args) -> Optional[int]:
    """m, the number of samples: the length of axis 0 of the first extra argument, if any."""
    if args and len(np.shape(args[0])) >= 1:
        return int(np.shape(args[0])[0])
    return None


def _diagnose(key, expected, returned, param, samples, atol, rtol) -> BackpropRow:
    shape = expected.shape

    def row(kind, message, returned_shape=None, errors=(None, None, None)):
        return BackpropRow(key, shape, returned_shape, *errors, kind, message)

    if returned is _MISSING:
        return row("missing", f"backprop returned no gradient for key {key!r}")
    if returned is None:
        return row("missing", "backprop returned None for this parameter")
    if not _is_numeric(returned):
        return row("type", f"backprop returned a {type(returned).__name__}, not an array of numbers")
    got = np.asarray(returned, dtype=np.float64)
    if not np.all(np.isfinite(got)):
        index = _index(np.argwhere(~np.isfinite(got))[0])
        return row("nonfinite", f"contains {got[index]} at index {index} (nan or inf: look for an overflow "
                   "in exp, a log(0) or a 0/0 on the way)", got.shape, (None, None, index))
    if got.shape != shape:
        if not _broadcasts_back(got.shape, shape):
            return row(*_diagnose_shape(expected, got, samples, atol, rtol), got.shape)
        # (26,) for a (1, 26) bias: p - lr * grad broadcasts back to (1, 26), so no harm is done.
        returned_shape, got = got.shape, got.reshape(shape)
    else:
        returned_shape = shape
    errors = _errors(expected, got, atol)
    kind, message = _classify_values(expected, got, param, samples, atol, rtol, errors)
    if kind == "ok" and returned_shape != shape:
        message += (f" (shape {shape_text(returned_shape)} for {shape_text(shape)} is harmless: "
                    f"p - lr * grad broadcasts back to {shape_text(shape)})")
    return row(kind, message, returned_shape, errors)


def _broadcasts_back(returned_shape: tuple, shape: tuple) -> bool:
    """True when `returned_shape` is `shape` missing leading length-1 axes only."""
    if int(np.prod(returned_shape)) != int(np.prod(shape)):
        return False
    try:
        return np.broadcast_shapes(returned_shape, shape) == shape
    except ValueError:
        return False


def _errors(expected: np.ndarray, got: np.ndarray, atol: float):
    """(max abs error, max rel error, index of the max abs error); |expected| floored at atol."""
    if expected.size == 0:
        return 0.0, 0.0, None
    error = np.abs(got - expected)
    floor = atol if atol > 0 else np.finfo(np.float64).tiny
    worst = _index(np.unravel_index(np.argmax(error), error.shape))
    return float(error.max()), float(np.max(error / np.maximum(np.abs(expected), floor))), worst


def _index(index) -> tuple:
    return tuple(int(i) for i in index)


def _diagnose_shape(expected, got, samples, atol, rtol):
    """(kind, message) for a gradient whose shape is not the parameter's."""
    shape = expected.shape
    said = f"the shape is {shape_text(got.shape)}, expected {shape_text(shape)}"
    if got.ndim == expected.ndim == 2 and got.shape == shape[::-1] and min(shape) > 1:
        if np.allclose(got.T, expected, rtol=rtol, atol=atol):
            return "transposed", (f"transposed: {said}, and its transpose is right (for z = a @ W, "
                                  "dW = a.T @ dz, which has W's shape)")
        return "shape", f"{said} (the transpose), and even transposed the values are wrong"
    if got.size == expected.size and np.allclose(got.reshape(shape), expected, rtol=rtol, atol=atol):
        return "shape", f"the values are right but {said}: reshape it with .reshape{shape_text(shape)}"
    for axis in range(got.ndim):
        for keepdims in (True, False):
            summed = got.sum(axis=axis, keepdims=keepdims)
            if summed.shape != shape and not _broadcasts_back(summed.shape, shape):
                continue
            if np.allclose(summed.reshape(shape), expected, rtol=rtol, atol=atol):
                length = got.shape[axis]
                what = f"length {length}" + (", the samples" if length == samples else "")
                fix = f".sum(axis={axis}, keepdims=True)" if keepdims else f".sum(axis={axis})"
                return "shape", f"{said}: axis {axis} ({what}) was not summed: use {fix}"
    hint = ""
    if samples is not None and samples in got.shape and samples not in shape:
        hint = (f"; it still has an axis of length {samples} (the samples): a sum over the samples "
                "is missing or on the wrong axis")
    return "shape", f"wrong shape: {said}, so the values cannot be compared{hint}"


def _classify_values(expected, got, param, samples, atol, rtol, errors):
    """(kind, message) for a gradient of the right shape."""
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return "ok", "correct"
    if np.allclose(got, -expected, rtol=rtol, atol=atol):
        return "sign", "sign flipped: returned = -expected (check the order of a subtraction, y - h vs h - y)"
    if expected.ndim == 2 and expected.shape[0] == expected.shape[1] and np.allclose(
            got, expected.T, rtol=rtol, atol=atol):
        return "transposed", ("transposed: returned = expected.T (for z = a @ W, dW = a.T @ dz, "
                              "not dz.T @ a)")
    fit = _factor_fit(expected, got, param, samples)
    if fit is not None:
        factor, decay = fit
        apart = " (the L2 term apart)" if decay else ""
        if abs(factor + 1) <= _FACTOR_TOLERANCE:
            return "sign", (f"sign flipped{apart}: returned is about -expected (check the order of a "
                            "subtraction, y - h vs h - y)")
        if abs(factor - 1) <= _FACTOR_TOLERANCE and decay:
            per_sample = f" = {decay * samples:.4g}/m" if samples else ""
            return "regularization", (
                f"the data part is right, but returned - expected = {decay:.4g}{per_sample} x the parameter "
                "itself: the L2 (weight decay) term is missing or has the wrong factor (the gradient of "
                "lmda/(2m) * sum(W**2) is lmda/m * W)")
        shown = f"{factor:.6f}" if abs(factor - 1) < 0.01 else f"{factor:.4g}"
        return "scale", f"looks like the right gradient times {shown}{apart}: {_factor_text(factor, samples)}"
    abs_error, rel_error, worst = errors
    return "values", (f"wrong values: the largest error is at index {worst}: returned {got[worst]:.6g}, "
                      f"expected {expected[worst]:.6g} (max abs error {abs_error:.3g}, "
                      f"max rel error {rel_error:.3g})")


def _factor_fit(expected, got, param, samples):
    """(c, d) with got ~ c * expected + d * param, d = 0 when a plain multiple fits; else None.

    The d * param term is the L2 (weight decay) gradient: a learner's bug in the data term
    (a missing 1/m) scales it but not lmda/m * W, so got is no exact multiple of expected.
    """
    e, r = expected.ravel(), got.ravel()
    size, norm_e = e.size, np.linalg.norm(e)
    if norm_e == 0:
        return None
    factor = float(r @ e) / norm_e**2
    known = samples is not None and samples > 1 and (
        abs(abs(factor) / samples - 1) < _SAMPLES_TOLERANCE
        or abs(abs(factor) * samples - 1) < _SAMPLES_TOLERANCE)
    # With one or two numbers any pair is "a multiple": only believe a factor that means something.
    left = np.linalg.norm(r - factor * e)
    multiple = (size >= 3 or known) and left <= _FIT_TOLERANCE * abs(factor) * norm_e
    if multiple and abs(factor - 1) > _FACTOR_TOLERANCE:
        return factor, 0.0
    p = param.ravel()
    norm_p = np.linalg.norm(p)
    # Two unknowns need enough numbers, and expected and param must not be (nearly) parallel.
    if size >= 6 and norm_p > 0 and np.linalg.norm(p - (p @ e) / norm_e**2 * e) > _FIT_TOLERANCE * norm_p:
        (two_factor, decay), *_ = np.linalg.lstsq(np.stack([e, p], axis=1), r, rcond=None)
        residual = np.linalg.norm(r - two_factor * e - decay * p)
        # The param term must explain (nearly) all that a plain multiple leaves, not just noise.
        if residual <= _FIT_TOLERANCE * abs(two_factor) * norm_e and residual <= 0.01 * left:
            return float(two_factor), float(decay)
    # A factor within 1e-3 of 1 that no L2 term explains: a constant slightly off.
    return (factor, 0.0) if multiple else None


def _factor_text(factor: float, samples: Optional[int]) -> str:
    sign = "the sign is flipped too, and " if factor < 0 else ""
    size = abs(factor)
    if samples is not None and samples > 1:
        if abs(size / samples - 1) < _SAMPLES_TOLERANCE:
            return (f"{sign}about {samples} x too large: a missing 1/m "
                    f"(a sum instead of a mean over the {samples} samples)")
        if abs(size * samples - 1) < _SAMPLES_TOLERANCE:
            return (f"{sign}about {samples} x too small: an extra 1/m "
                    f"(divided by the {samples} samples twice, or a mean where a sum was needed)")
    if abs(size - 2) < 0.02 or abs(size - 0.5) < 0.005:
        return f"{sign}a factor of 2: check a 0.5 (as in 0.5 * (y - h)**2) or a 2 from a square"
    if abs(size - 4) < 0.4:
        return (f"{sign}a factor of about 4 is what a missing sigmoid derivative g(z) (1 - g(z)) "
                "looks like: it is about 1/4 when z is near 0")
    return f"{sign}a constant factor is wrong (check constants such as 0.5, 2, 1/m, the learning rate)"


def _number_text(value) -> str:
    return "-" if value is None else f"{value:.1e}"


class GradientReport(BackpropReport):
    """What `compare_grads` found: one `BackpropRow` per name, in backward order.

    ``report.first_wrong`` is the row to fix first: gradients after it in backward order are
    computed from it, so they may be wrong only because it is.
    """

    _key_title, _key_word = "name", "gradient"

    def __init__(self, rows: list, extra_keys: tuple = ()):
        super().__init__(rows, method="autograd", extra_keys=extra_keys)

    @property
    def first_wrong(self) -> Optional[BackpropRow]:
        """The first wrong gradient in backward order (None when all match)."""
        return self.wrong[0] if self.wrong else None

    def _title(self) -> str:
        if self.ok:
            return f"compare_grads: all {len(self.rows)} gradients match autograd's (rows in backward order)"
        first = self.first_wrong
        if first is None:  # only unknown names
            return "compare_grads: the gradients given match, but some names are not in expected"
        return (f"compare_grads: {len(self.wrong)} of {len(self.rows)} gradients are wrong; the first in "
                f"backward order is {first.key!r} ({first.kind}): fix it first, the ones after it are "
                "computed from it")

    def __repr__(self) -> str:
        first = None if self.first_wrong is None else self.first_wrong.key
        return f"GradientReport(ok={self.ok}, first_wrong={first!r}, wrong={[row.key for row in self.wrong]})"


def compare_grads(expected: Mapping, actual: Mapping, atol: float = 1e-6, rtol: float = 1e-4,
                  samples: Optional[int] = None) -> GradientReport:
    """Hold a learner's own gradients of every step against autograd's (Karpathy's ``cmp``).

    Parameters
    ----------
    expected : dict of name -> Tensor
        Tensors whose ``.grad`` autograd filled: leaves, or intermediate tensors that called
        ``retain_grad()`` before ``loss.backward()``.
    actual : dict of name -> array
        The learner's gradients under the same names (``"dz2": dz2``).
    atol, rtol : float
        Tolerances, as in ``np.allclose``.
    samples : int, optional
        The batch size m, so that a factor of m or 1/m is named as a missing or extra 1/m.

    Returns
    -------
    GradientReport
        ``.ok``, one row per name in backward order (shape, max abs/rel error, kind of error:
        shape, transposed, scale, sign, values, ...) and ``.first_wrong``, the one to fix first.
        Prints as a table; shows as an HTML table in Jupyter.

    Raises
    ------
    TypeError
        `expected` or `actual` is not a dict, or an expected value is not a Tensor.
    ValueError
        A tensor in `expected` has no ``.grad`` (say which, and that retain_grad() keeps it).

    Examples
    --------
    >>> import numpy as np
    >>> import tinygrad_edu as tg
    >>> w = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> z = w * 2.0
    >>> z.retain_grad()
    >>> (z * z).sum().backward()
    >>> dz = 2 * z.numpy()                     # right: d(z**2)/dz
    >>> dw = dz                                # wrong: forgot dz/dw = 2
    >>> report = tg.compare_grads({"dw": w, "dz": z}, {"dw": dw, "dz": dz})
    >>> [row.key for row in report.rows]      # backward order: dz is known before dw
    ['dz', 'dw']
    >>> report.ok, report.first_wrong.key, report.first_wrong.kind
    (False, 'dw', 'scale')
    """
    if not isinstance(expected, Mapping) or not isinstance(actual, Mapping):
        raise TypeError("compare_grads needs two dicts: expected (name -> Tensor whose .grad autograd "
                        f"filled) and actual (name -> your array), got {type(expected).__name__} and "
                        f"{type(actual).__name__}")
    for name, tensor in expected.items():
        if not isinstance(tensor, Tensor):
            raise TypeError(f"expected[{name!r}] is a {type(tensor).__name__}, not a Tensor whose .grad "
                            "autograd filled")
        if (not tensor.is_leaf and not tensor.retains_grad) or tensor.grad is None:
            kept = ("call .retain_grad() on it before loss.backward(): an intermediate tensor does not "
                    "keep its gradient otherwise" if not tensor.is_leaf
                    else "call loss.backward() first, and check that the loss depends on it")
            raise ValueError(f"expected[{name!r}] has no .grad: {kept}")
    rows = []
    for name, tensor in _backward_order(expected):
        reference = np.asarray(tensor.grad.data, dtype=np.float64)
        # The L2 term is read off a parameter's own values; an intermediate has none.
        param = np.asarray(tensor.data, dtype=np.float64) if tensor.is_leaf else np.zeros_like(reference)
        rows.append(_diagnose(name, reference, actual.get(name, _MISSING), param, samples, atol, rtol))
    return GradientReport(rows, extra_keys=tuple(key for key in actual if key not in expected))


def _backward_order(expected: Mapping) -> list:
    """(name, tensor) pairs in the order backward completes their gradients: an intermediate at
    the step that made it (newest first), a leaf just after its last use."""
    pairs = list(expected.items())
    last_use = {}  # id(leaf) -> seq of the newest node that used it
    for item in toposort([tensor for _, tensor in pairs if not tensor.is_leaf]):
        if type(item) is Context:
            for parent in item.parents:
                if isinstance(parent, Tensor):
                    last_use[id(parent)] = max(last_use.get(id(parent), -1), item.seq)

    def position(pair):
        tensor = pair[1]
        return (tensor._ctx.seq, 1) if not tensor.is_leaf else (last_use.get(id(tensor), -1), 0)

    return sorted(pairs, key=position, reverse=True)  # stable: ties keep the caller's order
