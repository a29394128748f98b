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
from tinygrad_edu import nn


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


# ---- binary cross-entropy: the target is a probability too -------------------------------------
# PyTorch 2.13.0: binary_cross_entropy(tensor([0.3, 0.5]), tensor([2.0, 0.0])) raises
# "all elements of target should be between 0 and 1": beyond 1 the loss falls without bound.
@pytest.mark.parametrize("target", [[2.0, 0.0], [-0.5, 1.0], [np.nan, 1.0]])
def test_binary_cross_entropy_refuses_a_target_outside_0_and_1(target):
    with pytest.raises(ValueError, match="target must lie in \\[0, 1\\]"):
        F.binary_cross_entropy(tg.Tensor([0.3, 0.5]), np.array(target))


def test_binary_cross_entropy_takes_targets_at_0_1_and_between():
    probs = tg.Tensor([0.3, 0.5, 0.9], requires_grad=True)
    loss = F.binary_cross_entropy(probs, _read_only([0.0, 1.0, 0.25]), reduction="sum")
    expected = -(np.log(0.7) + np.log(0.5) + 0.25 * np.log(0.9) + 0.75 * np.log(0.1))
    np.testing.assert_allclose(loss.data, expected, rtol=1e-6)


# ---- Linear with no features in or out -----------------------------------------------------------
# PyTorch 2.13.0: nn.Linear(0, 3) on x of shape (2, 0) gives the bias on each row, x.grad of shape
# (2, 0), weight.grad zeros (3, 0) and bias.grad [2, 2, 2] (after out.sum().backward());
# nn.Linear(3, 0) on (2, 3) gives (2, 0) with zero gradients for x (2, 3) and the weight (0, 3).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_with_no_input_features_gives_the_bias(dtype):
    layer = nn.Linear(0, 3, dtype=dtype)
    x = tg.Tensor(_read_only(np.zeros((2, 0), dtype=dtype)), requires_grad=True)
    out = layer(x)
    np.testing.assert_array_equal(out.data, np.broadcast_to(layer.bias.data, (2, 3)))
    out.sum().backward()
    assert x.grad.shape == (2, 0) and x.grad.dtype == dtype
    assert layer.weight.grad.shape == (3, 0) and layer.weight.grad.dtype == dtype
    np.testing.assert_array_equal(layer.bias.grad.data, [2, 2, 2])


@pytest.mark.parametrize("batch_shape", [(2,), (4, 2), ()])
def test_linear_with_no_output_features_is_empty(batch_shape):
    layer = nn.Linear(3, 0)
    x = tg.Tensor(np.ones(batch_shape + (3,), dtype=np.float32), requires_grad=True)
    out = layer(x)
    assert out.shape == batch_shape + (0,)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.zeros(batch_shape + (3,)))
    assert layer.weight.grad.shape == (0, 3) and layer.bias.grad.shape == (0,)


# ---- a float32 loss stays float32 with an integer or bool Tensor target ---------------------------
# PyTorch 2.13.0: mse_loss(float32 input, int64 or bool target) is float32 (type promotion), and a
# float64 target tensor makes it float64; input.grad is float32 either way.
@pytest.mark.parametrize("target_dtype", [np.int64, np.int32, np.bool_])
@pytest.mark.parametrize("loss", [F.mse_loss, F.binary_cross_entropy, F.binary_cross_entropy_with_logits],
                         ids=["mse", "bce", "bce_with_logits"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_an_integer_tensor_target_keeps_a_float32_loss_float32(loss, target_dtype, reduction):
    x = tg.Tensor(np.full((2, 3), 0.25, dtype=np.float32), requires_grad=True)
    target = tg.Tensor(_read_only(np.ones((2, 3), dtype=target_dtype)))
    out = loss(x, target, reduction=reduction)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32
    assert target.dtype == target_dtype  # the caller's Tensor is not changed


def test_mse_with_an_integer_tensor_target_has_pytorchs_value():
    x = tg.Tensor(np.array([0.5, 2.0], dtype=np.float32), requires_grad=True)
    loss = F.mse_loss(x, tg.Tensor(np.array([1, 1])))
    np.testing.assert_allclose(loss.data, 0.625)  # ((0.5 - 1)**2 + (2 - 1)**2) / 2
    loss.backward()
    np.testing.assert_allclose(x.grad.data, [-0.5, 1.0])


def test_a_float64_tensor_target_still_promotes_as_in_pytorch():
    x = tg.Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    loss = F.mse_loss(x, tg.Tensor(np.zeros(2)))
    assert loss.dtype == np.float64
    loss.backward()
    assert x.grad.dtype == np.float32


# ---- softmax needs one axis -----------------------------------------------------------------------
# PyTorch 2.13.0: nn.Softmax(dim=None) and F.softmax(x, dim=None) pick one axis implicitly (dim 1
# for 2-D, with a deprecation warning): softmax(arange(6.).reshape(2, 3)) is [0.090, 0.245, 0.665]
# on each row. A softmax over all six elements would give other numbers silently, so None is refused.
@pytest.mark.parametrize("make", [
    lambda x: F.softmax(x, None), lambda x: F.softmax(x, dim=None), lambda x: F.log_softmax(x, axis=None),
    lambda x: x.softmax(None), lambda x: x.log_softmax(dim=None),
    lambda x: nn.Softmax(dim=None)(x), lambda x: nn.LogSoftmax(None)(x),
])
def test_softmax_with_axis_none_is_refused(make):
    with pytest.raises(TypeError, match="needs the axis"):
        make(tg.Tensor(np.arange(6.0).reshape(2, 3)))


@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_rows_match_pytorch(axis):
    out = nn.Softmax(dim=axis)(tg.Tensor(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_allclose(out.data, [[0.09003057, 0.24472847, 0.66524096]] * 2, rtol=1e-6)


# ---- avg_pool2d with count_include_pad=False -------------------------------------------------------
# PyTorch 2.13.0, avg_pool2d(arange(25.).reshape(1, 1, 5, 5), 3, 2, 1, count_include_pad=False) and its
# input gradient for the upstream gradient arange(9.).reshape(1, 1, 3, 3):
PYTORCH_AVG_NO_PAD = [[3.0, 4.5, 6.0], [10.5, 12.0, 13.5], [18.0, 19.5, 21.0]]
PYTORCH_AVG_NO_PAD_GRAD = [
    [0.0, 1 / 6, 1 / 6, 2 / 3, 0.5], [0.5, 10 / 9, 11 / 18, 35 / 18, 4 / 3],
    [0.5, 17 / 18, 4 / 9, 23 / 18, 5 / 6],
    [2.0, 65 / 18, 29 / 18, 40 / 9, 17 / 6], [1.5, 8 / 3, 7 / 6, 19 / 6, 2.0],
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool2d_without_the_padding_in_the_count_matches_pytorch(dtype):
    x = tg.Tensor(_read_only(np.arange(25.0, dtype=dtype).reshape(1, 1, 5, 5)), requires_grad=True)
    out = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data[0, 0], PYTORCH_AVG_NO_PAD, rtol=1e-6)
    out.backward(np.arange(9.0, dtype=dtype).reshape(1, 1, 3, 3))
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(x.grad.data[0, 0], PYTORCH_AVG_NO_PAD_GRAD, rtol=1e-6)


def test_avg_pool2d_module_without_the_padding_in_the_count_unbatched():
    # PyTorch 2.13.0: nn.AvgPool2d((2, 3), (1, 2), (1, 1), count_include_pad=False) on
    # arange(12.).reshape(1, 3, 4)
    pool = nn.AvgPool2d((2, 3), (1, 2), (1, 1), count_include_pad=False)
    out = pool(tg.Tensor(np.arange(12.0).reshape(1, 3, 4)))
    np.testing.assert_allclose(out.data, [[[0.5, 2.0], [2.5, 4.0], [6.5, 8.0], [8.5, 10.0]]])
    with_pad = nn.AvgPool2d((2, 3), (1, 2), (1, 1))(tg.Tensor(np.arange(12.0).reshape(1, 3, 4)))
    np.testing.assert_allclose(with_pad.data[0, 0], [1 / 6, 6 / 6])  # the zeros counted: each sum / 6


# ---- batch norm's eps -------------------------------------------------------------------------------
# PyTorch 2.13.0 raises "batch_norm eps must be positive during training" for eps=0 with batch
# statistics (a constant channel's variance is 0: 0 / 0), and "must be non-negative" for eps < 0;
# eval with running statistics and eps=0 works.
@pytest.mark.parametrize("make", [
    lambda: nn.BatchNorm1d(3, eps=0.0),
    lambda: nn.BatchNorm1d(3, eps=0.0, track_running_stats=False).eval(),
    lambda: nn.BatchNorm1d(3, eps=-1e-5).eval(),
])
def test_batch_norm_refuses_an_eps_that_could_divide_by_zero(make):
    with pytest.raises(ValueError, match="eps must be"):
        make()(tg.Tensor(np.ones((4, 3), dtype=np.float32)))


def test_batch_norm_in_eval_takes_eps_zero():
    layer = nn.BatchNorm1d(3, eps=0.0).eval()
    np.testing.assert_array_equal(layer(tg.Tensor(np.full((2, 3), 2.0))).data, np.full((2, 3), 2.0))


# ---- pooling with ceil_mode ------------------------------------------------------------------------
# PyTorch 2.13.0 on arange(30.).reshape(1, 1, 5, 6), float64; gradients for an upstream of ones.
def _image_5x6(dtype=np.float64):
    return tg.Tensor(_read_only(np.arange(30.0, dtype=dtype).reshape(1, 1, 5, 6)), requires_grad=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_ceil_mode_keeps_the_last_partial_window(dtype):
    x = _image_5x6(dtype)
    out = F.max_pool2d(x, 2, 2, 0, 1, ceil_mode=True)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.data[0, 0], [[7, 9, 11], [19, 21, 23], [25, 27, 29]])
    out.sum().backward()
    assert x.grad.dtype == dtype
    expected = np.zeros((5, 6))
    expected[np.ix_([1, 3, 4], [1, 3, 5])] = 1
    np.testing.assert_array_equal(x.grad.data[0, 0], expected)


def test_max_pool2d_ceil_mode_with_padding_and_dilation():
    out = F.max_pool2d(_image_5x6(), 3, 2, 1, 2, ceil_mode=True)
    np.testing.assert_array_equal(out.data[0, 0], [[21, 23, 23], [21, 23, 23]])
    assert F.max_pool2d(_image_5x6(), 3, 3, 1, ceil_mode=True).shape == (1, 1, 2, 3)
    # a window that would start past the padding is dropped: 4x4, kernel 3, stride 2 gives 2x2
    four = tg.Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2, ceil_mode=True)(four).data[0, 0], [[10, 11], [14, 15]])


def test_avg_pool2d_ceil_mode_divides_by_the_cells_inside_the_padding():
    x = _image_5x6()
    out = F.avg_pool2d(x, 2, 2, 0, ceil_mode=True)
    np.testing.assert_allclose(out.data[0, 0], [[3.5, 5.5, 7.5], [15.5, 17.5, 19.5], [24.5, 26.5, 28.5]])
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data[0, 0], [[0.25] * 6] * 4 + [[0.5] * 6])
    padded = nn.AvgPool2d(3, 2, 1, ceil_mode=True)(_image_5x6())
    np.testing.assert_allclose(padded.data[0, 0], [
        [14 / 9, 10 / 3, 14 / 3, 8 / 3], [25 / 3, 14.0, 16.0, 8.5], [86 / 9, 46 / 3, 50 / 3, 26 / 3]])
    not_counted = F.avg_pool2d(_image_5x6(), 3, 2, 1, True, False)
    np.testing.assert_allclose(not_counted.data[0, 0], [
        [3.5, 5.0, 7.0, 8.0], [12.5, 14.0, 16.0, 17.0], [21.5, 23.0, 25.0, 26.0]])
    strided = F.avg_pool2d(_image_5x6(), 3, 3, 1, ceil_mode=True)
    np.testing.assert_allclose(strided.data[0, 0], [[14 / 9, 4.0, 8 / 3], [37 / 3, 21.0, 11.5]])
