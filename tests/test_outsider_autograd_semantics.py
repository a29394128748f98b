"""Autograd semantics as an outsider's ported suite (PyTorch's test_autograd, micrograd, HIPS autograd)
would check them: higher derivatives, tg.grad's options, hooks, retain_grad and grad modes. Expected
values are formulas, or PyTorch 2.13's behaviour written out where the comment says so.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor


# ---- higher derivatives ----------------------------------------------------------------------
def test_third_derivative_of_x_to_the_fourth():
    x = Tensor(np.array([2.0, -1.5]), requires_grad=True)
    (d1,) = tg.grad((x ** 4).sum(), x, create_graph=True)
    (d2,) = tg.grad(d1.sum(), x, create_graph=True)
    (d3,) = tg.grad(d2.sum(), x)
    v = x.data
    np.testing.assert_allclose(d1.data, 4 * v ** 3)
    np.testing.assert_allclose(d2.data, 12 * v ** 2)
    np.testing.assert_allclose(d3.data, 24 * v)


def test_mixed_partials_agree_both_ways():
    x = Tensor(np.array(0.7), requires_grad=True)
    y = Tensor(np.array(-1.3), requires_grad=True)
    z = x * x * y + y.sin() * x.exp()
    dx, dy = tg.grad(z, [x, y], create_graph=True)
    (dxdy,) = tg.grad(dx, y, retain_graph=True)
    (dydx,) = tg.grad(dy, x)
    expected = 2 * 0.7 + np.cos(-1.3) * np.exp(0.7)
    np.testing.assert_allclose([dxdy.item(), dydx.item()], [expected, expected], rtol=1e-12)


def test_hessian_vector_product_equals_hessian_times_v():
    a = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])
    x = Tensor(np.array([0.2, -0.4, 1.1]), requires_grad=True)
    v = np.array([1.0, 0.0, -2.0])
    f = 0.5 * (x @ Tensor(a) @ x) + (x ** 3).sum()
    (g,) = tg.grad(f, x, create_graph=True)
    (hv,) = tg.grad((g * v).sum(), x)
    hessian = a + np.diag(6 * x.data)
    np.testing.assert_allclose(hv.data, hessian @ v, rtol=1e-12)


def test_backward_create_graph_leaves_a_differentiable_grad():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    first = x.grad
    assert first.requires_grad and first.grad_fn is not None
    x.grad = None
    first.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


# ---- tg.grad ---------------------------------------------------------------------------------
def test_grad_allow_unused_gives_none_and_raises_without_it():
    x = Tensor([1.0, 2.0], requires_grad=True)
    unused = Tensor([5.0], requires_grad=True)
    y = (x * x).sum()
    dx, du = tg.grad(y, [x, unused], allow_unused=True, retain_graph=True)
    assert du is None
    np.testing.assert_allclose(dx.data, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="input 1"):
        tg.grad(y, [x, unused])


def test_grad_several_outputs_weighted_by_grad_outputs():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (dx,) = tg.grad([x * x, x * 3], [x], grad_outputs=[np.ones(2), np.array([1.0, 2.0])])
    np.testing.assert_allclose(dx.data, 2 * x.data + 3 * np.array([1.0, 2.0]))


def test_grad_does_not_touch_dot_grad_and_returns_plain_tensors():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (dx,) = tg.grad((x * x).sum(), x)
    assert x.grad is None
    assert not dx.requires_grad and dx.grad_fn is None  # PyTorch: requires_grad False, grad_fn None


def test_grad_with_respect_to_a_non_leaf_and_a_leaf():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    dh, dx = tg.grad((h * h).sum(), [h, x])
    np.testing.assert_allclose(dh.data, 2 * h.data)
    np.testing.assert_allclose(dx.data, 8 * x.data)


def test_grad_same_input_listed_twice():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    first, second = tg.grad((x * x).sum(), [x, x])
    np.testing.assert_allclose(first.data, [2.0, 4.0])
    np.testing.assert_allclose(second.data, [2.0, 4.0])


def test_second_grad_through_a_freed_graph_raises():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    tg.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph"):
        tg.grad(y, x)


def test_grad_of_an_input_that_does_not_require_grad_raises():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.grad((x * x).sum(), Tensor([1.0]))


# ---- accumulation, non-leaves, retain_grad -----------------------------------------------------
def test_gradients_accumulate_across_backwards():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * x.data)


def test_non_leaf_grad_is_none_unless_retained():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    kept = x * 3
    kept.retain_grad()
    ((h * h).sum() + (kept * kept).sum()).backward()
    with pytest.warns(UserWarning, match="retain_grad"):  # as PyTorch 2.13 warns
        assert h.grad is None and not h.is_leaf
    np.testing.assert_allclose(kept.grad.data, 2 * kept.data)


def test_retain_grad_sees_the_gradient_a_hook_replaced_whatever_the_order():
    # PyTorch 2.x runs retain_grad's hook after the tensor's other hooks, registered before or after:
    # h.grad == [60, 120] and x.grad == [180, 360] in both orders.
    for retain_first in (False, True):
        x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
        h = x * 3
        if retain_first:
            h.retain_grad()
        h.register_hook(lambda grad: grad * 10)
        if not retain_first:
            h.retain_grad()
        (h * h).sum().backward()
        np.testing.assert_allclose(h.grad.data, [60.0, 120.0])
        np.testing.assert_allclose(x.grad.data, [180.0, 360.0])


# ---- hooks -------------------------------------------------------------------------------------
def test_leaf_hooks_run_in_order_and_a_returned_tensor_replaces_the_gradient():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    seen = []
    x.register_hook(lambda grad: seen.append(("first", grad.data.copy())))
    x.register_hook(lambda grad: grad * 2)
    x.register_hook(lambda grad: seen.append(("third", grad.data.copy())))
    (x * x).sum().backward()
    assert [name for name, _ in seen] == ["first", "third"]
    np.testing.assert_allclose(seen[0][1], [2.0, 4.0])
    np.testing.assert_allclose(seen[1][1], [4.0, 8.0])
    np.testing.assert_allclose(x.grad.data, [4.0, 8.0])


def test_leaf_hook_changes_only_the_new_gradient_not_the_accumulated_one():
    # PyTorch 2.13: x.grad = [100, 100] before, hook g * 10, backward of sum(x * x) -> [120, 140]
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x.grad = Tensor(np.array([100.0, 100.0]))
    x.register_hook(lambda grad: grad * 10)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [120.0, 140.0])


def test_non_leaf_hook_scales_what_flows_on_and_its_handle_removes_it():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    handle = h.register_hook(lambda grad: grad * 10)
    y = (h * h).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.data, 10 * 18 * x.data)
    handle.remove()
    x.grad = None
    y.backward()
    np.testing.assert_allclose(x.grad.data, 18 * x.data)


# ---- grad mode -----------------------------------------------------------------------------------
def test_no_grad_and_enable_grad_nest_and_restore():
    with tg.no_grad():
        with tg.enable_grad():
            inner = tg.is_grad_enabled()
        middle = tg.is_grad_enabled()
    assert (inner, middle, tg.is_grad_enabled()) == (True, False, True)


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(KeyError):
        with tg.no_grad():
            raise KeyError("boom")
    assert tg.is_grad_enabled()


def test_no_grad_as_a_decorator_with_and_without_parentheses():
    x = Tensor([1.0], requires_grad=True)

    @tg.no_grad()
    def called(t):
        return t * 2

    @tg.no_grad
    def bare(t):
        return t * 2

    assert not called(x).requires_grad and not bare(x).requires_grad
    assert tg.is_grad_enabled()


def test_tensor_made_under_no_grad_keeps_its_requires_grad_flag():
    with tg.no_grad():
        x = Tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
    assert x.requires_grad and not y.requires_grad and y.grad_fn is None


# ---- a second backward without retain_graph ------------------------------------------------------
def test_backward_twice_through_saved_values_raises_as_pytorch_words_it():
    # PyTorch's test_backward_twice_with_saved_values matches 'Specify retain_graph=True'
    b = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    c = b * b
    c.backward(np.ones(3))
    pytorch_words = "(?i)backward through the graph a second time.*specify retain_graph=True"
    with pytest.raises(RuntimeError, match=pytorch_words):
        c.backward(np.ones(3))


def test_grad_with_fewer_grad_outputs_than_outputs_raises():
    # PyTorch 2.13: RuntimeError "got 2 tensors and 1 gradients"; never a gradient of the first output alone
    x = Tensor(np.array([1.5, 2.0]), requires_grad=True)
    for grad_outputs in (np.ones(2), [np.ones(2)], Tensor(np.ones(2))):
        with pytest.raises(RuntimeError, match="2 outputs and 1 grad_outputs"):
            tg.grad([x * 2, x * 3], x, grad_outputs=grad_outputs)
