"""An outsider's campaign on nn layers and functional at PyTorch's edges.

Each test draws an edge PyTorch's own suites (test_nn.py, test_modules, OpInfo samples) draw:
empty batches and axes, size-1 dims, negative axes, float32 and float64, transposed and
read-only inputs, train and eval, state_dict names. PyTorch's numbers are written here as
literals or formulas, taken from PyTorch 2.13.0 on CPU (torch is never imported by the suite).
"""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import functional as F


def _read_only(array):
    array = np.array(array)
    array.setflags(write=False)
    return array


# ---- softmax and friends over an empty axis ----------------------------------------------------
# PyTorch 2.13.0: for x of shape (3, 0), softmax/log_softmax(x, dim=-1) are empty (3, 0) with an
# empty gradient, and logsumexp(x, dim=-1) is [-inf, -inf, -inf] (the log of an empty sum).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_over_an_empty_axis_is_empty(fn, dtype):
    x = tg.Tensor(_read_only(np.zeros((3, 0), dtype=dtype)), requires_grad=True)
    out = fn(x, axis=-1)
    assert out.shape == (3, 0) and out.dtype == dtype
    out.sum().backward()
    assert x.grad.shape == (3, 0) and x.grad.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_over_an_empty_axis_is_minus_infinity(dtype):
    x = tg.Tensor(np.zeros((3, 0), dtype=dtype), requires_grad=True)
    out = F.logsumexp(x, axis=-1)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.data, [-np.inf] * 3)
    out.sum().backward()
    assert x.grad.shape == (3, 0) and x.grad.dtype == dtype
