"""The eight later kinds of the Monitor: each scenario really has its problem (the precondition is
asserted on numbers measured outside the Monitor), the Monitor names it, and healthy runs raise
none of them. Also: bounded history and pending hooks, and the Jupyter display."""

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, optim
from tinygrad_edu.diagnostics import Monitor
from tinygrad_edu.diagnostics.monitor import MAX_PENDING_FORWARDS

NEW_KINDS = {
    "exploding_gradient", "unstable_loss", "unnormalized_input", "output_loss_mismatch",
    "constant_output", "unshuffled_data", "grad_not_zeroed", "overfitting",
}


def blobs(n, seed=0, classes=3, features=10, spread=1.0):
    """Standardised inputs; each class is a Gaussian blob around its own centre (learnable)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, features)) * 1.5
    y = rng.integers(0, classes, n)
    x = centres[y] + spread * rng.normal(size=(n, features))
    return x.astype(np.float32), y


def mlp(seed=0, features=10, hidden=32, classes=3, act=nn.Tanh):
    tg.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, hidden), act(), nn.Linear(hidden, hidden), act(),
                         nn.Linear(hidden, classes))


def batches_of(x, y, size=64):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def run(model, batches, lr=0.05, loss_fn=F.cross_entropy, zero_grad=True, monitor=None, val=None,
        optimizer=None):
    """SGD over the batches with a Monitor; returns (monitor, losses, parameter gradient norms)."""
    monitor = monitor or Monitor(model)
    opt = optimizer or optim.SGD(model.parameters(), lr=lr)
    losses, grad_norms = [], []
    for i, (x, y) in enumerate(batches):
        scores = model(tg.Tensor(x))
        loss = loss_fn(scores, y)
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        grad_norms.append([float(np.linalg.norm(p.grad.data)) for p in model.parameters()])
        opt.step()
        val_loss = val(model) if val is not None and i % 5 == 4 else None
        monitor.step(loss, scores, y, val_loss=val_loss)
        losses.append(loss.item())
    return monitor, losses, np.array(grad_norms)


def kinds_of(monitor):
    return monitor.report().kinds


def the_message(monitor, kind):
    (message,) = [w.message for w in monitor.report().warnings if w.kind == kind]
    assert message.endswith(f"[docs/diagnostics.md#{kind}]")
    return message


# ---- a healthy run raises none of the new kinds ---------------------------------------------------
def healthy_validation(model):
    x, y = blobs(256, seed=50)
    with tg.no_grad():
        return F.cross_entropy(model(tg.Tensor(x)), y).item()


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU])
def test_a_healthy_run_raises_none_of_the_new_kinds(act):
    x, y = blobs(64 * 30, seed=1)
    optimizer_model = mlp(act=act)
    opt = optim.SGD(optimizer_model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    monitor, losses, _ = run(optimizer_model, batches_of(x, y), optimizer=opt, val=healthy_validation)
    assert losses[-1] < 0.5 * losses[0]  # it really learns
    assert len(monitor.val_loss) == 6
    assert not monitor.report().kinds & NEW_KINDS


# ---- exploding_gradient ---------------------------------------------------------------------------
def deep_relu(scale):
    tg.manual_seed(3)
    layers = []
    for _ in range(6):
        linear = nn.Linear(32, 32)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        linear.weight.data[...] *= scale
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(32, 3))


def test_weights_three_times_too_large_make_gradients_explode_toward_the_input():
    x, y = blobs(64 * 3, seed=2, features=32)
    model = deep_relu(3.0)
    seen = {}  # dL/d(output) RMS of the first and last ReLU, measured beside the Monitor

    def keep_gradient(module, inputs, output, name):
        output.register_hook(lambda grad: seen.__setitem__(name, np.sqrt(np.mean(grad.data**2))))

    model[1].register_forward_hook(lambda m, i, o: keep_gradient(m, i, o, "first"))
    model[11].register_forward_hook(lambda m, i, o: keep_gradient(m, i, o, "last"))
    monitor, _, _ = run(model, batches_of(x, y), lr=1e-6)
    assert seen["first"] > 70 * seen["last"]  # precondition: it really explodes
    message = the_message(monitor, "exploding_gradient")
    assert "gradients explode toward the input" in message and "layer 1 (ReLU)" in message
    control, _, _ = run(deep_relu(1.0), batches_of(x, y), lr=1e-6)
    assert "exploding_gradient" not in kinds_of(control)


def test_gradients_that_grow_a_thousandfold_are_exploding():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    target = x @ rng.normal(size=(8, 1)).astype(np.float32)
    tg.manual_seed(4)
    model = nn.Sequential(nn.Linear(8, 1))
    monitor, losses, norms = run(model, [(x, target)] * 25, lr=0.7, loss_fn=F.mse_loss)
    assert norms[:, 0].max() > 1e3 * norms[0, 0]  # precondition: the steps feed back on themselves
    assert "0.weight (" in the_message(monitor, "exploding_gradient")


# ---- unstable_loss ------------------------------------------------------------------------------
def test_a_learning_rate_far_too_high_makes_the_loss_unstable():
    x, y = blobs(64 * 20, seed=5)
    monitor, losses, _ = run(mlp(), batches_of(x, y), lr=20.0)
    jumps = np.abs(np.diff(losses[-10:]))
    assert jumps.mean() > 0.5 * np.mean(losses[-10:])  # precondition: it really oscillates
    message = the_message(monitor, "unstable_loss")
    assert "learning rate is too high" in message and "lr_find" in message
    control, losses, _ = run(mlp(), batches_of(x, y), lr=0.05)
    assert np.abs(np.diff(losses[-10:])).mean() < 0.3 * np.mean(losses[-10:])
    assert "unstable_loss" not in kinds_of(control)


def test_a_climbing_loss_is_unstable():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    target = x @ rng.normal(size=(8, 1)).astype(np.float32)
    tg.manual_seed(6)
    model = nn.Sequential(nn.Linear(8, 1))
    monitor, losses, _ = run(model, [(x, target)] * 10, lr=0.6, loss_fn=F.mse_loss)
    assert losses[-1] > 10 * losses[0] and all(np.isfinite(losses))  # precondition: it diverges
    assert "unstable_loss" in kinds_of(monitor)


# ---- unnormalized_input ---------------------------------------------------------------------------
def test_pixels_0_to_255_are_flagged_and_the_same_pixels_scaled_are_not():
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(64 * 3, 10)).astype(np.float32)
    y = rng.integers(0, 3, 64 * 3)
    assert pixels.max() > 200 and np.sqrt(np.mean(pixels**2)) > 100  # precondition
    monitor, _, _ = run(mlp(), batches_of(pixels, y), lr=0.01)
    message = the_message(monitor, "unnormalized_input")
    assert "inputs with RMS 1" in message and "x / 255" in message
    control, _, _ = run(mlp(), batches_of(pixels / 255.0, y), lr=0.01)
    assert "unnormalized_input" not in kinds_of(control)


def test_integer_inputs_are_flagged():
    rng = np.random.default_rng(8)
    x, y = rng.integers(0, 3, size=(64, 10)).astype(np.int64), rng.integers(0, 3, 64)
    model = mlp()
    monitor = Monitor(model)
    scores = model(tg.Tensor(x))
    F.cross_entropy(scores, y).backward()
    monitor.step(None, scores, y)
    assert "integer inputs (int64)" in the_message(monitor, "unnormalized_input")


# ---- output_loss_mismatch -------------------------------------------------------------------------
def softmax_model():
    model = mlp()
    return nn.Sequential(*model, nn.Softmax(axis=1))


def test_probabilities_given_to_cross_entropy_are_flagged():
    x, y = blobs(64 * 2, seed=9)
    monitor, _, _ = run(softmax_model(), batches_of(x, y))
    scores = softmax_model()(tg.Tensor(x)).data
    assert np.allclose(scores.sum(axis=1), 1)  # precondition: the model outputs probabilities
    assert "expects logits" in the_message(monitor, "output_loss_mismatch")


def test_softmax_outputs_given_to_binary_cross_entropy_are_flagged_as_learner_001s_bug():
    x, y = blobs(64 * 2, seed=10)

    def bce_on_one_hot(probabilities, labels):
        return F.binary_cross_entropy(probabilities, np.eye(3, dtype=np.float32)[labels])

    monitor, _, _ = run(softmax_model(), batches_of(x, y), loss_fn=bce_on_one_hot)
    assert "binary cross-entropy on softmax outputs" in the_message(monitor, "output_loss_mismatch")


def test_logits_to_cross_entropy_and_sigmoids_to_bce_are_not_flagged():
    x, y = blobs(64 * 2, seed=11)
    monitor, _, _ = run(mlp(), batches_of(x, y))
    assert "output_loss_mismatch" not in kinds_of(monitor)

    def multi_label(scores, labels):  # independent yes/no per class: BCE on sigmoids is right
        return F.binary_cross_entropy(scores.sigmoid(), np.eye(3, dtype=np.float32)[labels])

    monitor, _, _ = run(mlp(), batches_of(x, y), loss_fn=multi_label)
    assert "output_loss_mismatch" not in kinds_of(monitor)


# ---- constant_output --------------------------------------------------------------------------------
def test_a_model_that_always_predicts_one_class_is_flagged():
    x, y = blobs(64 * 12, seed=12)
    model = mlp()
    model[4].bias.data[0] = 50.0  # class 0 wins for every input
    predictions = model(tg.Tensor(x)).data.argmax(axis=1)
    assert np.all(predictions == 0) and len(set(y)) == 3  # precondition
    monitor, _, _ = run(model, batches_of(x, y), lr=0.0)
    assert "every prediction is the same class" in the_message(monitor, "constant_output")
    control, _, _ = run(mlp(), batches_of(x, y), lr=0.0)
    assert "constant_output" not in kinds_of(control)
    early, _, _ = run(model, batches_of(x, y)[:9], lr=0.0)  # untrained networks often start so
    assert "constant_output" not in kinds_of(early)


# ---- unshuffled_data --------------------------------------------------------------------------------
def test_batches_sorted_by_class_are_flagged_and_shuffled_ones_are_not():
    x, y = blobs(64 * 6, seed=13)
    y_sorted = np.repeat(np.arange(3), 128)  # two batches of 64 per class, in class order
    sorted_batches = batches_of(blobs(64 * 6, seed=13)[0], y_sorted)
    assert all(len(set(labels)) == 1 for _, labels in sorted_batches)  # precondition
    monitor, _, _ = run(mlp(), sorted_batches)
    assert "holds a single class" in the_message(monitor, "unshuffled_data")
    control, _, _ = run(mlp(), batches_of(x, y))
    assert "unshuffled_data" not in kinds_of(control)


def test_per_sample_steps_are_not_called_unshuffled():
    x, y = blobs(12, seed=14)
    monitor, _, _ = run(mlp(), batches_of(x, y, size=1))
    assert "unshuffled_data" not in kinds_of(monitor)


# ---- grad_not_zeroed --------------------------------------------------------------------------------
def test_gradients_accumulating_across_steps_are_flagged():
    x, y = blobs(64 * 3, seed=15)
    model = mlp()
    first_grads = []
    monitor = Monitor(model)
    opt = optim.SGD(model.parameters(), lr=0.0)  # lr 0: the gradients of the same batch repeat
    for _ in range(2):
        scores = model(tg.Tensor(x[:64]))
        loss = F.cross_entropy(scores, y[:64])
        loss.backward()  # no zero_grad
        first_grads.append(model[0].weight.grad.data.copy())
        opt.step()
        monitor.step(loss, scores, y[:64])
    np.testing.assert_allclose(first_grads[1], 2 * first_grads[0], rtol=1e-5)  # precondition
    message = the_message(monitor, "grad_not_zeroed")
    assert message.startswith("step 1: .grad of 0.weight") and "optimizer.zero_grad()" in message


def test_clipped_gradients_and_several_backwards_in_one_step_are_not_flagged():
    x, y = blobs(64 * 4, seed=16)
    model = mlp()
    monitor = Monitor(model)
    opt = optim.SGD(model.parameters(), lr=0.05)
    for i in range(4):
        opt.zero_grad()
        for half in (slice(0, 32), slice(32, 64)):  # gradient accumulation inside one step
            scores = model(tg.Tensor(x[64 * i:][half]))
            loss = F.cross_entropy(scores, y[64 * i:][half])
            loss.backward()
        for p in model.parameters():
            p.grad.data[...] *= 0.5  # clipping/scaling .grad makes it smaller, never bigger
        opt.step()
        monitor.step(loss, scores, y[64 * i:][half])
    assert "grad_not_zeroed" not in kinds_of(monitor)


def test_gradients_filled_without_the_hooks_running_are_not_judged():
    model = mlp()
    monitor = Monitor(model)
    for p in model.parameters():  # as a step that bypasses the graph (a compiled step) would
        p.grad = tg.Tensor(np.ones(p.shape, dtype=np.float32))
    monitor.step(1.0)
    assert "grad_not_zeroed" not in kinds_of(monitor)


# ---- overfitting ------------------------------------------------------------------------------------
def test_validation_loss_rising_while_training_loss_falls_is_overfitting():
    rng = np.random.default_rng(17)
    x_train, y_train = rng.normal(size=(16, 10)).astype(np.float32), rng.integers(0, 3, 16)
    x_val, y_val = rng.normal(size=(200, 10)).astype(np.float32), rng.integers(0, 3, 200)
    val_losses = []

    def validation(model):
        with tg.no_grad():
            val_losses.append(F.cross_entropy(model(tg.Tensor(x_val)), y_val).item())
        return val_losses[-1]

    monitor, losses, _ = run(mlp(hidden=64), [(x_train, y_train)] * 200, lr=0.2, val=validation)
    best = int(np.argmin(val_losses))
    assert val_losses[-1] > 1.1 * val_losses[best] and losses[-1] < 0.1 * losses[5 * best]  # precondition
    message = the_message(monitor, "overfitting")
    assert "validation loss rose from" in message and "training loss fell" in message


# ---- bounded memory ----------------------------------------------------------------------------------
def test_histories_stay_within_max_points_and_stay_evenly_spaced():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
    monitor = Monitor(model, max_points=8)
    opt = optim.SGD(model.parameters(), lr=0.01)
    x, y = np.ones((4, 2), dtype=np.float32), np.array([0, 1, 0, 1])
    for step in range(1000):
        scores = model(tg.Tensor(x))
        loss = F.cross_entropy(scores, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor.step(loss, scores, y, val_loss=1.0)
    series = [monitor.steps, monitor.loss, monitor.accuracy, monitor.input_rms, monitor.val_loss,
              monitor.layers["1"].mean, monitor.layers["1"].grad_rms, monitor.params["0.weight"].grad_norm]
    assert all(4 <= len(values) <= 8 for values in series)
    assert len({len(values) for values in series[:4]}) == 1
    gaps = set(np.diff(monitor.steps))
    assert len(gaps) == 1 and monitor.steps[0] == 0 and monitor.steps[-1] > 1000 - 2 * gaps.pop()
    assert monitor.val_steps[-1] == 999


def test_remove_takes_the_input_and_parameter_hooks_off_too():
    model = mlp()
    monitor = Monitor(model)
    assert model._forward_hooks and all(p._hooks for p in model.parameters())
    monitor.remove()
    assert not model._forward_hooks and not any(p._hooks for p in model.parameters())


def test_forward_passes_without_step_do_not_pile_up_hooks():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.ReLU())
    monitor = Monitor(model)
    outputs = []
    for _ in range(200):
        outputs.append(model(tg.Tensor(np.ones((1, 2), dtype=np.float32))))  # kept alive: worst case
    pending = sum(len(handles) for handles in monitor._tensor_handles.values())
    assert pending <= MAX_PENDING_FORWARDS * 2
    hooked = sum(len(out._ctx.parents[0]._hooks or ()) for out in outputs)  # the ReLU input's node
    assert hooked <= MAX_PENDING_FORWARDS


# ---- display ----------------------------------------------------------------------------------------
def test_monitor_and_report_display_as_html_tables_and_str_is_the_text():
    x, y = blobs(64 * 2, seed=18)
    monitor, _, _ = run(softmax_model(), batches_of(x, y))
    report = monitor.report()
    page = report._repr_html_()
    assert page.count("<table>") == 2 and "<th>saturated</th>" in page and "<th>update/weight</th>" in page
    assert "<b>output_loss_mismatch</b>" in page
    assert monitor._repr_html_() == page
    assert str(report).startswith("Training diagnostics: 2 step(s) recorded")
    assert "<" not in str(report).split("warnings:")[0]


def test_the_long_run_memory_script_runs_in_quick_mode():
    import pathlib
    import re
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parent.parent
    process = subprocess.run([sys.executable, "benchmarks/monitor_memory.py", "--quick"], cwd=root,
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    growths = re.findall(r"growth after 300 steps \(max_points 50\): ([+-][\d.]+) KiB", process.stdout)
    assert len(growths) == 2
    # 50 points of ~28 series of floats is about 45 KiB; unbounded, 300 steps held over 200 KiB.
    assert all(float(value) < 100 for value in growths)
