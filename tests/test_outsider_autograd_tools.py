"""The checking tools under an outsider's stress: tg.gradcheck on float32, size-0 and size-1 inputs,
non-scalar, integer or boolean outputs, NaN gradients and wrong functions; check_backprop and
compare_grads on float32 and size-0 parameters.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor


def leaf(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


@pytest.mark.parametrize("fn, x", [
    (lambda t: (t * t).sum(), leaf([1.0, 2.0], np.float32)),      # float32 inputs are checked in float64
    (lambda t: t.tanh(), leaf([0.3, -1.2, 2.0], np.float32)),
    (lambda t: (t * t).sum(), leaf(np.zeros(0))),                # size 0
    (lambda t: t * t, leaf(np.zeros((0, 3)))),
    (lambda t: t.exp(), leaf([0.3])),                             # size 1
    (lambda t: t.exp(), leaf(0.3)),                               # 0-d
    (lambda t: t.exp() * np.ones((3, 2)), leaf([0.3, 0.5])),         # non-scalar output
    (lambda t: (t.exp(), t * 2), leaf([0.3, 0.5])),               # several outputs
    (lambda t: t.argmax(), leaf([0.3, 0.5])),                     # integer output: no gradient, none claimed
    (lambda t: t > 0, leaf([0.3, 0.5])),                          # boolean output
])
def test_gradcheck_passes_on_correct_functions(fn, x):
    with np.errstate(all="ignore"):
        assert tg.gradcheck(fn, [x]) is True


def test_gradcheck_leaves_the_callers_tensors_as_they_were():
    data = np.array([1.0, 0.5], np.float32)
    x = Tensor(data, requires_grad=True)
    x.grad = Tensor(np.array([7.0, 7.0], np.float32))
    tg.gradcheck(lambda t: (t * t).sum(), [x])
    assert x.data is data and x.dtype == np.float32
    np.testing.assert_array_equal(data, [1.0, 0.5])
    np.testing.assert_array_equal(x.grad.data, [7.0, 7.0])


def test_gradcheck_catches_a_detached_factor_and_names_the_worst_element():
    x = leaf([1.0, 0.5])
    assert tg.gradcheck(lambda t: t.detach() * t, [x], raise_exception=False) is False
    with pytest.raises(tg.GradcheckError, match=r"input 0 .*index \(0,\)"):
        tg.gradcheck(lambda t: t.detach() * t, [x])


def test_gradcheck_fails_on_an_infinite_gradient_instead_of_passing_it():
    with np.errstate(all="ignore"), pytest.raises(tg.GradcheckError, match="inf"):
        tg.gradcheck(lambda t: t.sqrt().sum(), [leaf([0.0, 0.5])])


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        tg.gradcheck(lambda t: t * 2, [Tensor(np.array([1.0, 0.5]))])


def test_gradcheck_passes_other_arguments_through():
    x = leaf([1.0, 0.5])
    assert tg.gradcheck(lambda t, c, i: (t * c)[i].sum(), [x, np.array([2.0, 3.0]), np.array([0, 0, 1])])


@pytest.mark.parametrize("result", [3.0, None, np.ones(2), {"a": 1}])
def test_gradcheck_says_what_fn_must_return(result):
    with pytest.raises(TypeError, match="fn must return a Tensor"):
        tg.gradcheck(lambda t: result, [leaf([1.0, 0.5])])


def test_check_backprop_on_float32_and_size_0_parameters():
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((4, 3)).astype(np.float32)

    def cost(params, x):
        return ((x @ params[0]) ** 2).sum() + (params[1] ** 2).sum()

    def backprop(params, x):
        return [2 * x.T @ (x @ params[0]), 2 * params[1]]

    params = [rng.standard_normal(3).astype(np.float32), np.zeros(0, np.float32)]
    assert tg.check_backprop(cost, backprop, params, inputs).ok


def test_compare_grads_on_float32_and_size_0_tensors():
    x = leaf([1.0, 2.0], np.float32)
    empty = leaf(np.zeros(0))
    ((x * x).sum() + (empty * empty).sum()).backward()
    assert tg.compare_grads({"x": x, "empty": empty}, {"x": np.array([2.0, 4.0]), "empty": np.zeros(0)}).ok
    assert not tg.compare_grads({"x": x}, {"x": np.array([np.nan, 4.0])}).ok
