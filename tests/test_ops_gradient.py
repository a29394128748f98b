"""Gradients of every differentiable row of tests/op_table.py, against central differences.

For float64 inputs and a random upstream gradient g, the engine's vector-Jacobian
product (out.backward(g)) must match numeric_grad of sum(ref(*inputs) * g), wherever
NumPy computes a finite value (no gradient of max over an empty axis or of inf).
Integer and boolean inputs (indices, masks, conditions) are constants. Every node's
backward is also handed a read-only upstream gradient directly (the engine copies the
caller's, so only this catches an op that writes `grad *= ...`).
test_gradient_float32 runs the same case in float32 against the float64 result.
test_recorded_backward runs each op's backward on Tensors (create_graph=True), the
path higher-order gradients take, and checks it against the same numbers.
"""
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from op_table import OPS, draw_case, make_inputs
from tinygrad_edu import Tensor
from tinygrad_edu.autograd import Context
from tinygrad_edu.gradcheck import numeric_grad

# The table draws random broadcastable shapes, stretching both operands on purpose.
pytestmark = pytest.mark.usefixtures("broadcast_guard_off")

GRAD_ROWS = [spec for spec in OPS if spec.grad]

EPS, RTOL, ATOL = 1e-6, 1e-4, 1e-6
# A float32 output (astype) quantises f: a wider step keeps rounding error ~1e-4.
FLOAT32_EPS, FLOAT32_RTOL, FLOAT32_ATOL = 1e-3, 1e-3, 1e-5


def upstream_gradient(data, shape, dtype):
    """A read-only g of ``shape``: magnitudes in [0.5, 1.5], random signs (never ones)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed of g"))
    g = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    g = np.asarray(g, dtype=dtype)
    g.flags.writeable = False
    return g


def assert_grad_close(where, analytic, numeric, rtol, atol):
    """Fail naming the worst element (index, analytic and numeric values); a nan or inf on
    either side is a failure (nan > tolerance alone would be False)."""
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    excess = np.where(np.isfinite(analytic) & np.isfinite(numeric), excess, np.inf)
    if excess.size and excess.max() > 0:
        worst = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(
            f"{where}: worst element {tuple(int(i) for i in worst)}: "
            f"analytic {float(analytic[worst]):.10g} vs numeric {float(numeric[worst]):.10g} "
            f"({int(np.sum(excess > 0))} of {excess.size} elements off)"
        )


def draw_differentiable_case(spec, data, dtype=np.float64, zeros=True):
    """A case where NumPy's reference computes finite values: elsewhere (an error, inf or
    nan, e.g. max over an empty axis, var with ddof >= N) there is no gradient to check."""
    arrays, kwargs = draw_case(spec, data, dtype, for_grad=True, zeros=zeros)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            finite = np.all(np.isfinite(np.asarray(spec.ref(*arrays, **kwargs), dtype=np.float64)))
    except (ValueError, IndexError, TypeError):
        finite = False
    assume(finite)
    return arrays, kwargs


def assert_backward_leaves_grad_alone(out):
    """Call every node's backward with a read-only upstream gradient (the engine's own walk
    hands ops a copy): an op that writes into `grad` raises here, naming itself."""
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if type(node) is not Context or id(node) in seen:
            continue
        seen.add(id(node))
        g = np.ones(node.shape, dtype=node.dtype)
        g.flags.writeable = False
        try:
            node.fn.backward(node, g)
        except ValueError as error:
            if "read-only" not in str(error):
                raise
            raise AssertionError(f"{node.fn.__name__}.backward wrote into its upstream gradient: {error}")
        stack.extend(node.parents)


@pytest.mark.parametrize("spec", GRAD_ROWS, ids=lambda s: s.name)
@given(data=st.data())
def test_gradient(spec, data):
    arrays, kwargs = draw_differentiable_case(spec, data)
    inputs = make_inputs(spec, arrays, requires_grad=True)
    out = spec.fn(*inputs, **kwargs)
    assert_backward_leaves_grad_alone(out)
    g = upstream_gradient(data, out.shape, out.dtype)
    out.backward(Tensor(g))

    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor)]
    g64 = g.astype(np.float64)

    def f(*values):
        args = list(arrays)
        for i, value in zip(wrt, values):
            args[i] = value
        return float(np.sum(np.asarray(spec.ref(*args, **kwargs), dtype=np.float64) * g64))

    if out.dtype == np.float64:
        eps, rtol, atol = EPS, RTOL, ATOL
    else:
        eps, rtol, atol = FLOAT32_EPS, FLOAT32_RTOL, FLOAT32_ATOL
    numeric = numeric_grad(f, [arrays[i].copy() for i in wrt], eps=eps)

    shapes = [np.shape(a) for a in arrays]
    for i, expected in zip(wrt, numeric):
        where = (
            f"{spec.name}: d/d input {i}, input shapes {shapes}, output {out.shape}, "
            f"kwargs {kwargs}"
        )
        grad = inputs[i].grad
        assert grad is not None, f"{where}: no gradient reached this input"
        assert isinstance(grad, Tensor), f"{where}: .grad is a {type(grad).__name__}"
        assert grad.shape == arrays[i].shape, f"{where}: grad shape {grad.shape}"
        assert grad.dtype == arrays[i].dtype, f"{where}: grad dtype {grad.dtype}"
        assert_grad_close(where, np.asarray(grad.data), expected, rtol, atol)


@pytest.mark.parametrize("spec", GRAD_ROWS, ids=lambda s: s.name)
@settings(max_examples=25)  # a precision check on top of test_gradient: fewer examples keep CI quick
@given(data=st.data())
def test_gradient_float32(spec, data):
    """The same case in float32: gradients in float32, within float32's precision of the
    float64 gradients (which test_gradient checks against central differences)."""
    arrays, kwargs = draw_differentiable_case(spec, data)
    out_shape = spec.fn(*make_inputs(spec, arrays, requires_grad=False), **kwargs).shape
    g = upstream_gradient(data, out_shape, np.float64)
    float32_arrays = [a.astype(np.float32) if a.dtype == np.float64 else a for a in arrays]
    if not all(np.all(np.isfinite(a)) for a in float32_arrays if a.dtype.kind == "f"):
        return
    _, wide = vector_jacobian_product(spec, arrays, kwargs, g, create_graph=False)
    inputs, narrow = vector_jacobian_product(spec, float32_arrays, kwargs, g.astype(np.float32), False)
    where = f"{spec.name} in float32: input shapes {[np.shape(a) for a in arrays]}, kwargs {kwargs}"
    for x, n, w in zip(inputs, narrow, wide):
        n, w = np.asarray(n), np.asarray(w)
        assert n.dtype == x.dtype, f"{where}: gradient dtype {n.dtype} for a {x.dtype} input"
        # float32 keeps ~7 digits; sums and products of a few values lose a few ulps each
        scale = 1.0 + (np.max(np.abs(w)) if w.size else 0.0)
        assert_grad_close(where, n.astype(np.float64), w, rtol=1e-3, atol=1e-4 * scale)


def vector_jacobian_product(spec, arrays, kwargs, g, create_graph):
    """(the input Tensors, d sum(fn(inputs) * g) / d inputs): one gradient per float input."""
    inputs = make_inputs(spec, arrays, requires_grad=True)
    wrt = [x for x in inputs if isinstance(x, Tensor)]
    out = spec.fn(*inputs, **kwargs)
    grads = tg.grad(out, wrt, grad_outputs=Tensor(g), create_graph=create_graph, allow_unused=True)
    return wrt, [np.zeros(x.shape, x.dtype) if gr is None else gr for gr, x in zip(grads, wrt)]


@pytest.mark.parametrize("spec", GRAD_ROWS, ids=lambda s: s.name)
@settings(max_examples=8)
@given(data=st.data())
def test_recorded_backward(spec, data):
    """With create_graph=True the same backward runs on Tensors: equal values, and its own
    gradient (a second derivative) matches central differences of the ordinary backward."""
    arrays, kwargs = draw_differentiable_case(spec, data, zeros=False)
    out_shape = spec.fn(*make_inputs(spec, arrays, requires_grad=False), **kwargs).shape
    g = upstream_gradient(data, out_shape, np.float64)
    wrt, recorded = vector_jacobian_product(spec, arrays, kwargs, g, create_graph=True)
    _, plain = vector_jacobian_product(spec, arrays, kwargs, g, create_graph=False)
    where = f"{spec.name}: input shapes {[np.shape(a) for a in arrays]}, kwargs {kwargs}"
    for r, p in zip(recorded, plain):
        np.testing.assert_allclose(np.asarray(r), np.asarray(p), rtol=1e-12, atol=1e-12, err_msg=where)

    # Second order: d/d inputs of sum(vjp_i * w_i), for fixed random weights w_i.
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0.5, 1.5, np.shape(r)) for r in recorded]
    total = sum((r * w).sum() for r, w in zip(recorded, weights) if isinstance(r, Tensor))
    if isinstance(total, Tensor) and total.requires_grad:
        analytic = tg.grad(total, wrt, allow_unused=True)
    else:  # a backward that does not depend on the inputs (linear ops)
        analytic = [None] * len(wrt)
    float_positions = [
        i for i, x in enumerate(make_inputs(spec, arrays, requires_grad=False)) if isinstance(x, Tensor)
    ]

    def weighted_vjp(*values):
        trial = list(arrays)
        for i, value in zip(float_positions, values):
            trial[i] = value
        _, vjp = vector_jacobian_product(spec, trial, kwargs, g, create_graph=False)
        return sum(float(np.sum(np.asarray(v) * w)) for v, w in zip(vjp, weights))

    numeric = numeric_grad(weighted_vjp, [arrays[i] for i in float_positions])
    for i, a, n in zip(float_positions, analytic, numeric):
        a = np.zeros_like(n) if a is None else a.data
        assert_grad_close(f"{where}: second derivative wrt input {i}", a, n, 1e-4, 1e-5)
