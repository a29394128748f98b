"""Outsider campaign: integer, bool and float16 inputs to the softmax family, the losses and dropout.

Each gives the result of the same values in floating point, or a clear TypeError: never the garbage
of unsigned or small integers wrapping around when a maximum is subtracted or a value negated.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor, nn

SCORES = np.array([[0, 1, 2], [2, 0, 1], [1, 1, 0]])
LABELS = np.array([0, 2, 1])
SMALL_INTEGERS = [np.uint8, np.int8, np.uint16, np.int16, np.uint32]


def _same_as_float64(result, expected):
    assert result.dtype.kind == "f", result.dtype
    result = np.asarray(result.numpy(), np.float64)
    np.testing.assert_allclose(result, expected.numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("dtype", SMALL_INTEGERS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_the_softmax_family_of_small_integer_scores_is_that_of_their_values(name, dtype):
    fn = getattr(F, name)
    kwargs = {"axis": 1}
    expected = fn(Tensor(SCORES.astype(np.float64)), **kwargs)
    _same_as_float64(fn(Tensor(SCORES.astype(dtype)), **kwargs), expected)


@pytest.mark.parametrize("dtype", SMALL_INTEGERS, ids=lambda d: np.dtype(d).name)
def test_nn_softmax_layers_of_unsigned_images_are_not_nan(dtype):
    for layer in (nn.Softmax(axis=1), nn.LogSoftmax(axis=1)):
        _same_as_float64(layer(Tensor(SCORES.astype(dtype))), layer(Tensor(SCORES.astype(np.float64))))


@pytest.mark.parametrize("dtype", SMALL_INTEGERS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_class_losses_of_small_integer_scores_are_those_of_their_values(loss, dtype):
    fn = getattr(F, loss)
    for reduction in ("mean", "none"):
        expected = fn(Tensor(SCORES.astype(np.float64)), LABELS, reduction=reduction)
        _same_as_float64(fn(Tensor(SCORES.astype(dtype)), LABELS, reduction=reduction), expected)


@pytest.mark.parametrize("dtype", SMALL_INTEGERS, ids=lambda d: np.dtype(d).name)
def test_elementwise_losses_of_small_integer_inputs_are_those_of_their_values(dtype):
    target = np.array([[2, 0, 0], [0, 2, 1], [0, 0, 2]])
    for fn in (F.mse_loss, F.binary_cross_entropy_with_logits):
        for reduction in ("mean", "none"):
            expected = fn(Tensor(SCORES.astype(np.float64)), target.astype(np.float64), reduction=reduction)
            result = fn(Tensor(SCORES.astype(dtype)), target.astype(dtype), reduction=reduction)
            _same_as_float64(result, expected)


def test_bool_inputs_to_losses_count_as_zeros_and_ones():
    scores = SCORES > 0
    for fn, target in ((F.nll_loss, LABELS), (F.mse_loss, ~scores),
                       (F.binary_cross_entropy_with_logits, ~scores), (F.cross_entropy, LABELS)):
        float_target = target.astype(np.float64) if target.dtype == bool else target
        _same_as_float64(fn(Tensor(scores), target), fn(Tensor(scores.astype(np.float64)), float_target))


@pytest.mark.parametrize("p", [0.3, 0.7])
@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_], ids=lambda d: np.dtype(d).name)
def test_dropout_of_integers_scales_the_survivors_by_exactly_one_over_one_minus_p(dtype, p):
    x = np.ones((64, 64), dtype)
    tg.manual_seed(0)
    out = F.dropout(Tensor(x), p, training=True).numpy()
    survivors = out[out != 0]
    assert survivors.size > 0
    np.testing.assert_allclose(survivors, 1.0 / (1.0 - p), rtol=1e-3)  # float16 for uint8, bool


@pytest.mark.parametrize("num_classes", [-2, 2.5, True])
def test_f_one_hot_names_a_num_classes_that_is_not_a_count(num_classes):
    with pytest.raises(ValueError, match="num_classes must be a non-negative int"):
        F.one_hot([0, 1], num_classes)


def test_float16_dropout_with_a_scale_past_its_range_zeroes_the_dropped_instead_of_nan():
    tg.manual_seed(0)
    out = F.dropout(Tensor(np.ones(1000, np.float16)), 0.99999, training=True).numpy()
    assert not np.isnan(out).any()
    assert (out == 0).sum() >= 990
