"""Outsider campaign: the learner tools (sanity_check, Monitor, lr_find) on odd but legal inputs.

A tool that diagnoses must not diagnose wrongly: a mean-squared-error classifier is not a
cross-entropy one, a NaN is not a low loss, and an empty batch is not a crash.
"""
import math

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.diagnostics import Monitor, lr_find, sanity_check


def _model():
    tg.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), np.arange(n) % 3


def _init_check(report):
    return next(check for check in report.checks if check.name == "loss at init")


def test_sanity_check_does_not_judge_a_squared_error_loss_against_ln_c():
    x, y = _data()
    one_hot = np.eye(3, dtype=np.float32)[y]
    check = _init_check(sanity_check(_model(), F.mse_loss, x, one_hot))
    assert check.ok is None, check.message
    assert "ln 3" not in check.message


def test_sanity_check_still_judges_nll_of_log_softmax_outputs_against_ln_c():
    x, y = _data()
    model = nn.Sequential(*_model(), nn.LogSoftmax(axis=1))
    check = _init_check(sanity_check(model, F.nll_loss, x, y))
    assert check.ok is True and "ln 3" in check.message


def test_a_nan_initial_loss_is_called_not_finite_rather_than_lower_than_guessing():
    x, y = _data()
    x[0, 0] = np.nan
    check = _init_check(sanity_check(_model(), F.cross_entropy, x, y))
    assert check.ok is False
    assert "lower than guessing" not in check.message and "not finite" in check.message


def test_monitor_records_an_empty_batch_without_an_accuracy_and_keeps_its_histories_aligned():
    model = _model()
    monitor = Monitor(model)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = _data()
    for batch in (slice(0, 8), slice(8, 8), slice(8, 16)):  # the middle one is empty
        scores = model(Tensor(x[batch]))
        loss = F.cross_entropy(scores, y[batch], reduction="sum")
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor.step(loss, scores, y[batch])
    assert len(monitor.steps) == len(monitor.loss) == len(monitor.accuracy) == 3
    assert math.isnan(monitor.accuracy[1]) and not math.isnan(monitor.accuracy[2])
    assert "step(s) recorded" in str(monitor.report())


@pytest.mark.parametrize("options, named", [
    (dict(steps=5.5), "steps"), (dict(steps=True), "steps"),
    (dict(end_lr=math.inf), "end_lr"), (dict(stop_factor=math.nan), "stop_factor"),
    (dict(stop_factor=0.5), "stop_factor"),
])
def test_lr_find_refuses_settings_that_cannot_make_a_run_and_names_them(options, named):
    x, y = _data()
    with pytest.raises(ValueError, match=named):
        lr_find(_model(), F.cross_entropy, [(x, y)], **options)


def test_a_nan_validation_loss_is_reported_as_not_finite_not_as_overfitting():
    model = _model()
    monitor = Monitor(model)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = _data()
    for _ in range(8):
        scores = model(Tensor(x))
        loss = F.cross_entropy(scores, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor.step(loss, scores, y, val_loss=math.nan)
    kinds = monitor.report().kinds
    assert "overfitting" not in kinds
    assert "non_finite" in kinds and "validation loss" in str(monitor.report())


@pytest.mark.parametrize("odd_name", ["line1\nline2", "tab\there", "cr\rname"])
def test_explain_keeps_one_line_per_step_for_names_with_control_characters(odd_name):
    def lines(name):
        w = Tensor(np.ones((2, 2)), requires_grad=True, name=name)
        x = Tensor(np.ones((3, 2)), name="x")
        return str(tg.explain((x @ w).sum())).splitlines()

    assert len(lines(odd_name)) == len(lines("w"))
    assert repr(odd_name)[1:-1] in "\n".join(lines(odd_name))
