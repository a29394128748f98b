"""check_backprop on the first learner's own code (seeds/000): right gradients pass; each
deliberately broken copy is caught, only the wrong parameters are named, and the kind of
mistake (shape, transposed, 1/m, sign, L2 term, other values) is told."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_edu as tg

# The learner's code, verbatim (seeds/000): examples/seed_learner.py.
from seed_learner import alpha, backpropagate, cost, feedForward, gPrime, lmda  # noqa: E402

# Their network is 400-26-10 on 5000 samples; the same shapes in small: 20-5-4 on 40 samples.
M = 40
RNG = np.random.default_rng(4)
X = RNG.normal(size=(M, 20))
Y = np.eye(4)[RNG.integers(0, 4, M)]
# Weights of spread 1, so that sigmoid'(z) varies: near z = 0 a missing g'(z) is almost a factor 4.
P = [RNG.normal(size=shape) for shape in [(20, 5), (1, 5), (5, 4), (1, 4)]]


def broken(bug):
    """A copy of `backpropagate` with one deliberate bug, named by `bug`."""

    def backprop(p, x, y):
        [a, z] = feedForward(p, x)
        h = a[-1]
        m = x.shape[0]
        dz4 = np.divide((-(y - h)), m)
        if bug == "no 1/m":
            dz4 = -(y - h)
        if bug == "1/m twice":
            dz4 = np.divide(dz4, m)
        if bug == "sign of dz4":
            dz4 = np.divide(y - h, m)
        dz3 = np.multiply(dz4, gPrime(z[-1]))
        if bug == "no gPrime in dz3":
            dz3 = dz4
        dw2 = np.dot(a[-2].T, dz3) + np.multiply(lmda / m, p[2])
        if bug == "dz3.T @ a":  # runs, because the L2 term is transposed too
            dw2 = np.dot(dz3.T, a[-2]) + np.multiply(lmda / m, p[2].T)
        if bug == "dw2.T":
            dw2 = dw2.T
        if bug == "no L2 in dw2":
            dw2 = np.dot(a[-2].T, dz3)
        dw2b = np.sum(dz3, 0)
        if bug == "dw2b not summed":
            dw2b = dz3
        if bug == "sign of dw2b":
            dw2b = -np.sum(dz3, 0)
        dz2 = np.multiply(np.dot(dz3, p[2].T), gPrime(z[-2]))
        if bug == "no gPrime in dz2":
            dz2 = np.dot(dz3, p[2].T)
        dw1 = np.dot(a[-3].T, dz2) + np.multiply(lmda / m, p[0])
        dw1b = np.sum(dz2, 0)
        if bug == "dw1b as a column":
            dw1b = dw1b.reshape(-1, 1)
        return [dw1, dw1b, dw2, dw2b]

    return backprop


def test_the_learners_gradients_are_all_correct():
    report = tg.check_backprop(cost, backpropagate, P, X, Y)
    assert report.ok and bool(report)
    assert report.method == "autograd" and report.reason is None
    assert [row.kind for row in report.rows] == ["ok"] * 4
    assert [row.key for row in report.rows] == [0, 1, 2, 3]
    assert [row.expected_shape for row in report.rows] == [(20, 5), (1, 5), (5, 4), (1, 4)]
    # np.sum(dz, 0) gives (5,) for the (1, 5) bias: harmless, since p - alpha * grad broadcasts back.
    assert report[1].returned_shape == (5,) and "harmless" in report[1].message
    assert all(row.max_abs_error < 1e-12 for row in report.rows)
    assert str(report).startswith("check_backprop: all gradients match; reference: autograd")


# (bug, {wrong parameter: kind}, words every wrong row's message must contain)
BROKEN = [
    ("no gPrime in dz3", dict.fromkeys([0, 1, 2, 3], "values"), ["largest error"]),
    ("no gPrime in dz2", dict.fromkeys([0, 1], "values"), ["largest error"]),
    ("dz3.T @ a", {2: "transposed"}, ["transpose", "(4, 5)"]),
    ("dw2.T", {2: "transposed"}, ["transpose"]),
    ("no 1/m", dict.fromkeys([0, 1, 2, 3], "scale"), ["times 40", "about 40 x too large", "missing 1/m"]),
    ("1/m twice", dict.fromkeys([0, 1, 2, 3], "scale"), ["about 40 x too small"]),
    ("sign of dz4", dict.fromkeys([0, 1, 2, 3], "sign"), ["sign flipped"]),
    ("sign of dw2b", {3: "sign"}, ["sign flipped"]),
    ("dw2b not summed", {3: "shape"}, ["(40, 4)", "axis 0", "not summed", ".sum(axis=0, keepdims=True)"]),
    ("dw1b as a column", {1: "shape"}, ["(5, 1)", "values are right", "reshape"]),
    ("no L2 in dw2", {2: "regularization"}, ["L2", "-0.025 = -1/m x the parameter"]),
]


@pytest.mark.parametrize("bug, wrong, words", BROKEN, ids=[case[0] for case in BROKEN])
def test_a_broken_copy_names_exactly_the_wrong_parameters_and_the_kind(bug, wrong, words):
    report = tg.check_backprop(cost, broken(bug), P, X, Y)
    assert not report.ok and not bool(report)
    assert {row.key: row.kind for row in report.wrong} == wrong
    assert all(report[key].ok for key in range(4) if key not in wrong)
    text = str(report)
    for key in wrong:
        for word in words:
            assert word in report[key].message
        assert f"parameter {key}: {report[key].message}" in text
    assert f"{len(wrong)} of 4 gradients are wrong" in text


def test_a_missing_sum_gives_no_errors_to_compare_but_the_shapes():
    row = tg.check_backprop(cost, broken("dw2b not summed"), P, X, Y)[3]
    assert (row.expected_shape, row.returned_shape) == ((1, 4), (40, 4))
    assert row.max_abs_error is None and row.worst_index is None


def test_values_rows_report_the_index_where_the_error_is_largest():
    right = backpropagate(P, X, Y)
    wrong = broken("no gPrime in dz2")(P, X, Y)
    report = tg.check_backprop(cost, broken("no gPrime in dz2"), P, X, Y)
    for key in (0, 1):
        row = report[key]
        shape = row.expected_shape
        error = np.abs(np.reshape(wrong[key], shape) - np.reshape(right[key], shape))
        assert row.worst_index == np.unravel_index(np.argmax(error), error.shape)
        assert row.max_abs_error == pytest.approx(error.max(), rel=1e-9)
        assert str(row.worst_index) in row.message


def test_a_planted_error_is_found_at_its_index_with_both_values():
    def backprop(p, x, y):
        grads = backpropagate(p, x, y)
        grads[0][7, 3] += 0.5
        grads[0][2, 1] -= 0.2
        return grads

    row = tg.check_backprop(cost, backprop, P, X, Y)[0]
    expected = backpropagate(P, X, Y)[0][7, 3]
    assert (row.kind, row.worst_index) == ("values", (7, 3))
    assert row.max_abs_error == pytest.approx(0.5)
    assert f"returned {expected + 0.5:.6g}, expected {expected:.6g}" in row.message


# ---- when cost cannot be traced: central differences, and the report says why ------------------
def cost_with_norm(p, x, y):
    [a, z] = feedForward(p, x)
    data = 0.5 * np.linalg.norm(y - a[-1]) ** 2
    return (data + lmda * 0.5 * (np.linalg.norm(p[0]) ** 2 + np.linalg.norm(p[2]) ** 2)) / x.shape[0]


def cost_as_float(p, x, y):
    return float(cost(p, x, y))


def cost_through_asarray(p, x, y):
    # np.asarray(Tensor) gives plain numbers: the L2 term silently leaves the graph.
    [a, z] = feedForward(p, x)
    l2 = np.sum(np.square(np.asarray(p[0]))) + np.sum(np.square(np.asarray(p[2])))
    return np.sum(np.square(y - a[-1])) * 0.5 / x.shape[0] + lmda * 0.5 / x.shape[0] * l2


@pytest.mark.parametrize("traced_cost, reason", [
    (cost_with_norm, "TypeError on Tensors: numpy.norm is not supported"),
    (cost_as_float, "returned float, not a Tensor"),
    (cost_through_asarray, "parameter 0 disagrees with a finite difference"),
], ids=["unsupported function", "float()", "np.asarray"])
def test_untraceable_costs_fall_back_to_central_differences(traced_cost, reason):
    report = tg.check_backprop(traced_cost, backpropagate, P, X, Y)
    assert report.ok and report.method == "central differences"
    assert reason in report.reason and reason in str(report)
    broken_report = tg.check_backprop(traced_cost, broken("no 1/m"), P, X, Y)
    assert broken_report.method == "central differences"
    assert {row.key: row.kind for row in broken_report.wrong} == dict.fromkeys([0, 1, 2, 3], "scale")
    assert all("about 40 x too large" in row.message for row in broken_report.wrong)


def test_a_cost_not_connected_to_the_params_falls_back_and_shows_zero_gradients():
    report = tg.check_backprop(lambda p, x, y: tg.Tensor(1.0), backpropagate, P, X, Y)
    assert report.method == "central differences" and "not connected" in report.reason
    assert {row.kind for row in report.rows} == {"values"}
    assert "expected 0 " in report[0].message


def test_a_cost_that_is_not_a_single_number_is_a_value_error_naming_its_shape():
    with pytest.raises(ValueError, match=r"single number.*shape \(20, 5\)"):
        tg.check_backprop(lambda p, x, y: np.square(p[0]), backpropagate, P, X, Y)
    with pytest.raises(ValueError, match=r"single number.*shape \(5,\)"):  # on the fallback path
        tg.check_backprop(lambda p, x, y: np.linalg.norm(p[0], axis=0), backpropagate, P, X, Y)


def test_a_cost_without_a_finite_gradient_is_a_value_error():
    params = [np.array([[0.0, 1.0]])]
    message = r"parameter 0 is not finite \(by autograd\)"
    with np.errstate(divide="ignore"), pytest.raises(ValueError, match=message):
        tg.check_backprop(lambda p: np.sum(np.sqrt(p[0])), lambda p: [0.5 / np.sqrt(p[0])], params)


# ---- structure: dicts, missing or extra gradients, non-arrays, nan ----------------------------
NAMES = ["w1", "w1b", "w2", "w2b"]


def as_list(p):
    return [p[name] for name in NAMES]


def test_dict_params_are_reported_by_key_and_missing_or_extra_keys_are_named():
    params = dict(zip(NAMES, P))
    report = tg.check_backprop(lambda p, x, y: cost(as_list(p), x, y),
                            lambda p, x, y: dict(zip(NAMES, backpropagate(as_list(p), x, y))), params, X, Y)
    assert report.ok and [row.key for row in report.rows] == NAMES
    assert report["w2"].expected_shape == (5, 4)

    def incomplete(p, x, y):
        grads = dict(zip(NAMES, broken("dw2.T")(as_list(p), x, y)))
        grads["w3"] = grads.pop("w2b")
        return grads

    report = tg.check_backprop(lambda p, x, y: cost(as_list(p), x, y), incomplete, params, X, Y)
    assert not report.ok and report.extra_keys == ("w3",)
    assert {row.key: row.kind for row in report.wrong} == {"w2": "transposed", "w2b": "missing"}
    text = str(report)
    assert "parameter 'w2b': backprop returned no gradient for key 'w2b'" in text
    assert "parameter 'w2': transposed" in text and "'w3'" in text
    with pytest.raises(KeyError, match="w3"):
        report["w3"]
    with pytest.raises(TypeError, match="params is a dict"):
        tg.check_backprop(lambda p, x, y: cost(as_list(p), x, y),
                       lambda p, x, y: backpropagate(as_list(p), x, y), params, X, Y)


def test_a_wrong_number_of_gradients_is_a_value_error_listing_the_shapes():
    shapes = r"\(\(20, 5\), \(5,\), \(5, 4\)\)"
    with pytest.raises(ValueError, match=rf"returned 3 gradients {shapes} for 4 parameters"):
        tg.check_backprop(cost, lambda p, x, y: backpropagate(p, x, y)[:3], P, X, Y)
    with pytest.raises(TypeError, match="params must be a list or dict"):
        tg.check_backprop(cost, backpropagate, P[0], X, Y)


def test_none_non_arrays_and_nan_gradients_get_their_own_rows():
    def backprop(p, x, y):
        dw1, dw1b, dw2, dw2b = backpropagate(p, x, y)
        dw2 = dw2.copy()
        dw2[3, 1] = np.nan
        return [None, "dw1b", dw2, dw2b]

    report = tg.check_backprop(cost, backprop, P, X, Y)
    assert {row.key: row.kind for row in report.wrong} == {0: "missing", 1: "type", 2: "nonfinite"}
    assert report[2].worst_index == (3, 1) and "nan at index (3, 1)" in report[2].message
    assert "returned None" in report[0].message and "str" in report[1].message
    assert report[3].ok


def test_the_callers_arrays_are_never_modified():
    params = [p.astype(np.float32) for p in P]
    saved = [p.copy() for p in params]

    def greedy_backprop(p, x, y):
        grads = backpropagate(p, x, y)
        for i in range(4):  # an in-place update, as a training step would do
            p[i] -= alpha * np.reshape(grads[i], p[i].shape)
        p.append("junk")
        return grads

    for traced_cost in (cost, cost_as_float):
        report = tg.check_backprop(traced_cost, greedy_backprop, params, X, Y)
        assert report.ok
        assert len(params) == 4
        for p, before in zip(params, saved):
            assert p.dtype == np.float32 and np.array_equal(p, before)


def test_report_repr_and_html_are_short_and_safe():
    report = tg.check_backprop(cost, broken("sign of dw2b"), P, X, Y)
    assert repr(report) == "BackpropReport(ok=False, method='autograd', wrong=[3])"
    page = report._repr_html_()
    assert page.startswith("<div><p><b>check_backprop: 1 of 4") and page.count("<tr") == 5  # header + 4
    assert page.count("background:") == 1 and "<td style='text-align:left'><code>sign</code></td>" in page
    assert "y - h vs h - y" in page and "<script" not in page
    header = str(report).splitlines()[1].split()
    assert header[:3] == ["param", "expected", "shape"] and header[-1] == "kind"


# ---- the classifier on gradients of known form: cost = sum(G * W), so dcost/dW = G ------------
@st.composite
def gradients(draw, square=False):
    """A random matrix with entries of size 0.5 to 1, so no entry hides behind the others."""
    rows = draw(st.integers(2, 6))
    cols = rows if square else draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.choice([-1.0, 1.0], (rows, cols)) * rng.uniform(0.5, 1.0, (rows, cols))


def check_known(gradient, returned):
    weights = np.random.default_rng(0).normal(size=gradient.shape)
    return tg.check_backprop(lambda p: np.sum(np.multiply(p[0], gradient)), lambda p: [returned], [weights])[0]


@given(gradients(), st.floats(0.01, 100.0).filter(lambda f: abs(f - 1) > 0.02), st.booleans())
def test_a_constant_factor_is_called_scale_with_its_value(gradient, factor, negative):
    factor = -factor if negative else factor
    row = check_known(gradient, factor * gradient)
    assert row.kind == "scale"
    shown = float(row.message.split("times ")[1].split(":")[0])
    assert shown == pytest.approx(factor, rel=1e-3)
    assert ("the sign is flipped too" in row.message) == negative


@given(gradients())
def test_a_sign_flip_is_called_sign(gradient):
    assert check_known(gradient, -gradient).kind == "sign"


@given(gradients(square=True))
def test_a_transposed_square_gradient_is_called_transposed(gradient):
    row = check_known(gradient, gradient.T)
    # check_backprop's default tolerances: a matrix symmetric to within them is simply right
    assert row.kind == ("ok" if np.allclose(gradient.T, gradient, rtol=1e-4, atol=1e-6) else "transposed")


@given(gradients(), st.data())
def test_one_wrong_element_is_found_where_it_is(gradient, data):
    index = tuple(data.draw(st.integers(0, n - 1)) for n in gradient.shape)
    returned = gradient.copy()
    returned[index] += data.draw(st.sampled_from([-1.0, 1.0])) * data.draw(st.floats(0.1, 10.0))
    row = check_known(gradient, returned)
    assert (row.kind, row.worst_index) == ("values", index)
    assert row.max_abs_error == pytest.approx(abs(returned[index] - gradient[index]))
