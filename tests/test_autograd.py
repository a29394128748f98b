"""Engine semantics the op table cannot show: graph shapes, accumulation, freeing, modes, hooks.

Each test builds a tiny graph whose gradient is known by hand and checks the engine against it.
"""
import gc
import weakref

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu.autograd import node_of, toposort, unbroadcast


def leaf(values, dtype=np.float64):
    return tg.Tensor(np.array(values, dtype=dtype), requires_grad=True)


# ---- graph shapes -------------------------------------------------------------------------
def test_diamond_graph_adds_both_paths():
    x = leaf([1.0, 2.0])
    a, b = x * 3.0, x * x  # two paths from x that meet again
    (a + b).sum().backward()
    np.testing.assert_allclose(x.grad.data, 3.0 + 2 * x.data)


def test_node_used_twice():
    a = leaf([1.5, -2.0])
    b = a + a
    b.sum().backward()
    np.testing.assert_allclose(a.grad.data, [2.0, 2.0])


def test_chain_of_100000_operations_needs_no_recursion():
    x = leaf([1.0])
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0])


def test_toposort_puts_inputs_before_outputs():
    x = leaf([1.0])
    a = x * 2.0
    b = a.exp()
    c = a + b
    order = toposort([c])
    position = {id(item): i for i, item in enumerate(order)}  # a leaf, else the node that made it
    x, a, b, c = (node_of(t) for t in (x, a, b, c))
    assert position[id(x)] < position[id(a)] < position[id(b)] < position[id(c)]


# ---- accumulation and freeing ---------------------------------------------------------------
def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.data, [5.0, 5.0])


def test_backward_twice_through_freed_graph_raises_with_advice():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_backward_twice_through_an_op_that_saves_nothing_also_raises():
    x = leaf([1.0, 2.0])
    y = (x + 1.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * x.data)


def test_intermediates_live_only_as_long_as_backward_needs_them():
    x = leaf(np.ones(1000))
    product = x * 2.0  # tanh's backward needs tanh's output, not this input
    product_data = weakref.ref(product.data)
    hidden = product.tanh()
    hidden_ref = weakref.ref(hidden)
    saved_ref = weakref.ref(hidden._ctx.saved[0])  # tanh saves its output array
    loss = hidden.sum()
    del product, hidden
    gc.collect()
    assert product_data() is None  # freed during the forward pass: the graph holds nodes, not tensors
    assert hidden_ref() is None and saved_ref() is not None  # the Tensor went; what backward needs stays
    loss.backward()
    gc.collect()
    assert saved_ref() is None
    assert loss.grad_fn.saved is None
    np.testing.assert_allclose(x.grad.data, 2.0 * (1.0 - np.tanh(2.0) ** 2))


def test_grad_is_kept_on_leaves_only():
    x = leaf([1.0])
    hidden = x * 2.0
    (hidden * 3.0).sum().backward()
    with pytest.warns(UserWarning, match="non-leaf"):  # PyTorch warns there too
        assert hidden.grad is None
    np.testing.assert_allclose(x.grad.data, [6.0])


def test_gradient_dtype_follows_the_leaf():
    x = leaf([1.0, 2.0], dtype=np.float32)
    (x * np.array([1.0, 2.0])).sum().backward()  # float64 constant promotes the forward
    assert x.grad.dtype == np.float32


# ---- seeds ------------------------------------------------------------------------------------
def test_non_scalar_backward_needs_a_gradient():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"one-element output.*shape \(2,\)"):
        (x * 2.0).backward()


def test_explicit_gradient_is_used_as_the_seed_and_copied():
    x = leaf([1.0, 2.0])
    seed = np.array([10.0, 100.0])
    (x * 2.0).backward(seed)
    seed[:] = 0.0  # must not reach x.grad
    np.testing.assert_allclose(x.grad.data, [20.0, 200.0])


def test_gradient_of_wrong_shape_is_rejected():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (x * 2.0).backward(np.ones(3))


def test_backward_without_any_input_requiring_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.Tensor([1.0, 2.0]).sum().backward()


# ---- modes -----------------------------------------------------------------------------------
def test_no_grad_records_nothing_and_restores_state_after_an_error():
    x = leaf([1.0])
    with tg.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            1 / 0
    assert tg.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators_and_nested():
    x = leaf([1.0])

    @tg.no_grad()
    def double(t):
        return t * 2.0

    @tg.no_grad
    def triple(t):
        with tg.enable_grad():
            return t * 3.0

    assert not double(x).requires_grad
    assert triple(x).requires_grad
    assert tg.is_grad_enabled()


def test_detach_shares_data_but_leaves_the_graph():
    x = leaf([1.0, 2.0])
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.grad_fn is None
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0])


# ---- hooks and tg.grad -------------------------------------------------------------------------
def test_hook_sees_the_gradient_and_can_replace_it():
    x = leaf([1.0, 2.0])
    hidden = x * 3.0
    seen = []
    hidden.register_hook(lambda g: seen.append(g.data.copy()))
    handle = x.register_hook(lambda g: g * 10.0)
    (hidden * hidden).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * hidden.data)
    np.testing.assert_allclose(x.grad.data, 10 * 18 * x.data)
    handle.remove()
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0, 1.0])


def test_a_hook_on_an_intermediate_runs_after_its_tensor_is_gone():
    # The hook lives on the node that made the tensor: the graph does not keep the Tensor.
    x = leaf([1.0, 2.0])
    hidden = x * 3.0
    seen = []
    hidden.register_hook(lambda g: seen.append(g.data.copy()))
    hidden.register_hook(lambda g: g * 0.5)  # and may still replace the gradient
    loss = (hidden * hidden).sum()
    expected = 2 * hidden.data
    del hidden
    gc.collect()
    loss.backward()
    np.testing.assert_allclose(seen[0], expected)
    np.testing.assert_allclose(x.grad.data, 0.5 * 3.0 * expected)


def test_a_hook_returning_the_wrong_shape_is_refused_with_both_shapes():
    x = leaf([1.0, 2.0])
    hidden = x * 3.0
    hidden.register_hook(lambda g: g.sum())  # () instead of (2,)
    with pytest.raises(ValueError, match=r"a hook returned shape \(\) for a gradient of shape \(2,\)"):
        hidden.sum().backward()


def test_tg_grad_accepts_a_node_for_the_tensor_it_made():
    x = leaf([1.0, 2.0])
    hidden = x * 3.0
    node = hidden.grad_fn
    loss = (hidden * hidden).sum()
    del hidden
    (g,) = tg.grad(loss, node)
    np.testing.assert_allclose(g.data, 2 * 3.0 * x.data)


def test_second_derivative_through_an_output_tensor_nobody_kept():
    # tanh saves its output array; with create_graph the engine rebuilds that output as a
    # Tensor on tanh's node, although the original Tensor object is long gone.
    x = leaf([0.3, -1.2])
    loss = (x * 2.0).tanh().sum()
    gc.collect()
    (dx,) = tg.grad(loss, x, create_graph=True)
    np.testing.assert_allclose(dx.data, 2.0 * (1 - np.tanh(2.0 * x.data) ** 2))
    (d2x,) = tg.grad(dx.sum(), x)
    t = np.tanh(2.0 * x.data)
    np.testing.assert_allclose(d2x.data, -8.0 * t * (1 - t**2))


def test_backward_runs_each_node_after_every_node_that_uses_its_output():
    # A node used by a later and an earlier consumer: its gradient must be complete when it runs.
    x = leaf([2.0])
    a = x * 3.0
    b = a.exp()  # uses a
    c = (a * b) + a  # uses a twice more, and b
    seen = []
    a.register_hook(lambda g: seen.append(g.item()))
    c.sum().backward()
    va = 6.0
    assert seen == [pytest.approx(np.exp(va) + va * np.exp(va) + 1.0)]  # one complete gradient
    np.testing.assert_allclose(x.grad.data, [3.0 * seen[0]])


def test_tg_grad_returns_gradients_without_touching_dot_grad():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    gx, gy = tg.grad((x * y).sum(), [x, y])
    np.testing.assert_allclose(gx.data, y.data)
    np.testing.assert_allclose(gy.data, x.data)
    assert x.grad is None and y.grad is None


def test_tg_grad_with_an_unused_input():
    x, unused = leaf([1.0]), leaf([2.0])
    with pytest.raises(RuntimeError, match="input 1 was not used"):
        tg.grad((x * 2.0).sum(), [x, unused])
    gx, g_unused = tg.grad((x * 2.0).sum(), [x, unused], allow_unused=True)
    assert g_unused is None and gx.item() == 2.0


def test_tg_grad_of_an_interior_tensor():
    x = leaf([1.0, 2.0])
    hidden = x * 3.0
    (g,) = tg.grad((hidden * hidden).sum(), hidden)
    np.testing.assert_allclose(g.data, 2 * hidden.data)


# ---- higher order ------------------------------------------------------------------------------
SECOND_DERIVATIVES = {
    "tanh": (lambda t: t.tanh(), lambda v: -2 * np.tanh(v) * (1 - np.tanh(v) ** 2)),
    "sigmoid": (
        lambda t: t.sigmoid(),
        lambda v: (1 / (1 + np.exp(-v))) * (1 - 1 / (1 + np.exp(-v))) * (1 - 2 / (1 + np.exp(-v))),
    ),
    "mul": (lambda t: t * t * t, lambda v: 6 * v),
    "exp": (lambda t: t.exp(), np.exp),
    "log": (lambda t: t.log(), lambda v: -1 / v**2),
}


@pytest.mark.parametrize("name", sorted(SECOND_DERIVATIVES))
def test_second_derivative_matches_the_formula(name):
    fn, second = SECOND_DERIVATIVES[name]
    x = leaf([0.3, 0.9, 1.7])
    (first,) = tg.grad(fn(x).sum(), x, create_graph=True)
    (again,) = tg.grad(first.sum(), x)
    np.testing.assert_allclose(again.data, second(x.data), rtol=1e-10)


def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = leaf([0.5, -1.0])
    (x * x * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    x_grad = x.grad
    x.grad = None
    x_grad.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


@pytest.mark.parametrize(
    "make_loss, inputs",
    [
        (lambda a, b: ((a @ b).tanh() ** 2).sum(), [(2, 3), (3, 4)]),
        (lambda a, b: (F.softmax(a * b, axis=1) * np.arange(3.0)).sum(), [(2, 3), (3,)]),
        (lambda a, b: (a * b * a).sigmoid().sum(), [(3,), (3,)]),
    ],
    ids=["matmul-tanh", "softmax", "mul-sigmoid"],
)
def test_gradcheck_of_a_gradient(make_loss, inputs):
    rng = np.random.default_rng(1)
    tensors = [tg.Tensor(rng.standard_normal(s), requires_grad=True) for s in inputs]

    def gradient(*ts):
        return tg.grad(make_loss(*ts), ts, create_graph=True)

    assert tg.gradcheck(gradient, tensors)


# ---- unbroadcast ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "grad_shape, shape",
    [((2, 3), (3,)), ((2, 3), (1, 3)), ((4, 2, 3), (2, 1)), ((2, 3), ()), ((3,), (3,)),
     ((4, 2, 3), (2, 3)), ((4, 1, 3), (1, 3)), ((4, 2, 3), (1, 3)), ((5, 0), (0,)), ((0, 3), (3,))],
)
def test_unbroadcast_sums_added_and_stretched_axes(grad_shape, shape):
    grad = np.arange(np.prod(grad_shape), dtype=float).reshape(grad_shape)
    # Reference: label each input element, broadcast the labels like the forward did, and
    # add up the gradient of every output element that carries the same label.
    labels = np.broadcast_to(np.arange(int(np.prod(shape))).reshape(shape), grad_shape)
    expected = np.bincount(labels.ravel(), weights=grad.ravel(), minlength=int(np.prod(shape)))
    reduced = unbroadcast(grad, shape)
    assert reduced.shape == shape
    np.testing.assert_allclose(reduced, expected.reshape(shape))


# ---- the learners' network, end to end -------------------------------------------------------
def test_three_layer_sigmoid_network_gradients_match_the_hand_derivation():
    """The first learner's backprop (seeds/000), which is correct, against the engine."""
    rng = np.random.default_rng(0)
    m, lmda = 20, 1.0
    x = rng.standard_normal((m, 8))
    y = np.eye(3)[rng.integers(0, 3, m)]
    params = [rng.uniform(-0.12, 0.12, s) for s in [(8, 5), (1, 5), (5, 3), (1, 3)]]

    def sig(z):
        return 1 / (1 + np.exp(-z))

    a2 = sig(x @ params[0] + params[1])
    h = sig(a2 @ params[2] + params[3])
    dz3 = (h - y) / m * h * (1 - h)
    dz2 = (dz3 @ params[2].T) * a2 * (1 - a2)
    expected = [x.T @ dz2 + lmda / m * params[0], dz2.sum(0), a2.T @ dz3 + lmda / m * params[2], dz3.sum(0)]

    w1, b1, w2, b2 = (tg.Tensor(p, requires_grad=True) for p in params)
    out = ((x @ w1 + b1).sigmoid() @ w2 + b2).sigmoid()
    cost = ((y - out) ** 2).sum() * 0.5 / m + lmda * 0.5 / m * ((w1**2).sum() + (w2**2).sum())
    cost.backward()
    for tensor, hand in zip((w1, b1, w2, b2), expected):
        np.testing.assert_allclose(tensor.grad.data.reshape(hand.shape), hand, rtol=1e-10)


def test_tg_grad_leaves_the_graph_below_the_inputs_intact():
    x = leaf([1.0, 2.0])
    hidden = x * 3.0
    first, second = (hidden * hidden).sum(), (hidden * 2.0).sum()
    (g,) = tg.grad(first, hidden)
    np.testing.assert_allclose(g.data, 2 * hidden.data)
    second.backward()  # hidden's own node was not run, so not freed
    np.testing.assert_allclose(x.grad.data, [6.0, 6.0])


def test_tg_grad_through_one_wanted_input_to_another():
    x = leaf([1.0, 2.0])
    hidden = x * 3.0
    g_hidden, g_x = tg.grad((hidden * hidden).sum(), [hidden, x])
    np.testing.assert_allclose(g_hidden.data, 2 * hidden.data)
    np.testing.assert_allclose(g_x.data, 18 * x.data)


def test_leaf_gradients_are_writable_arrays_of_their_own():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    assert a.grad.data is not b.grad.data
    a.grad.data[0] = 100.0  # must not reach b.grad, nor fail on a read-only view
    assert b.grad.tolist() == [1.0, 1.0]


def test_second_derivative_of_a_zero_dimensional_tensor():
    x = tg.Tensor(np.array(0.7), requires_grad=True)
    for fn, second in [(lambda t: t.exp(), np.exp(0.7)), (lambda t: t.tanh(), -2 * np.tanh(0.7) / np.cosh(0.7) ** 2)]:
        (first,) = tg.grad(fn(x), x, create_graph=True)
        (again,) = tg.grad(first, x)
        np.testing.assert_allclose(again.data, second)


def test_backward_returning_too_few_gradients_is_reported():
    from tinygrad_edu.autograd import Function

    class Broken(Function):
        """z = x * y;  dz/dx = y (and, wrongly, nothing for y)"""

        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(RuntimeError, match="Broken.backward returned 1 gradients for 2 inputs"):
        Broken.apply(leaf([1.0]), leaf([2.0])).sum().backward()


def test_a_node_has_declared_fields_and_other_modules_add_none():
    from tinygrad_edu.autograd import Context

    node = Context(tg.ops.Mul, [], [])  # a plain constructor: what apply knows before forward
    assert (node.saved, node.shape, node.module_calls, node.label) == ((), None, None, None)
    model = tg.nn.Sequential(tg.nn.Linear(3, 2), tg.nn.ReLU())
    x = tg.Tensor(np.ones((4, 3)))
    with tg.detect_anomaly():
        out = model(x) * 2.0
    relu_node = out.grad_fn.parents[0]
    assert [call[0] for call in relu_node.module_calls] == [model[1], model]  # innermost first
    assert relu_node.origin is not None  # where anomaly mode saw the op called
    # Only an op's own parameters (none for these) live outside the declared fields.
    for node in (out.grad_fn, relu_node, relu_node.parents[0]):
        assert getattr(node, "__dict__", {}) == {}, node
