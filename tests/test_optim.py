"""Optimizers against hand-written references of PyTorch's documented algorithms.

Each reference below is the pseudo-code of the torch.optim docs (SGD, Adam, AdamW, RMSprop)
written out in plain NumPy. A float64 parameter receives a fixed sequence of gradients set by
hand (no graph involved), so the optimizer and its reference must agree to ~1e-12 at every step.
The rest covers the optimizer protocol: skipped params, in-place updates, param groups,
zero_grad, closures, argument checks and state_dict round trips (also through tg.save/tg.load).
"""
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import optim

RTOL, ATOL = 1e-12, 1e-14

_rng = np.random.default_rng(20240503)
THETA0 = _rng.normal(size=(2, 3))
GRADS = _rng.normal(size=(5, 2, 3))  # five different gradients, one per step
# large gradients first, then small ones: the second-moment average falls, so AMSGrad's max matters
DECAYING_GRADS = GRADS * np.array([4.0, 1.0, 0.5, 0.2, 0.1])[:, None, None]


# ---- references: the torch.optim pseudo-code, one line per line of the docs -----------------
def sgd_reference(theta, grads, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False,
                  weight_decay=0.0, maximize=False):
    theta, buf, trajectory = theta.copy(), None, []
    for g in grads:
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * theta
        if momentum != 0:
            # the first buffer is the gradient itself: no dampening on step 1
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        theta = theta - lr * g
        trajectory.append(theta)
    return trajectory


def adam_reference(theta, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                   amsgrad=False, maximize=False, decoupled=False):
    beta1, beta2 = betas
    theta, trajectory = theta.copy(), []
    m, v, v_max = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:  # AdamW: shrink the parameter itself, the moments never see the decay
            theta = theta * (1 - lr * weight_decay)
        elif weight_decay != 0:  # Adam: L2 penalty folded into the gradient
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        if amsgrad:  # the max is kept over the raw (uncorrected) second moments
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - beta2**t)
        else:
            v_hat = v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        trajectory.append(theta)
    return trajectory


def adamw_reference(theta, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                    amsgrad=False, maximize=False):
    return adam_reference(theta, grads, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled=True)


def rmsprop_reference(theta, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                      centered=False, maximize=False):
    theta, trajectory = theta.copy(), []
    square_avg, grad_avg, buf = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    for g in grads:
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * theta
        square_avg = alpha * square_avg + (1 - alpha) * g**2
        variance = square_avg
        if centered:
            grad_avg = alpha * grad_avg + (1 - alpha) * g
            variance = square_avg - grad_avg**2
        denom = np.sqrt(variance) + eps  # eps is added after the square root
        if momentum > 0:
            buf = momentum * buf + g / denom
            theta = theta - lr * buf
        else:
            theta = theta - lr * g / denom
        trajectory.append(theta)
    return trajectory


# ---- helpers --------------------------------------------------------------------------------
def leaf(values, dtype=np.float64):
    return tg.Tensor(np.array(values, dtype=dtype), requires_grad=True)


def run_steps(optimizer, param, grads):
    """Give `param` each gradient in turn, step, and return copies of the values after each step."""
    trajectory = []
    for g in grads:
        param.grad = tg.Tensor(np.array(g, dtype=param.dtype))
        optimizer.step()
        trajectory.append(param.data.copy())
    return trajectory


def assert_trajectory(actual, expected, what):
    assert len(actual) == len(expected)
    for t, (got, want) in enumerate(zip(actual, expected), start=1):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{what}: after step {t}")


def check_against_reference(cls, reference, kwargs, grads=GRADS):
    p = leaf(THETA0)
    trajectory = run_steps(cls([p], **kwargs), p, grads)
    assert_trajectory(trajectory, reference(THETA0, grads, **kwargs), f"{cls.__name__}({kwargs})")


# ---- SGD ------------------------------------------------------------------------------------
SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.1, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.05),
    "momentum_weight_decay": dict(lr=0.1, momentum=0.8, dampening=0.1, weight_decay=0.05),
    "nesterov_weight_decay": dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05),
    "maximize": dict(lr=0.1, momentum=0.9, maximize=True),
    "default_lr": dict(),
}


@pytest.mark.parametrize("kwargs", SGD_CASES.values(), ids=SGD_CASES.keys())
def test_sgd_matches_reference(kwargs):
    check_against_reference(optim.SGD, sgd_reference, kwargs)


def test_sgd_plain_step_by_hand():
    p = leaf([1.0, -2.0])
    run_steps(optim.SGD([p], lr=0.5), p, [[0.2, 0.4]])
    np.testing.assert_allclose(p.data, [0.9, -2.2], rtol=RTOL)


def test_sgd_first_momentum_step_is_the_gradient_without_dampening():
    p = leaf([1.0, -2.0])
    opt = optim.SGD([p], lr=0.5, momentum=0.9, dampening=0.5)
    run_steps(opt, p, [[0.2, 0.4]])
    np.testing.assert_allclose(p.data, [0.9, -2.2], rtol=RTOL)  # not 0.95, -2.1 (dampened)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [0.2, 0.4], rtol=RTOL)
    run_steps(opt, p, [[1.0, 1.0]])  # buf = 0.9 * buf + 0.5 * g
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [0.68, 0.86], rtol=RTOL)
    np.testing.assert_allclose(p.data, [0.9 - 0.34, -2.2 - 0.43], rtol=RTOL)


def test_sgd_nesterov_first_step_uses_gradient_plus_momentum_times_buffer():
    p = leaf([1.0, -2.0])
    run_steps(optim.SGD([p], lr=0.5, momentum=0.9, nesterov=True), p, [[0.2, 0.4]])
    np.testing.assert_allclose(p.data, [1.0 - 0.5 * 1.9 * 0.2, -2.0 - 0.5 * 1.9 * 0.4], rtol=RTOL)


# ---- Adam and AdamW --------------------------------------------------------------------------
ADAM_CASES = {
    "default": (dict(), GRADS),
    "lr_betas_eps": (dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3), GRADS),
    "weight_decay": (dict(lr=0.05, weight_decay=0.1), GRADS),
    "amsgrad": (dict(lr=0.05, betas=(0.8, 0.9), amsgrad=True), DECAYING_GRADS),
    "amsgrad_weight_decay": (dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True), DECAYING_GRADS),
    "maximize": (dict(lr=0.05, maximize=True), GRADS),
}


@pytest.mark.parametrize("kwargs, grads", ADAM_CASES.values(), ids=ADAM_CASES.keys())
def test_adam_matches_reference(kwargs, grads):
    check_against_reference(optim.Adam, adam_reference, kwargs, grads)


ADAMW_CASES = {
    "default": (dict(), GRADS),  # default weight_decay is 1e-2
    "weight_decay": (dict(lr=0.05, weight_decay=0.1), GRADS),
    "no_weight_decay": (dict(lr=0.05, weight_decay=0.0), GRADS),
    "amsgrad": (dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True), DECAYING_GRADS),
    "maximize": (dict(lr=0.05, weight_decay=0.1, maximize=True), GRADS),
}


@pytest.mark.parametrize("kwargs, grads", ADAMW_CASES.values(), ids=ADAMW_CASES.keys())
def test_adamw_matches_reference(kwargs, grads):
    check_against_reference(optim.AdamW, adamw_reference, kwargs, grads)


def test_adam_first_step_moves_every_entry_by_about_lr():
    # bias correction makes m_hat = g and v_hat = g**2 on step 1: the step is lr * g / (|g| + eps)
    p = leaf([1.0, -2.0, 3.0])
    g = np.array([0.001, -50.0, 2.0])
    run_steps(optim.Adam([p], lr=0.1, betas=(0.5, 0.6), eps=1e-3), p, [g])
    np.testing.assert_allclose(p.data, [1.0, -2.0, 3.0] - 0.1 * g / (np.abs(g) + 1e-3), rtol=RTOL)


def test_adam_bias_correction_after_five_equal_gradients():
    # with a constant gradient the corrected moments are exactly g and g**2 at every step,
    # so five steps move each entry by 5 * lr * g / (|g| + eps); uncorrected moments would not
    p = leaf([1.0, -2.0, 3.0])
    g = np.array([0.5, -4.0, 2.0])
    opt = optim.Adam([p], lr=0.01, eps=1e-8)
    trajectory = run_steps(opt, p, [g] * 5)
    np.testing.assert_allclose(trajectory[0], [1.0, -2.0, 3.0] - 0.01 * g / (np.abs(g) + 1e-8), rtol=RTOL)
    np.testing.assert_allclose(trajectory[4], [1.0, -2.0, 3.0] - 5 * 0.01 * g / (np.abs(g) + 1e-8), rtol=RTOL)
    assert opt.state[p]["step"] == 5


def test_adamw_decay_is_decoupled_from_the_moments():
    # zero gradient: AdamW only shrinks the parameter, Adam's L2 term feeds the moments
    adamw_param, adam_param = leaf([1.0, -2.0]), leaf([1.0, -2.0])
    run_steps(optim.AdamW([adamw_param], lr=0.1, weight_decay=0.5), adamw_param, [[0.0, 0.0]])
    run_steps(optim.Adam([adam_param], lr=0.1, weight_decay=0.5), adam_param, [[0.0, 0.0]])
    np.testing.assert_allclose(adamw_param.data, [0.95, -1.9], rtol=RTOL)  # theta * (1 - lr * wd)
    np.testing.assert_allclose(adam_param.data, [0.9, -1.9], rtol=1e-7)  # g = wd * theta, step ~ lr * sign


def test_adam_and_adamw_trajectories_differ_with_the_same_weight_decay():
    adam = adam_reference(THETA0, GRADS, lr=0.05, weight_decay=0.1)
    adamw = adamw_reference(THETA0, GRADS, lr=0.05, weight_decay=0.1)
    p, q = leaf(THETA0), leaf(THETA0)
    adam_run = run_steps(optim.Adam([p], lr=0.05, weight_decay=0.1), p, GRADS)
    adamw_run = run_steps(optim.AdamW([q], lr=0.05, weight_decay=0.1), q, GRADS)
    assert np.abs(adam_run[-1] - adamw_run[-1]).max() > 1e-4
    assert_trajectory(adam_run, adam, "Adam")
    assert_trajectory(adamw_run, adamw, "AdamW")


def test_amsgrad_keeps_the_maximum_of_the_raw_second_moment():
    p = leaf([1.0, 1.0])
    opt = optim.Adam([p], lr=0.01, betas=(0.9, 0.5), amsgrad=True)
    run_steps(opt, p, [[2.0, 1.0], [1.0, 3.0]])
    v1 = 0.5 * np.array([4.0, 1.0])
    v2 = 0.5 * v1 + 0.5 * np.array([1.0, 9.0])  # [1.5, 4.75]: falls in the first entry
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], v2, rtol=RTOL)
    np.testing.assert_allclose(opt.state[p]["max_exp_avg_sq"], np.maximum(v1, v2), rtol=RTOL)
    m2 = 0.1 * (0.9 * np.array([2.0, 1.0]) + [1.0, 3.0])
    np.testing.assert_allclose(opt.state[p]["exp_avg"], m2, rtol=RTOL)


# ---- RMSprop --------------------------------------------------------------------------------
RMSPROP_CASES = {
    "default": dict(),
    "plain": dict(lr=0.05, alpha=0.9, eps=1e-3),
    "momentum": dict(lr=0.05, alpha=0.9, momentum=0.8),
    "centered": dict(lr=0.05, alpha=0.9, eps=1e-3, centered=True),
    "centered_momentum": dict(lr=0.05, alpha=0.9, centered=True, momentum=0.8),
    "weight_decay": dict(lr=0.05, alpha=0.9, weight_decay=0.1),
    "maximize": dict(lr=0.05, alpha=0.9, momentum=0.5, maximize=True),
}


@pytest.mark.parametrize("kwargs", RMSPROP_CASES.values(), ids=RMSPROP_CASES.keys())
def test_rmsprop_matches_reference(kwargs):
    check_against_reference(optim.RMSprop, rmsprop_reference, kwargs)


def test_rmsprop_first_step_adds_eps_after_the_square_root():
    p = leaf([1.0, -2.0])
    g = np.array([0.3, -0.01])
    run_steps(optim.RMSprop([p], lr=0.1, alpha=0.75, eps=0.1), p, [g])
    np.testing.assert_allclose(p.data, [1.0, -2.0] - 0.1 * g / (np.sqrt(0.25 * g**2) + 0.1), rtol=RTOL)


def test_rmsprop_centered_first_step_divides_by_the_variance():
    # v = (1-a) g^2, grad_avg = (1-a) g  ->  v - grad_avg^2 = a (1-a) g^2
    p = leaf([1.0, -2.0])
    g = np.array([0.3, -0.01])
    opt = optim.RMSprop([p], lr=0.1, alpha=0.75, eps=0.1, centered=True)
    run_steps(opt, p, [g])
    np.testing.assert_allclose(p.data, [1.0, -2.0] - 0.1 * g / (np.sqrt(0.1875 * g**2) + 0.1), rtol=RTOL)
    np.testing.assert_allclose(opt.state[p]["grad_avg"], 0.25 * g, rtol=RTOL)
    np.testing.assert_allclose(opt.state[p]["square_avg"], 0.25 * g**2, rtol=RTOL)


# ---- defaults and state names -----------------------------------------------------------------
@pytest.mark.parametrize("cls, expected", [
    (optim.SGD, dict(lr=1e-3, momentum=0, dampening=0, nesterov=False, weight_decay=0, maximize=False)),
    (optim.Adam, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False)),
    (optim.AdamW, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                       maximize=False)),
    (optim.RMSprop, dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                         maximize=False)),
], ids=lambda v: getattr(v, "__name__", None))
def test_defaults_are_pytorchs(cls, expected):
    group = cls([leaf([1.0])]).param_groups[0]
    assert {key: group[key] for key in expected} == expected


ADAM_STATE = {"step", "exp_avg", "exp_avg_sq"}
STATE_CASES = {
    "sgd_momentum": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), {"momentum_buffer"}),
    "adam": (lambda ps: optim.Adam(ps), ADAM_STATE),
    "adam_amsgrad": (lambda ps: optim.Adam(ps, amsgrad=True), ADAM_STATE | {"max_exp_avg_sq"}),
    "adamw": (lambda ps: optim.AdamW(ps), ADAM_STATE),
    "adamw_amsgrad": (lambda ps: optim.AdamW(ps, amsgrad=True), ADAM_STATE | {"max_exp_avg_sq"}),
    "rmsprop": (lambda ps: optim.RMSprop(ps), {"step", "square_avg"}),
    "rmsprop_momentum": (lambda ps: optim.RMSprop(ps, momentum=0.9),
                         {"step", "square_avg", "momentum_buffer"}),
    "rmsprop_centered": (lambda ps: optim.RMSprop(ps, centered=True), {"step", "square_avg", "grad_avg"}),
    "rmsprop_both": (lambda ps: optim.RMSprop(ps, momentum=0.9, centered=True),
                     {"step", "square_avg", "momentum_buffer", "grad_avg"}),
}


@pytest.mark.parametrize("make, names", STATE_CASES.values(), ids=STATE_CASES.keys())
def test_state_uses_pytorchs_names(make, names):
    p = leaf(THETA0)
    opt = make([p])
    run_steps(opt, p, GRADS[:2])
    assert set(opt.state[p]) == names
    saved = opt.state_dict()["state"][0]
    assert set(saved) == names
    if "step" in names:
        assert type(saved["step"]) is int and saved["step"] == 2, repr(saved["step"])
    for name in names - {"step"}:
        assert saved[name].shape == THETA0.shape and saved[name].dtype == np.float64, name


def test_rmsprop_state_holds_the_running_averages():
    p = leaf([1.0, -1.0])
    opt = optim.RMSprop([p], lr=0.1, alpha=0.5, eps=0.0, momentum=0.5, centered=True)
    g1, g2 = np.array([2.0, -1.0]), np.array([1.0, 3.0])
    run_steps(opt, p, [g1, g2])
    square_avg = 0.5 * (0.5 * g1**2) + 0.5 * g2**2
    grad_avg = 0.5 * (0.5 * g1) + 0.5 * g2
    buf1 = g1 / np.sqrt(0.5 * g1**2 - (0.5 * g1) ** 2)
    buf2 = 0.5 * buf1 + g2 / np.sqrt(square_avg - grad_avg**2)
    state = opt.state[p]
    np.testing.assert_allclose(state["square_avg"], square_avg, rtol=RTOL)
    np.testing.assert_allclose(state["grad_avg"], grad_avg, rtol=RTOL)
    np.testing.assert_allclose(state["momentum_buffer"], buf2, rtol=RTOL)
    assert state["step"] == 2


# ---- the optimizer protocol -----------------------------------------------------------------
ALL_OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    "adam": lambda ps: optim.Adam(ps, lr=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.1),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.1, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("make", ALL_OPTIMIZERS.values(), ids=ALL_OPTIMIZERS.keys())
def test_params_without_grad_are_skipped(make):
    with_grad, without_grad = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    opt = make([with_grad, without_grad])
    with_grad.grad = tg.Tensor(np.array([0.5, -0.5]))
    opt.step()
    opt.step()
    np.testing.assert_array_equal(without_grad.data, [3.0, 4.0])
    assert without_grad.grad is None
    assert without_grad not in opt.state or not opt.state[without_grad], opt.state.get(without_grad)
    assert set(opt.state_dict()["state"]) == {0}
    assert not np.array_equal(with_grad.data, [1.0, 2.0])


@pytest.mark.parametrize("make", ALL_OPTIMIZERS.values(), ids=ALL_OPTIMIZERS.keys())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_updates_are_in_place(make, dtype):
    p = leaf([1.0, 2.0], dtype=dtype)
    array = p.data
    opt = make([p])
    for _ in range(2):
        p.grad = tg.Tensor(np.array([0.5, -0.5], dtype=dtype))
        opt.step()
    assert p.data is array
    assert p.data.dtype == dtype
    assert not np.array_equal(array, [1.0, 2.0])


def test_params_may_be_a_generator():
    a, b = leaf([1.0]), leaf([2.0])
    opt = optim.SGD((p for p in [a, b]), lr=0.5)
    a.grad, b.grad = tg.Tensor(np.array([1.0])), tg.Tensor(np.array([2.0]))
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.5, 1.0])
    assert len(opt.param_groups[0]["params"]) == 2


def test_param_groups_override_the_defaults():
    a, b = leaf(THETA0), leaf(THETA0)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.02, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.02]
    assert [g["momentum"] for g in opt.param_groups] == [0, 0.9]
    for g in GRADS:
        a.grad, b.grad = tg.Tensor(g.copy()), tg.Tensor(g.copy())
        opt.step()
    np.testing.assert_allclose(a.data, sgd_reference(THETA0, GRADS, lr=0.1)[-1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b.data, sgd_reference(THETA0, GRADS, lr=0.02, momentum=0.9)[-1],
                               rtol=RTOL, atol=ATOL)


def test_add_param_group_fills_in_the_defaults():
    a, b = leaf([1.0]), leaf([1.0])
    opt = optim.Adam([a], lr=0.1, betas=(0.5, 0.6))
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["betas"] == (0.5, 0.6)
    a.grad, b.grad = tg.Tensor(np.array([3.0])), tg.Tensor(np.array([3.0]))
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [1.0 - 0.1, 1.0 - 0.01], rtol=1e-7)


def test_zero_grad_sets_grads_to_none_by_default():
    a, b = leaf([1.0, 2.0]), leaf([3.0])
    opt = optim.SGD([a, b], lr=0.1)
    (a.sum() * b.sum()).backward()
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_zero_grad_can_keep_zero_arrays():
    a = leaf([1.0, 2.0])
    opt = optim.SGD([a], lr=0.1)
    (a * a).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None
    np.testing.assert_array_equal(a.grad.data, [0.0, 0.0])
    assert a.grad.shape == (2,)
    (a * 3.0).sum().backward()  # gradients accumulate onto the zeros
    np.testing.assert_array_equal(a.grad.data, [3.0, 3.0])


@pytest.mark.parametrize("make", ALL_OPTIMIZERS.values(), ids=ALL_OPTIMIZERS.keys())
def test_step_returns_the_closures_loss(make):
    p = leaf([1.0, -2.0])
    opt = make([p])
    calls = []

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        calls.append(loss)
        return loss

    result = opt.step(closure)
    assert len(calls) == 1 and result is calls[0]
    np.testing.assert_allclose(p.grad.data, [2.0, -4.0])  # the closure's backward ran in grad mode
    assert np.all(np.abs(p.data) < [1.0, 2.0]), p.data  # and the step used that gradient
    assert opt.step() is None


@pytest.mark.parametrize("make", [
    lambda: optim.SGD([leaf([1.0])], lr=-0.1),
    lambda: optim.SGD([leaf([1.0])], lr=0.1, momentum=-0.5),
    lambda: optim.SGD([leaf([1.0])], lr=0.1, nesterov=True),
    lambda: optim.SGD([leaf([1.0])], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
    lambda: optim.SGD([], lr=0.1),
    lambda: optim.Adam([leaf([1.0])], lr=-1e-3),
    lambda: optim.Adam([leaf([1.0])], betas=(1.0, 0.999)),
    lambda: optim.Adam([leaf([1.0])], betas=(0.9, 1.0)),
    lambda: optim.Adam([leaf([1.0])], betas=(-0.1, 0.999)),
    lambda: optim.Adam([leaf([1.0])], eps=-1e-8),
    lambda: optim.Adam(iter([])),
    lambda: optim.AdamW([leaf([1.0])], lr=-1e-3),
    lambda: optim.AdamW([leaf([1.0])], betas=(0.9, 1.5)),
    lambda: optim.AdamW([]),
    lambda: optim.RMSprop([leaf([1.0])], lr=-1e-2),
    lambda: optim.RMSprop([leaf([1.0])], eps=-1e-8),
    lambda: optim.RMSprop([leaf([1.0])], momentum=-0.9),
    lambda: optim.RMSprop([]),
], ids=["sgd_lr", "sgd_momentum", "sgd_nesterov_no_momentum", "sgd_nesterov_dampening", "sgd_empty",
        "adam_lr", "adam_beta1", "adam_beta2", "adam_beta1_negative", "adam_eps", "adam_empty",
        "adamw_lr", "adamw_beta2", "adamw_empty", "rmsprop_lr", "rmsprop_eps", "rmsprop_momentum",
        "rmsprop_empty"])
def test_invalid_hyper_parameters_raise(make):
    with pytest.raises(ValueError):
        make()


# ---- state_dict / load_state_dict ---------------------------------------------------------------
RESUME_CASES = {
    "sgd_nesterov": (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam_amsgrad": (optim.Adam, dict(lr=0.05, betas=(0.8, 0.9), amsgrad=True, weight_decay=0.01)),
    "adamw": (optim.AdamW, dict(lr=0.05, weight_decay=0.1)),
    "rmsprop": (optim.RMSprop, dict(lr=0.05, alpha=0.9, momentum=0.5, centered=True)),
}
OPTION_NAMES = ("lr", "momentum", "dampening", "nesterov", "betas", "eps", "weight_decay", "amsgrad",
                "alpha", "centered", "maximize")


def options(group):
    return {name: group[name] for name in OPTION_NAMES if name in group}


def resume_and_compare(cls, kwargs, transport):
    """Train 2 steps, move the state into a fresh optimizer, then run both 3 more steps."""
    original = leaf(THETA0)
    opt = cls([original], **kwargs)
    run_steps(opt, original, DECAYING_GRADS[:2])
    resumed = leaf(original.data.copy())
    fresh = cls([resumed], lr=123.0)  # wrong options on purpose: loading must restore them
    fresh.load_state_dict(transport(opt.state_dict()))
    assert options(fresh.param_groups[0]) == options(opt.param_groups[0])
    assert fresh.param_groups[0]["params"][0] is resumed
    expected = run_steps(opt, original, DECAYING_GRADS[2:])
    got = run_steps(fresh, resumed, DECAYING_GRADS[2:])
    for t, (a, b) in enumerate(zip(got, expected), start=3):
        np.testing.assert_array_equal(a, b, err_msg=f"resumed {cls.__name__} after step {t}")


@pytest.mark.parametrize("cls, kwargs", RESUME_CASES.values(), ids=RESUME_CASES.keys())
def test_loaded_state_continues_like_the_original(cls, kwargs):
    resume_and_compare(cls, kwargs, lambda sd: sd)


@pytest.mark.parametrize("cls, kwargs", RESUME_CASES.values(), ids=RESUME_CASES.keys())
def test_state_survives_save_and_load(cls, kwargs, tmp_path):
    path = str(tmp_path / "optimizer.ckpt")

    def through_file(sd):
        tg.save(sd, path)
        return tg.load(path)

    resume_and_compare(cls, kwargs, through_file)


def test_loaded_betas_stay_a_tuple_through_a_file(tmp_path):
    opt = optim.Adam([leaf([1.0])], betas=(0.8, 0.9))
    path = str(tmp_path / "adam.ckpt")
    tg.save(opt.state_dict(), path)
    fresh = optim.Adam([leaf([1.0])])
    fresh.load_state_dict(tg.load(path))
    assert fresh.param_groups[0]["betas"] == (0.8, 0.9)
    assert isinstance(fresh.param_groups[0]["betas"], tuple)


def test_state_dict_layout_and_indices_across_groups():
    a, b, c = leaf([1.0]), leaf([2.0, 3.0]), leaf([4.0])
    opt = optim.Adam([{"params": [a]}, {"params": [b, c], "lr": 0.5}], lr=0.1, betas=(0.8, 0.9))
    a.grad, b.grad = tg.Tensor(np.array([1.0])), tg.Tensor(np.array([1.0, -1.0]))  # c has no grad
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [group["params"] for group in sd["param_groups"]] == [[0], [1, 2]]
    assert [group["lr"] for group in sd["param_groups"]] == [0.1, 0.5]
    assert sd["param_groups"][1]["betas"] == (0.8, 0.9) and isinstance(sd["param_groups"][1]["betas"], tuple)
    assert set(sd["state"]) == {0, 1}
    np.testing.assert_allclose(sd["state"][1]["exp_avg"], [0.2, -0.2], rtol=RTOL)


def test_state_dict_is_a_snapshot():
    p = leaf([1.0, 2.0])
    opt = optim.Adam([p], lr=0.1)
    run_steps(opt, p, [[1.0, 1.0]])
    sd = opt.state_dict()
    saved = sd["state"][0]["exp_avg"].copy()
    assert not np.shares_memory(sd["state"][0]["exp_avg"], opt.state[p]["exp_avg"])
    run_steps(opt, p, [[5.0, -5.0]])
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], saved)
    assert sd["state"][0]["step"] == 1
    sd["param_groups"][0]["lr"] = 99.0
    assert opt.param_groups[0]["lr"] == 0.1


def test_load_state_dict_copies_the_arrays():
    original = leaf(THETA0)
    opt = optim.RMSprop([original], lr=0.05, momentum=0.5, centered=True)
    run_steps(opt, original, GRADS[:2])
    sd = opt.state_dict()
    resumed = leaf(original.data.copy())
    fresh = optim.RMSprop([resumed])
    fresh.load_state_dict(sd)
    for name in ("square_avg", "grad_avg", "momentum_buffer"):
        sd["state"][0][name][...] = 1e6  # must not reach the loaded optimizer
    expected = run_steps(opt, original, GRADS[2:])
    got = run_steps(fresh, resumed, GRADS[2:])
    np.testing.assert_array_equal(got[-1], expected[-1])


def test_load_state_dict_rejects_a_different_number_of_params():
    a, b = leaf([1.0]), leaf([2.0])
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError):
        optim.SGD([leaf([1.0])], lr=0.1).load_state_dict(opt.state_dict())


def test_load_state_dict_rejects_a_different_number_of_groups():
    opt = optim.SGD([{"params": [leaf([1.0])]}, {"params": [leaf([2.0])]}], lr=0.1)
    with pytest.raises(ValueError):
        optim.SGD([leaf([1.0]), leaf([2.0])], lr=0.1).load_state_dict(opt.state_dict())


def test_load_state_dict_rejects_state_of_another_shape():
    p = leaf(np.ones((2, 3)))
    opt = optim.Adam([p])
    run_steps(opt, p, [np.ones((2, 3))])
    fresh_param = leaf(np.ones((3, 2)))
    fresh = optim.Adam([fresh_param])
    with pytest.raises(ValueError):
        fresh.load_state_dict(opt.state_dict())
    assert not fresh.state or not fresh.state.get(fresh_param)  # nothing half-loaded


def test_named_parameters_are_accepted_and_their_names_kept():
    from tinygrad_edu import nn

    model = nn.Linear(2, 1)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["params"] == [model.weight, model.bias]
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    model(tg.ones(3, 2)).sum().backward()
    before = model.bias.data.copy()
    opt.step()
    np.testing.assert_allclose(model.bias.data, before - 0.1 * 3.0, rtol=1e-6)


def test_state_of_a_parameter_without_state_is_an_empty_dict():
    p = leaf([1.0])
    opt = optim.Adam([p])
    assert opt.state[p] == {}
    p.grad = tg.Tensor(np.array([0.5]))
    opt.step()
    assert opt.state[p]["step"] == 1


def test_a_parameter_listed_twice_in_a_group_is_refused():
    p = leaf([1.0])
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p], lr=0.1)


def test_zero_grad_without_set_to_none_zeroes_in_place():
    p = leaf([1.0, 2.0])
    (p * p).sum().backward()
    held = p.grad
    optim.SGD([p], lr=0.1).zero_grad(set_to_none=False)
    assert p.grad is held
    np.testing.assert_array_equal(held.data, [0.0, 0.0])


# ---- optim.minimize: the SciPy bridge ---------------------------------------------------------
def learner_network(seed=0, m=120):
    """The first learner's 400-25-10 network in small (20-8-4): sigmoid, MSE + L2, full batch."""
    rng = np.random.default_rng(seed)
    x = rng.random((m, 20))
    y = np.eye(4)[(x[:, :4].sum(axis=1) * 3).astype(int) % 4]  # a learnable rule
    w1 = tg.Tensor(rng.uniform(-0.12, 0.12, (20, 8)), requires_grad=True)
    b1 = tg.Tensor(np.zeros(8), requires_grad=True)
    w2 = tg.Tensor(rng.uniform(-0.12, 0.12, (8, 4)), requires_grad=True)
    b2 = tg.Tensor(np.zeros(4), requires_grad=True)

    def cost():
        out = ((x @ w1 + b1).sigmoid() @ w2 + b2).sigmoid()
        return ((y - out) ** 2).sum() * (0.5 / m) + (0.5 / m) * ((w1 ** 2).sum() + (w2 ** 2).sum())

    return cost, [w1, b1, w2, b2]


@pytest.mark.parametrize("method", ["L-BFGS-B", "CG", "BFGS"])
def test_minimize_finds_the_minimum_of_a_quadratic_and_writes_it_back(method):
    w = tg.Tensor(np.array([[3.0, -2.0], [0.5, 4.0]]), requires_grad=True)
    target = np.array([[1.0, 2.0], [3.0, 4.0]])
    held = w.data
    result = optim.minimize(lambda: ((w - target) ** 2).sum(), [w], method=method)
    assert result.success and result.fun < 1e-10
    assert w.data is held  # updated in place: references to the array see the result
    np.testing.assert_allclose(w.data, target, atol=1e-5)
    assert w.grad is None  # gradients come from tg.grad; .grad is untouched


def test_minimize_reaches_gradient_descents_loss_in_far_fewer_iterations():
    cost, params = learner_network()
    result = optim.minimize(cost, params, method="L-BFGS-B", maxiter=50)
    assert result.nit <= 50
    target = result.fun

    cost, params = learner_network()  # the same start
    descent = optim.SGD(params, lr=2.0)
    steps = 0
    while cost().item() > target and steps < 5000:
        descent.zero_grad()
        cost().backward()
        descent.step()
        steps += 1
    assert steps > 10 * result.nit, (steps, result.nit)


def test_minimize_with_cg_and_maxiter_stops_there_and_calls_back_each_iteration():
    cost, params = learner_network()
    seen = []
    result = optim.minimize(cost, params, method="CG", maxiter=5, callback=lambda: seen.append(cost().item()))
    assert result.nit == 5 and len(seen) == 5
    assert seen[-1] == pytest.approx(result.fun) and seen == sorted(seen, reverse=True)


def test_minimize_takes_a_module_keeps_float32_and_gives_unused_parameters_zero_gradient():
    tg.manual_seed(0)
    model = tg.nn.Linear(3, 2)
    unused = tg.Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    x = np.random.default_rng(1).random((10, 3)).astype(np.float32)
    result = optim.minimize(lambda: (model(x) ** 2).mean(), list(model.parameters()) + [unused], maxiter=200)
    assert result.fun < 1e-6 and model.weight.dtype == np.float32
    np.testing.assert_array_equal(unused.data, [1.0, 1.0])
    optim.minimize(lambda: (model(x) ** 2).mean(), model, maxiter=5)


@pytest.mark.parametrize(
    "closure, params, message",
    [
        (lambda w: (lambda: w * 2.0), lambda w: [w], r"one-element Tensor, got a Tensor of shape \(2,\)"),
        (lambda w: (lambda: 3.0), lambda w: [w], "got float"),
        (lambda w: (lambda: tg.Tensor(1.0)), lambda w: [w], "does not depend on the parameters"),
        (lambda w: (lambda: w.sum()), lambda w: [], "empty parameter list"),
        (lambda w: (lambda: w.sum()), lambda w: [w, w], "parameter 1 appears twice"),
        (lambda w: (lambda: w.sum()), lambda w: [tg.Tensor([1.0])], "parameter 0 does not require grad"),
        (lambda w: (lambda: w.sum()), lambda w: [w.data], "parameter 0 is a ndarray"),
    ],
)
def test_minimize_names_bad_input(closure, params, message):
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=message):
        optim.minimize(closure(w), params(w))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_on_big_weights_updates_exactly_in_place(dtype, rtol, momentum):
    rng = np.random.default_rng(5)
    start = rng.standard_normal((80, 90)).astype(dtype)  # 7200 elements
    grads = [rng.standard_normal((80, 90)).astype(dtype) for _ in range(3)]
    p = tg.Tensor(start.copy(), requires_grad=True)
    held = p.data
    opt = optim.SGD([p], lr=0.1, momentum=momentum, dampening=0.2 if momentum else 0.0)
    expected, buffer = start.astype(np.float64), None
    for g in grads:
        p.grad = tg.Tensor(g.copy())
        opt.step()
        if momentum:
            buffer = g.astype(np.float64) if buffer is None else momentum * buffer + 0.8 * g
            expected = expected - 0.1 * buffer
        else:
            expected = expected - 0.1 * g
        np.testing.assert_array_equal(p.grad.data, g)  # the gradient is read, never scaled in place
    assert p.data is held and p.data.dtype == dtype
    np.testing.assert_allclose(p.data, expected, rtol=rtol, atol=rtol)


# ---- NaN-proof hyper-parameters, read-only parameters, one BLAS ----------------------------------
NAN = float("nan")


@pytest.mark.parametrize("cls, option", [
    (optim.SGD, dict(lr=NAN)), (optim.SGD, dict(momentum=NAN)), (optim.SGD, dict(weight_decay=NAN)),
    (optim.SGD, dict(momentum=0.9, dampening=NAN)), (optim.SGD, dict(weight_decay=-0.1)),
    (optim.Adam, dict(lr=NAN)), (optim.Adam, dict(eps=NAN)), (optim.Adam, dict(weight_decay=NAN)),
    (optim.Adam, dict(betas=(NAN, 0.999))), (optim.Adam, dict(betas=(0.9, NAN))),
    (optim.AdamW, dict(weight_decay=NAN)), (optim.AdamW, dict(lr=NAN)),
    (optim.RMSprop, dict(momentum=NAN)), (optim.RMSprop, dict(alpha=NAN)), (optim.RMSprop, dict(lr=NAN)),
    (optim.RMSprop, dict(eps=NAN)), (optim.RMSprop, dict(weight_decay=NAN)),
    (optim.RMSprop, dict(alpha=-0.5)),
], ids=lambda value: value.__name__ if isinstance(value, type) else "_".join(map(str, value)))
def test_nan_or_negative_hyper_parameters_raise_naming_the_option(cls, option):
    name = list(option)[-1]
    with pytest.raises(ValueError, match="invalid beta parameter" if name == "betas" else f"invalid {name} "):
        cls([leaf([1.0])], **option)


def test_a_nan_option_in_a_later_parameter_group_raises_too():
    opt = optim.SGD([leaf([1.0])], lr=0.1)
    with pytest.raises(ValueError, match="invalid momentum nan"):
        opt.add_param_group({"params": [leaf([2.0])], "momentum": NAN})


def read_only_leaf(shape):
    array = np.ones(shape)
    array.setflags(write=False)
    return tg.Tensor(array, requires_grad=True)


@pytest.mark.parametrize("make", ALL_OPTIMIZERS.values(), ids=ALL_OPTIMIZERS.keys())
@pytest.mark.parametrize("shape", [(3,), (64, 80)], ids=["small", "5120_elements"])
def test_a_read_only_parameter_is_refused_by_its_number_and_nothing_changes(make, shape):
    writable, read_only = leaf(np.zeros(shape)), read_only_leaf(shape)
    opt = make([writable, read_only])
    writable.grad, read_only.grad = tg.Tensor(np.ones(shape)), tg.Tensor(np.ones(shape))
    with pytest.raises(ValueError, match=re.escape(f"step: parameter 1 of shape {shape} is read-only")):
        opt.step()
    np.testing.assert_array_equal(writable.data, np.zeros(shape))  # refused before any update
    assert not opt.state


def test_a_read_only_parameter_is_refused_by_its_name_when_named_parameters_were_given():
    model = tg.nn.Linear(80, 64)
    model.weight.data.setflags(write=False)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    model(tg.Tensor(np.ones((2, 80), np.float32))).sum().backward()
    with pytest.raises(ValueError, match=re.escape("parameter 'weight' of shape (64, 80) is read-only")):
        opt.step()


ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_python(body: str, tmp_path):
    """Run `body` in a fresh interpreter (a crash there cannot take the test run with it)."""
    code = "import sys\nimport numpy as np\nimport tinygrad_edu as tg\nfrom tinygrad_edu import nn, optim\n"
    return subprocess.run([sys.executable, "-c", code + textwrap.dedent(body)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_sgd_on_a_memory_mapped_read_only_weight_raises_instead_of_crashing(tmp_path):
    # The array a user loads with np.load(..., mmap_mode="r"): read-only pages that a write would fault on.
    process = run_python("""
        np.save("weight.npy", np.ones((64, 64), np.float32))
        w = tg.Tensor(np.load("weight.npy", mmap_mode="r"), requires_grad=True)
        w.grad = tg.Tensor(np.ones((64, 64), np.float32))
        try:
            optim.SGD([w], lr=0.1).step()
        except ValueError as error:
            print("refused:", error)
    """, tmp_path)
    assert process.returncode == 0, f"exit {process.returncode}: {process.stderr}"
    assert "refused: SGD.step: parameter 0 of shape (64, 64) is read-only" in process.stdout


def test_a_training_step_calls_no_blas_but_numpys(tmp_path):
    # SciPy's BLAS is a second OpenBLAS with its own thread pool, which fights NumPy's for the cores.
    process = run_python("""
        model = nn.Sequential(nn.Linear(784, 128), nn.Sigmoid(), nn.Linear(128, 10))
        x = tg.Tensor(np.ones((64, 784), np.float32))
        labels = np.arange(64) % 10
        for make in (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4),
                     lambda p: optim.SGD(p, lr=0.1), optim.Adam, optim.AdamW,
                     lambda p: optim.RMSprop(p, momentum=0.5, centered=True)):
            opt = make(model.parameters())
            for _ in range(2):
                opt.zero_grad()
                tg.functional.cross_entropy(model(x), labels).backward()
                opt.step()
        print(sorted(name for name in sys.modules if name.startswith("scipy.linalg")))
    """, tmp_path)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip().splitlines()[-1] == "[]"
