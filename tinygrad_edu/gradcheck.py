"""Numeric gradients by central differences, and `gradcheck`: autograd's gradients against them.

Public because learners use them on their own functions. Everything runs in float64:
in float32, central differences are too coarse to check anything. Nothing here changes the
arrays it is given. Checking a learner's own NumPy gradients (check_backprop, compare_grads)
is backprop_check.py's job.
"""
from __future__ import annotations

import numpy as np

from .autograd import grad
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with the numeric one."""


def numeric_grad(f, arrays, eps: float = 1e-6) -> list:
    """Central-difference gradient of the scalar ``f(*arrays)`` with respect to each array.

    Parameters
    ----------
    f : callable
        Takes ndarrays (as many as `arrays`) and returns a number.
    arrays : sequence of array_like
        The point to differentiate at; converted to float64 copies (the originals are untouched).
    eps : float
        Step: df/dx ~ (f(x + eps) - f(x - eps)) / (2 eps), error O(eps**2).

    Returns
    -------
    list of ndarray
        One float64 array per input, of its shape.
    """
    # C order: reshape(-1) below must be a view, which it is not for a transposed copy
    points = [np.array(a, dtype=np.float64, order="C") for a in arrays]
    grads = []
    for point in points:
        g = np.zeros_like(point)
        flat_point, flat_g = point.reshape(-1), g.reshape(-1)  # views into point and g
        for i in range(flat_point.size):
            original = flat_point[i]
            flat_point[i] = original + eps
            above = float(f(*points))
            flat_point[i] = original - eps
            below = float(f(*points))
            flat_point[i] = original
            flat_g[i] = (above - below) / (2 * eps)
        grads.append(g)
    return grads


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Check autograd's gradients of `fn` against central differences, in float64.

    Every floating Tensor in `inputs` that requires grad is checked. For an output that is
    not a single number, the check is on ``sum(output * v)`` for a fixed random ``v``, which
    tests the whole Jacobian: a wrong entry cannot hide behind a random weighting.

    Parameters
    ----------
    fn : callable
        Takes the inputs (in order) and returns a Tensor or a tuple of Tensors.
    inputs : Tensor or sequence
        Tensors and any other arguments for `fn`.
    eps, atol, rtol : float
        Finite-difference step, and the allowed error ``atol + rtol * |numeric|``.
    raise_exception : bool
        Raise `GradcheckError` on a mismatch (default); otherwise return False.

    Returns
    -------
    bool
        True when every gradient matches.

    Examples
    --------
    >>> import numpy as np, tinygrad_edu as tg
    >>> x = tg.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    >>> tg.gradcheck(lambda t: (t * t).tanh(), [x])
    True
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    # float64 copies of floating Tensors: the same requires_grad, the caller's Tensors untouched.
    inputs = [
        Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad, name=x.name)
        if isinstance(x, Tensor) and x.dtype.kind == "f" else x
        for x in inputs
    ]
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input is a floating Tensor with requires_grad=True")
    weights = _output_weights(fn(*inputs))
    weighted = any(w.size > 1 for w in weights)

    def weighted_sum(outputs):
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return sum((out * w).sum() for out, w in zip(outputs, weights))

    analytic = grad(weighted_sum(fn(*inputs)), [inputs[i] for i in checked], allow_unused=True)

    def at(*arrays):
        trial = list(inputs)
        for i, array in zip(checked, arrays):
            # Still requiring grad: fn may take gradients itself (gradcheck of a gradient).
            trial[i] = Tensor(array, requires_grad=True)
        return weighted_sum(fn(*trial)).item()

    numeric = numeric_grad(at, [inputs[i].data for i in checked], eps=eps)
    for i, a, n in zip(checked, analytic, numeric):
        a = np.zeros_like(n) if a is None else a.data
        excess = np.abs(a - n) - (atol + rtol * np.abs(n))
        # A nan or inf entry on either side is a failure (nan > tol alone would be False), and the worst one.
        excess = np.where(np.isfinite(a) & np.isfinite(n), excess, np.inf)
        if excess.size and np.max(excess) > 0:
            worst = np.unravel_index(np.argmax(excess), n.shape)
            name = f" ({inputs[i].name})" if inputs[i].name else ""
            message = (
                f"gradcheck failed for input {i}{name} of shape {n.shape}: at index {tuple(map(int, worst))} "
                f"the analytic gradient is {a[worst]:.8g} but the numeric one is {n[worst]:.8g} "
                f"(allowed error {atol:g} + {rtol:g} * |numeric|)"
                + ("; both are gradients of sum(output * v), v fixed random weights" if weighted else "")
            )
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def _output_weights(outputs) -> list:
    """A fixed random weight per output element (1 for a one-element output)."""
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    for out in outputs:
        if not isinstance(out, Tensor):  # an ndarray or a number has no graph to check
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, not "
                            f"{type(out).__name__}; compute it with Tensor operations (NumPy functions on "
                            "Tensors give Tensors)")
    rng = np.random.default_rng(0)  # fixed: a check must not depend on the global seed
    return [np.ones(o.shape) if o.size == 1 else rng.uniform(0.5, 1.5, o.shape) for o in outputs]


def __getattr__(name):
    # check_backprop and compare_grads live in backprop_check.py and are importable from here by
    # name too. That file imports numeric_grad from this one, so this import waits until asked.
    if name in ("check_backprop", "compare_grads", "BackpropReport", "BackpropRow", "GradientReport"):
        from . import backprop_check

        return getattr(backprop_check, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
