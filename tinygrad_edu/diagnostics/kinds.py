"""The warnings: each kind's threshold (with where it comes from) and the rule that reads the
Monitor's recorded numbers and says, in one line, what is wrong and what to try.

Rules only read; recording lives in monitor.py, tables in report.py.
"""
from __future__ import annotations

import math

import numpy as np

from .report import times, warn

# ---- thresholds ------------------------------------------------------------------------------
# Measured on the second learner's network (784-128-128-10 sigmoid, weights rand * sqrt(1/n),
# zero biases, MNIST-like inputs, SGD lr 0.1, 5 steps of 64, three seeds; see
# tests/test_diagnostics.py) against the same network with Xavier weights:
#   saturated fraction of the 2nd sigmoid layer   learner 0.82-0.88       Xavier 0.00
#   dL/d(activation) RMS, first / last layer      learner 6.3e-3-6.6e-3   Xavier 0.23-0.24
# (with sparser, dimmer inputs, pixels U(0, 1) with 80% zeros: saturation 0.36-0.40, ratio ~9e-3).
# Each healthy sigmoid layer passes back at most ~1/4 of its gradient (max sigmoid' = 0.25), so
# the ratio limit sits between the two cases, about 5x from each.
SATURATION_LIMIT = 0.5  # half the units give (almost) no gradient: the layer has mostly stopped learning
DEAD_LIMIT = 0.5  # the same reasoning for ReLU units that never fire
VANISHING_RATIO = 0.03  # the first layer gets under 3% of the gradient the last one gets
# The same question for NumpyMonitor, which sees dL/dz (from weight changes) at the first and the
# last (output) layer: measured on learner 001's network (784-128-128-10 sigmoid/softmax, one sample
# per step, 20 steps, seeds 0-1; tests/test_diagnostics_doctor.py): their init 1/800-1/900,
# Xavier 1/40-1/60. The limit sits between, about 4x from each.
NUMPY_VANISHING_RATIO = 1 / 200
# AUTOTRAINER (Zhang et al., ICSE 2021) calls gradients exploding when the first layer's gradient
# is more than 70 times the last one's.
EXPLODING_RATIO = 70.0
# A weight's gradient norm 1000 times its first recorded value: the steps feed back on themselves.
EXPLODING_GROWTH = 1e3
# Karpathy's rule of thumb: a healthy step changes a weight matrix by about 1e-3 of its size.
SMALL_UPDATE, LARGE_UPDATE = 1e-6, 1e-1
FIRST_LOSS_FACTOR = 1.5  # first loss above 1.5 ln C: the untrained outputs are confidently wrong
CHANCE_STEPS = 10  # accuracies needed before calling them "stuck"
# Loss over the last UNSTABLE_WINDOW recorded steps. Ours, measured in tests/test_diagnostics.py:
# minibatches of 64 move a healthy loss by 5-20% of its level from step to step; a learning rate
# 10-100x too high moves it by 100% and more, or makes it climb.
UNSTABLE_WINDOW = 10
UNSTABLE_JUMP = 0.5  # mean |loss step-to-step change| above half the mean loss: oscillating
UNSTABLE_CLIMB = 1.5  # the last third of the window 1.5x above the first third: climbing
UNSTABLE_FLOOR = 0.1  # ... both measured against at least a tenth of the first loss
# Inputs: standardised data has RMS 1, pixels in [0, 1] about 0.3, pixels 0..255 about 80.
# "About [-5, 5]" (the wording; LeCun et al., "Efficient BackProp", 1998: inputs should
# have mean near 0 and similar, unit-sized variances).
INPUT_RMS_LIMIT = 5.0
# Predictions or targets judged on batches of at least this many samples, over at least
# PATTERN_STEPS recorded steps (a one-class batch of 8 out of 2 classes happens by chance 1 in
# 128 times; five in a row, 1 in 3e10).
PATTERN_BATCH, PATTERN_STEPS = 8, 5
CONSTANT_SHARE = 0.99  # the most common predicted class takes 99% or more of every batch
# A zero-mean init makes all n weights of a matrix >= 0 with chance 2**-n: 1 in 4 for the (1, 2)
# output of a 2-2-1 XOR network. Only matrices where that chance is under 1 in 1000 are judged.
POSITIVE_INIT_MIN_SIZE = 10
# ... judged only after this many recorded steps: an untrained network often gives nearly the same
# scores to every input (a deep sigmoid one with Xavier weights does for its first steps).
CONSTANT_MIN_STEPS = 10
# Prechelt, "Early stopping - but when?" (1998): the generalisation loss GL = val / best val - 1;
# he stops at GL above 1-5%. Above 10% for the last two validations, while the training loss fell.
OVERFIT_RISE, OVERFIT_PATIENCE = 0.1, 2
NOT_ZEROED_TOLERANCE = 1e-3  # .grad differs from this step's backward by more than 0.1% of its norm


# ---- rules -------------------------------------------------------------------------------------
def initial_weight_problems(named_arrays: list) -> list:
    """All-equal or all-positive weight matrices at the start, one warning per kind naming them all.

    `named_arrays` holds (name, ndarray) pairs. Biases (ndim 1) are skipped: starting them all at
    zero is normal.
    """
    equal, positive = [], []
    for name, data in named_arrays:
        if data.ndim < 2 or data.size < 2:
            continue
        if np.all(data == data.flat[0]):
            equal.append(f"{name} (all {data.flat[0]:.3g})")
        elif data.size >= POSITIVE_INIT_MIN_SIZE and np.all(data >= 0):
            positive.append(name)
    found = []
    if equal:
        found.append(warn(
            "all_equal_init",
            f"{', '.join(equal)}: every initial weight is the same — the units of a layer compute the same "
            "thing and stay identical (symmetry); use a random zero-mean init: nn.init.xavier_uniform_ "
            "or nn.init.kaiming_normal_",
        ))
    if positive:
        found.append(warn(
            "all_positive_init",
            f"{', '.join(positive)}: every initial weight is >= 0 — sums grow with the layer width and "
            "sigmoid/tanh units saturate; use a zero-mean init: nn.init.xavier_uniform_ (sigmoid/tanh) or "
            "nn.init.kaiming_normal_ (ReLU)",
        ))
    return found


def saturation_warning(label: str, saturated: float) -> list:
    if not saturated >= SATURATION_LIMIT:
        return []
    return [warn("saturation", f"{label}: {saturated:.0%} of units saturated — gradients vanish; "
                               "see nn.init.xavier_uniform_")]


def layer_warnings(monitor, rows: dict) -> list:
    found = []
    for name, stats in rows.items():
        label = monitor._label(name)
        found += saturation_warning(label, stats["saturated"])
        if stats["dead"] >= DEAD_LIMIT:
            found.append(warn(
                "dead_relu",
                f"{label}: {stats['dead']:.0%} of units dead (zero for the whole batch) — they never "
                "learn; use nn.init.kaiming_normal_(w, nonlinearity='relu'), nn.LeakyReLU or a lower lr",
            ))
    with_grad = [name for name, stats in rows.items() if not math.isnan(stats["grad_rms"])]
    if len(with_grad) >= 2:
        first_name, last_name = with_grad[0], with_grad[-1]
        first, last_layer = rows[first_name]["grad_rms"], rows[last_name]["grad_rms"]
        where = f"at {monitor._label(first_name)} vs {last_layer:.1e} at {monitor._label(last_name)}"
        if last_layer > 0 and first < VANISHING_RATIO * last_layer:
            found.append(warn(
                "vanishing_gradient",
                f"gradients vanish toward the input: dL/d(output) RMS {first:.1e} {where}, "
                f"{times(last_layer, first)} weaker; use nn.init.xavier_uniform_ (sigmoid/tanh) "
                "or ReLU with nn.init.kaiming_normal_",
            ))
        if math.isfinite(first) and first > EXPLODING_RATIO * last_layer:
            found.append(warn(
                "exploding_gradient",
                f"gradients explode toward the input: dL/d(output) RMS {first:.1e} {where}, "
                f"{times(first, last_layer)} stronger (over {EXPLODING_RATIO:.0f}x); use smaller initial "
                "weights (nn.init.xavier_uniform_ / kaiming_normal_), a lower lr, or clip the gradient",
            ))
    return found


def parameter_warnings(monitor, rows: dict) -> list:
    found = []
    for name, stats in rows.items():
        if len(monitor.params[name].shape) < 2:
            continue  # bias vectors start at zero and move relatively far: not a symptom
        ratio, grad_norm = stats["update_ratio"], stats["grad_norm"]
        if grad_norm == 0:
            found.append(warn(
                "vanishing_gradient",
                f"{name}: gradient exactly zero — nothing reaches this weight; check for dead units "
                "right after it, or a detach()/no_grad in the forward",
            ))
        elif ratio < SMALL_UPDATE:
            found.append(warn(
                "small_update",
                f"{name}: update/weight ratio {ratio:.1e} per step — barely changing; raise lr, or "
                "fix a vanishing gradient if one is reported (about 1e-3 is healthy)",
            ))
        elif ratio > LARGE_UPDATE:
            found.append(warn(
                "large_update",
                f"{name}: update/weight ratio {ratio:.1e} per step — jumping around; lower lr "
                "(about 1e-3 is healthy)",
            ))
    growing = []
    for name, history in monitor.params.items():
        norms = np.asarray(history.grad_norm, dtype=np.float64)
        norms = norms[np.isfinite(norms)]
        if len(history.shape) >= 2 and norms.size >= 2 and 0 < norms[0] * EXPLODING_GROWTH < norms.max():
            growing.append(f"{name} ({norms[0]:.1e} -> {norms.max():.1e})")
    if growing:
        found.append(warn(
            "exploding_gradient",
            f"gradient norms grew over {EXPLODING_GROWTH:.0f}x during training: {', '.join(growing)} — "
            "each step makes the next one bigger; lower lr, or clip the gradient",
        ))
    by_step: dict = {}  # one line per step where something first went non-finite
    for (name, where), step in monitor._non_finite.items():
        by_step.setdefault(step, []).append("the loss" if name == "loss" else f"{name} ({where})")
    for step in sorted(by_step):
        found.append(warn(
            "non_finite",
            f"step {step}: NaN/Inf in {', '.join(by_step[step])} — lower lr, look for log(0) or "
            "division by zero; tg.detect_anomaly() names the op that made it",
        ))
    if monitor._not_zeroed:
        step = min(monitor._not_zeroed.values())
        names = sorted(monitor._not_zeroed, key=monitor._not_zeroed.get)
        names = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        found.append(warn(
            "grad_not_zeroed",
            f"step {step}: .grad of {names} holds more than this step's backward gave it — gradients "
            "add up across steps; call optimizer.zero_grad() before every loss.backward()",
        ))
    return found


def loss_warnings(monitor) -> list:
    found = []
    classes = monitor.num_classes
    first = monitor.loss[0] if monitor.loss else math.nan
    if monitor.cross_entropy and classes and classes > 1 and math.isfinite(first):
        expected = math.log(classes)
        if first > FIRST_LOSS_FACTOR * expected:
            found.append(warn(
                "high_first_loss",
                f"first loss {first:.3g} is far above ln({classes}) ≈ {expected:.2f}, the loss of an "
                "untrained classifier — the initial outputs are confidently wrong; use smaller "
                "initial weights (nn.init.xavier_uniform_)",
            ))
    accuracies = [value for value in monitor.accuracy if not math.isnan(value)]
    if classes and classes > 1 and len(accuracies) >= CHANCE_STEPS:
        recent, chance = float(np.mean(accuracies[-CHANCE_STEPS:])), 1.0 / classes
        # Within 30% of chance (at most 5 points): at chance, the accuracy of a batch of 64 varies
        # by ~4 points, the mean of 10 such batches by ~1.
        if abs(recent - chance) <= min(0.3 * chance, 0.05):
            found.append(warn(
                "chance_accuracy",
                f"accuracy {recent:.0%} = chance for {classes} classes after {len(accuracies)} steps: "
                "the network has not learned anything; check labels match inputs, the lr, and the "
                "warnings above",
            ))
    found += unstable_loss(monitor.loss)
    if monitor._mismatch:
        found.append(warn("output_loss_mismatch", monitor._mismatch))
    found += overfitting(monitor)
    return found


def unstable_loss(losses: list) -> list:
    """Oscillating (big jumps between steps) or climbing losses over the last window."""
    finite = [value for value in losses if math.isfinite(value)]
    window = np.asarray(losses[-UNSTABLE_WINDOW:], dtype=np.float64)
    window = window[np.isfinite(window)]
    if window.size < UNSTABLE_WINDOW // 2:
        return []
    # Near zero loss, noise is large relative to the level but tiny against where training
    # started: measure against at least a tenth of the first loss.
    level = max(float(np.mean(window)), UNSTABLE_FLOOR * abs(finite[0]))
    jump = float(np.mean(np.abs(np.diff(window))))
    third = max(window.size // 3, 1)
    early, late = float(np.mean(window[:third])), float(np.mean(window[-third:]))
    if level > 0 and jump > UNSTABLE_JUMP * level:
        how = f"it jumps by {jump / level:.0%} of its level from step to step"
    elif early > 0 and late > UNSTABLE_CLIMB * max(early, UNSTABLE_FLOOR * abs(finite[0])):
        how = f"it climbed from {early:.3g} to {late:.3g} over the last {window.size} steps"
    else:
        return []
    return [warn("unstable_loss", f"the loss is unstable: {how} — the learning rate is too high; "
                                  "divide lr by 10 (diagnostics.lr_find suggests one)")]


def overfitting(monitor) -> list:
    """Validation loss rising for the last validations while the training loss kept falling."""
    # Only finite validation losses: a NaN is no evidence of a rise (non_finite reports it)
    kept = [i for i, value in enumerate(monitor.val_loss) if math.isfinite(value)]
    val, train = [monitor.val_loss[i] for i in kept], [monitor._train_at_val[i] for i in kept]
    steps = [monitor.val_steps[i] for i in kept]
    if len(val) < OVERFIT_PATIENCE + 1:
        return []
    best = int(np.argmin(val))
    recent = val[-OVERFIT_PATIENCE:]
    if best >= len(val) - OVERFIT_PATIENCE or min(recent) <= (1 + OVERFIT_RISE) * val[best]:
        return []
    if not train[-1] < train[best]:
        return []
    return [warn(
        "overfitting",
        f"validation loss rose from {val[best]:.3g} (step {steps[best]}) to {val[-1]:.3g} "
        f"while the training loss fell from {train[best]:.3g} to {train[-1]:.3g} — the model memorises "
        "the training set; stop at the best validation step, add weight_decay or dropout, or get more data",
    )]


def batch_warnings(monitor, last: int) -> list:
    """Inputs far from unit size, constant predictions, one-class batches."""
    found = []
    rms = np.asarray(monitor.input_rms[-last:], dtype=np.float64)
    rms = rms[np.isfinite(rms)]
    if monitor.input_dtype is not None or (rms.size and rms.max() > INPUT_RMS_LIMIT):
        what = (f"integer inputs ({monitor.input_dtype})" if monitor.input_dtype is not None
                else f"inputs with RMS {rms.max():.3g} (far outside about [-{INPUT_RMS_LIMIT:g}, "
                     f"{INPUT_RMS_LIMIT:g}])")
        found.append(warn(
            "unnormalized_input",
            f"{what} — large inputs saturate the first layer and make its steps huge; standardise "
            "them: x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8) (pixels: x / 255)",
        ))
    shares = _pattern(monitor.top_prediction_share, last)
    trained = len(monitor.steps) >= CONSTANT_MIN_STEPS
    if trained and shares is not None and shares.min() >= CONSTANT_SHARE:
        found.append(warn(
            "constant_output",
            f"every prediction is the same class in each of the last {shares.size} batches (whose targets "
            "hold several classes) — the model ignores its input: check unstable or dead warnings, the "
            "lr, class balance (weight the rare classes), and that inputs are not all zero",
        ))
    single = _pattern(monitor.single_class_batch, last)
    if single is not None and single.min() == 1.0 and (monitor.num_classes or 0) > 1:
        found.append(warn(
            "unshuffled_data",
            f"each of the last {single.size} batches holds a single class — the data is sorted by label "
            "and each step undoes the last; shuffle: DataLoader(..., shuffle=True) or x[rng.permutation(n)]",
        ))
    return found


def _pattern(series: list, last: int):
    values = np.asarray(series[-last:], dtype=np.float64)
    values = values[np.isfinite(values)]
    return values if values.size >= PATTERN_STEPS else None
