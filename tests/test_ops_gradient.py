"""Gradients of every differentiable row of tests/op_table.py, against central differences.

For float64 inputs and a random upstream gradient g, the engine's vector-Jacobian
product (out.backward(g)) must match numeric_grad of sum(ref(*inputs) * g).
Integer and boolean inputs (indices, masks, conditions) are constants.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from op_table import OPS, draw_case, make_inputs
from tinygrad_edu import Tensor
from tinygrad_edu.gradcheck import numeric_grad

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
    """Fail naming the worst element (index, analytic and numeric values)."""
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if excess.size and excess.max() > 0:
        worst = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(
            f"{where}: worst element {tuple(int(i) for i in worst)}: "
            f"analytic {float(analytic[worst]):.10g} vs numeric {float(numeric[worst]):.10g} "
            f"({int(np.sum(excess > 0))} of {excess.size} elements off)"
        )


@pytest.mark.parametrize("spec", [spec for spec in OPS if spec.grad], ids=lambda s: s.name)
@given(data=st.data())
def test_gradient(spec, data):
    arrays, kwargs = draw_case(spec, data, np.float64, for_grad=True)
    inputs = make_inputs(spec, arrays, requires_grad=True)
    out = spec.fn(*inputs, **kwargs)
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
