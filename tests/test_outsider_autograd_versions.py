"""A graph reused after an optimizer step, as PyTorch users do it: a second backward raises exactly when
an array the backward reads was written in place (PyTorch's version counter), and runs otherwise.
Expected values are PyTorch 2.13's, written out.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor, optim


def _second_backward_after_step(make_loss, weight):
    """Backward, an SGD step that writes into `weight`, then a second backward through the same graph."""
    loss = make_loss(weight)
    loss.backward(retain_graph=True)
    optim.SGD([weight], lr=0.1).step()
    loss.backward()
    return weight.grad.data


@pytest.mark.parametrize("name, make_loss, expected", [
    # PyTorch 2.13 does not save an input its other input's gradient alone would need, so it
    # runs these second backwards (with the graph's old values) where we used to raise.
    ("w * 2", lambda w: (w * 2).sum(), [4.0, 4.0]),
    ("w * c", lambda w: (w * Tensor([2.0, 3.0])).sum(), [4.0, 6.0]),
    ("c * w", lambda w: (Tensor([2.0, 3.0]) * w).sum(), [4.0, 6.0]),
    ("w / 2", lambda w: (w / 2).sum(), [1.0, 1.0]),
    ("x @ w", lambda w: (np.ones((4, 2), np.float32) @ w).sum(), [8.0, 8.0]),
    ("F.linear(x, w)", lambda w: F.linear(Tensor(np.ones((4, 2), np.float32)), w[None]).sum(), [8.0, 8.0]),
    ("relu", lambda w: w.relu().sum(), [2.0, 2.0]),  # saves its output, not w
])
def test_second_backward_after_a_step_runs_when_pytorch_runs_it(name, make_loss, expected):
    weight = Tensor([1.0, 2.0], requires_grad=True)
    np.testing.assert_allclose(_second_backward_after_step(make_loss, weight), expected)


@pytest.mark.parametrize("name, make_loss", [
    ("w * w", lambda w: (w * w).sum()),
    ("w ** 2", lambda w: (w ** 2).sum()),
    ("2 / w... saves w", lambda w: (Tensor([2.0, 2.0]) / w).sum()),
    ("(w * h) with h requiring grad", lambda w: (w * (w * 1.0)).sum()),
])
def test_second_backward_after_a_step_raises_when_the_weight_was_saved(name, make_loss):
    weight = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _second_backward_after_step(make_loss, weight)


def test_mul_by_a_constant_still_has_a_second_derivative():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (g,) = tg.grad((x * 3.0 * x).sum(), x, create_graph=True)
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h.data, [6.0, 6.0])


def test_matmul_of_constant_and_weight_has_its_second_derivative():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    (g,) = tg.grad(((a @ w) ** 2).sum(), w, create_graph=True)
    (h,) = tg.grad(g.sum(), w)
    np.testing.assert_allclose(h.data, 2 * a.T @ a @ np.ones(2))
