"""tinygrad_edu.nn.init: gains, fans (PyTorch's layout), the statistics of every initialiser on
large tensors against its formula, in-place filling, dtypes, seeding and argument errors.

The large tensors have about a million entries, so the sample mean and std are within 0.1% of
the truth: the 2% tolerance only catches a wrong formula, never bad luck.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.nn import init

SQRT2 = np.sqrt(2.0)


def empty(*shape, dtype=np.float32):
    return tg.Tensor(np.full(shape, 7.0, dtype=dtype))  # 7 everywhere: filling must overwrite it


def filled(fn, *shape, seed=0, **kwargs):
    tg.manual_seed(seed)
    return fn(empty(*shape), **kwargs).data


def assert_uniform(w, bound):
    """Symmetric U(-bound, bound): inside the bounds, reaching close to them, flat std."""
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.98 * bound
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)
    assert abs(w.mean()) < 0.02 * bound


def assert_normal(w, std, mean=0.0):
    assert w.std() == pytest.approx(std, rel=0.02)
    assert abs(w.mean() - mean) < 0.02 * std
    # a normal, not a uniform: about 4.55% of the values lie beyond two standard deviations
    assert np.mean(np.abs(w - mean) > 2 * std) == pytest.approx(0.0455, rel=0.1)


# ---- calculate_gain ------------------------------------------------------------------------------
@pytest.mark.parametrize("nonlinearity, param, gain", [
    ("linear", None, 1.0),
    ("identity", None, 1.0),
    ("conv1d", None, 1.0),
    ("conv2d", None, 1.0),
    ("sigmoid", None, 1.0),
    ("tanh", None, 5.0 / 3),
    ("relu", None, SQRT2),
    ("leaky_relu", None, np.sqrt(2.0 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, np.sqrt(2.0 / (1 + 0.2 ** 2))),
    ("leaky_relu", 0, SQRT2),
    ("selu", None, 0.75),
])
def test_calculate_gain(nonlinearity, param, gain):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(gain, rel=1e-12)


def test_calculate_gain_default_param_is_none():
    assert init.calculate_gain("leaky_relu") == pytest.approx(np.sqrt(2.0 / 1.0001), rel=1e-12)
    assert init.calculate_gain("tanh") == pytest.approx(5.0 / 3, rel=1e-12)


def test_calculate_gain_rejects_unknown_nonlinearity():
    with pytest.raises(ValueError):
        init.calculate_gain("swish")


# ---- fans as PyTorch computes them -----------------------------------------------------------------
# kaiming_uniform_ with relu has bound sqrt(6 / fan): reading the bound back reads the fan.
@pytest.mark.parametrize("shape, fan_in, fan_out", [
    ((300, 200), 200, 300),             # Linear weight: (out_features, in_features)
    ((40, 20, 5), 100, 200),            # conv1d: (out, in, k)
    ((64, 32, 3, 3), 288, 576),         # conv2d: (out, in, kh, kw)
], ids=str)
def test_fans_follow_pytorchs_layout(shape, fan_in, fan_out):
    for mode, fan in (("fan_in", fan_in), ("fan_out", fan_out)):
        w = filled(init.kaiming_uniform_, *shape, mode=mode, nonlinearity="relu")
        bound = np.sqrt(6.0 / fan)
        assert np.abs(w).max() <= bound * (1 + 1e-6), mode
        assert np.abs(w).max() > 0.99 * bound, mode
    w = filled(init.xavier_uniform_, *shape)
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    assert bound * 0.99 < np.abs(w).max() <= bound * (1 + 1e-6)


@pytest.mark.parametrize("fn", [init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_,
                                init.kaiming_normal_, init.lecun_normal_], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(10,), ()], ids=str)
def test_fans_need_at_least_two_dimensions(fn, shape):
    with pytest.raises(ValueError):
        fn(empty(*shape))


# ---- statistics on large tensors ---------------------------------------------------------------------
def test_uniform_default_is_zero_to_one():
    w = filled(init.uniform_, 1000, 1000)
    assert w.min() >= 0.0 and w.max() <= 1.0
    assert w.min() < 0.001 and w.max() > 0.999
    assert w.mean() == pytest.approx(0.5, rel=0.02)
    assert w.std() == pytest.approx(1 / np.sqrt(12), rel=0.02)


def test_uniform_with_bounds():
    w = filled(init.uniform_, 1000, 1000, a=-3.0, b=5.0)
    assert w.min() >= -3.0 and w.max() <= 5.0
    assert w.min() < -2.99 and w.max() > 4.99
    assert w.mean() == pytest.approx(1.0, rel=0.02)
    assert w.std() == pytest.approx(8 / np.sqrt(12), rel=0.02)


def test_normal_default_and_with_mean_and_std():
    assert_normal(filled(init.normal_, 1000, 1000), 1.0)
    assert_normal(filled(init.normal_, 1000, 1000, mean=2.0, std=0.5), 0.5, mean=2.0)


@pytest.mark.parametrize("gain", [1.0, 5.0 / 3])
def test_xavier_uniform(gain):
    shape = (500, 2000)
    bound = gain * np.sqrt(6.0 / (500 + 2000))
    assert_uniform(filled(init.xavier_uniform_, *shape, gain=gain), bound)


@pytest.mark.parametrize("gain", [1.0, SQRT2])
def test_xavier_normal(gain):
    assert_normal(filled(init.xavier_normal_, 500, 2000, gain=gain), gain * np.sqrt(2.0 / 2500))


KAIMING_CASES = [
    ({}, SQRT2, 2000),  # defaults: a=0, fan_in, leaky_relu -> gain sqrt(2), like relu
    ({"mode": "fan_in", "nonlinearity": "relu"}, SQRT2, 2000),
    ({"mode": "fan_out", "nonlinearity": "relu"}, SQRT2, 500),
    ({"a": 0.5, "nonlinearity": "leaky_relu"}, np.sqrt(2 / 1.25), 2000),
    ({"a": 0.5, "mode": "fan_out", "nonlinearity": "leaky_relu"}, np.sqrt(2 / 1.25), 500),
    ({"nonlinearity": "tanh"}, 5.0 / 3, 2000),
]


@pytest.mark.parametrize("kwargs, gain, fan", KAIMING_CASES, ids=str)
def test_kaiming_uniform(kwargs, gain, fan):
    assert_uniform(filled(init.kaiming_uniform_, 500, 2000, **kwargs), gain * np.sqrt(3.0 / fan))


@pytest.mark.parametrize("kwargs, gain, fan", KAIMING_CASES, ids=str)
def test_kaiming_normal(kwargs, gain, fan):
    assert_normal(filled(init.kaiming_normal_, 500, 2000, **kwargs), gain / np.sqrt(fan))


def test_lecun_normal_uses_fan_in():
    assert_normal(filled(init.lecun_normal_, 500, 2000), 1 / np.sqrt(2000))


@pytest.mark.parametrize("fn", [init.kaiming_uniform_, init.kaiming_normal_], ids=lambda f: f.__name__)
def test_kaiming_rejects_an_unknown_mode(fn):
    with pytest.raises(ValueError):
        fn(empty(4, 5), mode="fan_avg")


# ---- constants -------------------------------------------------------------------------------------
def test_constant_ones_and_zeros():
    np.testing.assert_array_equal(init.constant_(empty(3, 4), 0.25).data, np.full((3, 4), 0.25))
    np.testing.assert_array_equal(init.ones_(empty(3, 4)).data, np.ones((3, 4)))
    np.testing.assert_array_equal(init.zeros_(empty(5)).data, np.zeros(5))


# ---- in place, dtype, seeding -------------------------------------------------------------------------
EVERY_INIT = [
    ("uniform_", lambda t: init.uniform_(t, -0.5, 0.5)),
    ("normal_", lambda t: init.normal_(t, 0.0, 0.1)),
    ("constant_", lambda t: init.constant_(t, 0.3)),
    ("ones_", init.ones_),
    ("zeros_", init.zeros_),
    ("xavier_uniform_", init.xavier_uniform_),
    ("xavier_normal_", init.xavier_normal_),
    ("kaiming_uniform_", init.kaiming_uniform_),
    ("kaiming_normal_", init.kaiming_normal_),
    ("lecun_normal_", init.lecun_normal_),
]
RANDOM_INIT = [case for case in EVERY_INIT if case[0] not in ("constant_", "ones_", "zeros_")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, fn", EVERY_INIT, ids=[case[0] for case in EVERY_INIT])
def test_init_fills_the_same_tensor_in_place_and_keeps_its_dtype(name, fn, dtype):
    t = empty(20, 30, dtype=dtype)
    array = t.data
    out = fn(t)
    assert out is t and t.data is array
    assert t.dtype == dtype and t.shape == (20, 30)
    assert np.all(np.isfinite(array)) and not np.any(array == 7.0)


@pytest.mark.parametrize("name, fn", EVERY_INIT, ids=[case[0] for case in EVERY_INIT])
def test_init_of_a_parameter_records_no_graph(name, fn):
    p = nn.Parameter(np.zeros((6, 4), dtype=np.float32))
    assert fn(p) is p
    assert p.is_leaf and p.grad_fn is None and p.requires_grad and p.grad is None


def test_init_ignores_the_default_dtype():
    tg.set_default_dtype(np.float64)
    t = empty(8, 8, dtype=np.float32)
    assert init.kaiming_normal_(t).dtype == np.float32


@pytest.mark.parametrize("name, fn", RANDOM_INIT, ids=[case[0] for case in RANDOM_INIT])
def test_init_is_reproducible_after_manual_seed_and_depends_on_the_seed(name, fn):
    def draw(seed):
        tg.manual_seed(seed)
        return fn(empty(20, 30)).data.copy()

    first, again, other = draw(4), draw(4), draw(5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert len(np.unique(first)) > 500  # random values, not a constant
