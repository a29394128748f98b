"""tg.gradcheck and numeric_grad: they pass right gradients and catch wrong ones, saying where."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.autograd import Function
from tinygrad_edu.gradcheck import numeric_grad


class SlightlyWrongSquare(Function):
    """z = x**2 with a backward that is 1% too large (a deliberate bug)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * 2 * x * 1.01


def test_numeric_grad_of_a_known_function():
    a, b = np.array([1.0, 2.0]), np.array([[3.0]])
    ga, gb = numeric_grad(lambda x, y: float(np.sum(x**2) * y[0, 0]), [a, b])
    np.testing.assert_allclose(ga, 2 * a * 3.0, rtol=1e-8)
    np.testing.assert_allclose(gb, [[5.0]], rtol=1e-8)
    assert a.tolist() == [1.0, 2.0]  # inputs untouched


def test_numeric_grad_and_gradcheck_work_on_transposed_inputs():
    # a transposed array's float64 copy kept its strides, so the flat view numeric_grad perturbs
    # was a copy: every numeric derivative came out 0 and gradcheck failed right gradients
    a = np.arange(6.0).reshape(2, 3).T
    (ga,) = numeric_grad(lambda x: float(np.sum(x**2)), [a])
    np.testing.assert_allclose(ga, 2 * a, rtol=1e-8)
    assert tg.gradcheck(lambda t: (t * t).sum(), [tg.Tensor(a, requires_grad=True)])


def test_gradcheck_passes_correct_gradients_on_float32_inputs():
    x = tg.Tensor(np.array([[0.1, -0.4], [0.3, 0.2]], dtype=np.float32), requires_grad=True)
    w = tg.Tensor(np.array([[1.0, 2.0], [-1.0, 0.5]], dtype=np.float32), requires_grad=True)
    assert tg.gradcheck(lambda a, b: (a @ b).sigmoid(), [x, w]) is True
    assert x.dtype == np.float32  # the caller's tensors are not converted


def test_gradcheck_catches_a_gradient_off_by_one_percent_and_names_it():
    x = tg.Tensor(np.array([0.5, -2.0, 3.0]), requires_grad=True, name="x")
    with pytest.raises(tg.GradcheckError) as error:
        tg.gradcheck(lambda t: SlightlyWrongSquare.apply(t).sum(), [x])
    message = str(error.value)
    assert "input 0 (x)" in message and "index (2,)" in message
    assert "analytic gradient is 6.06 " in message and "numeric one is 6 " in message
    with pytest.raises(tg.GradcheckError, match="random weights"):
        tg.gradcheck(lambda t: SlightlyWrongSquare.apply(t), [x])  # non-scalar output
    assert tg.gradcheck(lambda t: SlightlyWrongSquare.apply(t), [x], raise_exception=False) is False


def test_gradcheck_checks_only_inputs_that_require_grad():
    fixed = tg.Tensor(np.array([1.0, 2.0]))
    x = tg.Tensor(np.array([0.5, 0.25]), requires_grad=True)
    assert tg.gradcheck(lambda a, b: SlightlyWrongSquare.apply(a) + b, [fixed, x])
    with pytest.raises(ValueError, match="requires_grad"):
        tg.gradcheck(lambda a: a * 2.0, [fixed])


def test_gradcheck_of_multiple_outputs():
    x = tg.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    assert tg.gradcheck(lambda t: (t.exp(), (t * t).sum()), [x])
