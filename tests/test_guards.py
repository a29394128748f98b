"""The broadcast guard, F.accuracy and detect_anomaly: the first learner's (200, 1) == (200,)
bug is caught, normal broadcasting is not, and NaN/Inf are traced to the line that made them."""
import inspect
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import seed_learner as learner
import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn
from tinygrad_edu import modes as thread_modes

RNG = np.random.default_rng(3)


def line_of(marker: str) -> int:
    """The line number of the line in this file that contains `marker`."""
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()
    return next(i for i, line in enumerate(lines, start=1) if marker in line and "line_of(" not in line)


def learner_case(m=200):
    """The learner's 400-25-10 network on Tensors, with m samples of one-hot labels."""
    x = RNG.random((m, 400))
    y = np.eye(10)[RNG.integers(0, 10, m)]
    params = [tg.Tensor(RNG.uniform(-0.12, 0.12, s), requires_grad=True)
              for s in [(400, 25), (1, 25), (25, 10), (1, 10)]]
    return params, x, y


# ---- the broadcast guard -----------------------------------------------------------------
def test_the_learners_predict_raises_in_raise_mode_naming_the_comparison_and_shapes():
    params, x, y = learner_case()
    with tg.set_broadcast_check("raise"):
        with pytest.raises(tg.BroadcastError) as error:
            learner.predict(params, x, y)
    message = str(error.value)
    assert "==" in message and "(200, 1)" in message and "(200,)" in message
    assert "(200, 200)" in message and "reshape the (200, 1) one to (200,)" in message


def test_the_learners_predict_is_silent_when_off_and_gives_numpys_wrong_answer():
    params, x, y = learner_case()
    with tg.set_broadcast_check("off"), warnings.catch_warnings():
        warnings.simplefilter("error")
        predictions, accuracy = learner.predict(params, x, y)
    plain = learner.predict([p.data for p in params], x, y)[1]
    assert accuracy.item() == pytest.approx(plain)  # the (200, 200) table's mean, as NumPy gives


def test_warn_mode_is_the_default_and_points_at_the_users_line():
    assert tg.get_broadcast_check() == "warn"
    column, row = tg.Tensor(np.zeros((5, 1))), tg.Tensor(np.zeros(5))
    with pytest.warns(tg.BroadcastWarning) as record:
        column == row  # the flagged line
    assert record[0].filename == __file__
    assert record[0].lineno == line_of("# the flagged line")


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
        lambda a, b: a ** b, lambda a, b: tg.maximum(a, b), lambda a, b: tg.minimum(a, b),
        lambda a, b: tg.where(a > 0, a, b), lambda a, b: a < b, lambda a, b: a >= b,
        lambda a, b: a != b, lambda a, b: np.multiply(a, b), lambda a, b: np.equal(a, b),
    ],
)
def test_every_elementwise_op_and_comparison_goes_through_the_guard(op):
    a = tg.Tensor(RNG.uniform(1, 2, (4, 1)), requires_grad=True)
    b = tg.Tensor(RNG.uniform(1, 2, (4,)), requires_grad=True)
    with tg.set_broadcast_check("raise"), pytest.raises(tg.BroadcastError, match=r"\(4, 1\).*\(4,\)"):
        op(a, b)


@pytest.mark.parametrize("op", [lambda a, b: a - b, lambda a, b: b - a, lambda a, b: tg.where(a > 0, b, a)])
def test_a_numpy_constant_stretched_against_a_tensor_goes_through_the_guard(op):
    # The learner's `Y - h`: Y a NumPy column of labels, h the network's (m,) output, or the reverse.
    a = tg.Tensor(RNG.uniform(1, 2, (4,)), requires_grad=True)
    b = RNG.uniform(1, 2, (4, 1))
    with tg.set_broadcast_check("raise"), pytest.raises(tg.BroadcastError, match=r"\(4, 1\)"):
        op(a, b)


@pytest.mark.parametrize(
    "shapes",
    [((64, 10), (10,)), ((64, 10), (1, 10)), ((64, 10), (64, 1)), ((3, 4), ()), ((3, 4), (1,)),
     ((4, 3), (1, 1, 3)), ((2, 3), (2, 3)), ((1, 5), (5,))],
)
def test_normal_broadcasting_is_never_flagged(shapes):
    a = tg.Tensor(RNG.random(shapes[0]), requires_grad=True)
    b = RNG.random(shapes[1])
    with tg.set_broadcast_check("raise"):
        (a * b).sum().backward()
        a == b


def test_the_context_manager_restores_the_previous_mode_even_after_an_error():
    with tg.set_broadcast_check("off"):
        with pytest.raises(tg.BroadcastError):
            with tg.set_broadcast_check("raise"):
                tg.Tensor(np.zeros((2, 1))) + tg.Tensor(np.ones(2))
        assert tg.get_broadcast_check() == "off"
    assert tg.get_broadcast_check() == "warn"


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="'off', 'warn', 'raise'"):
        tg.set_broadcast_check("loud")
    assert tg.get_broadcast_check() == "warn"


def test_with_both_checks_off_the_engine_skips_them():
    with tg.set_broadcast_check("off"):
        modes = thread_modes.current()
        assert modes.broadcast_check is None and modes.forward_check is None
        assert modes.backward_check is None
    assert thread_modes.current().broadcast_check is not None  # 'warn' again


# ---- F.accuracy ------------------------------------------------------------------------------
@given(
    scores=hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 6)),
                      elements=st.floats(-5, 5), unique=True),
    data=st.data(),
)
def test_accuracy_is_the_fraction_of_argmax_hits_for_indices_and_one_hot_rows(scores, data):
    n, classes = scores.shape
    labels = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, classes - 1)))
    expected = np.mean(scores.argmax(axis=1) == labels)
    assert F.accuracy(scores, labels) == pytest.approx(expected)
    assert F.accuracy(tg.Tensor(scores), np.eye(classes)[labels]) == pytest.approx(expected)
    assert F.accuracy(scores, labels.astype(np.float32)) == pytest.approx(expected)


def test_accuracy_refuses_the_learners_column_of_labels():
    scores = RNG.random((200, 10))
    with pytest.raises(ValueError, match=r"\(200, 1\).*reshape\(-1\)"):
        F.accuracy(scores, RNG.integers(0, 10, (200, 1)))


@pytest.mark.parametrize(
    "scores, targets, message",
    [
        (np.zeros((4, 3)), np.zeros((4, 2)), r"targets of shape \(4, 2\)"),
        (np.zeros((4, 3)), np.zeros(5, dtype=int), r"targets of shape \(5,\)"),
        (np.zeros(4), np.zeros(4, dtype=int), r"scores must have shape \(N, C\)"),
        (np.zeros((4, 3)), np.array([0, 1, 3, 0]), r"\[0, 3\)"),
        (np.zeros((4, 3)), np.array([0.5, 1, 2, 0]), "integers"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "no samples"),
    ],
)
def test_accuracy_names_bad_input(scores, targets, message):
    with pytest.raises(ValueError, match=message):
        F.accuracy(scores, targets)


# ---- detect_anomaly ----------------------------------------------------------------------------
def test_a_log_of_zero_is_stopped_in_forward_at_the_line_that_made_it():
    x = tg.Tensor([1.0, 0.0, 2.0], requires_grad=True)
    with pytest.raises(tg.AnomalyError) as error, np.errstate(divide="ignore"):
        with tg.detect_anomaly():
            y = x * 2.0
            y.log()  # makes -inf
    message = str(error.value)
    assert message.startswith("Log produced -inf in its output (shape (3,))")
    assert f"{__file__}:{line_of('# makes -inf')}" in message and "y.log()  # makes -inf" in message
    assert "all inputs finite" in message


def test_a_nan_gradient_is_stopped_in_backward_naming_the_op_and_its_line():
    x = tg.Tensor([4.0, 0.0], requires_grad=True)
    with tg.detect_anomaly(), np.errstate(divide="ignore", invalid="ignore"):
        root = x.sqrt()  # finite forward, infinite slope at 0
        loss = (root * 0.0).sum()
        with pytest.raises(tg.AnomalyError) as error:
            loss.backward()
    message = str(error.value)
    assert "Pow's backward produced" in message and "gradient for its input 0" in message
    assert f"{__file__}:{line_of('# finite forward, infinite slope')}" in message
    assert "(2,)" in message


def test_the_line_reported_for_a_module_is_the_users_call_not_the_library():
    model = nn.Sequential(nn.Linear(2, 2))
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError) as error:
        model(np.array([[np.inf, 0.0]]))  # the user's call
    assert f"{__file__}:{line_of('# the user')}" in str(error.value)
    assert "already held NaN/Inf" in str(error.value)


def test_without_anomaly_mode_nothing_is_checked_and_a_graph_made_outside_has_no_origin():
    x = tg.Tensor([0.0], requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = x.sqrt().sum()  # no check here: anomaly mode is off
        with tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match="ran outside detect_anomaly"):
            loss.backward()
    assert not tg.is_anomaly_enabled()


def test_check_nan_false_and_the_decorator_form():
    x = tg.Tensor([0.0], requires_grad=True)

    @tg.detect_anomaly()
    def log_of(t):
        return t.log()

    with np.errstate(divide="ignore"):
        with tg.detect_anomaly(check_nan=False):
            assert np.isneginf(x.log().item())
        with pytest.raises(tg.AnomalyError):
            log_of(x)
    assert not tg.is_anomaly_enabled() and thread_modes.current().backward_check is None


def test_anomaly_mode_does_not_change_values_or_gradients():
    params, x, y = learner_case(m=20)
    loss = learner.cost(params, x, y)
    expected = tg.grad(loss, params)
    with tg.detect_anomaly():
        loss = learner.cost(params, x, y)
        found = tg.grad(loss, params)
    for a, b in zip(expected, found):
        np.testing.assert_array_equal(a.data, b.data)
