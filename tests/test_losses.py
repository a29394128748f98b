"""Losses: what the op table cannot show.

Stability at logits of magnitude 1e4, the fused gradients (softmax - onehot, sigmoid - t) and the
short graph they leave, the target forms of cross_entropy and their equivalence, target validation
with messages that say what was expected, BCE's log clamp, one_hot, and second-order gradients.
Forward values against NumPy and first gradients against central differences are op-table rows.
"""
import re

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn
from tinygrad_edu.autograd import Context
from tinygrad_edu.gradcheck import numeric_grad


def leaf(values, dtype=np.float64):
    return tg.Tensor(np.array(values, dtype=dtype), requires_grad=True)


def np_log_softmax(x, axis=-1):
    shift = x.max(axis=axis, keepdims=True)
    return x - shift - np.log(np.exp(x - shift).sum(axis=axis, keepdims=True))


def np_softmax(x, axis=-1):
    return np.exp(np_log_softmax(x, axis))


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def random_case(n=5, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c)) * 2, rng.integers(0, c, n)


# ---- stability at 1e4 ----------------------------------------------------------------------
HUGE_LOGITS = [[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]]
HUGE_TARGET = np.array([2, 0])  # the loss is the gap to the largest logit: 1e4 and 2e4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target_form", ["indices", "one-hot"])
def test_cross_entropy_with_huge_logits_is_finite_and_exact(dtype, target_form):
    target = HUGE_TARGET if target_form == "indices" else np.eye(3, dtype=dtype)[HUGE_TARGET]
    logits = leaf(HUGE_LOGITS, dtype)
    per_sample = F.cross_entropy(logits, target, reduction="none")
    assert per_sample.dtype == dtype
    np.testing.assert_array_equal(per_sample.data, [1e4, 2e4])
    loss = F.cross_entropy(logits, target, reduction="sum")
    np.testing.assert_array_equal(loss.data, 3e4)
    loss.backward()
    # softmax is exactly one-hot at the largest logit, so the gradient is exact too
    np.testing.assert_array_equal(logits.grad.data, [[1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
    mean = F.cross_entropy(leaf(HUGE_LOGITS, dtype), target)
    np.testing.assert_array_equal(mean.data, 1.5e4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_at_plus_minus_1e4_is_finite_and_exact(dtype):
    logits = leaf([1e4, -1e4, 1e4, -1e4], dtype)
    target = np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    per_element = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert per_element.dtype == dtype
    np.testing.assert_array_equal(per_element.data, [0.0, 0.0, 1e4, 1e4])
    F.binary_cross_entropy_with_logits(logits, target, reduction="sum").backward()
    np.testing.assert_array_equal(logits.grad.data, [0.0, 0.0, 1.0, -1.0])


def test_log_softmax_at_1e4_is_finite_and_exact():
    x = leaf([[1e4, 0.0, -1e4]], np.float32)
    out = F.log_softmax(x, axis=-1)
    np.testing.assert_array_equal(out.data, [[0.0, -1e4, -2e4]])
    (out * np.array([1.0, 2.0, 3.0], dtype=np.float32)).sum().backward()
    np.testing.assert_allclose(x.grad.data, [[-5.0, 2.0, 3.0]])  # w - softmax * sum(w)


# ---- fused gradients -----------------------------------------------------------------------
def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    x, target = random_case(n=6, c=4, seed=1)
    logits = leaf(x)
    F.cross_entropy(logits, target).backward()
    expected = (np_softmax(x) - np.eye(4)[target]) / 6
    np.testing.assert_allclose(logits.grad.data, expected, rtol=1e-12, atol=1e-15)


def test_bce_with_logits_gradient_is_sigmoid_minus_target_over_n():
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((3, 4)) * 3, rng.uniform(0, 1, (3, 4))
    logits = leaf(x)
    F.binary_cross_entropy_with_logits(logits, t).backward()
    np.testing.assert_allclose(logits.grad.data, (np_sigmoid(x) - t) / 12, rtol=1e-12, atol=1e-15)


def nodes_to_reach(root, target_leaf, max_nodes):
    """At which depth, walking parents from root.grad_fn, target_leaf first appears (None: deeper)."""
    frontier = [root.grad_fn]  # parents are nodes (Context), leaves or constants
    for depth in range(1, max_nodes + 1):
        parents = [p for node in frontier for p in node.parents]
        if any(p is target_leaf for p in parents):
            return depth
        frontier = [p for p in parents if isinstance(p, Context)]
    return None


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target_form", ["indices", "probabilities"])
def test_cross_entropy_graph_is_one_fused_node(reduction, target_form):
    x, target = random_case()
    if target_form == "probabilities":
        target = np.eye(4)[target]
    logits = leaf(x)
    loss = F.cross_entropy(logits, target, reduction=reduction)
    assert loss.grad_fn is not None
    depth = nodes_to_reach(loss, logits, max_nodes=2)
    assert depth is not None, f"logits are more than 2 nodes below the loss (grad_fn {loss.grad_fn!r})"


# ---- target forms ----------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_class_indices_and_one_hot_rows_give_the_same_loss_and_gradient(reduction):
    x, target = random_case(seed=3)
    results = []
    for form in [target, tg.Tensor(target), np.eye(4)[target], tg.Tensor(np.eye(4)[target])]:
        logits = leaf(x)
        loss = F.cross_entropy(logits, form, reduction=reduction)
        loss.sum().backward()
        results.append((loss.data, logits.grad.data))
    for loss_data, grad_data in results[1:]:
        np.testing.assert_allclose(loss_data, results[0][0], rtol=1e-12)
        np.testing.assert_allclose(grad_data, results[0][1], rtol=1e-12, atol=1e-15)


def test_one_hot_output_is_a_cross_entropy_target_directly():
    x, target = random_case(seed=4)
    logits = tg.Tensor(x.astype(np.float32))
    by_index = F.cross_entropy(logits, target)
    by_one_hot = F.cross_entropy(logits, F.one_hot(target, num_classes=4))
    np.testing.assert_allclose(by_one_hot.data, by_index.data, rtol=1e-6)


@pytest.mark.parametrize("rows", ["normalized", "unnormalized"])
def test_soft_labels_match_the_hand_formula(rows):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 4))
    t = rng.dirichlet(np.ones(4), 5) if rows == "normalized" else rng.uniform(0, 1, (5, 4))
    logits = leaf(x)
    loss = F.cross_entropy(logits, t)
    np.testing.assert_allclose(loss.data, np.mean(-(t * np_log_softmax(x)).sum(axis=1)), rtol=1e-12)
    loss.backward()
    expected = (np_softmax(x) * t.sum(axis=1, keepdims=True) - t) / 5  # softmax times the row's mass
    np.testing.assert_allclose(logits.grad.data, expected, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_of_unbatched_logits_with_a_scalar_target(reduction):
    x = np.array([0.5, -1.0, 2.0, 0.0, 1.5])
    logits = leaf(x)
    loss = F.cross_entropy(logits, np.array(3), reduction=reduction)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.data, -np_log_softmax(x)[3], rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(logits.grad.data, np_softmax(x) - np.eye(5)[3], rtol=1e-12, atol=1e-15)
    as_probabilities = F.cross_entropy(leaf(x), np.eye(5)[3], reduction=reduction)
    np.testing.assert_allclose(as_probabilities.data, loss.data, rtol=1e-12)


@pytest.mark.parametrize("target_form", ["indices", "probabilities"])
def test_cross_entropy_with_the_class_axis_second_of_three(target_form):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, 3))  # (N, C, d)
    target = rng.integers(0, 4, (2, 3))  # (N, d)
    one_hot = np.moveaxis(np.eye(4)[target], -1, 1)  # (N, C, d)
    per_position = -np.take_along_axis(np_log_softmax(x, axis=1), target[:, None, :], axis=1)[:, 0, :]
    form = target if target_form == "indices" else one_hot

    none = F.cross_entropy(leaf(x), form, reduction="none")
    assert none.shape == (2, 3)
    np.testing.assert_allclose(none.data, per_position, rtol=1e-12)
    logits = leaf(x)
    loss = F.cross_entropy(logits, form)
    np.testing.assert_allclose(loss.data, per_position.mean(), rtol=1e-12)  # mean over N * d, as PyTorch
    loss.backward()
    expected = (np_softmax(x, axis=1) - one_hot) / 6
    np.testing.assert_allclose(logits.grad.data, expected, rtol=1e-10, atol=1e-15)


# ---- reductions ------------------------------------------------------------------------------
X23 = np.array([[0.2, 0.7, 0.4], [0.9, 0.1, 0.5]])
T23 = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5]])
LOSS_CASES = {
    "mse_loss": (F.mse_loss, X23, T23, (2, 3)),
    "cross_entropy": (F.cross_entropy, X23, np.array([2, 0]), (2,)),
    "cross_entropy-probabilities": (F.cross_entropy, X23, T23 / T23.sum(1, keepdims=True), (2,)),
    "nll_loss": (F.nll_loss, np.log(X23), np.array([1, 2]), (2,)),
    "binary_cross_entropy": (F.binary_cross_entropy, X23, T23, (2, 3)),
    "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits, X23, T23, (2, 3)),
}


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_reductions_none_sum_mean_relate_as_in_pytorch(name):
    fn, x, target, none_shape = LOSS_CASES[name]
    none = fn(tg.Tensor(x), target, reduction="none")
    assert none.shape == none_shape
    total, mean = fn(tg.Tensor(x), target, reduction="sum"), fn(tg.Tensor(x), target)
    assert total.shape == () and mean.shape == ()
    np.testing.assert_allclose(total.data, none.data.sum(), rtol=1e-12)
    np.testing.assert_allclose(mean.data, none.data.mean(), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
@pytest.mark.parametrize("reduction", ["average", "Mean", None])
def test_invalid_reduction_raises_listing_the_options(name, reduction):
    fn, x, target, _ = LOSS_CASES[name]
    with pytest.raises(ValueError) as info:
        fn(tg.Tensor(x), target, reduction=reduction)
    for option in ("'mean'", "'sum'", "'none'"):
        assert option.strip("'") in str(info.value), f"{option} missing from: {info.value}"


@pytest.mark.parametrize(
    "module, name",
    [
        (nn.MSELoss, "mse_loss"),
        (nn.CrossEntropyLoss, "cross_entropy"),
        (nn.CrossEntropy, "cross_entropy-probabilities"),
        (nn.NLLLoss, "nll_loss"),
        (nn.BCELoss, "binary_cross_entropy"),
        (nn.BCEWithLogitsLoss, "binary_cross_entropy_with_logits"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_call_their_function(module, name, reduction):
    fn, x, target, _ = LOSS_CASES[name]
    expected = fn(tg.Tensor(x), target, reduction=reduction)
    np.testing.assert_array_equal(module(reduction=reduction)(tg.Tensor(x), target).data, expected.data)
    np.testing.assert_array_equal(module()(tg.Tensor(x), target).data, fn(tg.Tensor(x), target).data)


# ---- target validation -----------------------------------------------------------------------
LOGITS45 = np.zeros((4, 5))
VALID_PROBS = np.full((4, 1), 0.5)
OUT_OF_RANGE = r"(?i)range|bound|\[0, ?5\)|< ?5"
UNIT_INTERVAL = r"\[0, ?1\]|0 and 1"
BAD_TARGETS = {
    # the learner's bug: (200, 1) predictions against (200,) labels broadcast silently to (200, 200)
    "mse (200,1) vs (200,)": (F.mse_loss, np.zeros((200, 1)), np.zeros(200), [r"\(200, 1\)", r"\(200,\)"]),
    "mse (200,) vs (200,1)": (F.mse_loss, np.zeros(200), np.zeros((200, 1)), [r"\(200, 1\)", r"\(200,\)"]),
    "ce float (N,)": (F.cross_entropy, LOGITS45, np.array([0.5, 1.0, 2.0, 3.0]), [r"(?i)int"]),
    "ce int (N,1)": (F.cross_entropy, LOGITS45, np.array([[0], [1], [2], [3]]), [r"\(4,\)"]),
    "ce int (N-1,)": (F.cross_entropy, LOGITS45, np.array([0, 1, 2]), [r"\(4,\)"]),
    "ce int (N,C)": (F.cross_entropy, LOGITS45, np.zeros((4, 5), dtype=np.int64), [r"\(4,\)", r"(?i)float"]),
    "ce index C": (F.cross_entropy, LOGITS45, np.array([0, 1, 5, 2]), [OUT_OF_RANGE]),
    "ce index -1": (F.cross_entropy, LOGITS45, np.array([0, -1, 4, 2]), [OUT_OF_RANGE]),
    "ce index -1 int8": (F.cross_entropy, LOGITS45, np.array([0, -1, 4, 2], dtype=np.int8), [OUT_OF_RANGE]),
    "ce probs (N,C+1)": (F.cross_entropy, LOGITS45, np.full((4, 6), 1 / 6), [r"\(4, 5\)", r"\(4, 6\)"]),
    "nll float (N,)": (F.nll_loss, LOGITS45, np.array([0.5, 1.0, 2.0, 3.0]), [r"(?i)int"]),
    "one_hot float": (lambda x, labels: F.one_hot(labels, 5), LOGITS45, np.array([0.5, 1.0]), [r"(?i)int"]),
    "nll int (N,1)": (F.nll_loss, LOGITS45, np.array([[0], [1], [2], [3]]), [r"\(4,\)"]),
    "nll index C": (F.nll_loss, LOGITS45, np.array([0, 1, 5, 2]), [OUT_OF_RANGE]),
    "nll index -1": (F.nll_loss, LOGITS45, np.array([0, -1, 4, 2]), [OUT_OF_RANGE]),
    "bce p > 1": (F.binary_cross_entropy, np.array([0.5, 1.2]), np.array([0.0, 1.0]), [UNIT_INTERVAL]),
    "bce p < 0": (F.binary_cross_entropy, np.array([-0.1, 0.5]), np.array([0.0, 1.0]), [UNIT_INTERVAL]),
    "bce shapes": (F.binary_cross_entropy, VALID_PROBS, np.zeros(4), [r"\(4, 1\)", r"\(4,\)"]),
    "bce_with_logits shapes": (F.binary_cross_entropy_with_logits, np.zeros((4, 1)), np.zeros(4),
                               [r"\(4, 1\)", r"\(4,\)"]),
}


def test_out_of_range_class_indices_are_also_an_index_error_as_in_pytorch():
    for fn in (F.cross_entropy, F.nll_loss):
        with pytest.raises(IndexError, match=r"\[0, 5\)"):
            fn(tg.Tensor(LOGITS45), [0, 1, 5, 2])
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        F.one_hot([0, 3], 3)


def test_whole_number_float_labels_work_as_class_indices():
    # tg.Tensor([0, 2, 1]) is float32 (Python lists get the default dtype): still valid labels
    x = np.random.default_rng(6).standard_normal((3, 4))
    labels = [0, 2, 1]
    for fn in (F.cross_entropy, F.nll_loss):
        np.testing.assert_array_equal(fn(tg.Tensor(x), tg.Tensor(labels)).data, fn(tg.Tensor(x), labels).data)
    np.testing.assert_array_equal(F.one_hot(tg.Tensor(labels), 4).data, np.eye(4)[labels])


def test_a_masked_logit_without_target_weight_adds_nothing():
    # -inf logits mask a class; with the target elsewhere the loss is finite (PyTorch: 0.3133)
    logits = tg.Tensor(np.array([[0.0, -np.inf, 1.0]]), requires_grad=True)
    loss = F.cross_entropy(logits, [2])
    expected = np.log(1 + np.e) - 1.0
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    loss.backward()
    softmax = np.array([1.0, 0.0, np.e]) / (1 + np.e)
    np.testing.assert_allclose(logits.grad.data, [softmax - [0.0, 0.0, 1.0]], rtol=1e-12)


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_bad_targets_raise_value_error_saying_what_was_expected(case):
    fn, x, target, patterns = BAD_TARGETS[case]
    with pytest.raises(ValueError) as info:
        fn(tg.Tensor(x, requires_grad=True), target)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in: {info.value}"


# ---- BCE's clamped log -------------------------------------------------------------------------
def test_binary_cross_entropy_at_exactly_0_and_1_is_finite_as_in_pytorch():
    probs = leaf([0.0, 1.0, 0.0, 1.0, 0.5])
    target = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    per_element = F.binary_cross_entropy(probs, target, reduction="none")
    np.testing.assert_allclose(per_element.data, [100.0, 100.0, 0.0, 0.0, np.log(2.0)], rtol=1e-12)
    F.binary_cross_entropy(probs, target).backward()
    assert np.all(np.isfinite(probs.grad.data)), probs.grad.data


# ---- one_hot -------------------------------------------------------------------------------------
def test_one_hot_defaults_to_the_default_float_dtype_and_infers_classes():
    labels = np.array([0, 2, 1, 2])
    out = F.one_hot(labels)
    assert isinstance(out, tg.Tensor) and not out.requires_grad
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_array_equal(out.data, np.eye(3)[labels])
    wide = F.one_hot(tg.Tensor(labels), num_classes=5)
    assert wide.shape == (4, 5)
    np.testing.assert_array_equal(wide.data, np.eye(5)[labels])
    tg.set_default_dtype(np.float64)
    assert F.one_hot(labels, num_classes=-1).dtype == np.float64


@pytest.mark.parametrize(
    "labels, num_classes",
    [([0, 3], 3), ([0, 7], 5), ([-1, 0], -1), ([-1, 0], 3), ([0.5, 1.0], -1)],
    ids=["equal-to-classes", "above-classes", "negative-inferred", "negative", "non-integer"],
)
def test_one_hot_rejects_bad_labels(labels, num_classes):
    with pytest.raises(ValueError):
        F.one_hot(np.array(labels), num_classes=num_classes)


# ---- second order ----------------------------------------------------------------------------------
def ce_indices_gradient(x, target):
    return (np_softmax(x) - np.eye(x.shape[1])[target]) / x.shape[0]


def ce_probabilities_gradient(x, t):
    return (np_softmax(x) * t.sum(axis=1, keepdims=True) - t) / x.shape[0]


def bce_logits_gradient(x, t):
    return (np_sigmoid(x) - t) / x.size


def draw_indices(rng):
    return rng.integers(0, 4, 3)


def draw_probabilities(rng):
    return rng.uniform(0, 1, (3, 4))


SECOND_ORDER = {
    "cross_entropy-indices": (F.cross_entropy, ce_indices_gradient, draw_indices),
    "cross_entropy-probabilities": (F.cross_entropy, ce_probabilities_gradient, draw_probabilities),
    "bce_with_logits": (F.binary_cross_entropy_with_logits, bce_logits_gradient, draw_probabilities),
}


@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_gradient_of_the_fused_gradient_matches_central_differences(name):
    loss_fn, analytic_gradient, draw_target = SECOND_ORDER[name]
    rng = np.random.default_rng(7)
    x, v, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), draw_target(rng)
    logits = leaf(x)
    (first,) = tg.grad(loss_fn(logits, target), logits, create_graph=True)
    np.testing.assert_allclose(first.data, analytic_gradient(x, target), rtol=1e-10, atol=1e-15)
    (second,) = tg.grad((first * v).sum(), logits)
    (expected,) = numeric_grad(lambda a: np.sum(analytic_gradient(a, target) * v), [x])
    np.testing.assert_allclose(second.data, expected, rtol=1e-6, atol=1e-9)


def test_cross_entropy_with_a_tensor_of_labels_is_guarded_by_its_version_not_a_copy():
    logits = tg.Tensor(np.random.default_rng(0).normal(size=(4, 3)), requires_grad=True)
    labels = tg.Tensor(np.array([0, 2, 1, 2]))
    loss = F.cross_entropy(logits, labels)
    assert loss.grad_fn.parents[1] is labels and not loss.grad_fn.snapshots  # no copy of the labels kept
    with tg.no_grad():
        labels += 1  # the labels the loss saved change
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    array_labels = np.array([0, 2, 1, 2])  # a NumPy array keeps no version: its values are compared
    loss = F.cross_entropy(logits, array_labels)
    array_labels[0] = 1
    with pytest.raises(RuntimeError, match="a NumPy array of shape"):
        loss.backward()
