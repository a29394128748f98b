"""Monitor: statistics equal hand-computed values, and the warnings tell a bad start from a good one.

The central case is the second learner's network (seeds/001): 784-128-128-10 sigmoid, weights
``rand * sqrt(1/n)`` (all positive). It must be flagged as saturated with vanishing gradients;
the same network with Xavier weights must not be.
"""
import math
import os
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, optim
from tinygrad_edu.diagnostics import DiagnosticsReport, Monitor


# ---- helpers ------------------------------------------------------------------------------------
def mnist_like(rng, n=64):
    """Pixels like MNIST's: ~19% of them lit, lit ones in [0.4, 1]; mean 0.13, std 0.29
    (MNIST: 0.13, 0.31). Labels 0..9 at random."""
    x = rng.uniform(0.4, 1.0, size=(n, 784)) * (rng.random((n, 784)) < 0.19)
    return x.astype(np.float32), rng.integers(0, 10, n)


def learner_network(init: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(
        nn.Linear(784, 128), nn.Sigmoid(), nn.Linear(128, 128), nn.Sigmoid(), nn.Linear(128, 10)
    )
    for layer in (model[0], model[2], model[4]):
        if init == "learner":
            # np.random.rand(n_in, n_out) * sqrt(1/n_in), transposed to nn.Linear's (out, in)
            layer.weight.data[...] = rng.random(layer.weight.shape) * math.sqrt(1 / layer.in_features)
        else:
            nn.init.xavier_uniform_(layer.weight)
        layer.bias.data[...] = 0
    return model


def train(model, batches, lr=0.1, monitor=None, loss_fn=F.cross_entropy):
    """Plain SGD over (x, y) batches; returns the losses."""
    opt = optim.SGD(model.parameters(), lr=lr)
    losses = []
    for x, y in batches:
        scores = model(tg.Tensor(x))
        loss = loss_fn(scores, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if monitor is not None:
            monitor.step(loss, scores, y)
        losses.append(loss.item())
    return losses


def monitored(model, batches, lr=0.1, **kwargs):
    monitor = Monitor(model)
    train(model, batches, lr, monitor, **kwargs)
    return monitor


def messages(report, kind):
    return [w.message for w in report.warnings if w.kind == kind]


# ---- the second learner's initialisation --------------------------------------------------------
# Measured over 5 steps (seeds 0-2): saturated fraction of the 2nd sigmoid layer 0.82-0.88 with the
# learner's weights, 0.00 with Xavier (limit 0.5); dL/d(activation) RMS first/last layer 6.3e-3 to
# 6.6e-3 with the learner's weights, 0.23-0.24 with Xavier (limit 0.03).
@pytest.mark.parametrize("seed", [0, 1])
def test_learner_initialisation_is_flagged_saturated_vanishing_all_positive(seed):
    rng = np.random.default_rng(100 + seed)
    monitor = monitored(learner_network("learner", seed), [mnist_like(rng) for _ in range(5)])
    report = monitor.report()
    assert {"saturation", "vanishing_gradient", "all_positive_init"} <= report.kinds
    (saturation,) = messages(report, "saturation")
    assert saturation.startswith("layer 3 (Sigmoid): ")
    assert "saturated — gradients vanish; see nn.init.xavier_uniform_" in saturation
    assert np.mean(monitor.layers["3"].saturated) > 0.7
    (vanishing,) = messages(report, "vanishing_gradient")
    assert "layer 1 (Sigmoid)" in vanishing and "layer 3 (Sigmoid)" in vanishing
    (positive,) = messages(report, "all_positive_init")
    assert "0.weight, 2.weight, 4.weight" in positive and "bias" not in positive.split(":")[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_same_network_with_xavier_gets_none_of_those_warnings(seed):
    rng = np.random.default_rng(100 + seed)
    monitor = monitored(learner_network("xavier", seed), [mnist_like(rng) for _ in range(5)])
    report = monitor.report()
    assert not report.kinds & {"saturation", "vanishing_gradient", "all_positive_init", "all_equal_init"}
    assert max(monitor.layers["1"].saturated + monitor.layers["3"].saturated) < 0.05
    ratio = np.mean(monitor.layers["1"].grad_rms) / np.mean(monitor.layers["3"].grad_rms)
    assert ratio > 0.1


def test_report_table_lists_layers_and_parameters():
    rng = np.random.default_rng(3)
    monitor = monitored(learner_network("learner"), [mnist_like(rng) for _ in range(2)])
    report = monitor.report()
    assert isinstance(report, DiagnosticsReport)
    text = str(report)
    lines = text.splitlines()
    assert "2 step(s) recorded" in lines[0]
    assert any(line.startswith("1 (Sigmoid)") for line in lines)
    assert any(line.startswith("3 (Sigmoid)") for line in lines)
    for name in ("0.weight", "0.bias", "2.weight", "4.bias"):
        assert any(line.startswith(name) for line in lines)
    assert "warnings:" in text and all(w.message in text for w in report.warnings)
    assert "ln 10 = 2.303" in text


# ---- dead ReLU ------------------------------------------------------------------------------------
def relu_network(init: str):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))
    if init == "negative_bias":
        model[0].bias.data[...] = -10.0  # |x @ W.T| stays below ~3 here: no unit ever fires
    else:
        nn.init.kaiming_normal_(model[0].weight, nonlinearity="relu")
        model[0].bias.data[...] = 0
    return model


def relu_batches(n_batches=3):
    rng = np.random.default_rng(7)
    return [(rng.normal(size=(64, 20)).astype(np.float32), rng.integers(0, 5, 64)) for _ in range(n_batches)]


def test_large_negative_bias_kills_relu_units_and_is_flagged():
    monitor = monitored(relu_network("negative_bias"), relu_batches())
    report = monitor.report()
    (dead,) = messages(report, "dead_relu")
    assert dead.startswith("layer 1 (ReLU): 100% of units dead")
    assert "kaiming" in dead and "LeakyReLU" in dead
    assert monitor.layers["1"].dead == [1.0, 1.0, 1.0]


def test_kaiming_relu_network_has_no_dead_units_warning():
    monitor = monitored(relu_network("kaiming"), relu_batches())
    assert "dead_relu" not in monitor.report().kinds
    assert max(monitor.layers["1"].dead) < 0.1


# ---- statistics equal hand-computed values ---------------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 8)
        self.act = nn.Sigmoid()

    def forward(self, x):
        return self.act(self.linear(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.mid = nn.Linear(8, 8)
        self.tanh = nn.Tanh()
        self.last = nn.Linear(8, 8)
        self.relu = nn.ReLU()
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.relu(self.last(self.tanh(self.mid(self.block(x))))))


def test_activation_statistics_equal_hand_computed_values():
    tg.manual_seed(1)
    model = Net()
    model.block.linear.weight.data[...] *= 8  # push some sigmoid units into saturation
    model.mid.weight.data[...] *= 6
    model.last.bias.data[:3] = -50.0  # three ReLU units dead for every sample
    seen = {}
    for name in ("block.act", "tanh", "relu"):
        module = dict(model.named_modules())[name]
        module.register_forward_hook(lambda m, i, out, name=name: seen.__setitem__(name, out.data.copy()))
    x = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    y = np.arange(32) % 3
    monitor = monitored(model, [(x, y)])

    assert list(monitor.layers) == ["block.act", "tanh", "relu"]
    for name, out in seen.items():
        out = out.astype(np.float64)
        assert monitor.layers[name].mean[0] == pytest.approx(out.mean(), rel=1e-9)
        assert monitor.layers[name].std[0] == pytest.approx(out.std(), rel=1e-9)
    sigmoid, tanh, relu = seen["block.act"], seen["tanh"], seen["relu"]
    saturated_sigmoid = np.mean((sigmoid < 0.01) | (sigmoid > 0.99))
    assert 0.05 < saturated_sigmoid < 0.95  # the check below compares a real fraction
    assert monitor.layers["block.act"].saturated[0] == saturated_sigmoid
    assert monitor.layers["tanh"].saturated[0] == np.mean(np.abs(tanh) > 0.99)
    dead = np.mean(np.all(relu == 0, axis=0))
    assert dead >= 3 / 8 and monitor.layers["relu"].dead[0] == dead
    assert math.isnan(monitor.layers["relu"].saturated[0]) and math.isnan(monitor.layers["tanh"].dead[0])
    assert any(line.startswith("block.act (Sigmoid)") for line in str(monitor.report()).splitlines())


def test_activation_gradient_rms_equals_hand_computed_dL_da():
    tg.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 5), nn.Sigmoid(), nn.Linear(5, 4))
    x = np.random.default_rng(1).normal(size=(10, 6))
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    # the forward uses the weights from before the step
    w1, b1, w2, b2 = (p.data.astype(np.float64).copy() for p in model.parameters())
    monitor = monitored(model, [(x.astype(np.float32), y)])
    a = 1 / (1 + np.exp(-(x @ w1.T + b1)))
    logits = a @ w2.T + b2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    # mean cross-entropy: dL/dlogits = (softmax - onehot) / N, and dL/da = dL/dlogits @ W2
    da = (probs - np.eye(4)[y]) / len(y) @ w2
    assert monitor.layers["1"].grad_rms[0] == pytest.approx(np.sqrt(np.mean(da**2)), rel=1e-4)


def test_parameter_gradient_norms_and_update_ratios_equal_hand_computed_values():
    tg.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    rng = np.random.default_rng(2)
    monitor = Monitor(model)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    expected_norms, expected_ratios = {n: [] for n in monitor.params}, {n: [] for n in monitor.params}
    for _ in range(3):
        x, y = rng.normal(size=(16, 5)).astype(np.float32), rng.integers(0, 3, 16)
        before = {n: p.data.astype(np.float64).copy() for n, p in model.named_parameters()}
        scores = model(tg.Tensor(x))
        loss = F.cross_entropy(scores, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for name, p in model.named_parameters():
            expected_norms[name].append(np.linalg.norm(p.grad.data))
            change = np.linalg.norm(p.data.astype(np.float64) - before[name])
            expected_ratios[name].append(change / np.linalg.norm(before[name]))
        monitor.step(loss, scores, y)
    for name, history in monitor.params.items():
        np.testing.assert_allclose(history.grad_norm, expected_norms[name], rtol=1e-6)
        np.testing.assert_allclose(history.update_ratio, expected_ratios[name], rtol=1e-6)
        assert all(r > 0 for r in history.update_ratio)


def test_every_records_one_step_in_n_and_ratios_span_one_step():
    tg.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 6), nn.Sigmoid(), nn.Linear(6, 2))
    monitor = Monitor(model, every=2)
    opt = optim.SGD(model.parameters(), lr=0.5)
    rng = np.random.default_rng(3)
    ratios = []
    for _ in range(5):
        before = model[0].weight.data.astype(np.float64).copy()
        x, y = rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 2, 8)
        scores = model(tg.Tensor(x))
        loss = F.cross_entropy(scores, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ratios.append(np.linalg.norm(model[0].weight.data - before) / np.linalg.norm(before))
        monitor.step(loss, scores, y)
    assert monitor.steps == [0, 2, 4]
    assert len(monitor.layers["1"].mean) == 3 and len(monitor.loss) == 3
    np.testing.assert_allclose(monitor.params["0.weight"].update_ratio, ratios[::2], rtol=1e-5)


def test_evaluation_passes_are_not_recorded():
    tg.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 6), nn.Sigmoid(), nn.Linear(6, 2))
    x, y = np.random.default_rng(4).normal(size=(8, 4)).astype(np.float32), np.array([0, 1] * 4)
    reference = monitored(model, [(x, y)], lr=0.0)

    monitor = Monitor(model)
    with tg.no_grad():
        model(tg.Tensor(x * 100))  # would change the mean and saturation if recorded
    model.eval()
    model(tg.Tensor(x * 100))
    model.train()
    train(model, [(x, y)], lr=0.0, monitor=monitor)
    assert monitor.layers["1"].mean == reference.layers["1"].mean
    assert monitor.layers["1"].saturated == reference.layers["1"].saturated


# ---- loss and accuracy checks ----------------------------------------------------------------------
def classifier(scale: float):
    tg.manual_seed(6)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 10))
    model[2].weight.data[...] *= scale
    return model


def random_batches(n_batches, n=64, classes=10, seed=8):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(n, 20)).astype(np.float32), rng.integers(0, classes, n)) for _ in range(n_batches)
    ]


def test_huge_initial_logits_give_a_first_loss_warning_that_names_ln_c():
    monitor = monitored(classifier(100.0), random_batches(2))
    assert monitor.loss[0] > 1.5 * math.log(10)
    (message,) = messages(monitor.report(), "high_first_loss")
    assert "ln(10) ≈ 2.30" in message


def test_ordinary_initial_logits_give_no_first_loss_warning():
    monitor = monitored(classifier(1.0), random_batches(2))
    assert monitor.loss[0] == pytest.approx(math.log(10), rel=0.2)
    assert "high_first_loss" not in monitor.report().kinds


def test_first_loss_is_only_compared_for_mean_cross_entropy():
    def mse(scores, y):
        return F.mse_loss(scores, np.eye(10, dtype=np.float32)[y])

    monitor = monitored(classifier(100.0), random_batches(2), loss_fn=mse)
    assert monitor.loss[0] > 10 and not monitor.cross_entropy
    assert "high_first_loss" not in monitor.report().kinds
    def summed_cross_entropy(scores, y):
        return F.cross_entropy(scores, y, reduction="sum")

    summed = monitored(classifier(100.0), random_batches(2), loss_fn=summed_cross_entropy)
    assert "high_first_loss" not in summed.report().kinds


def test_frozen_model_on_random_labels_is_stuck_at_chance():
    monitor = monitored(classifier(1.0), random_batches(12, n=128), lr=0.0)
    report = monitor.report()
    (message,) = messages(report, "chance_accuracy")
    assert "chance for 10 classes" in message
    assert "small_update" in report.kinds  # lr=0: nothing moves


def test_chance_needs_enough_steps_and_is_not_reported_when_accuracy_is_high():
    assert "chance_accuracy" not in monitored(classifier(1.0), random_batches(9), lr=0.0).report().kinds
    model = classifier(1.0)
    monitor = Monitor(model)
    for x, _ in random_batches(12):
        scores = model(tg.Tensor(x))
        targets = scores.data.argmax(axis=1)  # labels the model already predicts: accuracy 1
        loss = F.cross_entropy(scores, targets)
        loss.backward()
        monitor.step(loss, scores, targets)
    assert monitor.accuracy == [1.0] * 12
    assert "chance_accuracy" not in monitor.report().kinds


# ---- initial weights and NaN ------------------------------------------------------------------------
def test_all_equal_weights_are_flagged_but_zero_biases_are_not():
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    nn.init.constant_(model[0].weight, 0.3)
    nn.init.zeros_(model[2].weight)
    nn.init.zeros_(model[0].bias)
    nn.init.zeros_(model[2].bias)
    report = Monitor(model).report()
    (message,) = messages(report, "all_equal_init")
    assert message.startswith("0.weight (all 0.3), 2.weight (all 0): every initial weight is the same")
    assert "bias" not in message
    assert "all_positive_init" not in report.kinds


def test_default_initialisation_is_not_flagged():
    tg.manual_seed(9)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    assert Monitor(model).report().warnings == []


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_parameter_is_named_with_its_step(bad):
    model = classifier(1.0)
    monitor = Monitor(model)
    batches = random_batches(4)
    train(model, batches[:2], monitor=monitor)
    model[0].weight.data[1, 2] = bad
    train(model, batches[2:], monitor=monitor)
    (message,) = messages(monitor.report(), "non_finite")
    assert message.startswith("step 2: NaN/Inf in ") and "lower lr" in message
    assert "0.weight (parameter)" in message
    if np.isnan(bad):  # NaN spreads to the loss and the gradients; one inf weight only saturates a tanh unit
        assert message.startswith("step 2: NaN/Inf in the loss, 0.weight (parameter), 0.weight (gradient)")


# ---- plot --------------------------------------------------------------------------------------------
def test_plot_writes_a_png_atomically(tmp_path):
    pytest.importorskip("matplotlib", reason="plot needs matplotlib, from the examples extra")
    rng = np.random.default_rng(5)
    monitor = monitored(learner_network("learner"), [mnist_like(rng, n=16) for _ in range(3)])
    target = tmp_path / "diagnostics.png"
    assert monitor.plot(target) == str(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["diagnostics.png"]


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monitor = Monitor(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(ImportError, match=r"pip install tinygrad_edu\[examples\]"):
        monitor.plot(tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


# ---- hooks on and off; no effect on training -------------------------------------------------------
def test_monitor_does_not_change_training():
    batches = [mnist_like(np.random.default_rng(11), n=16) for _ in range(4)]
    plain, watched = learner_network("xavier", 3), learner_network("xavier", 3)
    watched.load_state_dict(plain.state_dict())
    losses_plain = train(plain, batches)
    with Monitor(watched) as monitor:
        losses_watched = train(watched, batches, monitor=monitor)
    assert losses_plain == losses_watched
    for (name, p), q in zip(plain.named_parameters(), watched.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_remove_and_context_manager_take_every_hook_off():
    model = learner_network("learner")
    batches = [mnist_like(np.random.default_rng(12), n=8) for _ in range(2)]
    with Monitor(model) as monitor:
        assert model[1]._forward_hooks and model[3]._forward_hooks
        train(model, batches[:1], monitor=monitor)
    assert all(not module._forward_hooks for module in model.modules())
    train(model, batches[1:], monitor=monitor)
    assert monitor.steps == [0] and len(monitor.layers["1"].mean) == 1

    other = Monitor(model)
    other.remove()
    assert all(not module._forward_hooks for module in model.modules())


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="nn.Module"):
        Monitor([nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="every"):
        Monitor(nn.Linear(2, 2), every=0)
    monitor = Monitor(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(ValueError, match="one number"):
        monitor.step(tg.Tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="last"):
        monitor.report(last=0)
