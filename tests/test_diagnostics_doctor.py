"""sanity_check, lr_find, and the doctor on learners' own NumPy code (seeds 000 and 001), unported."""
import math

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn
from tinygrad_edu.autograd import Function
from tinygrad_edu.data import DataLoader, TensorDataset
from tinygrad_edu.diagnostics import NumpyMonitor, check_broadcasts, lr_find, sanity_check

import seed_learner as learner_000  # noqa: E402  (tests/ is on the path)
from seed_learner_001 import ANN, helpers  # noqa: E402


def blobs(n, seed=0, classes=3, features=4):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, features)) * 2
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(size=(n, features))).astype(np.float32), y


def small_model(seed=0):
    tg.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def state(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


# ---- sanity_check ---------------------------------------------------------------------------------
def test_a_healthy_model_passes_every_check_and_is_left_as_it_was():
    model = small_model()
    x, y = blobs(16)
    before = state(model)
    report = sanity_check(model, F.cross_entropy, x, y)
    assert report.ok and bool(report) and report.kinds == set()
    assert [check.name for check in report.checks] == [
        "loss at init", "overfit one batch", "gradient check", "loss depends on input"]
    lines = str(report).splitlines()
    assert lines[0] == "sanity_check: all checks passed" and all(line.startswith("ok ") for line in lines[1:])
    assert "ln 3 = 1.099" in lines[1]
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[name])
        assert p.data.dtype == np.float32 and p.grad is None
    page = report._repr_html_()
    assert "<table>" in page and "<td" in page and "overfit one batch" in page


def test_confidently_wrong_initial_outputs_fail_the_init_loss_check():
    model = small_model()
    model[2].weight.data[...] *= 100
    x, y = blobs(16)
    with tg.no_grad():
        assert F.cross_entropy(model(tg.Tensor(x)), y).item() > 1.5 * math.log(3)  # precondition
    report = sanity_check(model, F.cross_entropy, x, y)
    assert "high_init_loss" in report.kinds and not report.ok
    assert "confidently wrong" in str(report)


class Ignores(nn.Module):
    """A forward pass that drops its input (the bug: x * 0 stands for any lost connection)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 3)

    def forward(self, x):
        return self.layer(x * 0.0)


def test_a_model_that_ignores_its_input_cannot_overfit_and_is_told_so():
    x, y = blobs(16)
    report = sanity_check(Ignores(), F.cross_entropy, x, y)
    assert {"cannot_overfit", "ignores_input"} <= report.kinds
    assert "learns as well without its input" in str(report)


class BadSquare(Function):
    """z = x**2 with a wrong backward (the 2 of 2x forgotten)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * x


class WithBadOp(nn.Module):
    def __init__(self):
        super().__init__()
        tg.manual_seed(1)
        self.first, self.last = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.last(BadSquare.apply(self.first(x)))


def test_a_wrong_backward_fails_the_gradient_check():
    x, y = blobs(16)
    value = tg.Tensor(np.array([0.5, -1.5]), requires_grad=True)
    assert not tg.gradcheck(lambda t: BadSquare.apply(t), [value], raise_exception=False)  # precondition
    report = sanity_check(WithBadOp(), F.cross_entropy, x, y)
    assert "wrong_gradient" in report.kinds
    (check,) = [c for c in report.checks if c.name == "gradient check"]
    assert check.message.startswith("first.weight[") and "central differences" in check.message


def test_sanity_check_refuses_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        sanity_check(lambda x: x, F.cross_entropy, np.ones((2, 4)), [0, 1])
    with pytest.raises(ValueError, match="3 inputs but 2 targets"):
        sanity_check(small_model(), F.cross_entropy, np.ones((3, 4)), [0, 1])


# ---- lr_find ----------------------------------------------------------------------------------------
def test_lr_find_ramps_geometrically_stops_at_the_blow_up_and_restores_the_model():
    x, y = blobs(512, seed=3)
    model = small_model(2)
    before = state(model)
    result = lr_find(model, F.cross_entropy, DataLoader(TensorDataset(x, y), 32), start_lr=1e-4,
                     end_lr=1e4, steps=80)
    ratios = np.array(result.rates[1:]) / np.array(result.rates[:-1])
    np.testing.assert_allclose(ratios, (1e4 / 1e-4) ** (1 / 79), rtol=1e-9)
    assert len(result.rates) < 80 and result.losses[-1] > 4 * min(result.losses)  # stopped at the blow-up
    assert result.rates[0] <= result.suggested <= result.rates[-1]
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[name])

    def train(lr, steps=30):
        trained = small_model(2)
        opt = tg.optim.SGD(trained.parameters(), lr=lr)
        for _ in range(steps):
            loss = F.cross_entropy(trained(tg.Tensor(x[:64])), y[:64])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    start = F.cross_entropy(small_model(2)(tg.Tensor(x[:64])), y[:64]).item()
    assert train(result.suggested) < 0.5 * start  # the suggestion trains
    assert not train(result.suggested * 1000) < 0.5 * start  # far past it does not


def test_lr_find_plots_when_asked(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs(128, seed=4)
    target = tmp_path / "lr.png"
    result = lr_find(small_model(), F.cross_entropy, [(x, y)], steps=20, plot=target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result.losses) == len(result.rates)


# ---- learner 001's own class, diagnosed without porting ---------------------------------------------
def mnist_like(rng):
    return rng.uniform(0.4, 1.0, 784) * (rng.random(784) < 0.19), np.eye(10)[rng.integers(0, 10)]


def watched_run(init, seed, cost="cost_function", cls=ANN):
    np.random.seed(seed)  # their __init__ draws from NumPy's global generator
    net = cls(784, 10, 128, Lambda=1e-4, learning_rate=0.1)
    if init == "xavier":
        for name in ("W1", "W2", "W3"):
            shape = getattr(net, name).shape
            limit = np.sqrt(6 / sum(shape))
            setattr(net, name, np.random.uniform(-limit, limit, shape))
    monitor = NumpyMonitor(net, weights={"W1": "a0", "W2": "a1", "W3": "a2"},
                           activations={"a1": "sigmoid", "a2": "sigmoid"}, output="Y_est", cost=cost)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        net.train(*mnist_like(rng))
        monitor.step()
    return net, monitor


@pytest.mark.parametrize("seed", [0, 1])
def test_learner_001s_class_is_diagnosed_as_it_is(seed):
    net, monitor = watched_run("learner", seed)
    assert np.mean(monitor.saturated["a2"]) > 0.5  # precondition measured by hand below
    a2 = helpers.sigmoid(np.dot(net.W2.T, net.a1) + net.b2)
    assert np.mean((a2 < 0.01) | (a2 > 0.99)) > 0.5
    report = monitor.report()
    assert {"all_positive_init", "saturation", "vanishing_gradient", "output_loss_mismatch"} <= report.kinds
    (mismatch,) = [w.message for w in report.warnings if w.kind == "output_loss_mismatch"]
    assert mismatch.startswith("binary cross-entropy on softmax outputs")
    ratio = np.mean(monitor.output_grad["W1"]) / np.mean(monitor.output_grad["W3"])
    assert ratio < 1 / 400  # measured: 1/800-1/900 (kinds.NUMPY_VANISHING_RATIO is 1/200)
    assert "a2 (sigmoid)" in str(report) and "<table>" in monitor._repr_html_()


class CrossEntropyANN(ANN):
    def cost_function(self):  # the cost their backward (a3 - Y) really belongs to
        return -np.sum(self.Y * np.log(self.Y_est))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_class_with_xavier_and_cross_entropy_gets_none_of_those(seed):
    _, monitor = watched_run("xavier", seed, cls=CrossEntropyANN)
    report = monitor.report()
    problems = {"all_positive_init", "saturation", "vanishing_gradient", "output_loss_mismatch"}
    assert not report.kinds & problems
    ratio = np.mean(monitor.output_grad["W1"]) / np.mean(monitor.output_grad["W3"])
    assert ratio > 1 / 100  # measured: 1/40-1/60


def test_the_cost_is_read_by_running_it_and_the_learners_arrays_are_untouched():
    net, monitor = watched_run("learner", 2)
    y_est = net.Y_est.copy()
    (j, _) = net.cost_function()
    assert np.isclose(j, -np.sum(net.Y * np.log(y_est) + (1 - net.Y) * np.log(1 - y_est)))  # BCE
    assert np.isclose(y_est.sum(), 1.0)  # on a softmax
    assert isinstance(net.Y_est, np.ndarray) and np.array_equal(net.Y_est, y_est)
    with pytest.raises(ValueError, match="ANN.missing is not a NumPy array"):
        NumpyMonitor(net, weights=["missing"])


# ---- check_backprop names the cost mismatch -----------------------------------------------------------
def forward_001(p, x):
    a1 = helpers.sigmoid(np.dot(p[0].T, x) + p[1])
    a2 = helpers.sigmoid(np.dot(p[2].T, a1) + p[3])
    return a1, a2, helpers.softmax(np.dot(p[4].T, a2) + p[5])


LAMBDA = 0.01


def bce_cost(p, x, y):  # their cost_function, on the parameters as a list
    a3 = forward_001(p, x)[2]
    j = -1 * np.sum(np.dot(y, np.log(a3).T) + np.dot((1 - y), np.log(1 - a3).T))
    return j + LAMBDA / 2 * (np.sum(np.square(p[0])) + np.sum(np.square(p[2])) + np.sum(np.square(p[4])))


def ce_cost(p, x, y):
    a3 = forward_001(p, x)[2]
    j = -np.sum(y * np.log(a3))
    return j + LAMBDA / 2 * (np.sum(np.square(p[0])) + np.sum(np.square(p[2])) + np.sum(np.square(p[4])))


def their_backprop(p, x, y):  # their cost_function_dx, in the order of p
    a1, a2, a3 = forward_001(p, x)
    z1, z2 = np.dot(p[0].T, x) + p[1], np.dot(p[2].T, a1) + p[3]
    error_3 = a3 - y
    error_2 = np.multiply(helpers.sigmoid_dx(z2), np.dot(p[4], error_3))
    error_1 = np.multiply(helpers.sigmoid_dx(z1), np.dot(p[2], error_2))
    return [np.outer(x, error_1) + LAMBDA * p[0], error_1, np.outer(a1, error_2) + LAMBDA * p[2], error_2,
            np.outer(a2, error_3) + LAMBDA * p[4], error_3]


def test_check_backprop_says_when_every_gradient_belongs_to_another_cost():
    rng = np.random.default_rng(5)
    p = [rng.normal(size=s) * 0.5 for s in [(12, 6), (6,), (6, 6), (6,), (6, 4), (4,)]]
    x, y = rng.normal(size=12), np.eye(4)[1]
    assert tg.check_backprop(ce_cost, their_backprop, p, x, y).ok  # precondition: right for CE
    report = tg.check_backprop(bce_cost, their_backprop, p, x, y)
    assert [row.kind for row in report.rows] == ["values"] * 6
    text = str(report)
    assert "every gradient is wrong" in text and "differentiates another cost than `cost`" in text
    assert "not of binary cross-entropy on a softmax" in text


# ---- learner 000's predict under the broadcast guard, unchanged ---------------------------------------
def test_learner_000s_predict_runs_once_under_the_guard_and_gets_the_report():
    rng = np.random.default_rng(6)
    p = [rng.normal(size=s) * 0.5 for s in [(400, 25), (1, 25), (25, 10), (1, 10)]]
    x, y = rng.normal(size=(200, 400)), np.eye(10)[rng.integers(0, 10, 200)]
    predictions, plain_accuracy = learner_000.predict(p, x, y)  # their code on arrays
    right = np.mean(predictions.ravel() == np.argmax(y, axis=1)) * 100
    assert plain_accuracy != pytest.approx(right)  # precondition: the (200, 200) table is wrong
    report = check_broadcasts(learner_000.predict, p, x, y)
    assert not report.ok
    (finding,) = report.findings
    assert "seed_learner.py" in finding and ", in predict: `return a, np.mean(a == b) * 100`" in finding
    assert "== of shapes (200, 1) and (200,)" in finding and "reshape the (200, 1) one to (200,)" in finding
    assert report.result[1] == pytest.approx(plain_accuracy)  # the same computation, now seen
    assert isinstance(report.result[0], np.ndarray)


def test_a_correct_predict_is_reported_clean():
    def predict(p, x, y):
        [pred, _] = learner_000.feedForward(p, x)
        return np.mean(pred[-1].argmax(axis=1) == np.argmax(y, axis=1)) * 100

    rng = np.random.default_rng(7)
    p = [rng.normal(size=s) for s in [(20, 5), (1, 5), (5, 4), (1, 4)]]
    report = check_broadcasts(predict, p, rng.normal(size=(30, 20)), np.eye(4)[rng.integers(0, 4, 30)])
    assert report.ok and str(report) == "check_broadcasts: no operation stretched both of its operands"
